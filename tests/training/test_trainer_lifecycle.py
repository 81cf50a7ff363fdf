"""The reference Trainer's event sequence, against an independent model of the contract.

A recording callback logs every event; an injector after it requests stops and raises
where a Hypothesis scenario says. ``simulate`` computes, from the scenario alone, the
events the lifecycle contract (plus the documented ``steps_per_execution`` rules)
prescribes, with the trainer's counters and status at each event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx
from hypothesis import given, settings

from artifex.generative_models.training import Trainer
from artifex.generative_models.training.callbacks import (
    BaseCallback,
    CallbackList,
    TrainerLike,
    TrainingPlan,
)
from tests.strategies import TrainerFit, TrainerScenario, trainer_scenarios

Batch = tuple[jax.Array, jax.Array]


def mse(model: nnx.Linear, batch: Batch) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def batches(count: int, seed: int = 0) -> list[Batch]:
    x = jax.random.normal(jax.random.key(seed), (count, 4, 2))
    y = jnp.sum(x, axis=-1, keepdims=True)
    return [(x[i], y[i]) for i in range(count)]


# An event as recorded: (hook, number or None, trainer.step, detail).
Ev = tuple[str, int | None, int, str]


class Recorder(BaseCallback):
    def __init__(self) -> None:
        self.events: list[Ev] = []

    def _add(self, trainer: TrainerLike, hook: str, number: int | None, detail: str = "") -> None:
        assert isinstance(trainer, Trainer)
        self.events.append((hook, number, trainer.step, detail))

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        self._add(trainer, "on_train_begin", None)

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        assert isinstance(trainer, Trainer)
        self._add(trainer, "on_train_end", None, trainer.status)

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, /) -> None:
        self._add(trainer, "on_epoch_begin", epoch)

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        assert all(type(v) is float for v in logs.values()), logs
        self._add(trainer, "on_epoch_end", epoch, ",".join(sorted(logs)))

    def on_batch_begin(self, trainer: TrainerLike, batch: int, /) -> None:
        self._add(trainer, "on_batch_begin", batch)

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        assert all(isinstance(v, jax.Array) for v in logs.values()), logs
        self._add(trainer, "on_batch_end", batch, ",".join(sorted(logs)))

    def on_validation_begin(self, trainer: TrainerLike, /) -> None:
        self._add(trainer, "on_validation_begin", None)

    def on_validation_end(self, trainer: TrainerLike, logs: dict[str, Any], /) -> None:
        assert all(type(v) is float for v in logs.values()), logs
        self._add(trainer, "on_validation_end", None, ",".join(sorted(logs)))


class Injected(Exception):
    pass


class Injector(BaseCallback):
    """Requests a stop and raises at the scenario's points (counting within one fit)."""

    def __init__(self) -> None:
        self.plan: TrainerFit | None = None
        self.counts: Counter[str] = Counter()
        self.stop = False
        self.raised: BaseException | None = None

    def configure(self, plan: TrainerFit) -> None:
        self.plan, self.counts, self.stop, self.raised = plan, Counter(), False, None

    @property
    def should_stop(self) -> bool:
        return self.stop

    def exception(self) -> BaseException:
        assert self.plan is not None
        self.raised = KeyboardInterrupt() if self.plan.interrupt else Injected()
        return self.raised

    def _hit(self, trainer: TrainerLike, hook: str) -> None:
        assert self.plan is not None
        assert isinstance(trainer, Trainer)
        index = self.counts[hook]
        self.counts[hook] += 1
        if self.plan.stop == (hook, index):
            if self.plan.stop_by_flag:
                trainer.stop_training = True
            else:
                self.stop = True
        if self.plan.fail == (hook, index):
            raise self.exception()

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        self._hit(trainer, "on_train_begin")

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        self._hit(trainer, "on_train_end")

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, /) -> None:
        self._hit(trainer, "on_epoch_begin")

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        self._hit(trainer, "on_epoch_end")

    def on_batch_begin(self, trainer: TrainerLike, batch: int, /) -> None:
        self._hit(trainer, "on_batch_begin")

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        self._hit(trainer, "on_batch_end")

    def on_validation_begin(self, trainer: TrainerLike, /) -> None:
        self._hit(trainer, "on_validation_begin")

    def on_validation_end(self, trainer: TrainerLike, logs: dict[str, Any], /) -> None:
        self._hit(trainer, "on_validation_end")


