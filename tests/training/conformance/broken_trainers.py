"""One small test trainer, and the faults that break it: each a one-line deviation."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from types import MappingProxyType
from typing import Literal, TypeAlias, cast

import jax
import jax.numpy as jnp
from flax import nnx

from artifex.generative_models.training.callbacks import (
    CallbackList,
    Logs,
    RunStatus,
    StopRequester,
    TrainingCallback,
)
from artifex.generative_models.training.callbacks.protocols import PreflightCallback
from artifex.generative_models.training.conformance import FailingData

Batch: TypeAlias = tuple[jax.Array, jax.Array]
Fault: TypeAlias = Literal[
    "none",
    "forgets_validation_end",
    "batch_end_off_by_one",
    "skips_train_end_on_error",
    "swallows_exception",
    "ignores_stop",
    "epoch_end_before_last_batch_end",
    "epochs_from_1",
    "float_batch_logs",
    "model_not_module",
    "wraps_exception",
    "status_always_completed",
    # One per clause of the contract that the suite checked late (issue 12).
    "reversed_teardown",
    "data_interrupt_stops_gracefully",
    "exits_on_error",
    "keeps_stop_flag",
    "checks_stop_before_batch",
    "validates_twice",
    "cumulative_epoch_loss",
    "val_logs_differ",
    "deletes_batch_logs",
    "stale_val_keys",
    "vector_batch_loss",
    "mapping_logs",
    "keeps_error",
    "reraises_copy",
    "reverses_callbacks",
    "int_batch_counter",
    "int_epoch_logs",
    # Issue 25: the trainer's state at every hook, the model, failures and stops combined.
    "step_lags_in_batch_end",
    "epoch_advanced_in_epoch_end",
    "status_not_running",
    "examples_restart",
    "examples_counted_at_begin",
    "last_batch_always",
    "keeps_stopped_by",
    "restored_counters",
    "status_kept_after_teardown_failure",
    "model_copy_per_read",
    "donates_model_read_at_batch_begin",
    "model_written_back_after_fit",
    "model_written_back_before_train_end",
    "epoch_logs_copied_per_callback",
    "hooks_by_keyword",
    "readonly_view",
    "stoppers_dispatched_last",
    "dedupes_callback_classes",
    "data_exit_stops_gracefully",
    "validation_interrupt_skips",
    "teardown_error_as_cause",
    "teardown_error_dropped",
    "teardown_interrupt_hides_failure",
    "teardown_interrupt_dropped",
    "teardown_interrupt_cuts_short",
    "preflight_interleaved",
    "teardown_after_refusal",
    "latches_stop",
    "flag_reset_after_train_begin",
    "stop_beats_failure",
    "last_batch_epoch_loss",
    "nan_dropped_from_mean",
    "bool_batch_logs",
    "frees_batch_metric",
    "vector_batch_metric",
    "reuses_batch_logs_dict",
    "mutates_epoch_logs",
    "reuses_data_iterator",
    # Issue 28's plan (TrainingPlan): planned_epochs and steps_per_epoch at every hook.
    "planned_epochs_off_by_one",
    "plan_kept_from_first_fit",
    "plan_set_after_train_begin",
    "steps_per_epoch_counts_examples",
    "plan_dropped_after_fit",
    "plan_before_first_fit",
    # Correct but unusual: the suite must accept each.
    "ok_no_preflight",
    "ok_own_dispatch",
    "ok_extra_metrics",
    "ok_never_last_batch",
    "ok_counts_steps_as_examples",
    "ok_teardown_interrupt_takes_over",
]

_HOOK_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "on_epoch_begin": ("epoch",),
    "on_epoch_end": ("epoch", "logs"),
    "on_batch_begin": ("batch",),
    "on_batch_end": ("batch", "logs"),
    "on_validation_end": ("logs",),
}


class _View:
    """A read-only view of a trainer (what ``readonly_view`` passes to hooks)."""

    def __init__(self, trainer: object) -> None:
        object.__setattr__(self, "_trainer", trainer)

    def __getattr__(self, name: str) -> object:
        return getattr(object.__getattribute__(self, "_trainer"), name)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a read-only view: cannot set {name}")


class _FaultyDispatch:
    """Dispatches like ``CallbackList``, with one of the dispatch faults."""

    def __init__(self, callbacks: Sequence[TrainingCallback], fault: Fault) -> None:
        self.callbacks, self.fault = list(callbacks), fault

    def __getattr__(self, hook: str) -> Callable[..., None]:
        def dispatch(trainer: object, *args: object) -> None:
            if self.fault == "readonly_view":
                trainer = _View(trainer)
            failure: BaseException | None = None
            for callback in self.callbacks:
                method = getattr(callback, hook)
                copied = self.fault == "epoch_logs_copied_per_callback" and hook == "on_epoch_end"
                try:
                    if self.fault == "hooks_by_keyword":
                        names = _HOOK_ARGUMENTS.get(hook, ())
                        method(trainer=trainer, **dict(zip(names, args, strict=True)))
                    elif copied:
                        method(trainer, args[0], dict(cast("Logs", args[1])))
                    else:
                        method(trainer, *args)
                except BaseException as error:  # teardown always runs
                    if hook != "on_train_end":
                        raise
                    failure = failure or error
            if failure is not None:
                raise failure

        return dispatch


def _dispatch(callbacks: Sequence[TrainingCallback], fault: Fault) -> CallbackList:
    if fault == "stoppers_dispatched_last":
        stoppers: list[TrainingCallback] = [cb for cb in callbacks if isinstance(cb, StopRequester)]
        callbacks = [cb for cb in callbacks if cb not in stoppers] + stoppers
    elif fault == "dedupes_callback_classes":
        kinds = {type(cb): cb for cb in reversed(callbacks)}
        callbacks = [cb for cb in callbacks if kinds[type(cb)] is cb]
    if fault in (
        "epoch_logs_copied_per_callback",
        "hooks_by_keyword",
        "readonly_view",
        "ok_own_dispatch",
    ):
        return cast("CallbackList", _FaultyDispatch(callbacks, fault))
    return CallbackList(callbacks)


def _loss(model: nnx.Linear, batch: Batch) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


class SimpleTrainer:
    """Evaluates the loss (no update: it only needs to dispatch correctly), with ``fault``."""

    def __init__(self, callbacks: Sequence[TrainingCallback], fault: Fault) -> None:
        self._model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
        order = list(reversed(callbacks)) if fault == "reverses_callbacks" else list(callbacks)
        self._raw = order
        self.callbacks = _dispatch(order, fault)
        self._shadow: nnx.Linear | None = None  # trained instead of the model (two faults)
        self._model_reads = 0
        self._latched = False
        self._logs_buffer: Logs = {}
        self._stoppers = [cb for cb in callbacks if isinstance(cb, StopRequester)]
        self.fault = fault
        self.stop_training = False
        self.step = 0
        self.epoch = 0
        self._stopped_by: object | None = None
        self._error: BaseException | None = None
        self._status: RunStatus = "completed"
        self._carry: Logs = {}
        self._total = 0.0
        self._examples = 3 if fault == "restored_counters" else 0
        self._last_batch = False
        self._planned_epochs: int | None = 0 if fault == "plan_before_first_fit" else None
        self._steps_per_epoch: int | None = None

    # TrainingPlan: what a fit plans to run.
    @property
    def planned_epochs(self) -> int | None:
        return self._planned_epochs

    @property
    def steps_per_epoch(self) -> int | None:
        return self._steps_per_epoch

    def _plan(self, data: Iterable[Batch], epochs: int) -> None:
        if self.fault == "plan_kept_from_first_fit" and self._planned_epochs is not None:
            return
        late = 1 if self.fault == "planned_epochs_off_by_one" else 0
        self._planned_epochs = self.epoch + epochs + late
        length = len(data) if isinstance(data, Sized) else None
        if length is not None and self.fault == "steps_per_epoch_counts_examples":
            length *= 4  # the harness's batch size
        self._steps_per_epoch = length

    # ExampleCounter and StepCheckpointableTrainer: what the suite reads at every hook.
    @property
    def examples_seen(self) -> int:
        return self._examples

    @property
    def last_batch_of_epoch(self) -> bool:
        return self.fault == "last_batch_always" or (
            self._last_batch and self.fault != "ok_never_last_batch"
        )

    @property
    def resumable_mid_epoch(self) -> bool:
        return False

    def state_dict(self) -> dict[str, object]:
        return {"step": self.step, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, object], /) -> None:
        raise NotImplementedError("the suite never restores")

    # TrainerState: how the run stands.
    @property
    def status(self) -> RunStatus:
        return "completed" if self.fault == "status_always_completed" else self._status

    @property
    def stopped_by(self) -> object | None:
        return self._stopped_by

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def model(self) -> nnx.Module:
        self._model_reads += 1
        if self.fault == "model_not_module":
            return cast("nnx.Module", {"kernel": self._model.kernel[...]})
        if self.fault == "model_copy_per_read":
            return nnx.clone(self._model)
        return self._model

    def _begin_run(self) -> None:
        if self.fault != "status_not_running":
            self._status = "running"
        if self.fault != "keeps_stopped_by":
            self._stopped_by = None
        if self.fault != "keeps_error":
            self._error = None
        if self.fault == "examples_restart":
            self._examples = 0

    def _should_stop(self) -> bool:
        if self.fault == "ignores_stop":
            return False
        requester = next((cb for cb in self._stoppers if cb.should_stop), None)
        self._stopped_by = self if self.stop_training else requester
        if self._latched and self._stopped_by is None:
            self._stopped_by = self
        self._latched = self.fault == "latches_stop" and self._stopped_by is not None
        return self._stopped_by is not None

    def _guarded(self, data: Iterable[Batch]) -> Iterator[Batch]:
        """The data; with ``data_interrupt_stops_gracefully``, a Ctrl-C from it stops."""
        iterator = iter(data)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except KeyboardInterrupt:
                if self.fault != "data_interrupt_stops_gracefully":
                    raise
                self.stop_training = True
                return
            except SystemExit:
                if self.fault != "data_exit_stops_gracefully":
                    raise
                self.stop_training = True
                return
            yield batch

    def _teardown(self) -> None:
        if self.fault == "teardown_interrupt_cuts_short":
            for cb in self._raw:  # a KeyboardInterrupt ends the teardown here
                cb.on_train_end(self)
            return
        if self.fault != "reversed_teardown":
            self.callbacks.on_train_end(self)
            return
        errors: list[Exception] = []
        for cb in reversed(self._raw):
            try:
                cb.on_train_end(self)
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]

    def _validate(self, val_data: Iterable[Batch], epoch_logs: Logs) -> None:
        cbs = self.callbacks
        for _ in range(2 if self.fault == "validates_twice" else 1):
            try:
                cbs.on_validation_begin(self)
            except KeyboardInterrupt:
                if self.fault != "validation_interrupt_skips":
                    raise
                return
            val_losses = jnp.stack([_loss(self._model, b) for b in val_data])
            val_loss = float(jnp.mean(val_losses))
            if self.fault != "forgets_validation_end":
                cbs.on_validation_end(self, {"loss": val_loss})
            differ = self.fault == "val_logs_differ"
            epoch_logs["val_loss"] = float(jnp.sum(val_losses)) if differ else val_loss

    def _batch_logs(self, loss: jax.Array, batch: Batch, index: int) -> Logs:
        fault = self.fault
        value: object = loss
        if fault == "float_batch_logs":
            value = float(loss)
        elif fault == "deletes_batch_logs":
            value = loss + 0.0  # a buffer of its own, deleted after on_batch_end
        elif fault == "vector_batch_loss":
            x, y = batch
            value = jnp.mean((self._model(x) - y) ** 2, axis=-1)
        logs: Logs = {"loss": value}
        if fault == "reuses_batch_logs_dict":
            logs = self._logs_buffer
            logs["loss"] = value
        if fault == "int_batch_counter":
            logs["batches"] = index + 1
        if fault == "bool_batch_logs":
            logs["finite"] = True
        if fault in ("frees_batch_metric", "ok_extra_metrics"):
            logs["scaled"] = loss * 2.0  # deleted after on_batch_end by frees_batch_metric
        if fault == "vector_batch_metric":
            x, y = batch
            logs["per_example"] = jnp.mean((self._model(x) - y) ** 2, axis=-1)
        if fault == "mapping_logs":
            return cast("Logs", MappingProxyType(logs))
        return logs

    def _epoch_logs(self, losses: list[jax.Array]) -> Logs:
        logs: Logs = self._carry if self.fault == "stale_val_keys" else {}
        if not losses:  # an exhausted iterator (reuses_data_iterator)
            return logs
        logs["loss"] = float(jnp.mean(jnp.stack(losses)))
        if self.fault == "last_batch_epoch_loss":
            logs["loss"] = float(losses[-1])
        if self.fault == "nan_dropped_from_mean":
            logs["loss"] = float(jnp.nanmean(jnp.stack(losses)))
        if self.fault == "cumulative_epoch_loss":
            self._total += float(jnp.sum(jnp.stack(losses)))
            logs["loss"] = self._total
        if self.fault in ("int_epoch_logs", "ok_extra_metrics"):
            logs["batches"] = len(losses)
        return logs

    def _preflight(self) -> None:
        """Every callback's ``preflight`` (``PreflightCallback``), before any ``on_train_begin``."""
        for cb in self._raw:
            if isinstance(cb, PreflightCallback) and self.fault != "ok_no_preflight":
                cb.preflight(self)
            if self.fault == "preflight_interleaved":
                cb.on_train_begin(self)

    def _write_back(self) -> None:
        """The two shadow faults train a copy and write it into the model late."""
        if self._shadow is not None:
            nnx.update(self._model, nnx.state(self._shadow))

    def _epoch(self, data: Iterable[Batch], epoch: int, val_data: Iterable[Batch] | None) -> bool:
        """One epoch; whether a stop ends the run."""
        cbs, fault = self.callbacks, self.fault
        cbs.on_epoch_begin(self, epoch + (fault == "epochs_from_1"))
        losses: list[jax.Array] = []
        last = -1
        if fault == "epoch_end_before_last_batch_end":
            data = list(data)
            last = len(data) - 1
        deferred: tuple[int, Logs] | None = None
        stopped = False
        for index, batch in enumerate(self._guarded(data)):
            if fault == "checks_stop_before_batch" and self._should_stop():
                stopped = True
                break
            step = self.step
            if fault == "examples_counted_at_begin":
                self._examples += len(batch[0])
            reads = self._model_reads
            cbs.on_batch_begin(self, step)
            if fault == "donates_model_read_at_batch_begin" and self._model_reads > reads:
                # The step donates the arrays that the read handed out (as the reference
                # Trainer did when it took the module's arrays before on_batch_begin).
                self._model.kernel[...].delete()
            loss = _loss(self._model, batch)
            if self._shadow is not None:
                self._shadow.kernel[...] = self._shadow.kernel[...] + 0.01
            self.step += fault != "step_lags_in_batch_end"
            if fault == "ok_counts_steps_as_examples":
                self._examples += 1
            elif fault != "examples_counted_at_begin":
                self._examples += len(batch[0])
            self._last_batch = isinstance(data, list) and index == len(data) - 1
            losses.append(loss)
            logs = self._batch_logs(loss, batch, index)
            if index == last:
                deferred = (step, logs)
                break
            cbs.on_batch_end(self, step + (fault == "batch_end_off_by_one"), logs)
            self.step += fault == "step_lags_in_batch_end"
            self._last_batch = False
            if fault == "deletes_batch_logs":
                logs["loss"].delete()
            if fault == "frees_batch_metric":
                logs["scaled"].delete()
            if fault != "checks_stop_before_batch" and self._should_stop():
                stopped = True
                break
        epoch_logs = self._epoch_logs(losses)
        if val_data is not None and not stopped:
            self._validate(val_data, epoch_logs)
        self.epoch += fault == "epoch_advanced_in_epoch_end"
        cbs.on_epoch_end(self, epoch + (fault == "epochs_from_1"), epoch_logs)
        if fault == "mutates_epoch_logs":
            epoch_logs["loss"] = -1.0
        if deferred is not None:
            cbs.on_batch_end(self, *deferred)
        self.epoch += fault != "epoch_advanced_in_epoch_end"
        return self._should_stop()

    def _failed(self, error: BaseException) -> BaseException | None:
        """Tear down after ``error``; what ``fit`` raises then (``None``: it returns)."""
        fault = self.fault
        stopped = fault == "stop_beats_failure" and self._stopped_by is not None
        self._status, self._error = ("stopped" if stopped else "failed"), error
        if fault == "skips_train_end_on_error":
            return error
        try:
            self._teardown()
        except KeyboardInterrupt as interrupt:  # a Ctrl-C during teardown: a note, or ...
            if fault == "ok_teardown_interrupt_takes_over":  # ... it takes over
                self._error = interrupt
                raise
            if fault == "teardown_interrupt_hides_failure":
                raise interrupt from None  # ... but hides the failure it interrupted
            if fault != "teardown_interrupt_dropped":
                error.add_note(f"on_train_end also raised {interrupt!r}")
        except Exception as teardown_error:
            if fault == "teardown_error_as_cause":
                error.__cause__ = teardown_error
            elif fault != "teardown_error_dropped":
                error.add_note(f"on_train_end also raised {teardown_error!r}")
        if fault == "swallows_exception":
            return None
        if fault == "wraps_exception":
            return RuntimeError("training failed")
        if fault == "exits_on_error":
            return SystemExit(1)
        if fault == "reraises_copy":
            return type(error)(*error.args)
        return error

    def fit(
        self, data: Iterable[Batch], *, epochs: int, val_data: Iterable[Batch] | None = None
    ) -> None:
        fault = self.fault
        if fault not in ("keeps_stop_flag", "flag_reset_after_train_begin"):
            self.stop_training = False
        if fault in ("model_written_back_after_fit", "model_written_back_before_train_end"):
            self._shadow = nnx.clone(self._model)
        if fault == "reuses_data_iterator":
            data = iter(data)
        if fault != "plan_set_after_train_begin":
            self._plan(data, epochs)
        if fault != "teardown_after_refusal":
            self._preflight()
        self._begin_run()
        try:
            if fault == "teardown_after_refusal":
                self._preflight()
            if fault != "preflight_interleaved":
                self.callbacks.on_train_begin(self)
            if fault == "plan_set_after_train_begin":
                self._plan(data, epochs)
            if fault == "flag_reset_after_train_begin":
                self.stop_training = False
            for _ in range(epochs):
                if self._epoch(data, self.epoch, val_data):
                    break
        except BaseException as error:
            raised = self._failed(error)
            if raised is error:
                raise
            if raised is not None:
                raise raised from None if fault == "reraises_copy" else error
            return
        self._status = "stopped" if self._stopped_by is not None else "completed"
        if fault == "model_written_back_before_train_end":
            self._write_back()
        try:
            self._teardown()
        except BaseException as error:  # the run did not complete after all
            if fault != "status_kept_after_teardown_failure":
                self._status, self._error = "failed", error
            raise
        if fault == "model_written_back_after_fit":
            self._write_back()
        if fault == "plan_dropped_after_fit":
            self._planned_epochs = self._steps_per_epoch = None


