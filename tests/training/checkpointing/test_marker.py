"""The marker: a directory is ``ModelCheckpoint``'s when it holds ``MARKER_FILE`` (its run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from artifex.generative_models.training._checkpointing._format import MARKER_FILE
from artifex.generative_models.training._checkpointing._integrity import seal, unseal
from artifex.generative_models.training.callbacks import CheckpointConfig, ModelCheckpoint
from tests.training.callbacks._stubs import FullTrainer, ModelOnlyTrainer, drive
from tests.training.checkpointing._dirs import config, listing, marker, meta_run, run_a, steps


def test_a_run_id_is_in_the_marker_and_every_checkpoint(tmp_path: Path) -> None:
    run_a(tmp_path / "ck")
    run = marker(tmp_path / "ck")["run"]
    assert isinstance(run, str)
    assert len(run) == 32
    assert [meta_run(tmp_path / "ck", step) for step in (2, 4, 6)] == [run] * 3


def test_a_directory_without_run_id_is_adopted(tmp_path: Path) -> None:
    # a directory of formats 1 to 3 names no run: its checkpoints cannot be told apart
    ck = tmp_path / "ck"
    run_a(ck)
    legacy = {"format": marker(ck)["format"]}
    (ck / MARKER_FILE).write_text(json.dumps(legacy))
    for step in steps(ck):  # nor do its checkpoints
        meta = ck / str(step) / "meta" / "metadata"
        content = unseal(json.loads(meta.read_text()), "meta")
        meta.write_text(json.dumps(seal({**content, "run": None})))
    before = listing(ck)
    with pytest.raises(FileExistsError, match="up to step 6"):  # refused: not adopted
        drive(FullTrainer(seed=2), [ModelCheckpoint(config(ck))], [[1.0]])
    assert listing(ck) == before
    other = FullTrainer(seed=1)
    other.step = 20
    drive(other, [ModelCheckpoint(config(ck))], [[1.0]], start_step=20, start_epoch=10)
    assert marker(ck)["format"] == legacy["format"]
    assert meta_run(ck, 21) == marker(ck)["run"]


def test_a_directory_without_checkpoints_is_taken_over(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    first = ModelCheckpoint(config(ck))
    first.on_train_begin(FullTrainer())
    first.on_train_end(FullTrainer())  # a run that saved nothing
    abandoned = marker(ck)["run"]
    drive(FullTrainer(seed=1), [ModelCheckpoint(config(ck))], [[1.0]])
    assert steps(ck) == [1]
    assert meta_run(ck, 1) == marker(ck)["run"] != abandoned


def test_refuses_a_foreign_non_empty_directory(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.tex").write_text("precious")
    cb = ModelCheckpoint(CheckpointConfig(dirpath=target))
    with pytest.raises(FileExistsError, match="not created by ModelCheckpoint"):
        cb.on_train_begin(ModelOnlyTrainer())
    assert (target / "thesis.tex").read_text() == "precious"
    assert sorted(p.name for p in target.iterdir()) == ["thesis.tex"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "file")).on_train_begin(
            ModelOnlyTrainer()
        )
