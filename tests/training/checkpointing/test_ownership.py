"""A checkpoint directory holds one run (issue 18, item 2).

A run that does not continue the directory's run is refused before anything is
written (retention would otherwise delete that run's checkpoints); a run that
continues it (restored from it, or the same trainer on a later fit) writes on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flax import nnx

from artifex.generative_models.training.callbacks import ModelCheckpoint, restore_checkpoint
from artifex.generative_models.training.callbacks.protocols import RunStatus, TrainerState
from tests.laws._resume_script import make_data
from tests.training.callbacks._stubs import FullTrainer, ModelOnlyTrainer, TinyModel, drive
from tests.training.checkpointing._dirs import (
    config,
    fit_trainer,
    listing,
    marker,
    meta_run,
    run_a,
    steps,
)


def test_another_runs_directory_is_refused_and_its_checkpoints_kept(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    run_a(ck)
    run = marker(ck)["run"]
    before = listing(ck)
    other = FullTrainer(seed=1)
    other.step, other.epoch = 20, 10  # beyond run A: the step check lets it in
    callback = ModelCheckpoint(config(ck))
    with pytest.raises(FileExistsError) as refused:
        drive(other, [callback], [[1.0, 1.0]] * 3, start_step=20, start_epoch=10)
    message = str(refused.value)
    assert str(ck) in message
    assert run in message
    assert "resume_from" in message
    assert listing(ck) == before  # nothing written, no lock left behind
    assert steps(ck) == [2, 4, 6]
    assert restore_checkpoint(ck).step == 6


def test_a_plain_trainer_of_another_run_is_refused(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    drive(ModelOnlyTrainer(), [ModelCheckpoint(config(ck))], [[1.0, 1.0]] * 3)
    with pytest.raises(FileExistsError, match="does not continue it"):
        drive(ModelOnlyTrainer(), [ModelCheckpoint(config(ck))], [[1.0]], start_step=20)
    assert steps(ck) == [2, 4, 6]


def test_a_run_continued_from_the_directory_is_accepted(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    run_a(ck)
    run = marker(ck)["run"]
    resumed = FullTrainer(seed=1)
    restore_checkpoint(ck, target=resumed)  # a trainer's whole state
    drive(resumed, [ModelCheckpoint(config(ck))], [[1.0, 1.0]], start_step=6, start_epoch=3)
    assert steps(ck) == [4, 6, 8]
    assert meta_run(ck, 8) == run


class CountingTrainer(ModelOnlyTrainer):
    """A ``TrainerState`` without ``state_dict``: only its model is checkpointed."""

    def __init__(self, model: nnx.Module | None = None) -> None:
        super().__init__(model)
        self.step, self.epoch, self.stop_training = 0, 0, False
        self.status: RunStatus = "running"
        self.stopped_by: object | None = None
        self.error: BaseException | None = None


@pytest.mark.parametrize("target", ["trainer", "model"])
def test_a_plain_trainer_continues_after_restoring(tmp_path: Path, target: str) -> None:
    ck = tmp_path / "ck"
    drive(CountingTrainer(), [ModelCheckpoint(config(ck))], [[1.0, 1.0]])  # step 2
    plain = CountingTrainer(TinyModel(nnx.Rngs(3)))
    assert isinstance(plain, TrainerState)
    restored = restore_checkpoint(ck, target=plain if target == "trainer" else plain.model)
    plain.step = restored.step  # not a CheckpointableTrainer: it sets its counters itself
    drive(plain, [ModelCheckpoint(config(ck))], [[1.0, 1.0]], start_step=2, start_epoch=1)
    assert steps(ck) == [2, 4]
    assert meta_run(ck, 4) == meta_run(ck, 2) == marker(ck)["run"]


def test_the_same_callback_and_trainer_continue_on_a_later_fit(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    trainer, callback = FullTrainer(), ModelCheckpoint(config(ck))
    drive(trainer, [callback], [[1.0, 1.0]])
    drive(trainer, [callback], [[1.0, 1.0]], start_step=2, start_epoch=1)
    assert callback.saved_checkpoint_steps == (2, 4)
    assert meta_run(ck, 2) == meta_run(ck, 4) == marker(ck)["run"]


def test_the_reference_trainer_continues_with_resume_and_is_refused_without(
    tmp_path: Path,
) -> None:
    ck = tmp_path / "ck"
    train, val = make_data()
    fit_trainer(ck).fit(train, epochs=2, val_data=val)  # steps 6 and 12
    run = marker(ck)["run"]
    ahead = fit_trainer(tmp_path / "elsewhere")
    ahead.fit(train, epochs=3)  # step 18, in another directory
    ahead.callbacks.append(ModelCheckpoint(config(ck)))
    with pytest.raises(FileExistsError, match=run):
        ahead.fit(train, epochs=1)
    assert steps(ck) == [6, 12]
    fit_trainer(ck).fit(train, epochs=1, val_data=val, resume_from=ck)
    assert steps(ck) == [6, 12, 18]
    again = fit_trainer(ck)
    again.resume(ck)
    again.fit(train, epochs=1, val_data=val)
    assert steps(ck) == [12, 18, 24]
    assert meta_run(ck, 24) == run
