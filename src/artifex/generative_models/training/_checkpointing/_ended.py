"""How a directory's run ended, recorded in its marker: completed, or stopped early by whom.

``ModelCheckpoint`` writes the record at the end of a run that completed or was
stopped (``"ended"`` in ``artifex_checkpoints.json``: the run, the step and epoch it
ended at, ``"completed"`` or ``"stopped"``, and what stopped it), and drops it at the
end of a run that failed or was preempted. A same-command rerun
(``fit(..., resume=True)``) reads it to return at once instead of training a finished
run again. The record describes the directory's latest state only while no checkpoint
is later than its step (``RunEnd.holds``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

from artifex.generative_models.training._checkpointing._identity import (
    marker_content,
    read_marker,
    write_marker,
)
from artifex.generative_models.training._checkpointing._step_dirs import complete_steps

__all__ = ["RunEnd", "read_end", "record_end"]

_KEY: Final = "ended"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEnd:
    """That a directory's run ended, not by a failure or a preemption."""

    run: str
    step: int
    epoch: int
    """The next epoch to run (``trainer.epoch``): how many epochs ran in all."""
    status: Literal["completed", "stopped"]
    stopped_by: str | None = None
    """What stopped it (a callback's ``state_key`` or class name, or the trainer)."""

    def holds(self, directory: Path) -> bool:
        """Whether no checkpoint of ``directory`` is later than the end (it is still the end)."""
        return max(complete_steps(directory), default=-1) <= self.step

    def describe(self) -> str:
        """``"completed at step 18 (3 epochs run)"``, or ``"was stopped early by ..."``."""
        at = f"at step {self.step} ({self.epoch} epochs run)"
        if self.status == "completed":
            return f"completed {at}"
        return f"was stopped early by {self.stopped_by or 'a stop request'} {at}"


def read_end(directory: Path) -> RunEnd | None:
    """The end recorded in ``directory``'s marker, or ``None`` (none, or unreadable)."""
    marker = read_marker(directory)
    content = None if marker is None else marker_content(marker)
    found: object = None if content is None else content.get(_KEY)
    if not isinstance(found, dict):
        return None
    try:
        end = RunEnd(
            run=str(found["run"]),
            step=int(found["step"]),
            epoch=int(found["epoch"]),
            status="stopped" if found["status"] == "stopped" else "completed",
            stopped_by=None if found.get("stopped_by") is None else str(found["stopped_by"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    return end if found["status"] in ("completed", "stopped") else None


def record_end(directory: Path, end: RunEnd | None) -> None:
    """Write ``end`` into ``directory``'s marker (``None``: drop a recorded end)."""
    marker = read_marker(directory)
    content = None if marker is None else marker_content(marker)
    if not content:  # no marker, or a damaged one (rebuilt by the next run)
        return
    updated: dict[str, Any] = {k: v for k, v in content.items() if k != _KEY}
    if end is not None:
        updated[_KEY] = asdict(end)
    if updated == content:
        return
    write_marker(directory, updated)
