"""One training epoch and one evaluation pass: the trainer's hot path.

Each batch pair is dispatched around a compiled step by ``EpochRunner.run_single``,
which both paths use. With ``steps_per_execution=k > 1``, ``k`` consecutive batches of
equal shapes run in one compiled ``lax.scan``, and their ``k`` batch pairs are
dispatched in order afterwards; leftovers (fewer than ``k``, or a change of shape)
run one at a time. A stop requested inside a chunk discards the chunk's later steps:
they are recomputed from the state before the chunk (which the chunk does not
donate), and a stateful batcher is rewound, so step, model, epoch logs and data
position all reflect exactly the dispatched batches. A callback raising inside a
chunk keeps what an unchunked run would have kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

import jax
import numpy as np
from flax import nnx

from artifex.generative_models.training._batch_errors import explain_batch_failure
from artifex.generative_models.training._flat_state import FlatState, Leaves, same
from artifex.generative_models.training._means import Sums, means
from artifex.generative_models.training._preemption import NOTICE, PreemptionWatch
from artifex.generative_models.training._spmd import DataParallel
from artifex.generative_models.training._steps import CompiledSteps
from artifex.generative_models.training._stopping import StopArbiter
from artifex.generative_models.training.callbacks.base import CallbackList, Logs, TrainerLike
from artifex.generative_models.training.data import StatefulData

__all__ = [
    "DataSource",
    "EpochRunner",
    "Progress",
    "check_reiterable",
    "evaluate",
    "iterate",
    "tear_down_failed",
]

M = TypeVar("M", bound=nnx.Module)

DataSource: TypeAlias = Iterable[Any] | Callable[[], Iterable[Any]]
"""Batches: a re-iterable (iterated once per epoch) or a callable returning a fresh one."""


@dataclass(slots=True)
class Progress:
    """The trainer's counters, shared with the epoch runner."""

    step: int = 0
    """The global step: how many training steps have run, across ``fit`` calls."""
    epoch: int = 0
    """The current epoch (during ``fit``) or the next one to run."""
    closing: bool = False
    """Whether ``on_epoch_end`` is running (the epoch's steps are all done)."""
    batches: int = 0
    """How many batches of the current epoch have run (those of a resumed part included)."""
    sums: Sums | None = None
    """The epoch's running metric sums as of ``batches``, where they describe a position a
    fit can resume from (after a single step, or a chunk's last step); ``None`` inside a
    chunk and outside an epoch's batches."""
    last_batch: bool = False
    """Whether the batch that just ran is known to be its epoch's last (sized data)."""
    examples: int = 0
    """Examples trained on: each step's (global) batch rows, from its first leaf."""

    def leave_batches(self) -> None:
        """The epoch's batches are over (or were never begun): no resumable position."""
        self.sums, self.last_batch = None, False


def _rows(batch: Any) -> int:
    """A batch's examples: the leading dimension of its first leaf (1 for a scalar)."""
    leaves = jax.tree.leaves(batch)
    shape = np.shape(leaves[0]) if leaves else ()
    return int(shape[0]) if shape else 1


def iterate(data: DataSource, name: str) -> Iterator[Any]:
    """Start one pass over ``data`` (calling it first if it is a factory).

    Raises:
        TypeError: If ``data`` is neither iterable nor a callable returning an iterable.
    """
    source: object = data
    if not isinstance(source, Iterable) and callable(source):
        source = source()
        if not isinstance(source, Iterable):
            raise TypeError(
                f"{name} is a callable, so it must return an iterable of batches; it "
                f"returned {type(source).__qualname__}"
            )
    if not isinstance(source, Iterable):
        raise TypeError(
            f"{name} must be an iterable of batches or a callable returning one, got "
            f"{type(data).__qualname__}"
        )
    return iter(source)


def check_reiterable(data: DataSource, name: str, epochs: int) -> None:
    """Refuse a one-shot iterator that would be iterated more than once.

    Raises:
        TypeError: If ``data`` is an iterator and ``epochs > 1``.
    """
    if isinstance(data, Iterator) and epochs > 1:
        raise TypeError(
            f"{name} is a one-shot iterator ({type(data).__qualname__}), but it is "
            f"iterated once per epoch and epochs={epochs}; pass a re-iterable (a list, an "
            "ArrayBatcher) or a callable that returns a fresh iterable"
        )


