"""Issue 30, point 4: our own files' names are refused as user paths (in preflight).

A ``CSVLogger`` file named like a checkpoint directory's marker or lock, or lying inside a
checkpoint directory (on disk, or one of this run), another callback's folder inside one,
and two ``ModelCheckpoint`` directories nested in each other are refused by the preflight
pass, before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import optax
import pytest

from artifex.generative_models.training.callbacks import (
    CallbackList,
    CheckpointConfig,
    CSVLogger,
    JAXProfiler,
    ModelCheckpoint,
    TensorBoardLogger,
)
from artifex.generative_models.training.callbacks._preflight import preflight
from artifex.generative_models.training.callbacks.base import TrainingCallback
from artifex.generative_models.training.trainer import Trainer
from tests.training._models import batches, mse, new_model
from tests.training.callbacks._stubs import FullTrainer
from tests.training.checkpointing._dirs import config, listing, run_a


def _refused(*callbacks: TrainingCallback) -> str:
    with pytest.raises(ValueError, match=r"lies inside|is named like|nest") as refused:
        preflight(FullTrainer(), CallbackList(list(callbacks)))
    return str(refused.value)


@pytest.mark.parametrize("name", ["artifex_checkpoints.lock", "artifex_checkpoints.json"])
def test_a_csv_named_like_our_marker_or_lock_is_refused(tmp_path: Path, name: str) -> None:
    ck = tmp_path / "ck"
    message = _refused(CSVLogger(filename=ck / name), ModelCheckpoint(config(ck)))
    assert f"'{ck / name}' is named like ModelCheckpoint's" in message
    assert not ck.exists()
    with pytest.raises(ValueError, match="is named like ModelCheckpoint's"):
        CSVLogger(filename=tmp_path / "logs" / name).preflight(FullTrainer())  # anywhere


def test_a_csv_inside_this_runs_checkpoint_directory_is_refused(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    message = _refused(CSVLogger(filename=ck / "2" / "log.csv"), ModelCheckpoint(config(ck)))
    assert f"CSVLogger filename '{ck / '2' / 'log.csv'}' lies inside the ModelCheckpoint" in message
    assert not ck.exists()


def test_a_csv_inside_an_existing_checkpoint_directory_is_refused(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    run_a(ck)
    before = listing(ck)
    for inside in (ck / "2" / "log.csv", ck / "log.csv"):
        logger = CSVLogger(filename=inside)
        with pytest.raises(ValueError, match=f"lies inside the checkpoint directory '{ck}'"):
            logger.preflight(FullTrainer())
        with pytest.raises(ValueError, match="lies inside the checkpoint directory"):
            logger.on_train_begin(FullTrainer())  # for trainers that make no preflight pass
    assert listing(ck) == before


def test_other_callbacks_folders_inside_a_checkpoint_directory_are_refused(
    tmp_path: Path,
) -> None:
    ck = tmp_path / "ck"
    checkpoint = ModelCheckpoint(config(ck))
    assert "TensorBoardLogger log_dir" in _refused(TensorBoardLogger(log_dir=ck / "4"), checkpoint)
    assert "JAXProfiler log_dir" in _refused(checkpoint, JAXProfiler(log_dir=ck))
    run_a(ck)
    assert "lies inside the checkpoint directory" in _refused(TensorBoardLogger(log_dir=ck / "tb"))


def test_nested_checkpoint_directories_are_refused(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    for other in (ck / "8", ck, tmp_path):
        message = _refused(ModelCheckpoint(config(ck)), ModelCheckpoint(config(other)))
        assert "two checkpoint directories nest" in message
    preflight(  # side by side: fine
        FullTrainer(),
        CallbackList([ModelCheckpoint(config(ck)), ModelCheckpoint(config(tmp_path / "ck2"))]),
    )


def test_fit_refuses_before_any_file_is_written(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    log = tmp_path / "log.csv"
    log.write_text("epoch,loss\n0,1.0\n1,0.5\n")
    trainer = Trainer(
        new_model(),
        optax.sgd(0.1),
        mse,
        callbacks=[
            CSVLogger(filename=log),
            TensorBoardLogger(log_dir=ck / "2"),
            ModelCheckpoint(CheckpointConfig(dirpath=ck)),
        ],
    )
    with pytest.raises(ValueError, match="lies inside the ModelCheckpoint dirpath"):
        trainer.fit(batches(2), epochs=1)
    assert log.read_text() == "epoch,loss\n0,1.0\n1,0.5\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]
