"""Restoring a checkpoint into a target and its callbacks (the reading: ``_checkpointing``)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from flax import nnx

from artifex.generative_models.training._checkpointing._format import CALLBACKS_ITEM
from artifex.generative_models.training._checkpointing._listing import (
    CheckpointInfo,
    best_step,
    list_steps,
)
from artifex.generative_models.training._checkpointing._pytree import load_model
from artifex.generative_models.training._checkpointing._restore import (
    RestoredCheckpoint,
    locate,
    read_checkpoint,
)
from artifex.generative_models.training._checkpointing._runs import claimed_run, remember_run
from artifex.generative_models.training._checks import check_checkpoint_location
from artifex.generative_models.training.callbacks._rollback import all_or_nothing
from artifex.generative_models.training.callbacks._state import (
    load_callback_array_states,
    load_callback_states,
    stateful_callbacks,
)
from artifex.generative_models.training.callbacks.base import TrainerLike, TrainingCallback
from artifex.generative_models.training.callbacks.protocols import CheckpointableTrainer

__all__ = ["list_checkpoints", "restore_checkpoint", "restore_run"]


def list_checkpoints(directory: str | os.PathLike[str]) -> list[CheckpointInfo]:
    """List the checkpoints of a ``ModelCheckpoint`` directory, reading no array.

    Each step's ``meta`` item alone is read (a small JSON file), so this is cheap in
    any process, for instance to find the best checkpoint of a finished run::

        best = next(c for c in list_checkpoints("checkpoints") if c.kind == "best")
        restore_checkpoint("checkpoints", step=best.step, target=model)

    A step whose ``meta`` cannot be read (damaged, or of a format this version does
    not read) is listed with ``kind="unreadable"`` and its ``problem``; it never
    hides the others. Incomplete step directories (an interrupted save or deletion)
    are not checkpoints: they are not listed, and a logged warning names each.

    Args:
        directory: The ``dirpath`` the checkpoints were written to.

    Returns:
        One [`CheckpointInfo`][] per checkpoint, by ascending step; the one
        retention ranks first by the recorded ``monitor`` and ``mode`` has
        ``kind="best"``.

    Raises:
        TypeError: If ``directory`` is not a path.
        NotADirectoryError: If ``directory`` is a file.
        FileNotFoundError: If ``directory`` does not exist.
        ValueError: If it is not a ModelCheckpoint directory, or is one step's directory.
    """
    return list_steps(_whole_directory(directory, "list_checkpoints"))


def _whole_directory(directory: str | os.PathLike[str], what: str) -> Path:
    """The checkpoint directory ``directory``, refusing one step's directory in it."""
    check_checkpoint_location("directory", directory)
    path, step = locate(Path(directory), None)
    if step is not None:
        raise ValueError(
            f"{what} takes a checkpoint directory, got the step directory "
            f"{os.fsdecode(directory)!r}; pass {str(path)!r}"
        )
    return path