def _signature(leaves: list[Any]) -> tuple[tuple[tuple[int, ...], Any], ...]:
    """Shapes and dtypes: batches with equal signatures can share a chunk."""
    return tuple((np.shape(leaf), getattr(leaf, "dtype", None)) for leaf in leaves)


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
    sums: Sums | None = None
    batch_def: Any = None
    count = 0
    for batch in iterate(data, name):
        treedef = jax.tree.structure(batch)
        if spmd is not None:
            batch = spmd.shard_batch(batch, name)
        if sums is None:
            batch_def = treedef
            try:
                sums = steps.zero_sums(state.params, state.rest, batch, train=False)
            except Exception as error:  # an abstract trace: any error of the eval function
                explain_batch_failure(error, (batch,), name, count)
                raise
        elif not same(treedef, batch_def):
            raise ValueError(
                f"{name} batch {count} has structure {treedef}, but the first had {batch_def}"
            )
        try:
            sums = steps.evaluate(state.params, state.rest, sums, batch)
        except Exception as error:  # JAX's, for a leaf it cannot take (and a trace's)
            explain_batch_failure(error, (batch,), name, count)
            raise
        count += 1
    if sums is None:
        raise ValueError(f"{name} yielded no batches; evaluation needs at least one")
    return means(sums, count)


