from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from artifex.generative_models.training.callbacks import (
    BaseCallback,
    CSVLogger,
    CSVLoggerConfig,
    History,
    HyperparameterTrainer,
    LearningRateMonitor,
    LearningRateMonitorConfig,
    LogOrderWarning,
    TrainerLike,
    TrainingCallback,
)
from artifex.generative_models.training.trainer import Trainer
from tests.training.callbacks._stubs import ModelOnlyTrainer, TunableTrainer, drive

Batch = tuple[jax.Array, jax.Array]


def _loss(model: nnx.Linear, batch: Batch) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def _batches() -> list[Batch]:
    x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 2)), jnp.float32)
    return [(x[:4], x[:4, :1]), (x[4:], x[4:, :1])]


def _trainer(
    optimizer: optax.GradientTransformation, callbacks: list[TrainingCallback]
) -> Trainer[nnx.Linear]:
    return Trainer(nnx.Linear(2, 1, rngs=nnx.Rngs(0)), optimizer, _loss, callbacks=callbacks)


def test_alone_it_logs_the_learning_rate_once_per_epoch() -> None:
    monitor, history = LearningRateMonitor(), History()
    trainer = TunableTrainer({"learning_rate": 0.5, "b1": 0.9}, callbacks=[monitor, history])
    drive(trainer, [monitor, history], [[1.0, 2.0], [3.0]])
    assert history.history["lr"] == [0.5, 0.5]
    assert "hp_b1" not in history.history
    assert trainer.reads == 3  # one check at train begin, one read per epoch, none per batch
    assert repr(monitor) == f"LearningRateMonitor({LearningRateMonitorConfig()!r})"


def test_other_hyperparameters_and_another_key() -> None:
    monitor = LearningRateMonitor(LearningRateMonitorConfig(key="rate", log_others=True))
    history = History()
    trainer = TunableTrainer({"learning_rate": 0.5, "b1": 0.9}, callbacks=[monitor, history])
    drive(trainer, [monitor, history], [[1.0]])
    assert history.history["rate"] == [0.5]
    assert history.history["hp_b1"] == [0.9]


def test_a_trainer_without_the_protocol_is_refused() -> None:
    with pytest.raises(TypeError, match="HyperparameterTrainer protocol"):
        drive(ModelOnlyTrainer(), [LearningRateMonitor()], [[1.0]])
    trainer = TunableTrainer({"momentum": 0.9})
    with pytest.raises(ValueError, match=r"'learning_rate', which is not among .*'momentum'"):
        drive(trainer, [LearningRateMonitor()], [[1.0]])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"key": ""}, ValueError),
        ({"hyperparameter": 3}, ValueError),
        ({"log_others": 1}, TypeError),
    ],
)
def test_config_validation(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        LearningRateMonitorConfig(**kwargs)  # type: ignore[arg-type]  # bad values on purpose  # ty: ignore[invalid-argument-type]


def test_a_log_reader_registered_first_warns() -> None:
    monitor, history = LearningRateMonitor(), History()
    trainer = TunableTrainer(callbacks=[history, monitor])
    with pytest.warns(LogOrderWarning, match=r"\['History'\] run before LearningRateMonitor"):
        drive(trainer, [history, monitor], [[1.0]])
    assert history.history == {"loss": [1.0]}  # it never saw lr


@pytest.mark.parametrize(
    "optimizer",
    [
        optax.inject_hyperparams(optax.adam)(learning_rate=0.02),
        optax.chain(optax.clip(1.0), optax.inject_hyperparams(optax.sgd)(learning_rate=0.02)),
        optax.MultiSteps(
            optax.inject_hyperparams(optax.sgd)(learning_rate=0.02), every_k_schedule=2
        ).gradient_transformation(),
    ],
    ids=["top", "chain", "multisteps"],
)
def test_end_to_end_with_the_trainer(optimizer: optax.GradientTransformation) -> None:
    monitor, history = LearningRateMonitor(), History()
    trainer = _trainer(optimizer, [monitor, history])
    assert isinstance(trainer, HyperparameterTrainer)
    logs = trainer.fit(_batches(), epochs=2)
    assert [epoch["lr"] for epoch in logs] == [pytest.approx(0.02)] * 2
    assert history.history["lr"] == [epoch["lr"] for epoch in logs]


def test_the_trainer_names_the_fix_without_inject_hyperparams() -> None:
    trainer = _trainer(optax.adam(0.02), [LearningRateMonitor()])
    with pytest.raises(ValueError, match=r"LearningRateMonitor: .*optax\.inject_hyperparams\("):
        trainer.fit(_batches(), epochs=1)
    two = optax.chain(
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.2),
    )
    with pytest.raises(ValueError, match=r"several .* at opt_state\[0\], opt_state\[1\]"):
        _trainer(two, [LearningRateMonitor()]).fit(_batches(), epochs=1)


def test_it_feeds_the_csv_logger_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    trainer = _trainer(
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.25),
        [LearningRateMonitor(), CSVLogger(CSVLoggerConfig(filename=path))],
    )
    trainer.fit(_batches(), epochs=1)
    header, row = path.read_text().splitlines()
    assert "lr" in header.split(",")
    assert float(row.split(",")[header.split(",").index("lr")]) == 0.25


class AddsValAcc(BaseCallback):
    """A callback that only adds a key (and declares it): it never reads 'lr'."""

    adds_epoch_logs = ("val_acc",)

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        logs["val_acc"] = 0.5


class ReadsValLoss(BaseCallback):
    """A reader that declares the keys it reads."""

    reads_epoch_logs = ("val_loss",)

    def __init__(self) -> None:
        self.seen: list[float] = []

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        self.seen.append(logs.get("val_loss", float("nan")))


def test_a_key_adding_callback_before_the_monitor_is_not_warned() -> None:
    adder, reader, monitor = AddsValAcc(), ReadsValLoss(), LearningRateMonitor()
    trainer = TunableTrainer(callbacks=[adder, reader, monitor])
    drive(trainer, [adder, reader, monitor], [[1.0]], val_losses=[0.25])  # warnings are errors
    assert reader.seen == [0.25]


class ReadsLr(ReadsValLoss):
    reads_epoch_logs = ("lr",)


def test_a_reader_of_the_added_key_is_warned_and_told_how_to_declare() -> None:
    reader, monitor = ReadsLr(), LearningRateMonitor()
    trainer = TunableTrainer(callbacks=[reader, monitor])
    with pytest.warns(LogOrderWarning, match=r"\['ReadsLr'\] run before .*'lr'.*reads_epoch_logs"):
        drive(trainer, [reader, monitor], [[1.0]])


def test_the_warning_points_at_the_users_fit_call() -> None:
    optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    trainer = _trainer(optimizer, [History(), LearningRateMonitor()])
    line = inspect.currentframe().f_lineno + 2  # type: ignore[union-attr]  # CPython has frames  # ty: ignore[missing-union-attribute]
    with pytest.warns(LogOrderWarning) as caught:
        trainer.fit(_batches(), epochs=1)
    assert (caught[0].filename, caught[0].lineno) == (__file__, line)
