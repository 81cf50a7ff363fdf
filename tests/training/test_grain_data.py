"""grain data natively: MapDataset, IterDataset and DataLoader resume bit-identically.

The trainer holds grain's live iterator across epochs and checkpoints, and saves its
``get_state()`` in the ``data`` item (a nested dict, or bytes for a
``DataLoaderIterator``); a run failing right after a mid-epoch checkpoint and resumed
in a fresh trainer ends exactly where the uninterrupted run ends.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grain
import numpy as np
import pytest

from artifex.generative_models.training.callbacks import LambdaCallback, restore_checkpoint
from tests.laws._outcomes import assert_same, outcome
from tests.laws._resume_script import build, make_data

VAL = make_data()[1]


class Crash(Exception):
    """Raised by a test callback right after a checkpointed step."""


def examples() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32)).astype(np.float32)
    return [(x[i], y[i]) for i in range(48)]


def map_dataset() -> Any:
    return grain.MapDataset.source(examples()).shuffle(seed=3).batch(8)


def iter_dataset() -> Any:
    return map_dataset().to_iter_dataset()


def data_loader() -> Any:
    sampler = grain.samplers.IndexSampler(
        num_records=48,
        shard_options=grain.sharding.NoSharding(),
        shuffle=True,
        num_epochs=None,
        seed=3,
    )
    return grain.DataLoader(
        data_source=examples(),
        sampler=sampler,
        operations=[grain.transforms.Batch(batch_size=8)],
        worker_count=0,
    )


def endless() -> Any:
    return grain.MapDataset.source(examples()).shuffle(seed=3).repeat().batch(8)


# (make the data, steps_per_epoch, steps_per_execution, crash at step)
CASES: dict[str, tuple[Callable[[], Any], int | None, int, int]] = {
    "map": (map_dataset, None, 1, 9),
    "map-chunks": (map_dataset, None, 4, 11),
    "iter": (iter_dataset, None, 1, 9),
    "loader": (data_loader, 5, 1, 9),
    "endless": (endless, 5, 1, 9),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_mid_epoch_resume_with_grain_is_bit_identical(tmp_path: Path, case: str) -> None:
    make, steps, spe, crash_at = CASES[case]
    options: dict[str, Any] = {"val_data": VAL, "steps_per_epoch": steps}
    reference, early, history = build(tmp_path / "one", every_n_steps=4, steps_per_execution=spe)
    reference.fit(make(), epochs=3, **options)
    want = outcome(reference, early, history, tmp_path / "one")

    def crash(_trainer: object, step: int) -> None:
        if step == crash_at:
            raise Crash(step)

    work = tmp_path / "two"
    extra = (LambdaCallback(on_batch_begin=crash),)
    trainer, _, _ = build(work, extra=extra, every_n_steps=4, steps_per_execution=spe)
    with pytest.raises(Crash):
        trainer.fit(make(), epochs=3, **options)
    saved = restore_checkpoint(work / "checkpoints")
    assert saved.position is not None  # a mid-epoch checkpoint
    assert set(saved.state["data"]) == {"grain"}
    if case == "loader":
        assert isinstance(saved.state["data"]["grain"], bytes)  # round-tripped as bytes
    trainer, early, history = build(work, every_n_steps=4, steps_per_execution=spe)
    trainer.fit(make(), epochs=3 - saved.epoch, resume_from=work / "checkpoints", **options)
    assert_same(outcome(trainer, early, history, work), want)


def test_an_endless_grain_dataset_needs_steps_per_epoch(tmp_path: Path) -> None:
    trainer, _, _ = build(tmp_path)
    with pytest.raises(ValueError, match=r"is endless.*pass steps_per_epoch=N"):
        trainer.fit(endless().to_iter_dataset(), epochs=1, val_data=VAL)
    assert not (tmp_path / "log.csv").exists()


def test_the_live_iterator_goes_on_across_fits(tmp_path: Path) -> None:
    data = map_dataset()
    trainer, _, _ = build(tmp_path)
    trainer.fit(data, epochs=1, val_data=VAL, steps_per_epoch=4)
    first = trainer.state_dict()["data"]
    assert first == {"grain": {"next_index": 4}}
    trainer.fit(data, epochs=1, val_data=VAL, steps_per_epoch=2)
    assert trainer.state_dict()["data"] == {"grain": {"next_index": 6}}
