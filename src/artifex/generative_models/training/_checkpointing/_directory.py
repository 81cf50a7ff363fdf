"""The checkpoint directory: its marker, its run, its lock, and its set-up across processes.

A directory belongs to ``ModelCheckpoint`` when it holds ``MARKER_FILE``; one
that does not, and is not empty, is never written into. The marker names the run
the directory holds (``"run"``, a run id); a run that does not continue it is
refused (see ``_runs``), and so is one holding later steps than the run's (Orbax
would skip its saves). While a run writes the directory it holds its lock (see
``_lock``). ``check_directory`` finds every refusal that ``prepare_directory`` raises,
reading only, so that a run is refused before anything is written (a preflight).
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jax

from artifex.generative_models.training._checkpointing._format import (
    CHECKPOINT_FORMAT,
    MARKER_FILE,
)
from artifex.generative_models.training._checkpointing._lock import (
    DirectoryLock,
    LockHeld,
    acquire_lock,
    check_lock,
    is_lock_litter,
)
from artifex.generative_models.training._checkpointing._runs import RunClaim, new_run_id
from artifex.generative_models.training._checkpointing._step_dirs import is_complete_step
from artifex.generative_models.training._spmd import allgather_bytes

__all__ = ["PreparedDirectory", "check_directory", "is_checkpoint_directory", "prepare_directory"]

_log = logging.getLogger(__name__)

# The verdicts of process 0 on the directory, gathered as one signed byte.
_DIRECTORY_OK: Final = 0
_DIRECTORY_IS_FILE: Final = 1
_DIRECTORY_FOREIGN: Final = 2
_DIRECTORY_OS_ERROR: Final = 3
_DIRECTORY_OTHER_RUN: Final = 4
_DIRECTORY_LOCKED: Final = 5
_DIRECTORY_LATER_STEPS: Final = 6

_PAYLOAD: Final = 4096
"""The bytes process 0 sends: its verdict, then the run id or the refusal, as JSON."""


@dataclass(frozen=True, slots=True)
class PreparedDirectory:
    """A checkpoint directory set up for a run."""

    run: str
    lock: DirectoryLock | None = None


def is_checkpoint_directory(path: Path) -> bool:
    """Whether ``path`` holds the marker of a ``ModelCheckpoint`` directory."""
    return (path / MARKER_FILE).is_file()


def _write_marker(path: Path, marker: dict[str, Any]) -> None:
    """Write the marker through a temporary file renamed into place (never seen partial)."""
    partial = path / f".{MARKER_FILE}.{os.getpid()}.tmp"
    partial.write_text(json.dumps(marker) + "\n")
    partial.replace(path / MARKER_FILE)


def _read_marker(path: Path, *, warn: bool) -> dict[str, Any] | None:
    """The marker's content: ``None`` without a marker, ``{}`` for an unreadable one."""
    marker = path / MARKER_FILE
    if not marker.is_file():
        return None
    try:
        found: object = json.loads(marker.read_text())
    except ValueError:
        if warn:
            _log.warning("the checkpoint marker %s is unreadable; it is rewritten", marker)
        return {}
    return found if isinstance(found, dict) else {}


def _checkpoint_steps(path: Path) -> list[int]:
    return [
        int(child.name)
        for child in path.iterdir()
        if child.name.isdigit() and is_complete_step(child)
    ]


def _shape(path: Path) -> int:
    """``_DIRECTORY_IS_FILE``, ``_DIRECTORY_FOREIGN`` (not ours, not empty) or ``_DIRECTORY_OK``."""
    if path.exists():
        if not path.is_dir():
            return _DIRECTORY_IS_FILE
        if not is_checkpoint_directory(path) and any(
            not is_lock_litter(child.name) for child in path.iterdir()
        ):
            return _DIRECTORY_FOREIGN
    return _DIRECTORY_OK


def _locked(path: Path, busy: LockHeld) -> str:
    return (
        f"checkpoint dirpath {str(path)!r} is being written by another run: "
        f"{busy.holder} holds its lock {str(busy.path)!r}. Wait for that run to "
        "end or choose another dirpath. If that run was killed on another host or in "
        "a restarted container (which cannot be checked from here), resume it "
        "(resume_from=dirpath takes over its own run's lock) or delete the lock file."
    )


def _run_verdict(
    path: Path, marker: dict[str, Any] | None, claim: RunClaim | None, step: int | None
) -> tuple[int, str]:
    """Judge the marked (or new) ``path``'s run and steps; read only."""
    recorded: object = None if marker is None else marker.get("run")
    steps = [] if marker is None else _checkpoint_steps(path)
    continued = ""
    if isinstance(recorded, str) and recorded:
        if claim is not None and claim.run in (None, recorded):
            continued = recorded
        elif steps:
            came = (
                "its state was not loaded from there"
                if claim is None
                else f"its state comes from run {claim.run!r}, which the directory no longer holds"
            )
            return _DIRECTORY_OTHER_RUN, (
                f"checkpoint dirpath {str(path)!r} holds the checkpoints of run {recorded!r}, "
                f"and this run does not continue it ({came}); writing there would mix two "
                "runs and retention would delete that run's checkpoints. Choose a new "
                "dirpath, or continue that run: fit(..., resume_from=dirpath), "
                "trainer.resume(dirpath) or restore_checkpoint(dirpath, target=trainer)."
            )
    latest = max(steps, default=None)
    if step is not None and latest is not None and latest > step:
        return _DIRECTORY_LATER_STEPS, (
            f"checkpoint dirpath {str(path)!r} holds checkpoints up to step {latest}, "
            f"beyond this run's step {step}: new checkpoints would be silently skipped. "
            "Resume from it, or choose another dirpath."
        )
    return _DIRECTORY_OK, continued


