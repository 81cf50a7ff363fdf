"""One small test trainer, and the faults that break it: each a one-line deviation."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
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
]


def _loss(model: nnx.Linear, batch: Batch) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


class SimpleTrainer:
    """Evaluates the loss (no update: it only needs to dispatch correctly), with ``fault``."""

    def __init__(self, callbacks: Sequence[TrainingCallback], fault: Fault) -> None:
        self._model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
        order = list(reversed(callbacks)) if fault == "reverses_callbacks" else list(callbacks)
        self._raw = order
        self.callbacks = CallbackList(order)
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

    # ExampleCounter and StepCheckpointableTrainer: what the suite reads at every hook.
    @property
    def examples_seen(self) -> int:
        return self._examples

    @property
    def last_batch_of_epoch(self) -> bool:
        return self.fault == "last_batch_always" or self._last_batch

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
        if self.fault == "model_not_module":
            return cast("nnx.Module", {"kernel": self._model.kernel[...]})
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
            yield batch

    def _teardown(self) -> None:
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
            cbs.on_validation_begin(self)
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
        if fault == "int_batch_counter":
            logs["batches"] = index + 1
        if fault == "mapping_logs":
            return cast("Logs", MappingProxyType(logs))
        return logs

    def _epoch_logs(self, losses: list[jax.Array]) -> Logs:
        logs: Logs = self._carry if self.fault == "stale_val_keys" else {}
        logs["loss"] = float(jnp.mean(jnp.stack(losses)))
        if self.fault == "cumulative_epoch_loss":
            self._total += float(jnp.sum(jnp.stack(losses)))
            logs["loss"] = self._total
        if self.fault == "int_epoch_logs":
            logs["batches"] = len(losses)
        return logs

    def fit(
        self, data: Iterable[Batch], *, epochs: int, val_data: Iterable[Batch] | None = None
    ) -> None:
        cbs, fault = self.callbacks, self.fault
        if fault != "keeps_stop_flag":
            self.stop_training = False
        self._begin_run()
        try:
            cbs.on_train_begin(self)
            for _ in range(epochs):
                epoch = self.epoch
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
                    cbs.on_batch_begin(self, step)
                    loss = _loss(self._model, batch)
                    self.step += fault != "step_lags_in_batch_end"
                    if fault != "examples_counted_at_begin":
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
                    if fault != "checks_stop_before_batch" and self._should_stop():
                        stopped = True
                        break
                epoch_logs = self._epoch_logs(losses)
                if val_data is not None and not stopped:
                    self._validate(val_data, epoch_logs)
                self.epoch += fault == "epoch_advanced_in_epoch_end"
                cbs.on_epoch_end(self, epoch + (fault == "epochs_from_1"), epoch_logs)
                if deferred is not None:
                    cbs.on_batch_end(self, *deferred)
                self.epoch += fault != "epoch_advanced_in_epoch_end"
                if self._should_stop():
                    break
        except BaseException as error:
            self._status, self._error = "failed", error
            if fault == "skips_train_end_on_error":
                raise
            try:
                self._teardown()
            except Exception as teardown_error:
                error.add_note(f"on_train_end also raised {teardown_error!r}")
            if fault == "swallows_exception":
                return
            if fault == "wraps_exception":
                raise RuntimeError("training failed") from error
            if fault == "exits_on_error":
                raise SystemExit(1) from error
            if fault == "reraises_copy":
                raise type(error)(*error.args) from None
            raise
        self._status = "stopped" if self._stopped_by is not None else "completed"
        try:
            self._teardown()
        except BaseException as error:  # the run did not complete after all
            if fault != "status_kept_after_teardown_failure":
                self._status, self._error = "failed", error
            raise


def _batches(count: int, seed: int) -> list[Batch]:
    x = jax.random.normal(jax.random.key(seed), (count, 4, 2))
    return [(x[i], jnp.sum(x[i], axis=-1, keepdims=True)) for i in range(count)]


class BrokenHarness:
    """A harness (validating and failing) for :class:`SimpleTrainer` with one fault."""

    def __init__(self, fault: Fault) -> None:
        self.fault: Fault = fault
        self.train = _batches(3, 0)
        self.val = _batches(2, 1)

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

    def build(self, callbacks: Sequence[TrainingCallback]) -> object:  # type: ignore[override]  # the point
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
