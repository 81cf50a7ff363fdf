"""Every built-in callback together, end to end with the reference ``Trainer``."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    CSVLogger,
    EarlyStopping,
    EarlyStoppingConfig,
    History,
    JAXProfiler,
    JAXProfilerConfig,
    LambdaCallback,
    MemoryProfiler,
    ModelCheckpoint,
    ProgressBar,
    ProgressBarConfig,
    TensorBoardConfig,
    TensorBoardLogger,
    TerminateOnNaN,
    restore_checkpoint,
)
from artifex.generative_models.training.data import ArrayBatcher
from artifex.generative_models.training.trainer import Trainer
from tests.training.callbacks._stubs import TinyModel, params

Batch = tuple[jax.Array, jax.Array]


def _loss(model: TinyModel, batch: Batch) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (x @ np.array([[1.5], [-0.5]], np.float32)).astype(np.float32)
    return x, y


def _same(a: nnx.Module, b: nnx.Module) -> bool:
    return all(bool((p == q).all()) for p, q in zip(params(a), params(b), strict=True))


def test_all_callbacks_with_the_reference_trainer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = io.StringIO()
    history = History()
    # mode="max" on a falling val_loss: every epoch after the first is "no improvement",
    # so the stop is deterministic (after epoch patience = 2).
    early = EarlyStopping(EarlyStoppingConfig(monitor="val_loss", mode="max", patience=2))
    ckpt = ModelCheckpoint(
        CheckpointConfig(dirpath=tmp_path / "ck", monitor="val_loss", save_top_k=2)
    )
    batch_ends: list[int] = []
    callbacks = [
        early,
        TerminateOnNaN(),
        history,
        CSVLogger(filename=tmp_path / "log.csv"),
        ProgressBar(ProgressBarConfig(console=Console(file=out, width=100))),
        TensorBoardLogger(TensorBoardConfig(log_dir=tmp_path / "tb")),
        LambdaCallback(on_batch_end=lambda t, s, logs: batch_ends.append(s)),
        MemoryProfiler(),
        JAXProfiler(JAXProfilerConfig(log_dir=tmp_path / "prof", start_step=2, stop_step=4)),
        ckpt,  # last, after the stateful callbacks whose state it saves
    ]
    train = ArrayBatcher(_data(48, 0), batch_size=16, seed=1)
    val = [tuple(jnp.asarray(a) for a in _data(16, 2))]
    trainer = Trainer(TinyModel(nnx.Rngs(0)), optax.sgd(0.05), _loss, callbacks=callbacks)
    logs = trainer.fit(train, epochs=10, val_data=val)

    # EarlyStopping stopped the run at the end of epoch 2
    assert trainer.status == "stopped"
    assert trainer.stopped_by is early
    assert early.stopped_epoch == 2
    assert len(logs) == 3
    assert batch_ends == list(range(9))
    assert trainer.step == 9

    # History, CSV and TensorBoard hold the same epoch metrics as fit returned
    assert history.epochs == [0, 1, 2]
    assert history.history["val_loss"] == [entry["val_loss"] for entry in logs]
    with (tmp_path / "log.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [float(r["val_loss"]) for r in rows] == history.history["val_loss"]
    acc = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert [e.value for e in acc.Scalars("epoch/val_loss")] == pytest.approx(
        history.history["val_loss"]
    )
    # the progress bar was quiet (not a terminal): one line per epoch
    assert [line.split(" steps")[0] for line in out.getvalue().splitlines()] == [
        "Epoch 1/10: 3/3",  # the plan: 10 epochs of len(train) batches
        "Epoch 2/10: 3/3",
        "Epoch 3/10: 3/3",
    ]
    # the profiler traced steps 2..3, MemoryProfiler said CPU has no stats
    assert list((tmp_path / "prof").glob("plugins/profile/*/*.xplane.pb"))
    assert any("no memory statistics" in r.getMessage() for r in caplog.records)

    # ModelCheckpoint: the best two by val_loss (the last two epochs) plus the last
    val_losses = history.history["val_loss"]
    assert val_losses[2] < val_losses[1] < val_losses[0]
    assert ckpt.saved_checkpoint_steps == (6, 9)
    assert ckpt.best_checkpoint_step == 9

    # restore into a fresh trainer: model, optimiser, counters and data position
    fresh = Trainer(TinyModel(nnx.Rngs(7)), optax.sgd(0.05), _loss)
    restored = restore_checkpoint(tmp_path / "ck", target=fresh)
    assert (restored.step, restored.epoch) == (9, 2)
    assert fresh.step == 9
    assert _same(fresh.model, trainer.model)
    assert restored.state["data"] == trainer.state_dict()["data"]
    # and into a bare model
    model = TinyModel(nnx.Rngs(8))
    restore_checkpoint(tmp_path / "ck", step=6, target=model)
    assert not _same(model, trainer.model)


def test_terminate_on_nan_stops_the_trainer_within_the_batch(tmp_path: Path) -> None:
    x, y = _data(40, 3)
    batches: list[Any] = [
        (jnp.asarray(x[i : i + 8]), jnp.asarray(y[i : i + 8])) for i in range(0, 40, 8)
    ]
    batches[2] = (batches[2][0].at[0, 0].set(jnp.nan), batches[2][1])
    nan_guard = TerminateOnNaN()
    history = History()
    trainer = Trainer(
        TinyModel(nnx.Rngs(0)), optax.sgd(0.01), _loss, callbacks=[nan_guard, history]
    )
    trainer.fit(batches, epochs=3)
    assert trainer.status == "stopped"
    assert trainer.stopped_by is nan_guard
    assert nan_guard.stopped_step == 2
    assert trainer.step == 3
    assert history.epochs == [0]
    assert math.isnan(history.history["loss"][0])


def test_restore_best_weights_and_best_checkpoint_agree(tmp_path: Path) -> None:
    snapshots: dict[int, list[jax.Array]] = {}

    def snapshot(t: Any, epoch: int, logs: dict[str, Any]) -> None:
        snapshots[epoch] = [jnp.copy(p) for p in params(t.model)]

    # min mode with a val set whose loss first falls then rises is data-dependent, so
    # force the shape: monitor "val_loss" in max mode; the best is epoch 0.
    early = EarlyStopping(EarlyStoppingConfig(mode="max", patience=1, restore_best_weights=True))
    ckpt = ModelCheckpoint(
        CheckpointConfig(dirpath=tmp_path / "ck", monitor="val_loss", mode="max", save_top_k=1)
    )
    trainer = Trainer(
        TinyModel(nnx.Rngs(0)),
        optax.sgd(0.05),
        _loss,
        callbacks=[LambdaCallback(on_epoch_end=snapshot), early, ckpt],
    )
    data = [tuple(jnp.asarray(a) for a in _data(16, 5))]
    trainer.fit(data, epochs=5, val_data=data)
    assert early.best_epoch == 0
    assert early.stopped_epoch == 1
    # the trainer's model now holds epoch 0's weights, not epoch 1's
    current = params(trainer.model)
    assert all(bool((a == b).all()) for a, b in zip(current, snapshots[0], strict=True))
    assert not all(bool((a == b).all()) for a, b in zip(current, snapshots[1], strict=True))
    # and the best checkpoint holds the same weights
    model = TinyModel(nnx.Rngs(9))
    restored = restore_checkpoint(tmp_path / "ck", step=ckpt.best_checkpoint_step, target=model)
    assert restored.epoch == 0
    assert all(bool((a == b).all()) for a, b in zip(params(model), snapshots[0], strict=True))
