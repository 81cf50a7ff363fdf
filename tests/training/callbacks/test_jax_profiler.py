from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from artifex.generative_models.training.callbacks import (
    CallbackList,
    JAXProfiler,
    JAXProfilerConfig,
)
from tests.training.callbacks._stubs import ModelOnlyTrainer


def test_traces_the_window_into_log_dir(tmp_path: Path) -> None:
    log_dir = tmp_path / "prof"
    profiler = JAXProfiler(JAXProfilerConfig(log_dir=log_dir, start_step=1, stop_step=3))
    cbs = CallbackList([profiler])
    trainer = ModelOnlyTrainer()
    step_fn = jax.jit(lambda x: jnp.sin(x) * 2.0)
    x = jnp.ones((8,), jnp.float32)
    states = []
    cbs.on_train_begin(trainer)
    for step in range(5):
        cbs.on_batch_begin(trainer, step)
        x = step_fn(x)
        cbs.on_batch_end(trainer, step, {"loss": x.sum()})
        states.append(profiler.tracing)
    cbs.on_train_end(trainer)
    assert states == [False, True, False, False, False]
    traces = list(log_dir.glob("plugins/profile/*/*.xplane.pb"))
    assert len(traces) == 1
    assert traces[0].stat().st_size > 0
    assert profiler.trace_dir == log_dir.resolve()


def test_train_end_inside_the_window_stops_the_trace(tmp_path: Path) -> None:
    profiler = JAXProfiler(JAXProfilerConfig(log_dir=tmp_path, start_step=0, stop_step=100))
    trainer = ModelOnlyTrainer()
    profiler.on_batch_begin(trainer, 0)
    tracing_in_window = profiler.tracing
    profiler.on_train_end(trainer)
    assert (tracing_in_window, profiler.tracing) == (True, False)
    assert list(tmp_path.glob("plugins/profile/*/*.xplane.pb"))


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="stop_step"):
        JAXProfilerConfig(start_step=5, stop_step=5)
    with pytest.raises(ValueError, match="start_step"):
        JAXProfilerConfig(start_step=-1)
