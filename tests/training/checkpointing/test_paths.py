"""Issue 30, points 3 and 4: user folders are never touched, and paths round-trip.

* A step directory is ours only if every file in it, at any depth, is one a checkpoint
  holds: a user's folder holding ``meta/`` or ``state/`` is never removed as an
  "incomplete step", and one named like a step the run may save is refused before
  anything is written.
* A ``dirpath`` TensorStore cannot read back (``\\``, brackets, a non-UTF-8 byte) is
  refused, naming the character; every other class of character round-trips.
* A ``dirpath`` inside another checkpoint directory (at its next step, say) is refused.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from artifex.generative_models.training._checkpointing._step_dirs import (
    tidy_step_directories,
)
from artifex.generative_models.training.callbacks import ModelCheckpoint, restore_checkpoint
from tests.training.callbacks._stubs import FullTrainer, params
from tests.training.checkpointing._dirs import config, listing, run_a


def _emptied_copy(source: Path, target: Path) -> None:
    """A copy of a real step directory that lacks Orbax's metadata: incomplete, and ours."""
    shutil.copytree(source, target)
    (target / "_CHECKPOINT_METADATA").unlink()


def test_an_incomplete_step_of_ours_is_removed_but_a_users_folder_with_item_names_kept(
    tmp_path: Path,
) -> None:
    ck = tmp_path / "ck"
    run_a(ck)  # steps 2, 4, 6
    _emptied_copy(ck / "2", ck / "8")  # every file of it is a checkpoint's
    user = ck / "9"
    (user / "meta").mkdir(parents=True)
    (user / "meta" / "notes.txt").write_text("mine")
    (user / "state").mkdir()
    _emptied_copy(ck / "4", ck / "10")
    (ck / "10" / "state" / "mine.npy").write_bytes(b"mine")  # one user file deep inside
    tidy_step_directories(ck)
    assert not (ck / "8").exists()
    assert (user / "meta" / "notes.txt").read_text() == "mine"
    assert (ck / "10" / "state" / "mine.npy").read_bytes() == b"mine"


def test_a_link_inside_an_incomplete_step_makes_it_the_users(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    run_a(ck)
    _emptied_copy(ck / "2", ck / "8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("mine")
    os.symlink(tmp_path / "data", ck / "8" / "meta" / "d")
    tidy_step_directories(ck)
    assert (ck / "8").is_dir()
    assert (tmp_path / "data" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("entry", ["6/user.txt", "6/meta/notes.txt", "8"])
def test_a_users_entry_named_like_a_later_step_is_refused_in_preflight(
    tmp_path: Path, entry: str
) -> None:
    ck = tmp_path / "ck"
    run_a(ck)  # steps 2, 4, 6: the next run starts at step 6
    shutil.rmtree(ck / "6") if entry.startswith("6") else None
    target = ck / entry
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("mine")
    trainer = FullTrainer()
    trainer.step = 4 if entry.startswith("6") else 6
    restore_checkpoint(ck, step=trainer.step, target=trainer)  # continues the run
    before = listing(ck)
    name = entry.split("/")[0]
    with pytest.raises(FileExistsError, match=rf"holds '.*/ck/{name}', named like step {name}"):
        ModelCheckpoint(config(ck)).preflight(trainer)
    assert listing(ck) == before
    assert target.read_text() == "mine"


def test_a_users_folder_named_like_an_earlier_step_is_left_alone(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    run_a(ck)
    (ck / "3").mkdir()
    (ck / "3" / "user.txt").write_text("mine")
    trainer = FullTrainer()
    restore_checkpoint(ck, target=trainer)
    ModelCheckpoint(config(ck)).preflight(trainer)  # at step 6: step 3 is never saved again


@pytest.mark.parametrize(
    ("name", "named"),
    [("a\\b", "'\\\\\\\\'"), ("a[x]b", "'\\['"), ("a]b", "'\\]'"), (os.fsdecode(b"a\xffb"), "xff")],
)
def test_a_dirpath_tensorstore_cannot_read_back_is_refused_naming_the_character(
    tmp_path: Path, name: str, named: str
) -> None:
    ck = tmp_path / name / "ck"
    callback = ModelCheckpoint(config(ck))
    with pytest.raises(ValueError, match=named):
        callback.preflight(FullTrainer())
    with pytest.raises(ValueError, match=named):
        callback.on_train_begin(FullTrainer())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name",
    [
        "glob *?{a,b}",  # glob characters other than brackets
        "url %41#:?&=+@,;",  # what a URL would read
        "shell '\"$|<>!~^",  # quotes and shell characters
        "control \t\n\x01\x7f",  # whitespace and control characters
        "unicode é\u2028中",  # non-ASCII UTF-8
    ],
)
def test_every_other_class_of_character_round_trips(tmp_path: Path, name: str) -> None:
    ck = tmp_path / name / "ck"
    trainer = run_a(ck)
    target = FullTrainer(seed=1)
    restored = restore_checkpoint(ck, target=target)
    assert restored.step == 6
    for saved, back in zip(params(trainer.model), params(target.model), strict=True):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(back))
    assert [p.name for p in tmp_path.iterdir()] == [name]  # nothing written beside it
    assert trainer.step == 6


def test_a_dirpath_inside_another_checkpoint_directory_is_refused(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    run_a(ck)
    before = listing(ck)
    for inner in (ck / "8", ck / "logs" / "ck"):  # its next step, or any folder in it
        with pytest.raises(FileExistsError, match="lies inside the checkpoint directory"):
            ModelCheckpoint(config(inner)).preflight(FullTrainer())
    assert listing(ck) == before