def _continued(path: Path, claim: RunClaim | None) -> str | None:
    """The run of ``path`` this run continues, as far as reading tells (before the lock)."""
    code, detail = _run_verdict(path, _read_marker(path, warn=False), claim, None)
    if code == _DIRECTORY_OK and detail:
        return detail
    return None if claim is None else claim.run


def _verdict(
    path: Path, claim: RunClaim | None, lock: bool, step: int | None
) -> tuple[int, str, None]:
    """What ``_check_and_mark`` would decide, reading only: ``(code, detail, None)``."""
    code = _shape(path)
    if code != _DIRECTORY_OK or not path.is_dir():
        return code, "", None
    if lock:
        try:
            check_lock(path, _continued(path, claim))
        except LockHeld as busy:
            return _DIRECTORY_LOCKED, _locked(path, busy), None
    code, detail = _run_verdict(path, _read_marker(path, warn=False), claim, step)
    return code, detail, None


def _own(path: Path, claim: RunClaim | None, step: int | None, run: str) -> tuple[int, str]:
    """Make the marked (or new) ``path`` run ``run``'s; return ``(code, run id or refusal)``."""
    marker = _read_marker(path, warn=True)
    code, detail = _run_verdict(path, marker, claim, step)
    if code != _DIRECTORY_OK or detail:
        return code, detail
    base = {"format": CHECKPOINT_FORMAT} if marker is None else marker
    _write_marker(path, {**base, "run": run})
    return _DIRECTORY_OK, run


def _check_and_mark(
    path: Path, claim: RunClaim | None, lock: bool, step: int | None
) -> tuple[int, str, DirectoryLock | None]:
    """Set ``path`` up for this run, unless it is refused; return ``(code, detail, lock)``."""
    code = _shape(path)
    if code != _DIRECTORY_OK:
        return code, "", None
    path.mkdir(parents=True, exist_ok=True)
    run = _continued(path, claim) or new_run_id()
    held: DirectoryLock | None = None
    if lock:
        try:
            held = acquire_lock(path, run)
        except LockHeld as busy:
            return _DIRECTORY_LOCKED, _locked(path, busy), None
    try:
        code, detail = _own(path, claim, step, run)
    except BaseException:
        if held is not None:
            held.release()
        raise
    if code != _DIRECTORY_OK and held is not None:
        held.release()
        held = None
    return code, detail, held


def check_directory(
    path: Path, *, claim: RunClaim | None = None, lock: bool = False, step: int | None = None
) -> None:
    """Raise what ``prepare_directory`` would raise for ``path``, writing nothing."""
    _agree(path, lambda: _verdict(path, claim, lock, step))


def prepare_directory(
    path: Path, *, claim: RunClaim | None = None, lock: bool = False, step: int | None = None
) -> PreparedDirectory:
    """Set ``path`` up for a run: create it and its marker, check its run, take its lock.

    A collective: process 0 alone checks, writes and locks, and every process raises
    its verdict (or gets the same run id), so none sees the directory half-made.
    """
    return _agree(path, lambda: _check_and_mark(path, claim, lock, step))


def _agree(
    path: Path, judge: Callable[[], tuple[int, str, DirectoryLock | None]]
) -> PreparedDirectory:
    """Run ``judge`` on process 0, share its verdict, and raise it on every process."""
    primary = jax.process_index() == 0
    code, detail, held, failure = _DIRECTORY_OK, "", None, None
    if primary:
        try:
            code, detail, held = judge()
        except OSError as error:
            code, failure = _DIRECTORY_OS_ERROR, error
    raw = json.dumps(detail).encode()[: _PAYLOAD - 1] if primary else b""
    gathered = allgather_bytes(struct.pack("<b", code) + raw.ljust(_PAYLOAD - 1, b"\0"))[0]
    code = struct.unpack("<b", gathered[:1])[0]
    detail = _decode(gathered[1:], detail)
    if code == _DIRECTORY_IS_FILE:
        raise FileExistsError(f"checkpoint dirpath {str(path)!r} exists and is a file")
    if code == _DIRECTORY_FOREIGN:
        raise FileExistsError(
            f"checkpoint dirpath {str(path)!r} is not empty and was not created by "
            f"ModelCheckpoint (it has no {MARKER_FILE}); refusing to write into it. "
            "Choose a new or empty directory."
        )
    if code in (_DIRECTORY_OTHER_RUN, _DIRECTORY_LOCKED, _DIRECTORY_LATER_STEPS):
        raise FileExistsError(detail)
    if code == _DIRECTORY_OS_ERROR:
        if failure is not None:
            raise failure
        raise OSError(f"process 0 could not check or create the checkpoint dirpath {str(path)!r}")
    return PreparedDirectory(detail, held)


def _decode(raw: bytes, own: str) -> str:
    """Process 0's detail from its padded JSON; ``own`` if it was cut short."""
    try:
        found: object = json.loads(raw.rstrip(b"\0"))
    except ValueError:
        return own or "process 0 refused the checkpoint directory (see its error)"
    return found if isinstance(found, str) else own
