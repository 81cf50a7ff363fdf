from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from artifex.generative_models.training.callbacks import (
    ExampleCounter,
    History,
    LambdaCallback,
    LogOrderWarning,
    ThroughputMonitor,
    ThroughputMonitorConfig,
    TrainerLike,
)
from artifex.generative_models.training.trainer import Trainer
from tests.training.callbacks._stubs import ModelOnlyTrainer, TunableTrainer, drive


class Clock:
    """A fake ``time.perf_counter``: time passes only when a test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def pass_time(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "perf_counter", fake)
    return fake


def _steps(clock: Clock, examples: int = 0, seconds: float = 0.5) -> LambdaCallback:
    """Each batch takes ``seconds`` and, on a counting trainer, ``examples`` examples."""

    def batch_end(trainer: TrainerLike, step: int, logs: dict[str, Any]) -> None:
        clock.pass_time(seconds)
        if isinstance(trainer, TunableTrainer):
            trainer.examples_seen += examples

    return LambdaCallback(on_batch_end=batch_end)


def test_alone_it_reports_steps_and_counted_examples_per_second(clock: Clock) -> None:
    monitor, history = ThroughputMonitor(), History()
    callbacks = [_steps(clock, examples=8), monitor, history]
    trainer = TunableTrainer(callbacks=callbacks)
    assert isinstance(trainer, ExampleCounter)
    drive(trainer, callbacks, [[1.0] * 4, [1.0] * 2])
    assert history.history["steps_per_second"] == [2.0, 2.0]
    assert history.history["examples_per_second"] == [16.0, 16.0]


def test_a_given_batch_size_wins_and_without_any_only_steps(clock: Clock) -> None:
    given, history = ThroughputMonitor(ThroughputMonitorConfig(examples_per_step=3)), History()
    callbacks = [_steps(clock, examples=8), given, history]
    drive(TunableTrainer(callbacks=callbacks), callbacks, [[1.0] * 4])
    assert history.history["examples_per_second"] == [6.0]
    plain, history = ThroughputMonitor(), History()
    drive(ModelOnlyTrainer(), [_steps(clock), plain, history], [[1.0] * 4])
    assert sorted(history.history) == ["loss", "steps_per_second"]


def test_validation_is_not_timed(clock: Clock) -> None:
    monitor, history = ThroughputMonitor(), History()
    slow_validation = LambdaCallback(on_validation_end=lambda t, logs: clock.pass_time(100.0))
    callbacks = [_steps(clock), slow_validation, monitor, history]
    drive(ModelOnlyTrainer(), callbacks, [[1.0] * 2], val_losses=[0.5])
    assert history.history["steps_per_second"] == [2.0]


class _Unreadable(dict[str, Any]):
    """Batch logs that fail if anything reads them (stands in for a device sync)."""

    def __getitem__(self, key: str) -> Any:
        raise AssertionError("the batch logs were read")

    def values(self) -> Any:
        raise AssertionError("the batch logs were read")


def test_batch_logs_every_n_steps_only(clock: Clock) -> None:
    monitor = ThroughputMonitor()
    trainer = ModelOnlyTrainer()
    monitor.on_epoch_begin(trainer, 0)
    for step in range(3):
        monitor.on_batch_end(trainer, step, _Unreadable(loss=1.0))  # by default: never read
    every = ThroughputMonitor(ThroughputMonitorConfig(every_n_steps=2, examples_per_step=4))
    every.on_epoch_begin(trainer, 0)
    seen = []
    for step in range(5):
        clock.pass_time(0.25)
        logs: dict[str, Any] = {"loss": jnp.float32(step)}
        every.on_batch_end(trainer, step, logs)
        seen.append(sorted(logs))
    assert seen[1] == seen[3] == ["examples_per_second", "loss", "steps_per_second"]
    assert seen[0] == seen[2] == seen[4] == ["loss"]
    assert logs_of(every, trainer, clock) == {"steps_per_second": 4.0, "examples_per_second": 16.0}


def logs_of(monitor: ThroughputMonitor, trainer: TrainerLike, clock: Clock) -> dict[str, Any]:
    logs: dict[str, Any] = {}
    monitor.on_epoch_end(trainer, 0, logs)
    return logs


def test_a_log_reader_registered_first_warns(clock: Clock) -> None:
    monitor, history = ThroughputMonitor(), History()
    trainer = TunableTrainer(callbacks=[history, monitor])
    with pytest.warns(LogOrderWarning, match=r"\['History'\] run before ThroughputMonitor"):
        drive(trainer, [history, monitor], [[1.0]])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"examples_per_step": 0}, ValueError), ({"every_n_steps": 1.5}, TypeError)],
)
def test_config_validation(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        ThroughputMonitorConfig(**kwargs)


def _loss(model: nnx.Linear, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


@pytest.mark.parametrize("chunk", [1, 2])
def test_end_to_end_the_trainer_counts_each_batch(chunk: int) -> None:
    x = jnp.asarray(np.random.default_rng(0).normal(size=(10, 2)), jnp.float32)
    batches = [(x[:4], x[:4, :1]), (x[4:8], x[4:8, :1]), (x[8:], x[8:, :1])]  # 4, 4, 2
    monitor = ThroughputMonitor()
    trainer = Trainer(
        nnx.Linear(2, 1, rngs=nnx.Rngs(0)),
        optax.sgd(0.1),
        _loss,
        callbacks=[monitor],
        steps_per_execution=chunk,
    )
    logs = trainer.fit(batches, epochs=2, val_data=batches[:1])
    assert trainer.examples_seen == 20
    for epoch in logs:
        assert epoch["steps_per_second"] > 0
        ratio = epoch["examples_per_second"] / epoch["steps_per_second"]
        assert ratio == pytest.approx(10 / 3)
