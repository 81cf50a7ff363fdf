"""Retention: the best ``save_top_k`` by score (NaN worst, ties keep the earlier), plus the last.

Unit tests of ``_checkpointing._retention`` on Orbax's policy interface, and the run
that once printed absl's "Requested tracked_metric" warning at every mid-epoch save.
"""

from __future__ import annotations

import datetime
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import optax
import pytest
from orbax.checkpoint import checkpoint_managers as ocm

from artifex.generative_models.training._checkpointing._retention import (
    Ranking,
    preservation_policy,
    rank,
)
from artifex.generative_models.training.callbacks import (
    CallbackList,
    CheckpointConfig,
    ModelCheckpoint,
)
from artifex.generative_models.training.trainer import Trainer
from tests.training._models import batches, mse, new_model
from tests.training.callbacks._stubs import FullTrainer, ModelOnlyTrainer, drive

NOW = datetime.datetime.now(tz=datetime.UTC)


@dataclass
class Info:
    """What Orbax tells a policy of a checkpoint (its ``PolicyCheckpointInfo`` protocol)."""

    step: int
    time: datetime.datetime = NOW
    metrics: object = None


def _kept(policy: Ranking, steps: list[int]) -> list[int]:
    # Info has the fields Orbax's protocol reads (its stub declares a class).
    infos = cast("list[ocm.PolicyCheckpointInfo]", [Info(s) for s in steps])
    flags = policy.should_preserve(infos, context=None)
    return [step for step, keep in zip(steps, flags, strict=True) if keep]


def test_the_best_k_and_the_last_are_kept() -> None:
    ranking = Ranking("min", 2, keep_last=True)
    ranking.scores.update({1: 0.5, 2: 0.1, 3: 0.9, 4: 0.3})
    assert _kept(ranking, [1, 2, 3, 4, 5]) == [2, 4, 5]  # 5: unscored, kept as the last
    assert ranking.best([1, 2, 3, 4, 5]) == 2
    assert ranking.best([3, 5]) == 3
    assert ranking.best([5]) is None
    assert _kept(Ranking("min", 2, keep_last=False), [1, 2]) == []  # no scores: none


def test_nan_ranks_worst_and_ties_keep_the_earlier() -> None:
    ranking = Ranking("max", 2, keep_last=False)
    ranking.scores.update({1: math.nan, 2: 0.7, 3: 0.7, 4: 0.2})
    assert _kept(ranking, [1, 2, 3, 4]) == [2, 3]
    ranking.k = 1
    assert _kept(ranking, [1, 2, 3, 4]) == [2]
    ranking.k = None
    assert _kept(ranking, [1, 2, 3, 4]) == [1, 2, 3, 4]
    assert rank(math.nan, "min") == rank(math.nan, "max") == math.inf
    assert rank(2.0, "max") == -2.0


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"monitor": None, "save_top_k": 0, "save_last": False}, None),
        ({"monitor": "loss", "save_top_k": 0, "save_last": False}, None),
        ({"monitor": None, "save_top_k": 2}, ocm.LatestN),
        ({"monitor": "loss", "save_top_k": -1}, Ranking),
    ],
)
def test_the_policy_of_a_config(kwargs: dict[str, object], expected: type | None) -> None:
    policy = preservation_policy(CheckpointConfig(**kwargs))  # type: ignore[arg-type]  # the fields  # ty: ignore[invalid-argument-type]
    assert (None if policy is None else type(policy)) is expected


def test_best_k_with_step_saves_prints_no_absl_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    config = CheckpointConfig(
        dirpath=tmp_path / "ck", monitor="loss", save_top_k=1, every_n_steps=1, async_save=False
    )
    checkpoint = ModelCheckpoint(config)
    trainer = Trainer(new_model(), optax.sgd(0.1), mse, callbacks=[checkpoint])
    with caplog.at_level(logging.WARNING):
        trainer.fit(batches(3), epochs=2)
    assert [r.getMessage() for r in caplog.records if r.name == "absl"] == []
    assert "absl" not in capfd.readouterr().err
    # Mid-epoch saves have no score: the best is an epoch end's (here also the last).
    assert (checkpoint.saved_checkpoint_steps, checkpoint.best_checkpoint_step) == ((6,), 6)


# ---------------------------------------- through ModelCheckpoint


def test_recent_k_without_monitor_and_every_n_epochs(tmp_path: Path) -> None:
    cb = ModelCheckpoint(
        CheckpointConfig(dirpath=tmp_path / "ck", save_top_k=2, every_n_epochs=2, async_save=False)
    )
    drive(ModelOnlyTrainer(), [cb], [[1.0]] * 7)
    # epochs 1, 3, 5 are due (steps 2, 4, 6); the two most recent stay
    assert cb.saved_checkpoint_steps == (4, 6)


def test_save_top_k_zero_keeps_only_last_or_nothing(tmp_path: Path) -> None:
    cb = ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "a", monitor="val_loss", save_top_k=0))
    drive(ModelOnlyTrainer(), [cb], [[1.0]] * 3, val_losses=[1.0, 0.5, 2.0])
    assert cb.saved_checkpoint_steps == (3,)
    cb = ModelCheckpoint(
        CheckpointConfig(dirpath=tmp_path / "b", monitor="val_loss", save_top_k=0, save_last=False)
    )
    drive(ModelOnlyTrainer(), [cb], [[1.0]] * 2, val_losses=[1.0, 0.5])
    assert cb.saved_checkpoint_steps == ()
    assert not any(p.name.isdigit() for p in (tmp_path / "b").iterdir())


def test_nan_ranks_worst_and_max_mode(tmp_path: Path) -> None:
    cb = ModelCheckpoint(
        CheckpointConfig(
            dirpath=tmp_path / "ck", monitor="acc", mode="max", save_top_k=1, save_last=False
        )
    )
    trainer = ModelOnlyTrainer()
    cbs = CallbackList([cb])
    cbs.on_train_begin(trainer)
    for epoch, acc in enumerate([0.5, math.nan, 0.9, 0.7]):
        cbs.on_batch_end(trainer, epoch, {"loss": 0.0})
        cbs.on_epoch_end(trainer, epoch, {"acc": acc})
    cbs.on_train_end(trainer)
    assert cb.saved_checkpoint_steps == (3,)
    assert cb.best_checkpoint_step == 3


def test_ranking_spans_runs_in_the_same_directory(tmp_path: Path) -> None:
    trainer = FullTrainer()
    config = CheckpointConfig(dirpath=tmp_path / "ck", monitor="val_loss", save_top_k=2)
    first = ModelCheckpoint(config)
    drive(trainer, [first], [[1.0]] * 3, val_losses=[1.0, 0.2, 0.5])
    assert first.saved_checkpoint_steps == (2, 3)
    # a new instance (say, a resumed process) continues in the same directory; the
    # scores of the earlier checkpoints were written by Orbax and still count
    second = ModelCheckpoint(config)
    drive(trainer, [second], [[1.0]] * 2, val_losses=[0.9, 0.8], start_step=3, start_epoch=3)
    assert second.saved_checkpoint_steps == (2, 3, 5)
    assert second.best_checkpoint_step == 2
