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
from artifex.generative_models.training.callbacks import CheckpointConfig, ModelCheckpoint
from artifex.generative_models.training.trainer import Trainer
from tests.training._models import batches, mse, new_model

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
    policy = preservation_policy(CheckpointConfig(**kwargs))  # type: ignore[arg-type]  # the fields
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
