"""Which checkpoint a step directory holds, and which run a checkpoint directory holds.

Each checkpoint's ``meta`` records its step and run (sealed with its own checksum from
format 5 on), and the marker names the directory's run. The checks here compare them,
so that a renamed, swapped, copied or linked step is never restored as another
(docs/checkpoints.md, "Identity").
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from artifex.generative_models.training._checkpointing._format import (
    CHECKPOINT_FORMAT,
    MARKER_FILE,
    META_ITEM,
    format_problem,
    read_meta,
)
from artifex.generative_models.training._checkpointing._integrity import seal, unseal
from artifex.generative_models.training._checkpointing._step_dirs import complete_steps

__all__ = [
    "check_run",
    "checked_meta",
    "describe_runs",
    "directory_run",
    "marker_content",
    "marker_for",
    "marker_run",
    "read_marker",
    "recorded_runs",
    "write_marker",
]


def read_marker(path: Path) -> dict[str, Any] | None:
    """The marker's content: ``None`` without a marker, ``{}`` for an unreadable one."""
    marker = path / MARKER_FILE
    if not marker.is_file():
        return None
    try:
        found: object = json.loads(marker.read_bytes())
    except ValueError:  # JSONDecodeError and UnicodeDecodeError: truncated or garbled
        return {}
    return found if isinstance(found, dict) else {}


def marker_content(marker: dict[str, Any]) -> dict[str, Any] | None:
    """The marker's content checked against its seal (format 5 on), or ``None`` if damaged."""
    if "crc32" not in marker and marker.get("format") != CHECKPOINT_FORMAT:
        return marker  # written before markers were sealed
    try:
        return unseal(marker, "the marker")
    except ValueError:
        return None


def marker_run(marker: dict[str, Any] | None) -> str | None:
    """The run the marker names; ``None`` if it names none or is damaged."""
    content = None if marker is None else marker_content(marker)
    run = None if content is None else content.get("run")
    return run if isinstance(run, str) and run else None


def marker_for(marker: dict[str, Any] | None, run: str) -> dict[str, Any]:
    """The marker to write for ``run`` (keeping a readable marker's format)."""
    content = None if marker is None else marker_content(marker)
    found = None if content is None else content.get("format")
    return {"format": found if isinstance(found, str) else CHECKPOINT_FORMAT, "run": run}


def write_marker(path: Path, content: dict[str, Any]) -> None:
    """Write ``content``, sealed, as the marker of ``path`` (renamed in: never seen partial)."""
    partial = path / f".{MARKER_FILE}.{os.getpid()}.tmp"
    try:
        partial.write_text(json.dumps(seal(content)) + "\n")
        partial.replace(path / MARKER_FILE)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise OSError(
            error.errno,
            f"could not write the checkpoint marker {str(path / MARKER_FILE)!r}: {error.strerror}",
        ) from error


def checked_meta(directory: Path, step: int) -> dict[str, Any]:
    """The ``meta`` of checkpoint ``step``: parsed, of a readable format, sealed, of that step."""
    where = f"checkpoint step {step} in {str(directory)!r}"
    try:
        meta = read_meta(directory / str(step))
    except ValueError as error:  # a garbled or truncated JSON file
        raise ValueError(f"{where} is damaged: {error}") from error
    problem = format_problem(where, meta)
    if problem is not None:
        raise ValueError(problem)
    if not isinstance(meta, dict):  # every readable format's meta is a mapping
        raise ValueError(f"{where} is damaged: its {META_ITEM!r} item is not a mapping")
    if meta.get("format") == CHECKPOINT_FORMAT:
        try:
            meta = unseal(meta, f"its {META_ITEM!r} item")
        except ValueError as error:
            raise ValueError(f"{where} is damaged: {error}") from None
    recorded = meta.get("step")
    if recorded is not None and recorded != step:
        raise ValueError(
            f"{where} holds the checkpoint of step {recorded} (its {META_ITEM!r} item "
            f"records that step), not of step {step}: step directories renamed or swapped? "
            f"It is not restored as step {step}"
        )
    return meta


def recorded_runs(directory: Path) -> dict[str, list[int]]:
    """The runs the readable checkpoints of ``directory`` record, with their steps."""
    runs: dict[str, list[int]] = {}
    for step in complete_steps(directory):
        try:
            run = checked_meta(directory, step).get("run")
        except ValueError:  # unreadable: it names no run
            continue
        if isinstance(run, str) and run:
            runs.setdefault(run, []).append(step)
    return runs


def describe_runs(runs: dict[str, list[int]]) -> str:
    """``"run 'a…' (steps [2, 4]), run 'b…' (steps [6])"``."""
    return ", ".join(f"run {run!r} (steps {steps})" for run, steps in runs.items())


def directory_run(directory: Path) -> str | None:
    """The run of ``directory``: its marker's, else the one its checkpoints record."""
    run = marker_run(read_marker(directory))
    if run is not None:
        return run
    runs = recorded_runs(directory)
    if len(runs) > 1:
        raise ValueError(
            f"the marker of {str(directory)!r} names no run (damaged?) and its checkpoints "
            f"record several: {describe_runs(runs)}; which are the directory's cannot be told"
        )
    return next(iter(runs), None)


def check_run(where: str, meta: dict[str, Any], owner: str | None) -> None:
    """Refuse a checkpoint whose recorded run is not ``owner``, the directory's run."""
    run = meta.get("run")
    if owner is not None and isinstance(run, str) and run and run != owner:
        raise ValueError(
            f"{where} belongs to run {run!r} (its {META_ITEM!r} item), not to the "
            f"directory's run {owner!r} (its marker): a checkpoint of another run copied or "
            "linked in? It is not restored"
        )
