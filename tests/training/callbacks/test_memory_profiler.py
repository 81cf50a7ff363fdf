from __future__ import annotations

import logging
from typing import Any

import jax
import pytest

from artifex.generative_models.training.callbacks import (
    MemoryProfiler,
    MemoryProfilerConfig,
    MemoryRecord,
)
from tests.training.callbacks._stubs import ModelOnlyTrainer, drive


class FakeGPU:
    """A device whose allocator reports statistics, as GPU and TPU devices do."""

    def __init__(self) -> None:
        self.in_use = 0

    def memory_stats(self) -> dict[str, Any] | None:
        self.in_use += 2**20
        return {"bytes_in_use": self.in_use, "peak_bytes_in_use": 3 * 2**20}

    def __str__(self) -> str:
        return "gpu:0"


def test_cpu_reports_none_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    assert jax.devices()[0].platform == "cpu"
    profiler = MemoryProfiler()
    with caplog.at_level(logging.INFO):
        drive(ModelOnlyTrainer(), [profiler], [[1.0], [1.0]])
    assert profiler.records == []
    assert profiler.unavailable == tuple(str(d) for d in jax.local_devices())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no memory statistics" in warnings[0].getMessage()


def test_records_devices_that_report(caplog: pytest.LogCaptureFixture) -> None:
    gpu = FakeGPU()
    profiler = MemoryProfiler(MemoryProfilerConfig(devices=[gpu], every_n_epochs=2))
    with caplog.at_level(logging.INFO):
        drive(ModelOnlyTrainer(), [profiler], [[1.0]] * 4)
    assert profiler.unavailable == ()
    assert [r.epoch for r in profiler.records] == [1, 3]
    assert profiler.records[0] == MemoryRecord(
        epoch=1, device="gpu:0", stats={"bytes_in_use": 2 * 2**20, "peak_bytes_in_use": 3 * 2**20}
    )
    # one query at train begin (availability), then one per recorded epoch
    messages = [r.getMessage() for r in caplog.records]
    assert "epoch 1 gpu:0: 2.0 MiB in use, peak 3.0 MiB" in messages
    assert "epoch 3 gpu:0: 3.0 MiB in use, peak 3.0 MiB" in messages


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="every_n_epochs"):
        MemoryProfilerConfig(every_n_epochs=0)
    with pytest.raises(TypeError, match="memory_stats"):
        MemoryProfilerConfig(devices=[object()])  # type: ignore[list-item]  # the point of the test  # ty: ignore[invalid-argument-type]