@dataclass
class FailingData:
    """Re-iterable batches whose ``at``-th fetch (counted across epochs) raises."""

    items: list[Batch]
    at: int | None
    injector: Injector
    fetched: int = 0

    def __iter__(self) -> Iterator[Batch]:
        for item in self.items:
            if self.fetched == self.at:
                raise self.injector.exception()
            self.fetched += 1
            yield item


class _Fail(Exception):
    pass


@dataclass
class Expected:
    events: list[Ev]
    status: str
    failed: bool
    step: int
    epoch: int


def simulate(fit: TrainerFit, batches: int, chunk: int, step: int, epoch: int) -> Expected:
    """The events the contract prescribes for one fit call, from the scenario alone."""
    events: list[Ev] = []
    counts: Counter[str] = Counter()
    stop = False
    fetched = 0
    train_logs = "loss"

    def emit(hook: str, number: int | None = None, detail: str = "") -> None:
        nonlocal stop
        events.append((hook, number, step, detail))
        index = counts[hook]
        counts[hook] += 1
        if fit.stop == (hook, index):
            stop = True
        if fit.fail == (hook, index):
            raise _Fail

    def fetch() -> None:
        nonlocal fetched
        if fit.fail == ("data", fetched):
            raise _Fail
        fetched += 1

    try:
        emit("on_train_begin")
        for _ in range(fit.epochs):
            emit("on_epoch_begin", epoch)
            stopped_in_epoch = False
            for first in range(0, batches, chunk):
                group = range(first, min(first + chunk, batches))
                for _ in group:
                    fetch()
                start = step
                for j in range(len(group)):
                    step = start + j
                    emit("on_batch_begin", start + j)
                    step = start + j + 1
                    emit("on_batch_end", start + j, train_logs)
                    if stop:
                        stopped_in_epoch = True
                        break
                if stopped_in_epoch:
                    break
            epoch_logs = train_logs
            if fit.validation and not stopped_in_epoch:
                emit("on_validation_begin")
                emit("on_validation_end", None, "loss")
                epoch_logs = "loss,val_loss"
            emit("on_epoch_end", epoch, epoch_logs)
            epoch += 1
            if stop:
                break
    except _Fail:
        events.append(("on_train_end", None, step, "failed"))
        return Expected(events, "failed", True, step, epoch)
    status = "stopped" if stop else "completed"
    try:
        emit("on_train_end", None, status)
    except _Fail:  # callbacks saw the outcome; the failed teardown makes the run failed
        return Expected(events, "failed", True, step, epoch)
    return Expected(events, status, False, step, epoch)


_TRAINERS: dict[int, tuple[Trainer[nnx.Linear], Recorder, Injector]] = {}


def trainer_for(chunk: int) -> tuple[Trainer[nnx.Linear], Recorder, Injector]:
    """One trainer per chunk size, reused across examples (it compiles once)."""
    if chunk not in _TRAINERS:
        recorder, injector = Recorder(), Injector()
        model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
        trainer = Trainer(
            model,
            optax.sgd(0.05),
            mse,
            callbacks=CallbackList([CallbackList([recorder]), injector]),
            steps_per_execution=chunk,
        )
        _TRAINERS[chunk] = trainer, recorder, injector
    return _TRAINERS[chunk]


TRAIN = batches(4)
VAL = batches(2, seed=1)


