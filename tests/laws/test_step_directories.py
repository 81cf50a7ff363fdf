"""Issue 18, items 3 and 7: only complete checkpoints of ours are listed, restored or deleted.

* A user's folder named like a step (``1/user.txt``) inside a checkpoint directory is
  never deleted by retention, never listed or restored; each run warns, naming it.
* A step directory left incomplete (emptied by a kill during retention's deletion) is
  skipped by ``restore_checkpoint`` and the step listing, and removed by the next run.

The kill itself is simulated by the state it leaves (an emptied step directory); the
runs are small and in-process.
"""

from __future__ import annotations

import logging
import shutil
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

DATA = batches(2)  # 2 steps per epoch: checkpoints at steps 2, 4, 6, ...


def _run(directory: Path, epochs: int, *, resume: bool, keep: int = 1) -> ModelCheckpoint:
    checkpoint = ModelCheckpoint(CheckpointConfig(dirpath=directory, save_top_k=keep))
    trainer: Trainer[DropoutBatchNorm] = Trainer(
        new_model(), optax.sgd(0.1), mse, callbacks=[checkpoint]
    )
    trainer.fit(DATA, epochs=epochs, resume_from=directory if resume else None)
    return checkpoint


def test_a_users_step_named_folder_is_never_deleted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "checkpoints"
    _run(directory, 1, resume=False)
    user = directory / "1"
    user.mkdir()
    (user / "user.txt").write_text("mine")
    with caplog.at_level(logging.WARNING):
        checkpoint = _run(directory, 2, resume=True)
    assert (user / "user.txt").read_text() == "mine"
    assert checkpoint.saved_checkpoint_steps == (6,)
    assert any(str(user) in r.getMessage() and "user.txt" in r.getMessage() for r in caplog.records)
    with pytest.raises(FileNotFoundError):
        restore_checkpoint(user)
    assert restore_checkpoint(directory).step == 6


def test_an_incomplete_step_directory_is_skipped_then_removed(tmp_path: Path) -> None:
    directory = tmp_path / "checkpoints"
    _run(directory, 2, resume=False, keep=-1)  # steps 2 and 4
    emptied = directory / "4"
    for child in emptied.iterdir():  # what a kill during retention's deletion leaves
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    assert restore_checkpoint(directory).step == 2
    with pytest.raises(FileNotFoundError):
        restore_checkpoint(directory, step=4)
    checkpoint = _run(directory, 1, resume=True, keep=-1)  # resumes from step 2
    assert not emptied.exists() or (emptied / "_CHECKPOINT_METADATA").is_file()
    assert checkpoint.saved_checkpoint_steps == (2, 4)
    assert restore_checkpoint(directory, step=4).step == 4
