"""Fits of the reference ``Trainer`` with an experiment tracker, for the tracker tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    LambdaCallback,
    ModelCheckpoint,
    TrainingCallback,
)
from artifex.generative_models.training.data import ArrayBatcher
from artifex.generative_models.training.trainer import Trainer
from tests.training.callbacks._stubs import TinyModel

STEPS_PER_EPOCH = 3


def _loss(model: TinyModel, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def _fail_at(step: int) -> LambdaCallback:
    def fail(trainer: Any, batch: int, logs: dict[str, Any]) -> None:
        if batch == step:
            raise RuntimeError(f"failure at step {step}")

    return LambdaCallback(on_batch_end=fail)


def tracker_fit(
    tmp_path: Path,
    tracker: TrainingCallback,
    *,
    epochs: int,
    resume: bool = False,
    fail_at_step: int | None = None,
) -> tuple[Trainer[TinyModel], list[dict[str, Any]]]:
    """Fit 3 steps an epoch with ``tracker`` and a ``ModelCheckpoint`` in ``tmp_path/ck``.

    With ``resume``, the fit resumes from that directory's latest checkpoint; with
    ``fail_at_step``, a callback raises at that step's ``on_batch_end`` (the fit's
    ``RuntimeError`` propagates).
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8 * STEPS_PER_EPOCH, 2)).astype(np.float32)
    y = x @ np.array([[1.5], [-0.5]], np.float32)
    callbacks: list[TrainingCallback] = [tracker]
    if fail_at_step is not None:
        callbacks.append(_fail_at(fail_at_step))
    ck = tmp_path / "ck"
    callbacks.append(ModelCheckpoint(CheckpointConfig(dirpath=ck, async_save=False)))
    trainer = Trainer(TinyModel(nnx.Rngs(0)), optax.sgd(0.05), _loss, callbacks=callbacks)
    train = ArrayBatcher((x, y), batch_size=8, seed=1)
    logs = trainer.fit(train, epochs=epochs, resume_from=ck if resume else None)
    return trainer, logs
