"""The specification's ``CallbackList`` example runs as written with the built-in callbacks."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import jax
import pytest
from flax import nnx

from artifex.generative_models.training.callbacks import (
    CallbackList,
    EarlyStopping,
    MissingMetricWarning,
    ModelCheckpoint,
    restore_checkpoint,
)
from tests.training.callbacks._stubs import TinyModel

MODULE = "tests.spec_examples.example_callback_list"


def test_callback_list_example_runs_and_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sys.modules.pop(MODULE, None)
    # The example monitors the default "val_loss" but passes only "loss": a warning
    # that names both, never a silent no-op.
    with pytest.warns(MissingMetricWarning, match=r"'val_loss'.*available keys: 'loss'"):
        example = importlib.import_module(MODULE)

    callbacks = example.callbacks
    assert isinstance(callbacks, CallbackList)
    early, checkpoint = callbacks.callbacks
    assert isinstance(early, EarlyStopping)
    assert isinstance(checkpoint, ModelCheckpoint)
    assert early.config.patience == 10
    assert not early.should_stop
    assert early.wait_count == 0

    # ModelCheckpoint saved the model at that epoch end, under ./checkpoints
    assert checkpoint.directory == tmp_path / "checkpoints"
    assert checkpoint.saved_checkpoint_steps == (0,)
    assert (tmp_path / "checkpoints" / "0").is_dir()
    fresh = TinyModel(nnx.Rngs(123))
    restored = restore_checkpoint("./checkpoints", target=fresh)
    assert (restored.step, restored.epoch, restored.metrics) == (0, 5, {"loss": 0.5})
    trained = jax.tree.leaves(nnx.state(example.trainer.model))
    assert all(
        bool((a == b).all())
        for a, b in zip(jax.tree.leaves(nnx.state(fresh)), trained, strict=True)
    )
