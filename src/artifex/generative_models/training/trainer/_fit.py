"""One ``fit``, read here from its start to how it ended.

[`run_fit`][] is ``Trainer.fit``: its start (every check that can refuse the run,
before any callback writes a file), the run (``on_train_begin``, the epochs, the save
on a preemption notice), its end state ([`Outcome`][]: status, stopper, error) and
teardown (``on_train_end`` on every exit). The epoch loop, [`EpochLoop`][], is one loop
over the chunks that the data side cuts (``_chunks``): each chunk's batch pairs are
dispatched around one compiled step (``run_single``, the one step path) or one
compiled ``lax.scan`` of ``steps_per_execution`` steps (``run_chunk``), whose batch
pairs are dispatched after it. Right after a dispatch the data side may draw the next
batch and start its transfer (a prefetch, ``EpochChunks.ahead``, which no position
shows). Where ``_chunk_rule`` finds a scan slower than separate calls (on a CPU: a step
with a convolution, or a large one), a chunk runs step by step (``run_steps``), exactly
as unchunked. A stop requested inside a chunk discards the chunk's
later steps: they are recomputed from the state before the chunk (which the chunk
does not donate), and the untrained batches are given back to a stateful batcher, so
step, model, epoch logs and data position all reflect exactly the dispatched batches.
A callback raising inside a chunk keeps what an unchunked run would have kept.

What ends a run early is a ``Stopper`` (``_stops``): a stop request, which becomes
``stopped_by``, or a preemption notice, which saves, tears down with ``"preempted"``
and raises ``Preempted``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import jax
import numpy as np
from flax import nnx
from typing_extensions import Protocol

from artifex.generative_models.training._checks import check_bool, check_int
from artifex.generative_models.training._spmd import DataParallel
from artifex.generative_models.training.callbacks._preflight import preflight
from artifex.generative_models.training.callbacks._rollback import all_or_nothing
from artifex.generative_models.training.callbacks._state import stateful_callbacks
from artifex.generative_models.training.callbacks.base import CallbackList, Logs
from artifex.generative_models.training.callbacks.protocols import (
    CheckpointableTrainer,
    RunStatus,
)
from artifex.generative_models.training.trainer._batch_errors import explain_batch_failure
from artifex.generative_models.training.trainer._chunks import (
    DataResume,
    DataSource,
    EpochChunks,
    check_reiterable,
    check_training_data,
    checked_batches,
)
from artifex.generative_models.training.trainer._leaves import FlatState, Leaves
from artifex.generative_models.training.trainer._means import MetricSums, means
from artifex.generative_models.training.trainer._modes import suspects, warn_modes_restored
from artifex.generative_models.training.trainer._position import MidEpoch, RunPosition
from artifex.generative_models.training.trainer._preemption import (
    Preempted,
    PreemptionNotice,
    PreemptionWatch,
    preemption_savers,
    save_for_preemption,
    saver_directories,
)
from artifex.generative_models.training.trainer._steps import CompiledSteps
from artifex.generative_models.training.trainer._stops import StopArbiter, Stopper, StopRequest

if TYPE_CHECKING:
    from artifex.generative_models.training._checkpointing._ended import RunEnd
    from artifex.generative_models.training.trainer._same_command import SameCommand

__all__ = ["EpochLoop", "FitHost", "FitOptions", "Outcome", "evaluate", "run_fit"]

M = TypeVar("M", bound=nnx.Module)


class FitHost(CheckpointableTrainer, Protocol):
    """What ``run_fit`` reads of the trainer it runs (the reference ``Trainer``)."""

    callbacks: CallbackList
    steps_per_execution: int
    preemption: bool

    def resume(self, checkpoint: str | os.PathLike[str], /, *, supersede: bool = False) -> int:
        """Restore a ``ModelCheckpoint`` checkpoint (``Trainer.resume``)."""
        ...


@dataclass(slots=True)
class Outcome:
    """How the last run stands or ended: ``Trainer.status``, ``stopped_by`` and ``error``."""

    status: RunStatus = "completed"
    stopped_by: StopRequest | None = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FitOptions:
    """``Trainer.fit``'s options beyond the data and the epochs (documented there)."""

    val_data: DataSource | None = None
    resume_from: str | os.PathLike[str] | None = None
    resume: bool = False
    supersede: bool = False
    steps_per_epoch: int | None = None
    data_resume: DataResume = "replay"


