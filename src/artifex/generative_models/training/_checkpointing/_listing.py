"""What a checkpoint directory holds, read from each step's ``meta`` alone (no array is read).

``list_checkpoints`` and ``restore_checkpoint(step="best")`` (in ``callbacks/``) are built
on it; the best checkpoint is the one retention (``_retention.Ranking``) ranks first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TypeAlias

from artifex.generative_models.training._checkpointing._directory import is_checkpoint_directory
from artifex.generative_models.training._checkpointing._identity import (
    check_run,
    checked_meta,
    directory_run,
)
from artifex.generative_models.training._checkpointing._retention import Ranking
from artifex.generative_models.training._checkpointing._step_dirs import (
    complete_steps,
    incomplete_steps,
    is_complete_step,
    lacking,
)

__all__ = ["CheckpointInfo", "CheckpointKind", "best_step", "check_recorded_mode", "list_steps"]

logger = logging.getLogger(__name__)

CheckpointKind: TypeAlias = Literal["epoch_end", "mid_epoch", "best", "unreadable"]
_Direction: TypeAlias = Literal["min", "max"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointInfo:
    """One checkpoint of a directory, as ``list_checkpoints`` reads it from its ``meta``.

    Attributes:
        step: The checkpoint's global step (its directory's name).
        kind: ``"best"`` for the checkpoint retention ranks first by the recorded
            ``monitor`` and ``mode`` (NaN worst, a tie goes to the earlier step; none
            when the checkpoints disagree on them or have no monitor), else
            ``"epoch_end"`` or ``"mid_epoch"`` (``every_n_steps``, a save on
            preemption); ``"unreadable"`` when its ``meta`` cannot be read (see
            ``problem``).
        epoch: The epoch at whose end it was saved; for a mid-epoch checkpoint the
            epoch in progress; ``None`` if unreadable.
        position: For a mid-epoch checkpoint, how many batches of ``epoch`` had run;
            ``None`` for an epoch-end (or unreadable) checkpoint.
        metrics: The numeric epoch logs at that point; empty for a mid-epoch one.
        monitor: The ``ModelCheckpoint`` monitor it was saved under, or ``None``.
        mode: That monitor's resolved mode (``"min"`` or ``"max"``); ``None`` without
            a monitor.
        problem: Why it is unreadable (the step, the file and the cause), else ``None``.
    """

    step: int
    kind: CheckpointKind
    epoch: int | None
    position: int | None = None
    metrics: dict[str, float]
    monitor: str | None = None
    mode: _Direction | None = None
    problem: str | None = None


def list_steps(directory: Path) -> list[CheckpointInfo]:
    """The checkpoints of ``directory`` (a checkpoint directory), by step."""
    steps = complete_steps(directory)
    for entry in incomplete_steps(directory).items():
        logger.warning("not listed: %s", lacking(directory, *entry))
    try:
        owner = directory_run(directory)
    except ValueError as error:  # a damaged marker, checkpoints of several runs
        logger.warning("not checked for their run: %s", error)
        owner = None
    found = (_info(directory, step, owner) for step in steps)
    infos = [info for info in found if info is not None]
    best = _best(directory, infos)
    if isinstance(best, int):
        infos = [replace(i, kind="best") if i.step == best else i for i in infos]
    return infos


def check_recorded_mode(directory: Path, monitor: str | None, mode: str) -> None:
    """Refuse to rank ``directory``'s scores of ``monitor`` in another ``mode`` than saved."""
    if monitor is None or not is_checkpoint_directory(directory):
        return
    for info in list_steps(directory):
        if info.monitor == monitor and info.mode is not None and info.mode != mode:
            raise ValueError(
                f"ModelCheckpoint: the checkpoints in {str(directory)!r} were saved with "
                f"mode={info.mode!r} for {monitor!r} (step {info.step}); this run's mode is "
                f"{mode!r}, which would rank them the other way; pass mode={info.mode!r} to "
                "continue them, or another dirpath"
            )


def best_step(directory: Path) -> int:
    """The step of the best checkpoint of ``directory`` by its recorded monitor and mode."""
    infos = list_steps(directory)
    for info in infos:
        if info.problem is not None:
            logger.warning("not ranked for step='best': %s", info.problem)
    best = _best(directory, infos)
    if isinstance(best, str):
        raise ValueError(best)
    return best


def _best(directory: Path, infos: list[CheckpointInfo]) -> int | str:
    """The best step of ``infos``, or why there is none."""
    where = f"step='best' in {str(directory)!r}"
    readable = [info for info in infos if info.problem is None]
    recorded: set[tuple[str | None, _Direction | None]] = {(i.monitor, i.mode) for i in readable}
    if not readable:
        return f"{where}: no readable checkpoint there"
    if len(recorded) > 1:
        by_step = ", ".join(f"step {i.step}: {i.monitor!r} ({i.mode})" for i in readable)
        return (
            f"{where}: the checkpoints disagree on the monitor or mode ({by_step}); pass "
            "step= (see list_checkpoints)"
        )
    ((monitor, mode),) = recorded
    steps = [info.step for info in readable]
    if monitor is None or mode is None:
        return f"{where}: the checkpoints (steps {steps}) were saved without a monitor"
    ranking = Ranking(mode, None, keep_last=False)  # retention's rule: NaN worst, ties earlier
    ranking.scores = {i.step: i.metrics[monitor] for i in readable if monitor in i.metrics}
    best = ranking.best(steps)
    if best is None:
        return f"{where}: no checkpoint (steps {steps}) has a score for the monitor {monitor!r}"
    return best


def _info(directory: Path, step: int, owner: str | None) -> CheckpointInfo | None:
    """What the ``meta`` of ``step`` says (``"unreadable"`` with the problem if it cannot)."""
    # None if the step was deleted meanwhile (the retention of a run writing there).
    where = f"checkpoint step {step} in {str(directory)!r}"
    try:
        meta = checked_meta(directory, step)
        check_run(where, meta, owner)
    except ValueError as error:
        return (
            None if not is_complete_step(directory / str(step)) else _unreadable(step, str(error))
        )
    try:
        position = meta.get("position")
        monitor = meta.get("monitor")
        mode = meta.get("mode") if monitor is not None else None
        if mode not in ("min", "max", None) or not isinstance(monitor, str | None):
            raise ValueError(f"monitor {monitor!r} with mode {mode!r}")
        return CheckpointInfo(
            step=step,
            kind="epoch_end" if position is None else "mid_epoch",
            epoch=int(meta["epoch"]),
            position=None if position is None else int(position),
            metrics={str(k): float(v) for k, v in meta.get("metrics", {}).items()},
            monitor=monitor,
            mode=mode,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return _unreadable(
            step,
            f"{where} is damaged: its 'meta' item has an invalid field "
            f"({type(error).__name__}: {error})",
        )


def _unreadable(step: int, problem: str) -> CheckpointInfo:
    return CheckpointInfo(step=step, kind="unreadable", epoch=None, metrics={}, problem=problem)
