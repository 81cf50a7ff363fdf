from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from artifex.generative_models.training.callbacks import TensorBoardConfig, TensorBoardLogger
from tests.training.callbacks._stubs import ModelOnlyTrainer, drive
from tests.training.callbacks._tracker_fit import STEPS_PER_EPOCH, tracker_fit


class _Unreadable:
    def __float__(self) -> float:
        raise AssertionError("the logger read a batch metric")


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(log_dir)).Reload()
    return {
        tag: [(event.step, event.value) for event in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
    }


def test_epoch_metrics_are_read_back_by_tensorboard(tmp_path: Path) -> None:
    log_dir = tmp_path / "tb"
    cb = TensorBoardLogger(TensorBoardConfig(log_dir=log_dir))
    trainer = ModelOnlyTrainer()
    cb.on_train_begin(trainer)
    for epoch, (loss, val) in enumerate([(1.0, 2.0), (0.5, 1.5)]):
        cb.on_batch_end(trainer, epoch, {"loss": _Unreadable()})  # per-batch logging is off
        cb.on_epoch_end(trainer, epoch, {"loss": loss, "val_loss": val, "name": "x"})
    cb.on_train_end(trainer)
    assert _scalars(log_dir) == {  # at the global step: one batch an epoch here
        "epoch/loss": [(1, 1.0), (2, 0.5)],
        "epoch/val_loss": [(1, 2.0), (2, 1.5)],
        "epoch/epoch": [(1, 0.0), (2, 1.0)],
    }


def test_batch_logging_every_n_steps(tmp_path: Path) -> None:
    log_dir = tmp_path / "tb"
    cb = TensorBoardLogger(TensorBoardConfig(log_dir=log_dir, log_every_n_steps=2))
    drive(ModelOnlyTrainer(), [cb], [[1.0, 2.0, 3.0, 4.0, 5.0]])
    scalars = _scalars(log_dir)
    assert scalars["batch/loss"] == [(2, 2.0), (4, 4.0)]  # batch s at s + 1
    assert scalars["epoch/loss"] == [(5, 3.0)]  # with its last batch
    assert float(jnp.asarray(scalars["batch/loss"][0][1])) == 2.0


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="log_every_n_steps"):
        TensorBoardConfig(log_every_n_steps=-1)
    with pytest.raises(ValueError, match="log_dir"):
        TensorBoardConfig(log_dir="")


def test_the_axis_is_the_global_step_as_for_the_trackers(tmp_path: Path) -> None:
    log_dir = tmp_path / "tb"
    trainer, logs = tracker_fit(tmp_path, TensorBoardLogger(log_dir=log_dir), epochs=2)
    scalars = _scalars(log_dir)
    assert trainer.step == 2 * STEPS_PER_EPOCH
    assert scalars["epoch/epoch"] == [(STEPS_PER_EPOCH, 0.0), (2 * STEPS_PER_EPOCH, 1.0)]
    assert [step for step, _ in scalars["epoch/loss"]] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert [value for _, value in scalars["epoch/loss"]] == pytest.approx(
        [entry["loss"] for entry in logs]
    )