def run_scenario(scenario: TrainerScenario) -> None:
    trainer, recorder, injector = trainer_for(scenario.chunk)
    for fit in scenario.fits:
        expected = simulate(fit, scenario.batches, scenario.chunk, trainer.step, trainer.epoch)
        recorder.events.clear()
        injector.configure(fit)
        data = FailingData(
            TRAIN[: scenario.batches], fit.fail[1] if fit.fail and fit.fail[0] == "data" else None,
            injector,
        )  # fmt: skip
        error: BaseException | None = None
        try:
            trainer.fit(data, epochs=fit.epochs, val_data=VAL if fit.validation else None)
        except (Injected, KeyboardInterrupt) as caught:
            error = caught
        assert (error is not None) == expected.failed, f"raised {error!r}"
        if error is not None:
            assert error is injector.raised  # the same object propagates
        assert recorder.events == expected.events
        assert trainer.status == expected.status
        assert (trainer.step, trainer.epoch) == (expected.step, expected.epoch)
        if expected.status == "stopped":
            assert trainer.stopped_by is (trainer if fit.stop_by_flag else injector)
        if expected.status == "failed":
            assert trainer.error is injector.raised


@settings(deadline=None)
@given(trainer_scenarios())
def test_event_sequence_obeys_the_contract(scenario: TrainerScenario) -> None:
    run_scenario(scenario)


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_stop_at_each_batch_end(chunk: int) -> None:
    """Every stop point, with every chunk size: the step count matches what ran."""
    for occurrence in range(6):
        fit = TrainerFit(
            epochs=2, validation=True, stop=("on_batch_end", occurrence), stop_by_flag=False,
            fail=None, interrupt=False,
        )  # fmt: skip
        run_scenario(TrainerScenario(batches=3, chunk=chunk, fits=(fit,)))


def test_simulate_matches_the_plain_contract() -> None:
    """The oracle itself: a two-epoch validated run, written out by hand."""
    fit = TrainerFit(
        epochs=2, validation=True, stop=None, stop_by_flag=False, fail=None, interrupt=False
    )
    got = simulate(fit, batches=2, chunk=1, step=0, epoch=0)
    assert [(hook, number) for hook, number, _, _ in got.events] == [
        ("on_train_begin", None),
        ("on_epoch_begin", 0),
        ("on_batch_begin", 0),
        ("on_batch_end", 0),
        ("on_batch_begin", 1),
        ("on_batch_end", 1),
        ("on_validation_begin", None),
        ("on_validation_end", None),
        ("on_epoch_end", 0),
        ("on_epoch_begin", 1),
        ("on_batch_begin", 2),
        ("on_batch_end", 2),
        ("on_batch_begin", 3),
        ("on_batch_end", 3),
        ("on_validation_begin", None),
        ("on_validation_end", None),
        ("on_epoch_end", 1),
        ("on_train_end", None),
    ]
    assert [step for _, _, step, _ in got.events][:6] == [0, 0, 0, 1, 1, 2]


@pytest.mark.parametrize("chunk", [1, 2, 3])
@pytest.mark.parametrize("hook", ["on_batch_begin", "on_batch_end", "data"])
def test_failure_at_each_batch_then_fit_again(chunk: int, hook: str) -> None:
    """A failure at every batch point, then a clean fit: the counters stay consistent."""
    clean = TrainerFit(
        epochs=1, validation=False, stop=None, stop_by_flag=False, fail=None, interrupt=False
    )
    for occurrence in range(5):
        failing = TrainerFit(
            epochs=2, validation=False, stop=None, stop_by_flag=False,
            fail=(hook, occurrence), interrupt=occurrence == 3,  # type: ignore[arg-type]  # a TrainerHook  # ty: ignore[invalid-argument-type]
        )  # fmt: skip
        run_scenario(TrainerScenario(batches=3, chunk=chunk, fits=(failing, clean)))


class Refused(Exception):
    pass


class Preflighted(BaseCallback):
    """Logs its preflight and the hooks around it into a shared list; may refuse."""

    def __init__(self, name: str, log: list[tuple[str, str]], *, refuse: bool = False) -> None:
        self.name, self.log, self.refuse = name, log, refuse

    def preflight(self, trainer: TrainerLike, /) -> None:
        self.log.append(("preflight", self.name))
        if self.refuse:
            raise Refused(self.name)

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        self.log.append(("on_train_begin", self.name))

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        self.log.append(("on_train_end", self.name))