def _batches(count: int, seed: int) -> list[Batch]:
    x = jax.random.normal(jax.random.key(seed), (count, 4, 2))
    return [(x[i], jnp.sum(x[i], axis=-1, keepdims=True)) for i in range(count)]


class BrokenHarness:
    """A harness (validating and failing) for :class:`SimpleTrainer` with one fault."""

    def __init__(self, fault: Fault, *, nan_batch: bool = False) -> None:
        self.fault: Fault = fault
        self.train = _batches(3, 0)
        self.val = _batches(2, 1)
        if nan_batch or fault == "nan_dropped_from_mean":  # batch 1's loss is NaN
            x, y = self.train[1]
            self.train[1] = (x.at[0, 0].set(jnp.nan), y)

    def build(self, callbacks: Sequence[TrainingCallback]) -> SimpleTrainer:
        return SimpleTrainer(callbacks, self.fault)

    def fit(self, trainer: SimpleTrainer, epochs: int) -> None:
        trainer.fit(self.train, epochs=epochs)

    def fit_validated(self, trainer: SimpleTrainer, epochs: int) -> None:
        trainer.fit(self.train, epochs=epochs, val_data=self.val)

    def fit_failing(
        self, trainer: SimpleTrainer, epochs: int, error: BaseException, at_batch: int
    ) -> None:
        trainer.fit(FailingData(self.train, error, at_batch), epochs=epochs)

    def fit_stream(self, trainer: SimpleTrainer, epochs: int, steps_per_epoch: int) -> None:
        trainer.fit(_Stream(self.train, steps_per_epoch), epochs=epochs)


