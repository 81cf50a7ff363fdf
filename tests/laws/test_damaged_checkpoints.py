"""Issue 18, clear errors: damaged checkpoint metadata is named, with its step and item.

Garbled metadata used to reach the user as a bare ``JSONDecodeError``.
"""

from __future__ import annotations

from pathlib import Path

import optax
import pytest

from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    ModelCheckpoint,
    restore_checkpoint,
)
from artifex.generative_models.training.trainer import Trainer
from tests.training._models import DropoutBatchNorm, batches, mse, new_model

DATA = batches(2)  # 2 steps per epoch: one checkpoint, at step 2


def _trainer(directory: Path) -> Trainer[DropoutBatchNorm]:
    checkpoint = ModelCheckpoint(CheckpointConfig(dirpath=directory, async_save=False))
    return Trainer(new_model(), optax.sgd(0.1), mse, callbacks=[checkpoint])


@pytest.fixture(name="directory")
def _directory(tmp_path: Path) -> Path:
    directory = tmp_path / "checkpoints"
    _trainer(directory).fit(DATA, epochs=1)
    assert restore_checkpoint(directory).step == 2
    return directory


def test_garbled_metadata_names_the_step_and_the_item(directory: Path) -> None:
    meta = directory / "2" / "meta" / "metadata"
    meta.write_text('{"format": ')
    with pytest.raises(ValueError, match=r"step 2 in .* is damaged: its 'meta' item .*meta"):
        restore_checkpoint(directory)
