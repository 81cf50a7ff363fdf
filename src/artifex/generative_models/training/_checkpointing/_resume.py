"""Resuming a run from a checkpoint: the trainer's whole state and its callbacks' states."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from artifex.generative_models.training._checkpointing._format import CALLBACKS_ITEM
from artifex.generative_models.training._checkpointing._restore import restore_checkpoint
from artifex.generative_models.training._checks import check_checkpoint_location
from artifex.generative_models.training.callbacks._state import (
    load_callback_array_states,
    load_callback_states,
    stateful_callbacks,
)

if TYPE_CHECKING:
    from artifex.generative_models.training.callbacks.base import TrainingCallback
    from artifex.generative_models.training.callbacks.protocols import CheckpointableTrainer

__all__ = ["restore_run"]


def restore_run(
    checkpoint: str | os.PathLike[str],
    trainer: CheckpointableTrainer,
    callbacks: Iterable[TrainingCallback],
    /,
) -> int:
    """Restore a ``ModelCheckpoint`` checkpoint into ``trainer`` and its ``callbacks``.

    Loads the trainer's whole state (``load_state_dict``) and the state of every
    stateful callback, by ``state_key`` (a callback without a saved state, or a saved
    state without a callback, warns); then the array states of the
    ``ArrayStatefulCallback`` s (``load_array_state``), restored with the shardings
    of the trainer's model where they are laid out like it. A format-1 checkpoint
    has no array states: those callbacks keep theirs.

    Args:
        checkpoint: A ``ModelCheckpoint`` directory (its latest checkpoint) or one
            step's directory in it.
        trainer: The trainer to load the state into.
        callbacks: The trainer's callbacks (or a ``CallbackList``).

    Returns:
        The restored global step.

    Raises:
        FileNotFoundError: If there is no such checkpoint.
        ValueError: If it is not a ``ModelCheckpoint`` checkpoint or does not fit
            ``trainer``, or two callbacks share a ``state_key``.
    """
    check_checkpoint_location("resume_from", checkpoint)
    targets = stateful_callbacks(callbacks)
    restored = restore_checkpoint(checkpoint, target=trainer)
    states: object = restored.extra.get(CALLBACKS_ITEM, {})
    if not isinstance(states, Mapping):
        raise ValueError(
            f"checkpoint {str(restored.directory)!r} step {restored.step} has a "
            f"{CALLBACKS_ITEM!r} item that is not a mapping: {type(states).__qualname__}"
        )
    if targets or states:
        load_callback_states(callbacks, states)
    if restored.callback_arrays:
        load_callback_array_states(callbacks, restored.callback_arrays)
    return restored.step