class _Stream:
    """An endless stream cut into epochs of ``steps`` batches: one iterator for all epochs.

    ``SimpleTrainer`` has no ``steps_per_epoch``; this sized re-iterable gives it the same
    epochs (and plan) a trainer with one would run.
    """

    def __init__(self, batches: list[Batch], steps: int) -> None:
        self.stream = itertools.cycle(batches)
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[Batch]:
        return itertools.islice(self.stream, self.steps)


class PlainHarness:
    """Only ``build`` and ``fit``: the optional scenarios are not applicable."""

    def __init__(self) -> None:
        self.inner = BrokenHarness("none")

    def build(self, callbacks: Sequence[TrainingCallback]) -> SimpleTrainer:
        return self.inner.build(callbacks)

    def fit(self, trainer: SimpleTrainer, epochs: int) -> None:
        self.inner.fit(trainer, epochs)


class UntypedBuildHarness(PlainHarness):
    """Runs fine, but ``build`` is annotated to return ``object``: ``--static`` rejects it."""

    def build(self, callbacks: Sequence[TrainingCallback]) -> object:  # type: ignore[override]  # the point  # ty: ignore[incompatible-method-override]
        return self.inner.build(callbacks)

    def fit(self, trainer: object, epochs: int) -> None:
        assert isinstance(trainer, SimpleTrainer)
        self.inner.fit(trainer, epochs)


def epochs_from_one() -> BrokenHarness:
    """A factory for the CLI tests."""
    return BrokenHarness("epochs_from_1")


class InterruptedHarness(PlainHarness):
    """Its ``fit`` raises a ``KeyboardInterrupt`` the suite did not inject: a real Ctrl-C."""

    def fit(self, trainer: SimpleTrainer, epochs: int) -> None:
        raise KeyboardInterrupt


class ExitingHarness(PlainHarness):
    """Its ``fit`` raises ``SystemExit(3)`` although nothing failed: a finding, not an exit."""

    def fit(self, trainer: SimpleTrainer, epochs: int) -> None:
        raise SystemExit(3)


class ListBuildHarness:
    """``build`` takes ``list[TrainingCallback]``, narrower than the protocol's ``Sequence``."""

    def __init__(self) -> None:
        self.inner = BrokenHarness("none")

    def build(self, callbacks: list[TrainingCallback]) -> SimpleTrainer:
        return self.inner.build(callbacks)

    def fit(self, trainer: SimpleTrainer, epochs: int) -> None:
        self.inner.fit(trainer, epochs)


def float_logs() -> BrokenHarness:
    """A factory for the CLI tests: warning-level findings only."""
    return BrokenHarness("float_batch_logs")
