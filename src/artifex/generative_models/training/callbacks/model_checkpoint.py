"""Model checkpointing on Orbax: atomic, optionally asynchronous, best-k retention.

Layout of ``dirpath`` (an Orbax ``CheckpointManager`` directory)::

    dirpath/
      artifex_checkpoints.json     # marker: this directory belongs to ModelCheckpoint
      <step>/                      # one Orbax checkpoint per save, named by global step
        state/                     # the training-state pytree (Orbax StandardSave)
        meta/                      # JSON: format, step, epoch, metrics, monitor, mode,
                                   #   position, items, callback_arrays
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

``callbacks`` holds the ``state_dict()`` of every ``StatefulCallback`` of a trainer
that exposes its callbacks (a ``CallbackHost``), by ``state_key``, taken with the
model state (put ``ModelCheckpoint`` last). ``callback_arrays`` (format 2 on) holds the
``array_state()`` of every ``ArrayStatefulCallback`` that has one, in the same atomic
save. Format 3 adds mid-epoch checkpoints (``every_n_steps``): ``meta["position"]``
is how many batches of ``meta["epoch"]`` (the epoch in progress) had run, ``None`` at
an epoch end, and ``state["epoch_progress"]`` the epoch's running sums. Formats 1 and
2 still restore.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from artifex.generative_models.training._checkpointing._agreement import (
    SavePlan,
    agree_on_save_plan,
)
from artifex.generative_models.training._checkpointing._directory import (
    check_directory,
    prepare_directory,
)
from artifex.generative_models.training._checkpointing._format import (
    CHECKPOINT_FORMAT,
    RESERVED_ITEMS,
    save_args,
)
from artifex.generative_models.training._checkpointing._manager import open_manager
from artifex.generative_models.training._checkpointing._restore import (
    RestoredCheckpoint,
    restore_checkpoint,
)
from artifex.generative_models.training._checkpointing._retention import (
    preservation_policy,
    rank,
    saved_scores,
)
from artifex.generative_models.training._checkpointing._step_dirs import latest_complete_step
from artifex.generative_models.training._checks import resolve_config
from artifex.generative_models.training.callbacks._checkpoint_config import CheckpointConfig
from artifex.generative_models.training.callbacks._checkpoint_contents import (
    callback_arrays,
    callback_items,
    checkpoint_meta,
    save_position,
    stateful_after,
    training_state,
)
from artifex.generative_models.training.callbacks._monitor import MonitorLookup
from artifex.generative_models.training.callbacks.base import (
    BaseCallback,
    TrainerLike,
)
from artifex.generative_models.training.callbacks.protocols import (
    StepCheckpointableTrainer,
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


class ModelCheckpoint(BaseCallback):
    """Save the training state at epoch ends with Orbax, keeping the best ``save_top_k``.

    Every ``every_n_epochs`` epochs, at ``on_epoch_end``, and with ``every_n_steps``
    also inside epochs (in ``on_batch_end``), the state is saved as the Orbax step
    named by the global step. Retention is Orbax's: checkpoints are ranked by
    ``monitor`` (NaN ranks worst) and the best ``save_top_k`` are kept, plus the latest
    if ``save_last``. Mid-epoch checkpoints have no score: with ``monitor`` they never
    rank and are kept only while they are the latest (so only with ``save_last``);
    with ``monitor=None`` they count among the ``save_top_k`` most recent. Saves are
    atomic and, with ``async_save``, written in the background; ``on_train_end``
    waits for them. A directory this callback did not create is never written into
    (``FileExistsError`` at [`preflight`][], or at ``on_train_begin`` for a trainer that
    does not call it).

    Register it after the stateful callbacks (``EarlyStopping``, ``History``,
    ``CSVLogger``): their state is saved with the model. A stateful callback
    registered after it gets a [`CheckpointOrderWarning`][] at ``on_train_begin``.
    A missing ``monitor`` key warns once (``strict=True`` raises); that epoch is then
    saved only if ``save_last``. Without a preceding ``on_train_begin`` (the
    specification's ``CallbackList`` example), the directory is set up at the first
    save, and saves are synchronous.

    In a multi-process JAX job the callback must run on every process (its
    ``process_scope`` is ``"all"``): Orbax's manager creation, ``save``,
    ``wait_until_finished`` and ``close`` are collective. Each process writes the
    shards it holds; process 0 writes the JSON items, the scores and the marker, and
    applies retention. Before each save the processes compare, in one small
    collective, whether they save, the step and the score (a trainer must give every
    process the same ``step`` and epoch logs); if they differ, or the hook fails on
    some process, every process raises instead of waiting forever in the save.

    Args:
        config: The configuration; the defaults of [`CheckpointConfig`][] if omitted.
    """

    __slots__ = (
        "_batches_seen",
        "_directory",
        "_epoch_seen",
        "_kept",
        "_lazy",
        "_lookup",
        "_manager",
        "_mid_epoch_steps",
        "_scores",
        "_step_saved",
        "_steps_seen",
        "config",
    )

    def __init__(self, config: CheckpointConfig | None = None, /) -> None:
        self.config: CheckpointConfig = resolve_config(config, CheckpointConfig, "ModelCheckpoint")
        config = self.config
        self._lookup = (
            None
            if config.monitor is None
            else MonitorLookup("ModelCheckpoint", config.monitor, strict=config.strict)
        )
        self._manager: ocp.CheckpointManager | None = None
        self._directory: Path | None = None
        self._scores: dict[int, float] = {}
        self._steps_seen = 0
        self._step_saved = 0  # the step of the last save: step saves are due after it
        self._epoch_seen = 0
        self._batches_seen = 0
        self._mid_epoch_steps: set[int] = set()
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
            ``"callback_arrays"``) to a JSON-compatible value.
        """
        return {}

    # ------------------------------------------------------------------- set-up

    def _refusals(self, trainer: TrainerLike) -> Path:
        """Raise if this run must be refused; read only. Return the resolved directory.

        The one home of the checks that refuse a run, run by [`preflight`][] and again
        by every set-up (they are idempotent and create nothing).

        Raises:
            FileExistsError: If ``dirpath`` is a file, is not ours and not empty, or holds
                checkpoints of later steps than the trainer's.
            OSError: If the directory cannot be read.
        """
        directory = Path(self.config.dirpath).resolve()
        check_directory(directory)
        if preservation_policy(self.config) is not None:  # else nothing is ever saved
            latest = latest_complete_step(directory)
            current = self._current_step(trainer)
            if latest is not None and latest > current:
                raise FileExistsError(
                    f"checkpoint dirpath {str(directory)!r} holds checkpoints up to step "
                    f"{latest}, beyond this run's step {current}: new checkpoints would be "
                    "silently skipped. Resume from it, or choose another dirpath."
                )
        return directory

    def _setup(self, trainer: TrainerLike) -> None:
        directory = self._refusals(trainer)
        prepare_directory(directory)
        if self._manager is not None and directory != self._directory:
            self._manager.close()
            self._manager = None
        self._directory = directory
        if self._manager is None:
            self._manager = open_manager(directory, self.config)
            if self._manager is not None:
                self._scores.update(saved_scores(self._manager, self.config.monitor))

    def _current_step(self, trainer: TrainerLike) -> int:
        if isinstance(trainer, TrainerState):
            return int(trainer.step)
        return self._steps_seen

    # -------------------------------------------------------------------- hooks

    def preflight(self, trainer: TrainerLike, /) -> None:
        """Refuse the run now if ``on_train_begin`` would, creating nothing.

        See
        [`PreflightCallback`][artifex.generative_models.training.callbacks.protocols.PreflightCallback].
        A collective in a multi-process job (every process
        must call it), like ``on_train_begin``.

        Args:
            trainer: The trainer about to run (its resumed step restored).

        Raises:
            FileExistsError: If ``dirpath`` is a file, is not ours and not empty, or holds
                checkpoints of later steps than the trainer's.
            OSError: If the directory cannot be read.
        """
        self._refusals(trainer)

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Create (or check and reuse) the checkpoint directory and its Orbax manager.

        Runs the checks of [`preflight`][] first, for trainers that do not call it.

        Raises:
            FileExistsError: If ``dirpath`` is not ours and not empty, or holds later steps.
        """
        if self._lookup is not None:
            self._lookup.reset()
        self._lazy = False
        self._warn_about_order(trainer)
        self._setup(trainer)
        self._step_saved = self._current_step(trainer)

    def _warn_about_order(self, trainer: TrainerLike) -> None:
        """Warn if a stateful callback is registered after this one (see the class docs)."""
        late = stateful_after(trainer, self)
        if late:
            warnings.warn(
                f"{late} run after ModelCheckpoint, so each checkpoint would hold their "
                "state from before that epoch's end and a resumed run would differ; "
                "register ModelCheckpoint after them",
                CheckpointOrderWarning,
                stacklevel=2,
            )

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, /) -> None:
        """Count the epoch's batches (for trainers that do not expose ``state_dict``)."""
        self._epoch_seen, self._batches_seen = epoch, 0

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        """Count steps; with ``every_n_steps``, save a due mid-epoch checkpoint.

        Reads no array unless it saves. A due save waits for a resumable position (a
        chunk's end) and leaves an epoch's last batch to ``on_epoch_end``.

        Raises:
            RuntimeError: In a multi-process job, if the processes disagree on the
                save, or it failed on another process.
        """
        self._steps_seen = step = batch + 1
        self._batches_seen += 1
        every = self.config.every_n_steps
        if every is None or step // every <= self._step_saved // every:
            return
        if isinstance(trainer, StepCheckpointableTrainer) and (
            not trainer.resumable_mid_epoch or trainer.last_batch_of_epoch
        ):
            return
        self._save(trainer, self._epoch_seen, None, due=True)

    def save_now(self, trainer: TrainerLike, /) -> None:
        """Save a checkpoint at the current point, whatever the schedule (on preemption).

        Called by a trainer between steps (a mid-epoch checkpoint) or after an
        ``on_epoch_end`` (an epoch-boundary one); a step that already has a checkpoint
        is not saved again. Waits until the checkpoint is on disk.

        Raises:
            RuntimeError: In a multi-process job, if the processes disagree on the
                save, or it failed on another process.
        """
        self._save(trainer, self._epoch_seen, None, due=True)
        self.wait_until_finished()

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Save a checkpoint if this epoch (or a step save) is due and something keeps it.

        Raises:
            KeyError: If ``strict`` and the monitored key is missing.
            TypeError: If the monitored value is not a number.
            RuntimeError: In a multi-process job, if the processes disagree on the
                save, or it failed on another process.
        """
        config = self.config
        step = self._current_step(trainer)
        every = config.every_n_steps
        due = (
            (config.every_n_epochs is not None and (epoch + 1) % config.every_n_epochs == 0)
            or (every is not None and step // every > self._step_saved // every)
            or step in self._mid_epoch_steps  # saved at this epoch's last batch: replace it
        )
        self._save(trainer, epoch, logs, due=due)

    def _save(
        self, trainer: TrainerLike, epoch: int, logs: dict[str, Any] | None, *, due: bool
    ) -> None:
        """Save a checkpoint (an epoch end's if ``logs`` is given, else mid-epoch).

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
            plan = self._plan(trainer, logs, due=due)
        except Exception as error:
            failure = error
        where = f"on_epoch_end({epoch})" if logs is not None else "a mid-epoch save"
        plan = agree_on_save_plan(where, plan, failure)
        if plan is None:
            return
        manager = self._manager
        assert manager is not None  # _plan returns a plan only with a manager
        step, score = plan
        if step in self._mid_epoch_steps:  # an epoch end at a step saved mid-epoch
            manager.wait_until_finished()
            manager.delete(step)
            self._mid_epoch_steps.discard(step)
        state = training_state(trainer, step, epoch)
        extra = callback_items(trainer) | self.json_items(trainer)
        arrays = callback_arrays(trainer)
        clash = RESERVED_ITEMS & extra.keys()
        if clash:
            raise ValueError(f"json_items() may not use the reserved item names {sorted(clash)}")
        position = None
        if logs is None:
            epoch, position = save_position(trainer, state, epoch, self._batches_seen)
        meta = checkpoint_meta(
            trainer,
            step=step,
            epoch=epoch,
            position=position,
            logs=logs,
            monitor=config.monitor,
            mode=config.mode,
            items=sorted(extra),
            arrays=sorted(arrays),
        )
        orbax_metrics = None if config.monitor is None or score is None else {config.monitor: score}
        saved = manager.save(
            step, args=save_args(state, meta, extra, arrays), metrics=orbax_metrics
        )
        if not saved:
            raise RuntimeError(f"Orbax declined to save step {step} in {self._directory}")
        self._step_saved = step
        if position is not None:
            self._mid_epoch_steps.add(step)
        if score is not None:
            self._scores[step] = score
        if self._lazy:
            manager.wait_until_finished()

    def _plan(self, trainer: TrainerLike, logs: dict[str, Any] | None, *, due: bool) -> SavePlan:
        """``(step, score)`` of the checkpoint due now, or ``None``.

        Sets the directory up first if ``on_train_begin`` did not. A mid-epoch save
        (``logs`` ``None``) has no score.

        Raises:
            KeyError: If ``strict`` and the monitored key is missing.
            TypeError: If the monitored value is not a number.
        """
        config = self.config
        if not due:
            return None
        if self._directory is None:
            self._lazy = True
            self._setup(trainer)
        manager = self._manager
        if manager is None:
            return None
        score: float | None = None
        if self._lookup is not None:
            if logs is not None:
                score = self._lookup.number(logs, "on_epoch_end")
            if score is None and not config.save_last:
                return None
        step = self._current_step(trainer)
        if step in manager.all_steps() and (logs is None or step not in self._mid_epoch_steps):
            _log.debug("step %d already has a checkpoint in %s", step, self._directory)
            return None
        return step, score

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
