"""Model checkpointing on Orbax: atomic, optionally asynchronous, best-k retention.

Layout of ``dirpath`` (an Orbax ``CheckpointManager`` directory)::

    dirpath/
      artifex_checkpoints.json     # marker: this directory belongs to ModelCheckpoint
      <step>/                      # one Orbax checkpoint per save, named by global step
        state/                     # the training-state pytree (Orbax StandardSave)
        meta/                      # JSON: format, step, epoch, metrics, monitor, mode,
                                   #   items, callback_arrays (the keys saved there)
        metrics/                   # Orbax's own: {monitor: score}, when monitor is set
        callbacks/                 # JSON: {state_key: state} of the stateful callbacks
        callback_arrays/           # Orbax pytree: {state_key: array_state()}, if any
        <extra>/                   # further JSON items (see ModelCheckpoint.json_items)

``state`` is ``trainer.state_dict()`` when the trainer is a
[`CheckpointableTrainer`][] (at least ``model``, ``opt_state``, ``step`` and
``epoch``), with every ``nnx.State`` stored as a pure dict. For a plain
[`TrainerLike`][] it is ``{"model", "opt_state" (if the trainer has an
``nnx.Optimizer`` as ``optimizer``), "step", "epoch"}``, with ``step`` counted from the
``on_batch_end`` calls seen. Restore with [`restore_checkpoint`][].

``callbacks`` holds the ``state_dict()`` of every
[`StatefulCallback`][] of a
trainer that exposes its callbacks (a
[`CallbackHost`][]), keyed by
``state_key``: taken at the same ``on_epoch_end`` as the model state, so callbacks
that run before ``ModelCheckpoint`` in dispatch order (put it last) have already seen
that epoch. ``Trainer.fit(..., resume_from=...)`` loads it back.

``callback_arrays`` (new in format 2, ``CHECKPOINT_FORMAT`` ending in ``/2``) holds the
``array_state()`` of every
[`ArrayStatefulCallback`][]
that has one (``EarlyStopping``'s best weights), saved by Orbax in the same atomic
save; ``meta["callback_arrays"]`` lists their keys. It is absent when no callback has
an array state, and in format-1 checkpoints, which still restore.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp
from flax import nnx

from artifex.generative_models.training._checkpointing._agreement import (
    SavePlan,
    agree_on_save_plan,
)
from artifex.generative_models.training._checkpointing._directory import prepare_directory
from artifex.generative_models.training._checkpointing._format import (
    CALLBACKS_ITEM,
    CHECKPOINT_FORMAT,
    RESERVED_ITEMS,
    save_args,
)
from artifex.generative_models.training._checkpointing._manager import open_manager
from artifex.generative_models.training._checkpointing._pytree import to_savable
from artifex.generative_models.training._checkpointing._restore import (
    RestoredCheckpoint,
    restore_checkpoint,
)
from artifex.generative_models.training._checkpointing._retention import rank, saved_scores
from artifex.generative_models.training._checks import (
    check_bool,
    check_int,
    check_mode,
    check_name,
    check_path,
    resolve_config,
)
from artifex.generative_models.training.callbacks._monitor import Mode, MonitorLookup, to_float
from artifex.generative_models.training.callbacks._state import (
    callback_array_states,
    stateful_callbacks,
)
from artifex.generative_models.training.callbacks.base import (
    BaseCallback,
    TrainerLike,
    flatten_callbacks,
)
from artifex.generative_models.training.callbacks.protocols import (
    CallbackHost,
    CheckpointableTrainer,
    StatefulCallback,
    TrainerState,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointConfig",
    "CheckpointOrderWarning",
    "ModelCheckpoint",
    "RestoredCheckpoint",
    "restore_checkpoint",
]
# CHECKPOINT_FORMAT, RestoredCheckpoint and restore_checkpoint live in _checkpointing.

_log = logging.getLogger(__name__)


class CheckpointOrderWarning(UserWarning):
    """A stateful callback runs after ``ModelCheckpoint``: its saved state lags an epoch.

    ``ModelCheckpoint`` saves the other callbacks' state in its ``on_epoch_end``, so
    the callbacks registered after it have not yet seen that epoch.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointConfig:
    """Configuration of [`ModelCheckpoint`][].

    Attributes:
        dirpath: The checkpoint directory, resolved against the working directory at
            ``on_train_begin`` (when it is created). It must be new, empty, or one this
            callback created (it holds ``artifex_checkpoints.json``).
        monitor: The ``on_epoch_end`` log key that ranks checkpoints, or ``None`` to
            keep the most recent ones.
        mode: ``"min"`` if lower ``monitor`` values are better, ``"max"`` otherwise.
        save_top_k: How many checkpoints to keep: the best by ``monitor`` (or the most
            recent if ``monitor`` is ``None``); ``-1`` keeps all, ``0`` none (but see
            ``save_last``).
        every_n_epochs: Save at the end of every n-th epoch (``>= 1``).
        save_last: Also keep the most recent checkpoint, whatever its score, and save
            one when the monitored key is missing. Resuming needs it.
        async_save: Write checkpoints in the background (Orbax async checkpointing);
            ``on_train_end`` waits for them.
        strict: Raise ``KeyError`` when ``monitor`` is missing from the epoch logs,
            instead of warning once.
    """

    dirpath: str | os.PathLike[str] = "checkpoints"
    monitor: str | None = None
    mode: Mode = "min"
    save_top_k: int = 3
    every_n_epochs: int = 1
    save_last: bool = True
    async_save: bool = True
    strict: bool = False

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            TypeError: If a field has the wrong type.
            ValueError: If a field has a bad value.
        """
        check_path("dirpath", self.dirpath)
        check_name("monitor", self.monitor, optional=True)
        check_mode("mode", self.mode)
        check_int("save_top_k", self.save_top_k, minimum=-1)
        check_int("every_n_epochs", self.every_n_epochs, minimum=1)
        for name in ("save_last", "async_save", "strict"):
            check_bool(name, getattr(self, name))


class ModelCheckpoint(BaseCallback):
    """Save the training state at epoch ends with Orbax, keeping the best ``save_top_k``.

    Every ``every_n_epochs`` epochs, at ``on_epoch_end``, the state is saved as the
    Orbax step named by the global step (see the module docstring for the layout).
    Retention is Orbax's: checkpoints are ranked by ``monitor`` (``best_fn``; NaN ranks
    worst) and the best ``save_top_k`` are kept, plus the latest if ``save_last``. With
    ``monitor=None`` the ``save_top_k`` most recent are kept. Saves are atomic (an
    interrupted save leaves no checkpoint behind) and, with ``async_save``, written in
    the background; ``on_train_end`` waits for them. Orbax only ever deletes
    checkpoints of this directory; a directory this callback did not create is never
    written into (``FileExistsError`` at ``on_train_begin``).

    Register it after the stateful callbacks (``EarlyStopping``, ``History``,
    ``CSVLogger``): their state is saved with the model, as of its own
    ``on_epoch_end``. A stateful callback registered after it gets a
    [`CheckpointOrderWarning`][] at ``on_train_begin``.

    A missing ``monitor`` key warns once (``strict=True`` raises); that epoch is then
    saved only if ``save_last``.

    If ``on_epoch_end`` is called without a preceding ``on_train_begin`` (as in the
    specification's ``CallbackList`` example), the directory is set up then, and saves
    are synchronous, since no ``on_train_end`` will wait for them.

    In a multi-process JAX job (after ``jax.distributed.initialize``) the callback
    must run on every process: its ``process_scope`` is ``"all"`` (inherited from
    [`BaseCallback`][]; do not set it to ``"main"``), because Orbax's
    ``CheckpointManager`` creation, ``save``, ``wait_until_finished`` and ``close``
    are collective. Each process writes the shards of the global arrays it holds;
    Orbax's primary process (0) writes the JSON items and the scores, and applies
    retention (deletes) once. Process 0 alone checks the directory and writes the
    marker; the others wait for its verdict, so they all raise the same
    ``FileExistsError``. At every ``on_epoch_end`` the processes compare, in one
    small collective, whether they save, the step and the monitored score: a
    trainer must give every process the same ``step`` and epoch logs (global
    means). If they differ, or the hook fails on some process, every process raises
    (``RuntimeError`` on the others) instead of waiting forever in the save.

    Args:
        config: The configuration; the defaults of [`CheckpointConfig`][] if omitted.
    """

    __slots__ = (
        "_directory",
        "_kept",
        "_lazy",
        "_lookup",
        "_manager",
        "_scores",
        "_steps_seen",
        "config",
    )

    def __init__(self, config: CheckpointConfig | None = None, /) -> None:
        self.config = config = resolve_config(config, CheckpointConfig, "ModelCheckpoint")
        self._lookup = (
            None
            if config.monitor is None
            else MonitorLookup("ModelCheckpoint", config.monitor, strict=config.strict)
        )
        self._manager: ocp.CheckpointManager | None = None
        self._directory: Path | None = None
        self._scores: dict[int, float] = {}
        self._steps_seen = 0
        self._lazy = False
        self._kept: tuple[int, ...] = ()

    def __repr__(self) -> str:
        """A readable representation with the config."""
        return f"ModelCheckpoint({self.config!r})"

    # ---------------------------------------------------------------- properties

    @property
    def directory(self) -> Path | None:
        """The resolved checkpoint directory, once set up (at ``on_train_begin``)."""
        return self._directory

    @property
    def saved_checkpoint_steps(self) -> tuple[int, ...]:
        """The steps of the checkpoints on disk (or being written), ascending."""
        if self._manager is None:
            return self._kept
        return tuple(sorted(self._manager.all_steps()))

    @property
    def best_checkpoint_step(self) -> int | None:
        """The step of the best kept checkpoint by ``monitor``, or ``None``.

        ``None`` without ``monitor`` or before a checkpoint with a score was saved.
        Checkpoints kept from earlier ``fit`` calls of this instance count too.
        """
        kept = set(self.saved_checkpoint_steps)
        ranked = [
            (rank(score, self.config.mode), step)
            for step, score in self._scores.items()
            if step in kept
        ]
        return min(ranked)[1] if ranked else None

    def wait_until_finished(self) -> None:
        """Block until every pending asynchronous save is on disk."""
        if self._manager is not None:
            self._manager.wait_until_finished()

    # ---------------------------------------------------------------- extension

    def json_items(self, trainer: TrainerLike, /) -> dict[str, Any]:
        """Further JSON items to save with each checkpoint, by item name.

        Returns an empty dict; subclasses override it. The stateful callbacks' states
        are saved as the ``"callbacks"`` item without it (an item returned here under
        that name replaces them). [`restore_checkpoint`][] returns all JSON items in
        ``RestoredCheckpoint.extra``.

        Args:
            trainer: The trainer being checkpointed.

        Returns:
            A mapping from item name (not ``"state"``, ``"meta"`` or
            ``"callback_arrays"``) to a
            JSON-compatible value.
        """
        return {}

    @staticmethod
    def _callback_items(trainer: TrainerLike) -> dict[str, Any]:
        """``{"callbacks": {state_key: state}}`` for a trainer exposing its callbacks."""
        if not isinstance(trainer, CallbackHost):
            return {}
        found = stateful_callbacks(trainer.callbacks)
        if not found:
            return {}
        return {CALLBACKS_ITEM: {key: cb.state_dict() for key, cb in found.items()}}

    @staticmethod
    def _callback_arrays(trainer: TrainerLike) -> dict[str, Any]:
        """``{state_key: array_state()}`` of the array-stateful callbacks that have one."""
        if not isinstance(trainer, CallbackHost):
            return {}
        return {
            key: to_savable(tree) for key, tree in callback_array_states(trainer.callbacks).items()
        }

    # ------------------------------------------------------------------- set-up

    def _setup(self, trainer: TrainerLike) -> None:
        directory = Path(self.config.dirpath).resolve()
        prepare_directory(directory)
        if self._manager is not None and directory != self._directory:
            self._manager.close()
            self._manager = None
        self._directory = directory
        if self._manager is None:
            self._manager = open_manager(directory, self.config)
            if self._manager is not None:
                self._scores.update(saved_scores(self._manager, self.config.monitor))
        if self._manager is not None:
            latest = self._manager.latest_step()
            current = self._current_step(trainer)
            if latest is not None and latest > current:
                raise FileExistsError(
                    f"checkpoint dirpath {str(directory)!r} holds checkpoints up to step "
                    f"{latest}, beyond this run's step {current}: new checkpoints would be "
                    "silently skipped. Resume from it, or choose another dirpath."
                )

    def _current_step(self, trainer: TrainerLike) -> int:
        if isinstance(trainer, TrainerState):
            return int(trainer.step)
        return self._steps_seen

    # -------------------------------------------------------------------- hooks

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Create (or check and reuse) the checkpoint directory and its Orbax manager.

        Raises:
            FileExistsError: If ``dirpath`` is not ours and not empty, or holds later steps.
        """
        if self._lookup is not None:
            self._lookup.reset()
        self._lazy = False
        self._warn_about_order(trainer)
        self._setup(trainer)

    def _warn_about_order(self, trainer: TrainerLike) -> None:
        """Warn if a stateful callback is registered after this one (see the class docs)."""
        if not isinstance(trainer, CallbackHost):
            return
        order = [callback for _, callback in flatten_callbacks(trainer.callbacks)]
        if not any(callback is self for callback in order):
            return
        later = order[next(i for i, cb in enumerate(order) if cb is self) + 1 :]
        late = [cb.state_key for cb in later if isinstance(cb, StatefulCallback)]
        if late:
            warnings.warn(
                f"{late} run after ModelCheckpoint, so each checkpoint would hold their "
                "state from before that epoch's end and a resumed run would differ; "
                "register ModelCheckpoint after them",
                CheckpointOrderWarning,
                stacklevel=2,
            )

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        """Count steps (for trainers that do not expose ``step``); reads no array."""
        self._steps_seen = batch + 1

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Save a checkpoint if this epoch is due and something would keep it.

        Raises:
            KeyError: If ``strict`` and the monitored key is missing.
            TypeError: If the monitored value is not a number.
            RuntimeError: In a multi-process job, if the processes disagree on the
                save, or it failed on another process.
        """
        config = self.config
        plan: SavePlan = None
        failure: Exception | None = None
        try:
            plan = self._plan(trainer, epoch, logs)
        except Exception as error:
            failure = error
        plan = agree_on_save_plan(epoch, plan, failure)
        if plan is None:
            return
        manager = self._manager
        assert manager is not None  # _plan returns a plan only with a manager
        step, score = plan
        state = self._state(trainer, step, epoch)
        extra = self._callback_items(trainer) | self.json_items(trainer)
        arrays = self._callback_arrays(trainer)
        clash = RESERVED_ITEMS & extra.keys()
        if clash:
            raise ValueError(f"json_items() may not use the reserved item names {sorted(clash)}")
        metrics = {key: v for key, value in logs.items() if (v := to_float(value)) is not None}
        meta = {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "epoch": epoch,
            "metrics": metrics,
            "monitor": config.monitor,
            "mode": config.mode,
            "trainer_state": isinstance(trainer, CheckpointableTrainer),
            "items": sorted(extra),
            "callback_arrays": sorted(arrays),
        }
        orbax_metrics = None if config.monitor is None or score is None else {config.monitor: score}
        saved = manager.save(
            step, args=save_args(state, meta, extra, arrays), metrics=orbax_metrics
        )
        if not saved:
            raise RuntimeError(f"Orbax declined to save step {step} in {self._directory}")
        if score is not None:
            self._scores[step] = score
        if self._lazy:
            manager.wait_until_finished()

    def _plan(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any]) -> SavePlan:
        """``(step, score)`` of the checkpoint due at this epoch end, or ``None``.

        Sets the directory up first if ``on_train_begin`` did not.

        Raises:
            KeyError: If ``strict`` and the monitored key is missing.
            TypeError: If the monitored value is not a number.
        """
        config = self.config
        if (epoch + 1) % config.every_n_epochs != 0:
            return None
        if self._directory is None:
            self._lazy = True
            self._setup(trainer)
        manager = self._manager
        if manager is None:
            return None
        score: float | None = None
        if self._lookup is not None:
            score = self._lookup.number(logs, "on_epoch_end")
            if score is None and not config.save_last:
                return None
        step = self._current_step(trainer)
        if step in manager.all_steps():
            _log.debug("step %d already has a checkpoint in %s", step, self._directory)
            return None
        return step, score

    def _state(self, trainer: TrainerLike, step: int, epoch: int) -> Any:
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

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """Wait for pending saves, then release the Orbax manager."""
        manager = self._manager
        if manager is None:
            return
        self._manager = None
        try:
            manager.wait_until_finished()
            self._kept = tuple(sorted(manager.all_steps()))
        finally:
            manager.close()