def run_fit(
    trainer: FitHost,
    train_data: DataSource,
    *,
    epochs: int,
    options: FitOptions,
    state: FlatState[M],
    position: RunPosition,
    outcome: Outcome,
    compiled: Callable[[], CompiledSteps[M]],
    spmd: DataParallel | None,
) -> list[Logs]:
    """Run ``trainer.fit`` (documented there) on the trainer's state and counters.

    Args:
        trainer: The trainer, passed to every hook.
        train_data: As ``Trainer.fit`` takes them.
        epochs: As ``Trainer.fit`` takes them.
        options: The other arguments of ``Trainer.fit``.
        state: The trained state.
        position: The trainer's counters; they advance as steps run.
        outcome: Set to ``"running"`` now and to how the run ended at its end.
        compiled: Gives the compiled steps for the state's current layout (and the
            trainer's current ``loss_fn`` and ``eval_fn``).
        spmd: The mesh placement, or ``None``.
    """
    callbacks = trainer.callbacks
    # ---- the start: every refusal comes before any callback changes a file
    epochs, train_data = _checked_arguments(trainer, train_data, epochs, options, position)
    steps_per_epoch, val_data = options.steps_per_epoch, options.val_data
    state.refresh()  # a module that changed structure compiles anew
    compiled()
    position.data = train_data
    planned = _resume_and_check(trainer, train_data, position, epochs, options)
    if not isinstance(planned, tuple):  # a finished run: nothing to train, no hook dispatched
        outcome.status, outcome.stopped_by, outcome.error = planned.status, None, None
        return []
    epochs, replay = planned
    position.apply_pending_data()
    stops = StopArbiter(trainer, callbacks, spmd)
    savers = preemption_savers(callbacks) if trainer.preemption else ()
    watch = PreemptionWatch(enabled=bool(savers), multiprocess=jax.process_count() > 1)
    chunks = EpochChunks(
        train_data,
        chunk_size=trainer.steps_per_execution,
        spmd=spmd,
        steps_per_epoch=steps_per_epoch,
        replay=replay,
    )
    position.held_data = chunks.held_state  # hides a prefetched batch from state_dict()
    loop = EpochLoop(trainer, state, compiled(), position, stops, watch, chunks, spmd=spmd)
    trainer.stop_training = False
    outcome.status, outcome.stopped_by, outcome.error = "running", None, None
    history: list[Logs] = []
    with watch:  # to the end of teardown: a SIGTERM in on_train_end waits for it
        # ---- the run
        try:
            callbacks.on_train_begin(trainer)
            mid_epoch, position.resume_at = position.resume_at, None
            stopper = loop.run(epochs, val_data, mid_epoch, history)
            if isinstance(stopper, PreemptionNotice):
                watch.handled()
                save_for_preemption(savers, trainer)  # every saver, failures grouped
                position.leave_batches()
        except BaseException as error:
            outcome.status, outcome.error = "failed", error
            _tear_down_failed(trainer, callbacks, state, position, error)
            raise
        # ---- the end: the outcome is set before on_train_end, which may still fail the run
        _record_end(outcome, stopper)
        state.sync()
        try:
            callbacks.on_train_end(trainer)
        except BaseException as error:  # a failed last save, say: the run did not complete
            outcome.status, outcome.error = "failed", error
            raise
    if isinstance(stopper, PreemptionNotice):
        raise Preempted(position.step, saver_directories(savers))
    return history


