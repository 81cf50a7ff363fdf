"""What one ``ModelCheckpoint`` save holds: the training state, callback states, meta."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from flax import nnx

from artifex.generative_models.training._checkpointing._ended import RunEnd
from artifex.generative_models.training._checkpointing._format import (
    CALLBACKS_ITEM,
    CHECKPOINT_FORMAT,
    RESERVED_ITEMS,
)
from artifex.generative_models.training._checkpointing._pytree import to_savable
from artifex.generative_models.training.callbacks._monitor import Mode, to_float
from artifex.generative_models.training.callbacks._order import around
from artifex.generative_models.training.callbacks._state import (
    callback_array_states,
    check_json,
    stateful_callbacks,
)
from artifex.generative_models.training.callbacks.base import (
    TrainerLike,
    TrainingCallback,
)
from artifex.generative_models.training.callbacks.protocols import (
    CallbackHost,
    CheckpointableTrainer,
    StatefulCallback,
    TrainerState,
)

__all__ = [
    "callback_arrays",
    "callback_items",
    "checkpoint_meta",
    "json_save_items",
    "run_end",
    "save_position",
    "warn_if_stateful_after",
    "training_state",
]


def training_state(trainer: TrainerLike, step: int, epoch: int) -> Any:
    """The ``state`` item: ``trainer.state_dict()``, or what a plain trainer exposes."""
    if isinstance(trainer, CheckpointableTrainer):
        return to_savable(trainer.state_dict())
    state: dict[str, Any] = {
        "model": nnx.to_pure_dict(nnx.state(trainer.model)),
        "step": step,
        "epoch": epoch,
    }
    optimizer = getattr(trainer, "optimizer", None)
    if isinstance(optimizer, nnx.Optimizer):
        state["opt_state"] = nnx.to_pure_dict(nnx.state(optimizer))
    return state


def callback_items(trainer: TrainerLike) -> dict[str, Any]:
    """``{"callbacks": {state_key: state}}`` for a trainer exposing its callbacks."""
    if not isinstance(trainer, CallbackHost):
        return {}
    found = stateful_callbacks(trainer.callbacks)
    if not found:
        return {}
    states: dict[str, Any] = {}
    for key, callback in found.items():
        states[key] = state = callback.state_dict()
        owner = f"the state_dict() of callback {type(callback).__qualname__} (state_key {key!r})"
        check_json(state, owner)
    return {CALLBACKS_ITEM: states}


def json_save_items(trainer: TrainerLike, own: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """The JSON items of a save: the callbacks' states, and ``own`` (``json_items()``), checked."""
    clash = RESERVED_ITEMS & own.keys()
    if clash:
        raise ValueError(f"{owner} may not use the reserved item names {sorted(clash)}")
    for name, value in own.items():
        check_json(value, owner, f"item {name!r}")
    return callback_items(trainer) | dict(own)


def callback_arrays(trainer: TrainerLike) -> dict[str, Any]:
    """``{state_key: array_state()}`` of the array-stateful callbacks that have one."""
    if not isinstance(trainer, CallbackHost):
        return {}
    return {key: to_savable(tree) for key, tree in callback_array_states(trainer.callbacks).items()}


def checkpoint_meta(
    trainer: TrainerLike,
    *,
    step: int,
    epoch: int,
    position: int | None,
    logs: Mapping[str, Any] | None,
    monitor: str | None,
    mode: Mode,
    items: list[str],
    arrays: list[str],
    run: str | None = None,
) -> dict[str, Any]:
    """The ``meta`` item of a checkpoint."""
    metrics = (
        {}
        if logs is None
        else {key: v for key, value in logs.items() if (v := to_float(value)) is not None}
    )
    return {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "epoch": epoch,
        "position": position,
        "metrics": metrics,
        "monitor": monitor,
        "mode": mode,
        "trainer_state": isinstance(trainer, CheckpointableTrainer),
        "items": items,
        "callback_arrays": arrays,
        "run": run,
    }


def save_position(
    trainer: TrainerLike, state: Any, epoch: int, counted: int
) -> tuple[int, int | None]:
    """The epoch, and the batches of it run, that a save outside ``on_epoch_end`` records."""
    if not isinstance(trainer, CheckpointableTrainer) or not isinstance(state, dict):
        return epoch, counted
    progress = state.get("epoch_progress")
    if isinstance(progress, dict):
        return int(state["epoch"]), int(progress["batches"])
    return int(state["epoch"]) - 1, None


def warn_if_stateful_after(
    trainer: TrainerLike, callback: TrainingCallback, category: type[Warning]
) -> None:
    """Warn (``category``) if a stateful callback is dispatched after ``callback``."""
    found = around(trainer, callback)
    late = (
        []
        if found is None
        else [cb.state_key for cb in found[1] if isinstance(cb, StatefulCallback)]
    )
    if late:
        warnings.warn(
            f"{late} run after ModelCheckpoint, so each checkpoint would hold their "
            "state from before that epoch's end and a resumed run would differ; "
            "register ModelCheckpoint after them",
            category,
            stacklevel=3,
        )


def run_end(trainer: TrainerLike, run: str | None) -> RunEnd | None:
    """How ``trainer``'s run ended (at ``on_train_end``), if it completed or was stopped."""
    if run is None or not isinstance(trainer, TrainerState):
        return None
    status = trainer.status
    if status not in ("completed", "stopped"):
        return None  # failed or preempted: a rerun must train on
    stopper = trainer.stopped_by
    key: object = getattr(stopper, "state_key", None)
    name = (
        None
        if stopper is None
        else "the trainer (stop_training)"
        if stopper is trainer
        else key
        if isinstance(key, str)
        else type(stopper).__qualname__
    )
    return RunEnd(
        run=run,
        step=int(trainer.step),
        epoch=int(trainer.epoch),
        status=status,
        stopped_by=name,
    )