def restore_checkpoint(
    directory: str | os.PathLike[str],
    *,
    step: int | Literal["best"] | None = None,
    target: nnx.Module | TrainerLike | None = None,
) -> RestoredCheckpoint:
    """Read a checkpoint written by ``ModelCheckpoint``, optionally into a target.

    Example::

        model = MyModel(rngs=nnx.Rngs(0))            # a fresh model
        restored = restore_checkpoint("checkpoints", target=model)
        print(restored.step, restored.epoch, restored.metrics)

    Args:
        directory: The ``dirpath`` the checkpoints were written to, or one step's
            directory in it (``dirpath/<step>``, meaning that step).
        step: The checkpoint's step; the latest if ``None`` (or the step directory's);
            ``"best"`` for the one retention ranks first by the ``monitor`` and ``mode``
            the checkpoints recorded (NaN worst, a tie goes to the earlier step), as
            ``kind="best"`` in [`list_checkpoints`][].
        target: Where to load it. A [`CheckpointableTrainer`][] gets the whole state
            through ``load_state_dict`` (its ``state_dict()`` gives the structure, dtypes
            and shardings). An ``nnx.Module`` (or a trainer exposing only ``model``) gets
            the ``"model"`` entry through ``nnx.update``, with the shardings of the
            module's own arrays. ``None`` loads nothing and only returns the state,
            each array whole on this process's first local device
            (``jax.local_devices()[0]``, JAX's default device). A target then
            continues the directory's run: a ``ModelCheckpoint`` may write into that
            directory for it (or, for a module, for a trainer of it).

    In a multi-process job every process must call this (Orbax restores are
    collective), with a target of the same structure. With a target whose arrays
    are global (on a mesh over all processes' devices), each process reads the
    shards its devices hold and the result is global arrays with the target's
    shardings, replicated or sharded. With ``target=None`` each process gets its own
    fully addressable copy of every array (for inspection or evaluation, not for
    resuming a sharded run).

    Checkpoints of the current format and the one before (``READABLE_FORMATS``)
    restore; older ones are refused, naming the version that reads them. Every item of
    a format-5 checkpoint is verified against the checksums saved with it (format 4:
    the arrays), and the checkpoint must be the one asked for: its recorded step its
    directory's, its run the directory's. Arrays are read in their saved dtype,
    verified, then cast to a trainer target's. The data position (``state["data"]``)
    comes back as Python values: from the ``data`` item of format 5, or from the
    ``state`` item of format 4, its 0-d arrays turned into Python scalars when a
    trainer loads it.

    Returns:
        The step, epoch, metrics, state, extra items and callback arrays of the
        checkpoint.

    Raises:
        TypeError: If ``directory`` is not a path, ``step`` not an integer or ``target``
            neither a module nor a trainer.
        NotADirectoryError: If ``directory`` is a file.
        FileNotFoundError: If ``directory`` holds no checkpoint (or not ``step``); an
            incomplete step directory there is named, with what it lacks. Also if the
            checkpoint is deleted while it is read (by the retention of a run writing
            the directory): it "is no longer there" (with ``step=None``, the latest
            checkpoint left is read instead).
        ValueError: If ``directory`` is empty or not a ModelCheckpoint directory, or the
            checkpoint has a retired or unknown format, is damaged (a truncated file: the message
            names the step, the item and, where it can, the entry; or a restored array
            fails its checksum: named the same way; or a JSON item, the checksum record
            or ``meta`` fails its own), is not the checkpoint asked for (its recorded
            step or run is another's: both are named), or does not fit ``target`` (an array
            of another shape: named with both shapes), or ``step`` contradicts the step
            directory given, or ``step="best"`` finds no best: the checkpoints disagree
            on the monitor or mode (each step's are named), record none, or none has
            a score.
    """
    if step == "best":
        step = best_step(_whole_directory(directory, "step='best'"))
    check_checkpoint_location("directory", directory, step)
    return _restore_into(Path(directory), None if step is None else int(step), target)


def _restore_into(
    path: Path, step: int | None, target: nnx.Module | TrainerLike | None
) -> RestoredCheckpoint:
    """``restore_checkpoint`` past its path checks: read, load ``target``, continue its run."""
    untrusted: object = target
    if untrusted is not None and not isinstance(untrusted, nnx.Module | TrainerLike):
        raise TypeError(
            "target must be None, an nnx.Module or a trainer (with a model), got "
            f"{type(target).__qualname__} {target!r}"
        )
    trainer = target if isinstance(target, CheckpointableTrainer) else None
    model: nnx.Module | None = None
    if trainer is None and target is not None:
        model = target if isinstance(target, nnx.Module) else target.model
    restored, run = read_checkpoint(
        path,
        step,
        template=None if trainer is None else trainer.state_dict(),
        layout=model if trainer is None else trainer.model,
        into="" if target is None else f" into a {type(target).__qualname__}",
    )
    if trainer is not None:
        trainer.load_state_dict(restored.state)
    elif model is not None:
        where = f"checkpoint step {restored.step} in {str(restored.directory)!r}"
        load_model(model, restored.state, where)
    if target is not None:  # it now continues the directory's run (see _runs)
        remember_run(target, restored.directory, run)
    return restored


def restore_run(
    checkpoint: str | os.PathLike[str],
    trainer: CheckpointableTrainer,
    callbacks: Iterable[TrainingCallback],
    /,
    *,
    supersede: bool = False,
) -> int:
    """Restore a ``ModelCheckpoint`` checkpoint into ``trainer`` and its ``callbacks``."""
    check_checkpoint_location("resume_from", checkpoint)
    targets = stateful_callbacks(callbacks)
    with all_or_nothing(trainer, callbacks):  # a failed load leaves all as it was
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
        claim = claimed_run((trainer,), restored.directory)
        if supersede and claim is not None:  # the run may move the later steps aside
            remember_run(trainer, restored.directory, claim.run, supersede=True)
    return restored.step
