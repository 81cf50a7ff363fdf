from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx

from artifex.generative_models.training.callbacks import (
    LambdaCallback,
    MissingMetricWarning,
    StopRequester,
    TerminateOnNaN,
)
from artifex.generative_models.training.trainer import Trainer
from tests.training.callbacks._stubs import FullTrainer, ModelOnlyTrainer, drive


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_stops_within_the_bad_batch(bad: float) -> None:
    cb = TerminateOnNaN()
    assert isinstance(cb, StopRequester)
    events = drive(ModelOnlyTrainer(), [cb], [[1.0, 2.0], [3.0, bad, 4.0, 5.0], [6.0]])
    assert events[-4:] == ["batch:2", "batch:3", "epoch_end:1", "train_end"]
    assert cb.stopped_step == 3
    assert cb.bad_value is not None
    assert not math.isfinite(cb.bad_value)


def test_finite_losses_never_stop_and_reuse_resets() -> None:
    cb = TerminateOnNaN()
    drive(ModelOnlyTrainer(), [cb], [[math.nan]])
    assert cb.should_stop
    events = drive(ModelOnlyTrainer(), [cb], [[1.0, 2.0], [3.0]])
    assert events[-2:] == ["epoch_end:1", "train_end"]
    assert not cb.should_stop


def test_other_key_and_missing_key() -> None:
    cb = TerminateOnNaN(monitor="kl")
    trainer = ModelOnlyTrainer()
    cb.on_train_begin(trainer)
    with pytest.warns(MissingMetricWarning, match="'kl'.*'loss'"):
        cb.on_batch_end(trainer, 0, {"loss": jnp.asarray(math.nan)})
    assert not cb.should_stop
    cb.on_batch_end(trainer, 1, {"kl": jnp.asarray(math.inf)})
    assert cb.stopped_step == 1
    with pytest.raises(ValueError, match="monitor"):
        TerminateOnNaN(monitor="")


def test_sets_the_trainers_stop_flag_too() -> None:
    trainer = FullTrainer()
    cb = TerminateOnNaN()
    drive(trainer, [cb], [[1.0, math.nan, 2.0]])
    assert trainer.stop_training
    assert cb.stopped_step == 1
    drive(ModelOnlyTrainer(), [TerminateOnNaN()], [[math.nan]])  # no flag: nothing to set


def test_end_to_end_the_trainer_sees_the_flag() -> None:
    def loss(model: nnx.Linear, batch: jax.Array) -> jax.Array:
        return jnp.mean(model(batch)) * jnp.where(jnp.all(batch > 1.0), jnp.nan, 1.0)

    seen: list[bool] = []
    polling = LambdaCallback(
        on_batch_end=lambda t, s, logs: seen.append(isinstance(t, Trainer) and t.stop_training)
    )
    trainer = Trainer(
        nnx.Linear(2, 1, rngs=nnx.Rngs(0)),
        optax.sgd(0.1),
        loss,
        callbacks=[TerminateOnNaN(), polling],
    )
    trainer.fit([jnp.ones((2, 2)), jnp.full((2, 2), 2.0), jnp.ones((2, 2))], epochs=1)
    assert seen == [False, True]  # code polling the flag alone sees the stop
    assert (trainer.step, trainer.status) == (2, "stopped")
