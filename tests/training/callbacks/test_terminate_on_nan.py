from __future__ import annotations

import math

import jax.numpy as jnp
import pytest

from artifex.generative_models.training.callbacks import (
    MissingMetricWarning,
    StopRequester,
    TerminateOnNaN,
)
from tests.training.callbacks._stubs import ModelOnlyTrainer, drive


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