def _record_end(outcome: Outcome, stopper: Stopper | None) -> None:
    """How the run ended: preempted, stopped (by ``stopper``) or completed."""
    if isinstance(stopper, PreemptionNotice):
        outcome.status = "preempted"
    else:
        outcome.stopped_by = stopper
        outcome.status = "stopped" if stopper is not None else "completed"


def _checked_arguments(
    trainer: FitHost,
    train_data: DataSource,
    epochs: int,
    options: FitOptions,
    position: RunPosition,
) -> tuple[int, DataSource]:
    """``fit``'s arguments checked: the epochs and the training data to use."""
    epochs = check_int("epochs", epochs, minimum=0)
    train_data = check_training_data(
        train_data, position.data, epochs, options.steps_per_epoch, options.data_resume
    )
    if options.val_data is not None:
        check_reiterable(options.val_data, "val_data", epochs)
    stateful_callbacks(trainer.callbacks)  # callbacks may have been added since __init__
    return epochs, train_data


def _resume_and_check(
    trainer: FitHost,
    train_data: DataSource,
    position: RunPosition,
    epochs: int,
    options: FitOptions,
) -> tuple[int, bool] | RunEnd:
    """Resume (if asked) and run every check that can refuse the run: all or nothing.

    Returns the epochs to run and whether the first replays its start (data without a
    position, resumed inside it), or the recorded end of a finished run (``resume=True``).
    A refusal puts the trainer and its callbacks back as they were.
    """
    resume_from, supersede = options.resume_from, options.supersede
    if check_bool("supersede", supersede) and resume_from is None:
        raise ValueError(
            "fit(supersede=True) needs resume_from: the older checkpoint to continue from "
            "(the later ones of its directory are moved aside)"
        )
    callbacks = trainer.callbacks
    same: SameCommand | None = None
    if check_bool("resume", options.resume):  # deferred: reading directories imports Orbax
        from artifex.generative_models.training.trainer._same_command import SameCommand

        same = SameCommand.of(callbacks, resume_from)
    source = resume_from if same is None else same.source(trainer)
    with all_or_nothing(trainer, callbacks) if source is not None else nullcontext():
        if source is not None:
            trainer.resume(source, supersede=supersede)
        if same is not None:  # epochs is the run's total
            end = same.ended(trainer, epochs)
            if end is not None:
                return end
            epochs = max(0, epochs - position.epoch)
        replay = position.replays_resumed_epoch(options.data_resume)
        position.planned_epochs = position.epoch + epochs
        position.steps_per_epoch = options.steps_per_epoch or _length(train_data)
        preflight(trainer, callbacks)  # a refusal: raised before any callback wrote a file
    return epochs, replay


def _length(data: DataSource) -> int | None:
    """``len(data)``, or ``None`` for data without a length."""
    try:
        return len(data)  # type: ignore[arg-type]  # a re-iterable may have no length  # ty: ignore[invalid-argument-type]
    except TypeError:
        return None


def _tear_down_failed(
    trainer: FitHost,
    callbacks: CallbackList,
    state: FlatState[Any],
    position: RunPosition,
    error: BaseException,
) -> None:
    """After the run failed with ``error``: sync the model, then dispatch ``on_train_end``.

    What fails here is added to ``error`` as a note, so the original error propagates.
    """
    position.closing = False
    position.leave_batches()
    try:
        state.sync()
    except Exception as sync_error:  # pragma: no cover - a deleted donated buffer
        error.add_note(f"the trainer could not sync the model: {sync_error!r}")
    try:
        callbacks.on_train_end(trainer)
    except BaseException as teardown_error:
        error.add_note(
            f"on_train_end also raised {type(teardown_error).__qualname__}: {teardown_error}"
        )