class EpochRunner(Generic[M]):
    """Runs the training epochs of one ``fit``, dispatching each batch pair.

    Args:
        trainer: The trainer passed to the hooks.
        callbacks: The callbacks to dispatch to.
        state: The trained state.
        steps: The compiled steps for the state's layout.
        progress: The counters (``step`` advances as steps run).
        stops: Decides after each ``on_batch_end`` whether to stop.
        data: This fit's training data (rewound after a discarded chunk).
        steps_per_execution: Steps per compiled dispatch.
        spmd: The mesh placement, or ``None``.
        preemption: Asked after every step whether a preemption notice came; the
            epoch then stops at the next resumable point (a chunk's end) with
            ``NOTICE`` as its stopper, keeping that position for the save.
    """

    __slots__ = (
        "_batch_def",
        "callbacks",
        "chunk_size",
        "data",
        "preemption",
        "progress",
        "spmd",
        "state",
        "steps",
        "stops",
        "trainer",
    )

    def __init__(
        self,
        trainer: TrainerLike,
        callbacks: CallbackList,
        state: FlatState[M],
        steps: CompiledSteps[M],
        progress: Progress,
        stops: StopArbiter,
        data: DataSource,
        *,
        steps_per_execution: int,
        spmd: DataParallel | None,
        preemption: PreemptionWatch,
    ) -> None:
        self.trainer = trainer
        self.preemption = preemption
        self.callbacks = callbacks
        self.state = state
        self.steps = steps
        self.progress = progress
        self.stops = stops
        self.data = data
        self.chunk_size = steps_per_execution
        self.spmd = spmd
        self._batch_def: Any = None  # every batch of a fit has the first one's structure

    def run(
        self,
        epochs: int,
        val_data: DataSource | None,
        resume: tuple[int, Sums] | None,
        history: list[Logs],
    ) -> object | None:
        """Run ``epochs`` epochs (the first resumed at ``resume``); return what stopped them.

        Appends each epoch's logs to ``history``. A preemption notice ends the run
        with ``NOTICE``: inside an epoch at once (no validation, no
        ``on_epoch_end``; the position is kept for the save), or after an
        ``on_epoch_end``.
        """
        trainer, callbacks, progress, state = (
            self.trainer,
            self.callbacks,
            self.progress,
            self.state,
        )
        stopper: object | None = None
        for _ in range(epochs):
            epoch = progress.epoch
            callbacks.on_epoch_begin(trainer, epoch)
            logs, stopper = self.train(resume)
            resume = None
            if stopper is NOTICE:
                return stopper
            if val_data is not None and stopper is None:
                callbacks.on_validation_begin(trainer)
                val_logs = evaluate(self.steps, state, self.spmd, val_data, "val_data")
                callbacks.on_validation_end(trainer, val_logs)
                logs.update({f"val_{key}": value for key, value in val_logs.items()})
            state.sync()
            progress.closing = True
            callbacks.on_epoch_end(trainer, epoch, logs)
            history.append(logs)
            progress.epoch, progress.closing = epoch + 1, False
            if stopper is None:
                stopper = self.stops.check()
            if stopper is None and self.preemption.notified:
                stopper = NOTICE
            if stopper is not None:
                return stopper
        return None

    def train(self, resume: tuple[int, Sums] | None = None) -> tuple[Logs, object | None]:
        """Run one epoch's batch pairs; return its mean logs and what stopped it.

        Args:
            resume: ``(batches, sums)`` of a mid-epoch checkpoint: the epoch continues
                after its first ``batches`` batches (the data resumes at its position),
                with the running sums they left.

        Raises:
            ValueError: If the data yields no batches, or a batch's structure differs
                from the first batch of this fit.
        """
        chunk_size, progress = self.chunk_size, self.progress
        sums: Sums | None = None
        progress.batches = 0
        data: object = self.data
        length = len(data) if isinstance(data, Sized) else None
        if resume is not None:
            progress.batches, sums = resume
        stopper: object | None = None
        pending: list[Any] = []
        pending_signature: Any = None
        done = resume is not None and length is not None and progress.batches >= length
        for batch in () if done else iterate(self.data, "train_data"):
            leaves, treedef = jax.tree.flatten(batch)
            if not same(treedef, self._batch_def):
                if self._batch_def is not None:
                    raise ValueError(
                        f"train_data batch {progress.batches + len(pending)} of epoch "
                        f"{progress.epoch} has structure {treedef}, but the first "
                        f"batch of this fit had {self._batch_def}"
                    )
                self._batch_def = treedef
            if self.spmd is not None:
                batch = self.spmd.shard_batch(batch, "train_data")
            if sums is None:
                try:
                    sums = self.steps.zero_sums(
                        self.state.params, self.state.rest, batch, train=True
                    )
                except Exception as error:  # an abstract trace: any error of loss_fn
                    index = progress.batches + len(pending)
                    explain_batch_failure(error, (batch,), "train_data", index, progress.epoch)
                    raise
            if chunk_size == 1:
                sums, stopper = self.run_single(batch, sums, length)
                if stopper is not None:
                    break
                continue
            signature = _signature(leaves)
            if pending and signature != pending_signature:
                sums, stopper = self._run_singles(pending, sums, length)
                pending = []
                if stopper is not None:
                    break
            pending.append(batch)
            pending_signature = signature
            if len(pending) == chunk_size:
                sums, stopper = self._run_chunk(pending, sums, length)
                pending = []
                if stopper is not None:
                    break
        else:
            if pending:
                assert sums is not None
                sums, stopper = self._run_singles(pending, sums, length)
        if stopper is not NOTICE:  # the save needs the position
            progress.leave_batches()
        if progress.batches == 0 or sums is None:
            raise ValueError(
                f"train_data yielded no batches in epoch {progress.epoch}; pass a "
                "non-empty re-iterable (an exhausted iterator yields nothing the second time)"
            )
        return means(sums, progress.batches), stopper

    def run_single(
        self, batch: Any, sums: Sums, length: int | None = None
    ) -> tuple[Sums, object | None]:
        """One batch pair around one compiled step; return the sums and any stopper."""
        state, progress = self.state, self.progress
        state.own()
        step = progress.step
        self.callbacks.on_batch_begin(self.trainer, step)
        try:
            params, rest, opt_state, sums, logs = self.steps.train(
                state.params, state.rest, state.opt_state, sums, batch
            )
        except Exception as error:  # JAX's, for a leaf it cannot take (and a trace's)
            explain_batch_failure(error, (batch,), "train_data", progress.batches, progress.epoch)
            raise
        state.trained(params, rest, opt_state)
        progress.step = step + 1
        progress.batches += 1
        progress.sums, progress.last_batch = sums, progress.batches == length
        progress.examples += _rows(batch)
        self.callbacks.on_batch_end(self.trainer, step, logs)
        stopper = self.stops.check()
        if stopper is None and self.preemption.requested(step + 1):
            stopper = NOTICE
        return sums, stopper

    def _run_singles(
        self, batches: list[Any], sums: Sums, length: int | None
    ) -> tuple[Sums, object | None]:
        for batch in batches:
            sums, stopper = self.run_single(batch, sums, length)
            if stopper is not None:
                return sums, stopper
        return sums, None

    def _run_chunk(
        self, batches: list[Any], sums: Sums, length: int | None
    ) -> tuple[Sums, object | None]:
        state, progress, callbacks, trainer = (
            self.state,
            self.progress,
            self.callbacks,
            self.trainer,
        )
        state.own()
        before = (state.params, state.rest, state.opt_state, sums)
        try:
            params, rest, opt_state, new_sums, per_step = self.steps.chunk(
                state.params, state.rest, state.opt_state, sums, tuple(batches)
            )
        except Exception as error:  # JAX's, for a leaf it cannot take (and a trace's)
            explain_batch_failure(error, batches, "train_data", progress.batches, progress.epoch)
            raise
        state.trained(params, rest, opt_state)
        start, first = progress.step, progress.batches
        last = len(batches) - 1
        kept = 0  # the steps that count: those whose on_batch_begin returned
        progress.sums = None  # inside the chunk no position is resumable
        notice = False  # a preemption notice stops the epoch at the chunk's end
        try:
            for i, logs in enumerate(per_step):
                progress.step = start + i
                callbacks.on_batch_begin(trainer, start + i)
                kept = i + 1
                progress.step, progress.batches = start + kept, first + kept
                if i == last:  # the chunk's end: a resumable position
                    progress.sums = new_sums
                    progress.last_batch = progress.batches == length
                progress.examples += _rows(batches[i])
                callbacks.on_batch_end(trainer, start + i, logs)
                notice = self.preemption.requested(start + kept) or notice
                stopper = self.stops.check()
                if stopper is None and notice and i == last:
                    return new_sums, NOTICE
                if stopper is not None:
                    if kept < len(batches):
                        new_sums = self._rerun(before, batches[:kept])
                        self._rewind_data(len(batches) - kept)
                    return new_sums, stopper
        except BaseException as error:
            progress.step, progress.batches = start + kept, first + kept
            if kept < len(batches):  # keep what an unchunked run would have kept
                try:
                    self._rerun(before, batches[:kept])
                    self._rewind_data(len(batches) - kept)
                except BaseException as rerun_error:
                    progress.step = start + len(batches)  # the chunk's end state stays
                    progress.batches = first + len(batches)
                    error.add_note(
                        f"the trainer kept all {len(batches)} steps of the chunk: recomputing "
                        f"the first {kept} raised {rerun_error!r}"
                    )
            raise
        return new_sums, None

    def _rerun(self, before: tuple[Leaves, Leaves, Leaves, Sums], batches: list[Any]) -> Sums:
        """Discard a chunk's later steps: recompute its first steps from ``before``."""
        params, rest, opt_state, sums = before
        for batch in batches:
            params, rest, opt_state, sums, _ = self.steps.train(
                params, rest, opt_state, sums, batch
            )
        self.state.rolled_back(params, rest, opt_state)
        return sums

    def _rewind_data(self, batches: int) -> None:
        """Give back ``batches`` fetched but discarded batches to a stateful batcher."""
        data: object = self.data
        if isinstance(data, StatefulData):
            state = data.state_dict()
            if "position" in state:
                state["position"] = max(0, int(state["position"]) - batches)
                data.load_state_dict(state)


def tear_down_failed(
    trainer: TrainerLike,
    callbacks: CallbackList,
    state: FlatState[Any],
    progress: Progress,
    error: BaseException,
) -> None:
    """After ``fit`` failed with ``error``: sync the model, then dispatch ``on_train_end``.

    What fails here is added to ``error`` as a note, so the original error propagates.
    """
    progress.closing = False
    progress.leave_batches()
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
