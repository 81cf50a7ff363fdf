"""The checkpoint directory: its marker, its run and its lock, set up across processes.

The rules are in docs/checkpoints.md. ``check_directory`` finds every refusal of
``prepare_directory`` reading only, so that a run is refused before anything is written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jax

from artifex.generative_models.training._checkpointing._ended import record_end
from artifex.generative_models.training._checkpointing._format import MARKER_FILE
from artifex.generative_models.training._checkpointing._identity import (
    describe_runs,
    marker_for,
    marker_run,
    read_marker,
    recorded_runs,
    write_marker,
)
from artifex.generative_models.training._checkpointing._lock import (
    DirectoryLock,
    LockHeld,
    acquire_lock,
    check_lock,
    is_lock_litter,
)
from artifex.generative_models.training._checkpointing._paths import (
    check_round_trip,
    check_writable,
    checkpoint_directory_above,
)
from artifex.generative_models.training._checkpointing._runs import RunClaim, new_run_id
from artifex.generative_models.training._checkpointing._step_dirs import (
    complete_steps,
    foreign_steps,
    move_aside_after,
)
from artifex.generative_models.training._spmd import allgather_bytes

__all__ = ["PreparedDirectory", "check_directory", "is_checkpoint_directory", "prepare_directory"]

_log = logging.getLogger(__name__)

_PAYLOAD: Final = 4096  # bytes of process 0's verdict, as JSON: the run id, or the refusal


@dataclass(frozen=True, slots=True)
class PreparedDirectory:
    """A checkpoint directory set up for a run: its run id, and the lock (process 0's)."""

    run: str
    lock: DirectoryLock | None = None


def is_checkpoint_directory(path: Path) -> bool:
    """Whether ``path`` holds the marker of a ``ModelCheckpoint`` directory."""
    return (path / MARKER_FILE).is_file()


def _check_shape(path: Path) -> None:
    """Refuse a file, a directory inside another's or not writable, and one not ours."""
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"checkpoint dirpath {str(path)!r} exists and is a file")
    check_writable("checkpoint dirpath", path)
    above = checkpoint_directory_above(path)
    if above is not None:
        raise FileExistsError(
            f"checkpoint dirpath {str(path)!r} lies inside the checkpoint directory "
            f"{str(above)!r} (it holds {MARKER_FILE}), whose run lists, replaces and deletes "
            "what is there; choose a dirpath outside it"
        )
    if (
        path.is_dir()
        and not is_checkpoint_directory(path)
        and any(not is_lock_litter(child.name) for child in path.iterdir())
    ):
        raise FileExistsError(
            f"checkpoint dirpath {str(path)!r} is not empty and was not created by "
            f"ModelCheckpoint (it has no {MARKER_FILE}); refusing to write into it. "
            "Choose a new or empty directory."
        )


def _lock(path: Path, run: str | None, *, take: bool) -> DirectoryLock | None:
    """Take the lock of ``path`` for ``run`` (or, reading only, check that it could)."""
    try:
        if take:
            return acquire_lock(path, run)
        check_lock(path, run)
    except LockHeld as busy:
        raise FileExistsError(
            f"checkpoint dirpath {str(path)!r} is being written by another run: "
            f"{busy.holder} holds its lock {str(busy.path)!r}. Wait for that run to "
            "end or choose another dirpath. If that run was killed on another host or in "
            "a restarted container (which cannot be checked from here), resume it "
            "(resume_from=dirpath takes over its own run's lock) or delete the lock file."
        ) from None
    return None


def _recorded_run(path: Path, marker: dict[str, Any] | None) -> str | None:
    """The run of ``path``: the marker's, or, if it is damaged, the one its checkpoints record."""
    if marker is None:
        return None
    recorded, runs = marker_run(marker), recorded_runs(path)
    if recorded is None and len(runs) > 1:
        raise FileExistsError(
            f"checkpoint dirpath {str(path)!r} has a marker that names no run (damaged?) "
            f"and holds the checkpoints of several runs: {describe_runs(runs)}; refusing to "
            "write there. Move the other runs' step directories out, or choose a new dirpath."
        )
    recorded = recorded or next(iter(runs), None)  # a damaged marker: rebuilt from them
    foreign = {run: steps for run, steps in runs.items() if run != recorded}
    if foreign:
        raise FileExistsError(
            f"checkpoint dirpath {str(path)!r} is run {recorded!r}'s but holds checkpoints "
            f"of another run: {describe_runs(foreign)} (copied or linked in?); retention "
            "could delete them. Move them out, or choose a new dirpath."
        )
    return recorded


def _run_verdict(
    path: Path, marker: dict[str, Any] | None, claim: RunClaim | None, step: int | None
) -> str:
    """The run of ``path`` that ``claim`` continues (``""``: this run's to take), or a refusal."""
    recorded = _recorded_run(path, marker)
    steps = [] if marker is None else complete_steps(path)
    continued = ""
    if recorded is not None:
        if claim is not None and claim.run in (None, recorded):
            continued = recorded
        elif steps:
            came = (
                "its state was not loaded from there"
                if claim is None
                else f"its state comes from run {claim.run!r}, which the directory no longer holds"
            )
            raise FileExistsError(
                f"checkpoint dirpath {str(path)!r} holds the checkpoints of run {recorded!r}, "
                f"and this run does not continue it ({came}); writing there would mix two "
                "runs and retention would delete that run's checkpoints. Choose a new "
                "dirpath, or continue that run: fit(..., resume_from=dirpath), "
                "trainer.resume(dirpath) or restore_checkpoint(dirpath, target=trainer)."
            )
    latest = max(steps, default=None)
    if step is not None:
        _check_future_steps(path, step)
    later = step is not None and latest is not None and latest > step
    if later and not (continued and claim is not None and claim.supersede):
        raise FileExistsError(
            f"checkpoint dirpath {str(path)!r} holds checkpoints up to step {latest}, "
            f"beyond this run's step {step}: new checkpoints would be silently skipped. "
            "Resume from its latest (fit(..., resume=True) or resume_from=dirpath); or, "
            f"to continue from step {step} instead, resume from that step with "
            "supersede=True, which moves the later checkpoints aside in the directory "
            "(as '<step>.superseded-<n>', never deleted); or choose another dirpath."
        )
    return continued