def evaluate(
    steps: CompiledSteps[Any],
    state: FlatState[Any],
    spmd: DataParallel | None,
    data: DataSource,
    name: str,
) -> dict[str, float]:
    """The mean metrics of the eval function over ``data``; the state is not changed.

    Raises:
        ValueError: If ``data`` yields no batches or batch structures differ.
    """
    sums: MetricSums | None = None
    count = 0
    for index, batch in checked_batches(data, name, spmd):
        try:
            if sums is None:  # an abstract trace: any error of the eval function
                sums = steps.zero_sums(state.params, state.rest, batch, train=False)
            sums = steps.evaluate(state.params, state.rest, sums, batch)
        except Exception as error:  # JAX's, for a leaf it cannot take (and a trace's)
            explain_batch_failure(error, (batch,), name, index)
            raise
        count = index + 1
    if sums is None:
        raise ValueError(f"{name} yielded no batches; evaluation needs at least one")
    return means(sums, count)


_EPOCH_TURN = ("on_validation_begin", "on_validation_end", "on_epoch_end", "on_epoch_begin")
"""The hooks run between the last step of an epoch and the first of the next."""


def _rows(batch: Any) -> int:
    """A batch's examples: the leading dimension of its first leaf (1 for a scalar)."""
    leaves = jax.tree.leaves(batch)
    shape = np.shape(leaves[0]) if leaves else ()
    return int(shape[0]) if shape else 1