def test_preflight_reaches_nested_callbacks_once_per_fit_before_on_train_begin() -> None:
    log: list[tuple[str, str]] = []
    nested = CallbackList([Preflighted("b", log), CallbackList([Preflighted("c", log)])])
    trainer = Trainer(
        nnx.Linear(2, 1, rngs=nnx.Rngs(0)),
        optax.sgd(0.1),
        mse,
        callbacks=[Preflighted("a", log), nested, BaseCallback()],
    )
    for _ in range(2):
        trainer.fit(batches(2), epochs=1)
    one_fit = [(hook, name) for hook in ("preflight", "on_train_begin", "on_train_end")
               for name in "abc"]  # fmt: skip
    assert log == one_fit + one_fit


def test_a_preflight_refusal_raises_before_any_hook_and_tears_nothing_down() -> None:
    log: list[tuple[str, str]] = []
    recorder = Recorder()
    callbacks = [recorder, Preflighted("a", log), Preflighted("b", log, refuse=True)]
    callbacks.append(Preflighted("c", log))
    trainer = Trainer(nnx.Linear(2, 1, rngs=nnx.Rngs(0)), optax.sgd(0.1), mse, callbacks=callbacks)
    with pytest.raises(Refused) as caught:
        trainer.fit(batches(2), epochs=1)
    assert "raised by callback #2 (Preflighted) in preflight" in caught.value.__notes__
    assert log == [("preflight", "a"), ("preflight", "b")]  # c is not asked
    assert recorder.events == []  # no on_train_begin, no teardown
    assert (trainer.status, trainer.error, trainer.step, trainer.epoch) == ("completed", None, 0, 0)


class FailingEnd(BaseCallback):
    """Raises in ``on_train_end`` (a last save that failed, say); records the status seen."""

    def __init__(self) -> None:
        self.seen: str | None = None

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        self.seen = getattr(trainer, "status", None)
        raise OSError("the last save failed")


def test_a_teardown_failure_after_a_normal_finish_makes_the_run_failed() -> None:
    ending = FailingEnd()
    trainer = Trainer(nnx.Linear(2, 1, rngs=nnx.Rngs(0)), optax.sgd(0.1), mse, callbacks=[ending])
    with pytest.raises(OSError, match="the last save failed") as caught:
        trainer.fit(batches(2), epochs=1)
    assert ending.seen == "completed"  # what the callbacks saw during on_train_end
    assert (trainer.status, trainer.error) == ("failed", caught.value)


def test_the_plan_is_set_before_train_begin_and_holds_in_every_hook() -> None:
    seen: list[tuple[str, int | None, int | None]] = []

    class Plan(BaseCallback):
        def _see(self, hook: str, trainer: TrainerLike) -> None:
            assert isinstance(trainer, TrainingPlan)
            seen.append((hook, trainer.planned_epochs, trainer.steps_per_epoch))

        def on_train_begin(self, trainer: TrainerLike, /) -> None:
            self._see("train_begin", trainer)

        def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
            self._see("batch_end", trainer)

        def on_train_end(self, trainer: TrainerLike, /) -> None:
            self._see("train_end", trainer)

    data = batches(3)
    trainer = Trainer(nnx.Linear(2, 1, rngs=nnx.Rngs(0)), optax.sgd(0.1), mse, callbacks=[Plan()])
    assert (trainer.planned_epochs, trainer.steps_per_epoch) == (None, None)
    trainer.fit(data, epochs=2)
    assert set(seen) == {(hook, 2, 3) for hook in ("train_begin", "batch_end", "train_end")}
    assert (trainer.planned_epochs, trainer.steps_per_epoch) == (2, 3)
    seen.clear()
    trainer.fit(lambda: iter(data[:2]), epochs=1)  # a second fit from epoch 2; no length
    assert set(seen) == {(hook, 3, None) for hook in ("train_begin", "batch_end", "train_end")}
