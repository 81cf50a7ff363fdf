"""Model checkpointing on Orbax: atomic, optionally asynchronous, best-k retention.

A checkpoint directory holds a marker (``artifex_checkpoints.json``, naming the run it
holds), a lock while a run writes it, and one Orbax checkpoint per save, named by the
global step, with the items ``state`` (``trainer.state_dict()`` of a
[`CheckpointableTrainer`][]; model, optimizer state, step and epoch of a plain
[`TrainerLike`][]; its ``"data"`` entry apart, in the ``data`` item), ``meta``,
``callbacks`` (the stateful callbacks' states), ``callback_arrays``, ``checksums`` and
those of ``json_items``. The layout, its
formats (``CHECKPOINT_FORMAT``; the one before it still restores) and the directory's
rules are told once, in the docs' [Checkpoints](../checkpoints.md) page. Restore with
[`restore_checkpoint`][].
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Unpack, overload

import jax
import orbax.checkpoint as ocp

from artifex.generative_models.training._checkpointing._directory import (
    check_directory,
    prepare_directory,
)
from artifex.generative_models.training._checkpointing._ended import record_end
from artifex.generative_models.training._checkpointing._format import (
    CHECKPOINT_FORMAT,
    save_args,
)
from artifex.generative_models.training._checkpointing._listing import (
    CheckpointInfo,
    check_recorded_mode,
)
from artifex.generative_models.training._checkpointing._lock import DirectoryLock
from artifex.generative_models.training._checkpointing._manager import (
    SavePlan,
    SaveWatch,
    agree_on_save_plan,
    open_manager,
)
from artifex.generative_models.training._checkpointing._restore import RestoredCheckpoint
from artifex.generative_models.training._checkpointing._retention import (
    Ranking,
    preservation_policy,
)
from artifex.generative_models.training._checkpointing._runs import (
    RunClaim,
    claimed_run,
    remember_run,
)
from artifex.generative_models.training.callbacks._checkpoint_config import (
    CheckpointConfig,
    CheckpointKwargs,
)
from artifex.generative_models.training.callbacks._checkpoint_contents import (
    callback_arrays,
    checkpoint_meta,
    json_save_items,
    run_end,
    save_position,
    training_state,
    warn_if_stateful_after,
)
from artifex.generative_models.training.callbacks._checkpoint_restore import (
    list_checkpoints,
    restore_checkpoint,
)
from artifex.generative_models.training.callbacks._configured import ConfiguredCallback
from artifex.generative_models.training.callbacks._monitor import MonitorLookup
from artifex.generative_models.training.callbacks.base import TrainerLike
from artifex.generative_models.training.callbacks.protocols import (
    StepCheckpointableTrainer,
    TrainerState,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointConfig",
    "CheckpointInfo",
    "CheckpointKwargs",
    "CheckpointOrderWarning",
    "ModelCheckpoint",
    "RestoredCheckpoint",
    "list_checkpoints",
    "restore_checkpoint",
]
# CHECKPOINT_FORMAT, CheckpointInfo and RestoredCheckpoint live in _checkpointing, the
# functions beside.

_log = logging.getLogger(__name__)


class CheckpointOrderWarning(UserWarning):
    """A stateful callback runs after ``ModelCheckpoint``: its saved state lags an epoch.

    ``ModelCheckpoint`` saves the other callbacks' state in its ``on_epoch_end``, so
    the callbacks registered after it have not yet seen that epoch.
    """


class ModelCheckpoint(ConfiguredCallback[CheckpointConfig]):
    """Save the training state at epoch ends with Orbax, keeping the best ``save_top_k``.

    Every ``every_n_epochs`` epochs, at ``on_epoch_end``, and with ``every_n_steps``
    also inside epochs (in ``on_batch_end``), the state is saved as the Orbax step
    named by the global step. Retention is Orbax's: checkpoints are ranked by
    ``monitor`` (NaN ranks worst) and the best ``save_top_k`` are kept, plus the latest
    if ``save_last``. Mid-epoch checkpoints have no score: with ``monitor`` they never
    rank and are kept only while they are the latest (so only with ``save_last``);
    with ``monitor=None`` they count among the ``save_top_k`` most recent. Saves are
    atomic and, with ``async_save``, written in the background; ``on_train_end``
    waits for them. Its refusals (a directory not ours, another run's, locked,
    holding later steps or a user's folder named like one, or inside another
    checkpoint directory: ``FileExistsError``; a path that does not round-trip:
    ``ValueError``; not writable: ``PermissionError``; all at [`preflight`][], or at
    ``on_train_begin`` for a trainer that does not call it) and failed saves
    (``OSError``) are listed in the docs' Checkpoints and Reliability pages.

    Register it after the stateful callbacks (``EarlyStopping``, ``History``,
    ``CSVLogger``): their state is saved with the model. A stateful callback
    registered after it gets a [`CheckpointOrderWarning`][] at ``on_train_begin``.
    A missing ``monitor`` key warns once (``strict=True`` raises); that epoch is then
    saved only if ``save_last``. Without a preceding ``on_train_begin`` (the
    specification's ``CallbackList`` example), the directory is set up at the first
    save, and saves are synchronous.

    In a multi-process JAX job it must run on every process (``process_scope`` is
    ``"all"``): Orbax's saves are collective, and the processes agree on each save
    in one small collective, raising on every process if they differ.

    Args:
        config: The configuration (positional-only); the defaults if omitted.
        **kwargs: Instead of ``config``, its fields ([`CheckpointKwargs`][]).
    """

    __slots__ = (
        "_batches_seen",
        "_directory",
        "_epoch_seen",
        "_kept",
        "_lazy",
        "_lock",
        "_lookup",
        "_manager",
        "_mid_epoch_steps",
        "_ranking",
        "_run",
        "_step_saved",
        "_steps_seen",
        "_watch",
    )

    @overload
    def __init__(self, config: CheckpointConfig | None, /) -> None: ...
    @overload
    def __init__(self, /, **kwargs: Unpack[CheckpointKwargs]) -> None: ...
    def __init__(
        self, config: CheckpointConfig | None = None, /, **kwargs: Unpack[CheckpointKwargs]
    ) -> None:
        config = self._configure(CheckpointConfig, config, kwargs)
        self._lookup = (
            None
            if config.monitor is None
            else MonitorLookup("ModelCheckpoint", config.monitor, strict=config.strict)
        )
        self._manager: ocp.CheckpointManager | None = None
        self._directory: Path | None = None
        self._ranking: Ranking | None = None  # retention's scores, with a monitor
        self._steps_seen = 0
        self._step_saved = 0  # the step of the last save: step saves are due after it
        self._epoch_seen = 0
        self._batches_seen = 0
        self._mid_epoch_steps: set[int] = set()
        self._lazy = False
        self._kept: tuple[int, ...] = ()
        self._run: str | None = None  # the id of the directory's run, once set up
        self._lock: DirectoryLock | None = None  # held from on_train_begin to on_train_end
        self._watch = SaveWatch()

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
        if self._ranking is None:
            return None
        return self._ranking.best(self.saved_checkpoint_steps)

    def wait_until_finished(self) -> None:
        """Block until every pending asynchronous save is on disk.

        Raises:
            OSError: If a save failed (its ``errno`` is the cause's: ``ENOSPC`` for a
                full disk), naming the directory and the step.
        """
        self._watch.settle(block=True)

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

    def _terms(self, trainer: TrainerLike) -> tuple[Path, RunClaim | None, int | None]:
        """The directory, the run it continues, and the step (``None`` if nothing is saved)."""
        directory = Path(self.config.dirpath).resolve()
        saves = preservation_policy(self.config) is not None
        step = self._current_step(trainer) if saves else None
        return directory, claimed_run((trainer, trainer.model), directory), step

    def _setup(self, trainer: TrainerLike, *, lock: bool = False) -> None:
        directory, claim, step = self._terms(trainer)
        prepared = prepare_directory(
            directory, claim=claim, lock=lock and self._lock is None, step=step
        )
        if prepared.lock is not None:
            self._lock = prepared.lock
        try:
            self._open(directory)
        except BaseException:
            self._release()
            raise
        self._run = prepared.run
        remember_run(trainer, directory, prepared.run)

    def _release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def _open(self, directory: Path) -> None:
        """Open the manager of the prepared ``directory``."""
        if self._manager is not None and directory != self._directory:
            self._manager.close()
            self._manager = None
        self._directory = directory
        if self._manager is None:
            opened = open_manager(directory, self.config)
            if opened is not None:
                self._manager, self._ranking = opened

    def _current_step(self, trainer: TrainerLike) -> int:
        if isinstance(trainer, TrainerState):
            return int(trainer.step)
        return self._steps_seen

    def preflight(self, trainer: TrainerLike, /) -> None:
        """Refuse the run now if ``on_train_begin`` would, writing nothing.

        A collective in a multi-process job, like ``on_train_begin``. See
        [`PreflightCallback`][artifex.generative_models.training.callbacks.protocols.PreflightCallback].

        Args:
            trainer: The trainer about to run (its resumed step restored).

        Raises:
            FileExistsError: As ``on_train_begin``.
            ValueError: As ``on_train_begin``.
            OSError: If the directory cannot be read, or cannot be written
                (``PermissionError``: ``EROFS`` on a read-only file system, else ``EACCES``).
            TypeError: If a stateful callback's ``state_dict()`` (or ``json_items``)
                holds what JSON cannot (a ``set``, ``bytes``), naming the callback, the
                key and the type; a save refuses it too.
        """
        directory, claim, step = self._terms(trainer)
        check_directory(directory, claim=claim, lock=self._lock is None, step=step)
        check_recorded_mode(directory, self.config.monitor, self.config.mode)
        if preservation_policy(self.config) is not None:
            self._json_items(trainer)  # states a checkpoint cannot hold

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Create (or check and reuse) the checkpoint directory, lock it, open its manager.

        Refuses what [`preflight`][] refuses, for trainers that do not call it.

        Raises:
            FileExistsError: If ``dirpath`` is not ours and not empty, holds later
                steps, another run's checkpoints or a user's folder named like a later
                step, lies inside another checkpoint directory, or another run holds its
                lock.
            ValueError: If its checkpoints were saved with another mode for ``monitor``
                (retention would rank them the other way), or its path holds a
                character TensorStore cannot read back (a backslash, a bracket, non-UTF-8).
            PermissionError: If it cannot be written (``EROFS``: a read-only file system).
        """
        if self._lookup is not None:
            self._lookup.reset()
        self._lazy = False
        warn_if_stateful_after(trainer, self, CheckpointOrderWarning)
        directory = Path(self.config.dirpath).resolve()
        check_recorded_mode(directory, self.config.monitor, self.config.mode)
        self._setup(trainer, lock=True)
        self._step_saved = self._current_step(trainer)

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, /) -> None:
        """Count the epoch's batches (for trainers that do not expose ``state_dict``)."""
        self._epoch_seen, self._batches_seen = epoch, 0

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        """Count steps; with ``every_n_steps``, save a due mid-epoch checkpoint.

        Reads no array unless it saves. A due save waits for a resumable position (a
        chunk's end) and leaves an epoch's last batch to ``on_epoch_end``.

        Raises:
            OSError: If a save failed (an asynchronous one is reported at the next
                batch end in a single process, else at the next save or epoch end).
            RuntimeError: In a multi-process job, if the processes disagree on the
                save, or it failed on another process.
        """
        self._watch.poll()  # a failed asynchronous save surfaces here, without waiting
        self._steps_seen = step = batch + 1
        self._batches_seen += 1
        if not self._step_due(step):
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
            OSError: If the save (or the one before it) failed.
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
            OSError: If a save failed (an asynchronous one is reported at the next
                batch end in a single process, else at the next save or epoch end).
            RuntimeError: In a multi-process job, if the processes disagree on the
                save, or it failed on another process.
        """
        every = self.config.every_n_epochs
        step = self._current_step(trainer)
        due = (
            (every is not None and (epoch + 1) % every == 0)
            or self._step_due(step)
            or step in self._mid_epoch_steps  # saved at this epoch's last batch: replace it
        )
        self._save(trainer, epoch, logs, due=due)

    def _step_due(self, step: int) -> bool:
        """Whether ``every_n_steps`` has passed a multiple since the last save."""
        every = self.config.every_n_steps
        return every is not None and step // every > self._step_saved // every

    def _save(
        self, trainer: TrainerLike, epoch: int, logs: dict[str, Any] | None, *, due: bool
    ) -> None:
        """Save a checkpoint (an epoch end's if ``logs`` is given, else mid-epoch)."""
        config = self.config
        plan: SavePlan = None
        failure: Exception | None = None
        try:
            self._watch.settle(block=False)
            plan = self._plan(trainer, logs, due=due)
            if plan is not None:
                self._watch.settle(block=True)
        except Exception as error:
            failure = error
        where = f"on_epoch_end({epoch})" if logs is not None else "a mid-epoch save"
        plan = agree_on_save_plan(where, plan, failure)
        if plan is None:
            return
        manager, directory = self._manager, self._directory
        assert manager is not None  # _plan returns a plan only with a manager
        assert directory is not None
        step, score = plan
        extra = self._json_items(trainer)  # refused before anything is deleted or written
        if step in self._mid_epoch_steps:  # an epoch end at a step saved mid-epoch
            manager.wait_until_finished()
            manager.delete(step)
            self._mid_epoch_steps.discard(step)
        state = training_state(trainer, step, epoch)
        arrays = callback_arrays(trainer)
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
            run=self._run,
        )
        if score is not None and self._ranking is not None:
            self._ranking.scores[step] = score  # before the save: its retention reads it
        try:
            saved = manager.save(step, args=save_args(state, meta, extra, arrays))
        except Exception as error:
            raise self._watch.failure(manager, directory, step, error) from error
        if not saved:
            raise RuntimeError(f"Orbax declined to save step {step} in {self._directory}")
        self._step_saved = step
        if position is not None:
            self._mid_epoch_steps.add(step)
        self._watch.started(manager, directory, step, asynchronous=config.async_save)
        if self._lazy:
            self._watch.settle(block=True)

    def _json_items(self, trainer: TrainerLike) -> dict[str, Any]:
        """The JSON items of a save, checked (``json_save_items``)."""
        owner = f"{type(self).__qualname__}.json_items()"
        return json_save_items(trainer, self.json_items(trainer), owner)

    def _plan(self, trainer: TrainerLike, logs: dict[str, Any] | None, *, due: bool) -> SavePlan:
        """``(step, score)`` of the checkpoint due now, or ``None``."""
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
        """Wait for pending saves, release the Orbax manager, then the directory's lock.

        A [`TrainerState`][] trainer's run that completed or was stopped is recorded
        in the directory's marker (with what stopped it), so that a same-command rerun
        (``fit(..., resume=True)``) returns at once; a failed or preempted one is not.

        Raises:
            OSError: If the last asynchronous save failed, naming the directory and
                the step (the manager and the lock are released all the same).
        """
        manager, directory = self._manager, self._directory
        self._manager = None
        try:
            if manager is not None and directory is not None:
                try:
                    self._watch.settle(block=True)
                    self._kept = tuple(sorted(manager.all_steps()))
                    if jax.process_index() == 0:  # how the run ended, for a rerun
                        record_end(directory, run_end(trainer, self._run))
                finally:
                    self._watch.close(manager, directory)
        finally:
            self._release()