def _check_future_steps(path: Path, step: int) -> None:
    """Refuse a folder (or file) of the user's named like a step this run may save."""
    later = {n: files for n, files in foreign_steps(path).items() if n > step}
    if later:
        number, files = next(iter(later.items()))
        raise FileExistsError(
            f"checkpoint dirpath {str(path)!r} holds {str(path / str(number))!r}, named like "
            f"step {number}, which this run (at step {step}) may save, but it is not a "
            f"checkpoint (it holds {', '.join(files)}): a save there would replace it. Move "
            "or rename it, or choose another dirpath."
        )


def _continued(path: Path, claim: RunClaim | None) -> str | None:
    """The run of ``path`` this run continues, as far as reading tells (before the lock)."""
    try:
        continued = _run_verdict(path, read_marker(path), claim, None)
    except FileExistsError:
        continued = ""
    return continued or (None if claim is None else claim.run)


def _verdict(path: Path, claim: RunClaim | None, lock: bool, step: int | None) -> tuple[str, None]:
    _check_shape(path)
    if not path.is_dir():
        return "", None
    if lock:
        _lock(path, _continued(path, claim), take=False)
    return _run_verdict(path, read_marker(path), claim, step), None


def _check_and_mark(
    path: Path, claim: RunClaim | None, lock: bool, step: int | None
) -> tuple[str, DirectoryLock | None]:
    """Set ``path`` up for this run; nothing is left written on a refusal but the directory."""
    _check_shape(path)
    path.mkdir(parents=True, exist_ok=True)
    run = _continued(path, claim) or new_run_id()
    held = _lock(path, run, take=True) if lock else None
    try:
        marker = read_marker(path)
        continued = _run_verdict(path, marker, claim, step)
        if continued and claim is not None and claim.supersede and step is not None:
            moved = move_aside_after(path, step)
            if moved:  # an end recorded after this step no longer holds
                record_end(path, None)
            for aside in moved:
                _log.warning(
                    "resumed from step %d with supersede=True: moved the later checkpoint "
                    "%s aside to %s (kept; never listed, restored or deleted)",
                    step,
                    aside.name.split(".")[0],
                    aside,
                )
        # Written when new, marked before run ids or holding no checkpoint (ours), and
        # rebuilt from the checkpoints' run when damaged.
        if marker_run(marker) != (continued or run):
            if marker is not None and continued:
                _log.warning(
                    "the checkpoint marker of %s is damaged; rebuilt for run %s", path, continued
                )
            write_marker(path, marker_for(marker, continued or run))
    except BaseException:
        if held is not None:
            held.release()
        raise
    return continued or run, held


def check_directory(
    path: Path, *, claim: RunClaim | None = None, lock: bool = False, step: int | None = None
) -> None:
    """Raise what ``prepare_directory`` would raise for ``path``, writing nothing."""
    check_round_trip(path)
    _agree(path, lambda: _verdict(path, claim, lock, step))


def prepare_directory(
    path: Path, *, claim: RunClaim | None = None, lock: bool = False, step: int | None = None
) -> PreparedDirectory:
    """Set ``path`` up for a run: create it and its marker, check its run, take its lock."""
    # A collective: process 0 alone checks, writes and locks; every process raises its
    # refusal or gets the same run id, so none sees the directory half-made.
    check_round_trip(path)
    return _agree(path, lambda: _check_and_mark(path, claim, lock, step))


def _agree(path: Path, judge: Callable[[], tuple[str, DirectoryLock | None]]) -> PreparedDirectory:
    """Run ``judge`` on process 0, share its verdict, and raise it on every process."""
    run, held, failure = "", None, None
    if jax.process_index() == 0:
        try:
            run, held = judge()
        except OSError as error:  # FileExistsError included
            failure = error
    refused = isinstance(failure, FileExistsError)
    verdict = {"run": run} if failure is None else {"refused": refused, "why": str(failure)}
    raw = json.dumps(verdict).encode()[:_PAYLOAD]
    shared = allgather_bytes(raw.ljust(_PAYLOAD, b"\0"))[0]
    if failure is not None:
        raise failure
    try:
        found: dict[str, Any] = json.loads(shared.rstrip(b"\0"))
    except ValueError:  # cut short: a refusal too long to share
        found = {
            "refused": True,
            "why": "process 0 refused the checkpoint directory (see its error)",
        }
    if "why" not in found:
        return PreparedDirectory(str(found["run"]), held)
    if found["refused"]:
        raise FileExistsError(found["why"])
    raise OSError(
        f"process 0 could not check or create the checkpoint dirpath {str(path)!r}: {found['why']}"
    )