class EpochLoop(Generic[M]):
    """The epochs of one ``fit``: one loop over each epoch's chunks, dispatching batch pairs.

    Args:
        trainer: The trainer passed to the hooks (its ``callbacks`` are dispatched to).
        state: The trained state.
        steps: The compiled steps for the state's layout.
        position: The counters (``step`` advances as steps run).
        stops: Decides after each ``on_batch_end`` whether to stop.
        preemption: Asked after every step whether a preemption notice came; the
            epoch then stops at the next resumable point (a chunk's end) with a
            ``PreemptionNotice`` as its stopper, keeping that position for the save.
        chunks: This fit's training data, cut into chunks.
        spmd: The mesh placement, or ``None``.
    """

    __slots__ = (
        "_since_step",
        "_warned_modes",
        "callbacks",
        "chunks",
        "position",
        "preemption",
        "spmd",
        "state",
        "steps",
        "stops",
        "trainer",
    )

    def __init__(
        self,
        trainer: FitHost,
        state: FlatState[M],
        steps: CompiledSteps[M],
        position: RunPosition,
        stops: StopArbiter,
        preemption: PreemptionWatch,
        chunks: EpochChunks,
        *,
        spmd: DataParallel | None,
    ) -> None:
        self.trainer = trainer
        self.callbacks = trainer.callbacks
        self.state = state
        self.steps = steps
        self.position = position
        self.stops = stops
        self.preemption = preemption
        self.chunks = chunks
        self.spmd = spmd
        self._since_step: tuple[str, ...] = ("on_train_begin", "on_epoch_begin")
        self._warned_modes = False

    def run(
        self,
        epochs: int,
        val_data: DataSource | None,
        resume: MidEpoch | None,
        history: list[Logs],
    ) -> Stopper | None:
        """Run ``epochs`` epochs (the first resumed at ``resume``); return what stopped them.

        Appends each epoch's logs to ``history``. A preemption notice ends the run
        inside an epoch at once (no validation, no ``on_epoch_end``; the position is
        kept for the save), or after an ``on_epoch_end``.
        """
        trainer, callbacks, position, state = (
            self.trainer,
            self.callbacks,
            self.position,
            self.state,
        )
        for _ in range(epochs):
            epoch = position.epoch
            callbacks.on_epoch_begin(trainer, epoch)
            logs, stopper = self.train(resume)
            resume = None
            if isinstance(stopper, PreemptionNotice):
                return stopper
            if val_data is not None and stopper is None:
                callbacks.on_validation_begin(trainer)
                val_logs = evaluate(self.steps, state, self.spmd, val_data, "val_data")
                callbacks.on_validation_end(trainer, val_logs)
                logs.update({f"val_{key}": value for key, value in val_logs.items()})
            state.sync()
            position.closing = True
            callbacks.on_epoch_end(trainer, epoch, logs)
            history.append(logs)
            position.epoch, position.closing = epoch + 1, False
            if stopper is None:
                stopper = self.stops.check()
            if stopper is None and self.preemption.notified:
                stopper = PreemptionNotice()
            if stopper is not None:
                return stopper
        return None

    def train(self, resume: MidEpoch | None = None) -> tuple[Logs, Stopper | None]:
        """Run one epoch's batch pairs; return its mean logs and what stopped it.

        Args:
            resume: ``(batches, sums)`` of a mid-epoch checkpoint: the epoch continues
                after its first ``batches`` batches (the data resumes at its position),
                with the running sums they left.

        Raises:
            ValueError: If the data yields no batches, or a batch's structure differs
                from the first batch of this fit.
        """
        position, chunks = self.position, self.chunks
        sums: MetricSums | None = None
        position.batches, sums = (0, None) if resume is None else resume
        stopper: Stopper | None = None
        try:
            for chunk in chunks.epoch(position.epoch, position.batches):
                if sums is None:
                    sums = self._zero_sums(chunk[0])
                if len(chunk) == 1:
                    sums, stopper = self.run_single(chunk[0], sums)
                elif self._chunk_scans(chunk, sums):
                    sums, stopper = self.run_chunk(chunk, sums)
                else:
                    sums, stopper = self.run_steps(chunk, sums)
                if stopper is not None:
                    chunks.give_back(chunks.fetched - position.batches)  # fetched, not trained
                    break
        except BaseException:
            chunks.give_back(0)  # a prefetched batch goes back: the data is where the loop is
            raise
        if not isinstance(stopper, PreemptionNotice):  # the save needs the position
            position.leave_batches()
        if position.batches == 0 or sums is None:
            raise ValueError(
                f"train_data yielded no batches in epoch {position.epoch}; pass a "
                "non-empty re-iterable (an exhausted iterator yields nothing the second time)"
            )
        return means(sums, position.batches), stopper

    def _zero_sums(self, batch: Any) -> MetricSums:
        try:
            return self.steps.zero_sums(self.state.params, self.state.rest, batch, train=True)
        except Exception as error:  # an abstract trace: any error of loss_fn
            position = self.position
            explain_batch_failure(error, (batch,), "train_data", position.batches, position.epoch)
            raise

    def _own(self) -> None:
        """``state.own()`` before a step; a changed mode is set back (warned once per fit).

        A changed structure fails with a note naming the hooks since the last step and
        the callbacks that override them; so does the warning.
        """
        hooks = self._since_step
        if self.position.batches == 0 and hooks[0] != "on_train_begin":  # a new epoch
            hooks = (*hooks, *_EPOCH_TURN)
        self._since_step = ("on_batch_begin", "on_batch_end")
        try:
            restored = self.state.own()
        except RuntimeError as error:
            error.add_note(suspects(self.callbacks, hooks))
            raise
        if restored and not self._warned_modes:
            self._warned_modes = True
            warn_modes_restored(restored, suspects(self.callbacks, hooks))

    def _chunk_scans(self, chunk: tuple[Any, ...], sums: MetricSums) -> bool:
        state, position = self.state, self.position
        try:
            return self.steps.chunk_scans(state.params, state.rest, state.opt_state, sums, chunk[0])
        except Exception as error:  # a trace of the train step: any error of loss_fn
            explain_batch_failure(error, chunk, "train_data", position.batches, position.epoch)
            raise

    def run_steps(
        self, batches: tuple[Any, ...], sums: MetricSums
    ) -> tuple[MetricSums, Stopper | None]:
        """A chunk dispatched step by step (where a scan would be slower): as unchunked."""
        stopper: Stopper | None = None
        for batch in batches:
            sums, stopper = self.run_single(batch, sums)
            if stopper is not None:
                break
        return sums, stopper

    def run_single(self, batch: Any, sums: MetricSums) -> tuple[MetricSums, Stopper | None]:
        """One batch pair around one compiled step; return the sums and any stopper."""
        state, position = self.state, self.position
        step = position.step
        self.callbacks.on_batch_begin(self.trainer, step)
        self._own()  # after on_batch_begin: a module it read or wrote must not be donated
        try:
            params, rest, opt_state, sums, logs = self.steps.train(
                state.params, state.rest, state.opt_state, sums, batch
            )
        except Exception as error:  # JAX's, for a leaf it cannot take (and a trace's)
            explain_batch_failure(error, (batch,), "train_data", position.batches, position.epoch)
            raise
        state.trained(params, rest, opt_state)
        position.step = step + 1
        position.batches += 1
        position.sums, position.last_batch = sums, position.batches == self.chunks.length
        position.examples += _rows(batch)
        self.chunks.ahead()  # the next batch's transfer overlaps this step
        self.callbacks.on_batch_end(self.trainer, step, logs)
        stopper: Stopper | None = self.stops.check()
        if stopper is None and self.preemption.requested(step + 1):
            stopper = PreemptionNotice()
        return sums, stopper

    def run_chunk(
        self, batches: tuple[Any, ...], sums: MetricSums
    ) -> tuple[MetricSums, Stopper | None]:
        """One compiled chunk, then its batch pairs; a stop inside it discards the rest."""
        state, position, callbacks, trainer = (
            self.state,
            self.position,
            self.callbacks,
            self.trainer,
        )
        self._own()
        before = (state.params, state.rest, state.opt_state, sums)
        try:
            params, rest, opt_state, new_sums, per_step = self.steps.chunk(
                state.params, state.rest, state.opt_state, sums, batches
            )
        except Exception as error:  # JAX's, for a leaf it cannot take (and a trace's)
            explain_batch_failure(error, batches, "train_data", position.batches, position.epoch)
            raise
        state.trained(params, rest, opt_state)
        start, first = position.step, position.batches
        last = len(batches) - 1
        kept = 0  # the steps that count: those whose on_batch_begin returned
        position.sums = None  # inside the chunk no position is resumable
        notice = False  # a preemption notice stops the epoch at the chunk's end
        try:
            self.chunks.ahead()  # the next batch's transfer overlaps this chunk
            for i, logs in enumerate(per_step):
                position.step = start + i
                callbacks.on_batch_begin(trainer, start + i)
                kept = i + 1
                position.step, position.batches = start + kept, first + kept
                if i == last:  # the chunk's end: a resumable position
                    position.sums = new_sums
                    position.last_batch = position.batches == self.chunks.length
                position.examples += _rows(batches[i])
                callbacks.on_batch_end(trainer, start + i, logs)
                notice = self.preemption.requested(start + kept) or notice
                stopper = self.stops.check()
                if stopper is None and notice and i == last:
                    return new_sums, PreemptionNotice()
                if stopper is not None:
                    if kept < len(batches):
                        new_sums = self._rerun(before, batches[:kept])
                    return new_sums, stopper
        except BaseException as error:
            position.step, position.batches = start + kept, first + kept
            if kept < len(batches):  # keep what an unchunked run would have kept
                try:
                    self._rerun(before, batches[:kept])
                    self.chunks.give_back(len(batches) - kept)
                except BaseException as rerun_error:
                    position.step = start + len(batches)  # the chunk's end state stays
                    position.batches = first + len(batches)
                    error.add_note(
                        f"the trainer kept all {len(batches)} steps of the chunk: recomputing "
                        f"the first {kept} raised {rerun_error!r}"
                    )
            raise
        return new_sums, None

    def _rerun(
        self, before: tuple[Leaves, Leaves, Leaves, MetricSums], batches: tuple[Any, ...]
    ) -> MetricSums:
        """Discard a chunk's later steps: recompute its first steps from ``before``."""
        params, rest, opt_state, sums = before
        for batch in batches:
            params, rest, opt_state, sums, _ = self.steps.train(
                params, rest, opt_state, sums, batch
            )
        self.state.rolled_back(params, rest, opt_state)
        return sums
