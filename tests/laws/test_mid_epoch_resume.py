"""Law 1 at step granularity: N steps in one run == crash after checkpointed step k, resume.

``ModelCheckpoint(every_n_steps=...)`` saves inside epochs; a run that fails right
after a mid-epoch checkpoint and is resumed in a fresh trainer reaches bit-identical
parameters and optimizer state, and the same epoch logs, History, CSV and
early-stopping decisions as the run that never stopped. Also: a due step save on an
epoch's last batch is that epoch's one checkpoint, the chunk-boundary rule under
``steps_per_execution``, data without state refused (with ``data_resume="refuse"``),
and the committed format-2 fixture still restoring.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optax
import pytest

from artifex.generative_models.training.callbacks import (
    LambdaCallback,
    restore_checkpoint,
)
from artifex.generative_models.training.trainer import Trainer
from tests.laws._outcomes import assert_same, outcome
from tests.laws._resume_script import (
    build,
    loss_fn,
    make_data,
    make_model,
)

EPOCHS = 6  # early stopping ends the run after epoch 3 (24 steps)
"""A checkpoint of format 2 (before mid-epoch checkpoints), written by the code of that
format: ``early_stopping(restore_best_weights=True)``, ``History`` and ``ModelCheckpoint``
for two epochs (only the last checkpoint, step 12, kept)."""


class Crash(Exception):
    """Raised by the test to end a run right after a checkpointed step."""


@pytest.fixture(scope="module")
def references(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[int, tuple[dict[str, Any], list[Any]]]:
    """The uninterrupted runs, by ``steps_per_execution`` (1 and 4)."""
    out: dict[int, tuple[dict[str, Any], list[Any]]] = {}
    for spe in (1, 4):
        workdir = tmp_path_factory.mktemp(f"one_run_{spe}")
        trainer, early, history = build(workdir, steps_per_execution=spe)
        train, val = make_data()
        logs = trainer.fit(train, epochs=EPOCHS, val_data=val)
        assert trainer.status == "stopped"
        out[spe] = outcome(trainer, early, history, workdir), logs
    return out


# (steps_per_execution, every_n_steps, every_n_epochs, crash before step, position)
CASES = [
    (1, 3, 1, 9, 3),  # mid-epoch 1
    (1, 5, 1, 20, 2),  # mid-epoch 3, the stopping epoch
    (1, 4, None, 12, None),  # a due step on epoch 1's last batch: its epoch-end checkpoint
    (4, 3, 1, 10, 4),  # the first chunk end (step 10) at or after the multiple 9
]


@pytest.mark.parametrize(("spe", "every", "epochs_every", "k", "position"), CASES)
def test_mid_epoch_resume_equivalence(
    spe: int,
    every: int,
    epochs_every: int | None,
    k: int,
    position: int | None,
    references: dict[int, tuple[dict[str, Any], list[Any]]],
    tmp_path: Path,
) -> None:
    want, want_logs = references[spe]

    def crash(_trainer: object, step: int) -> None:
        if step == k:
            raise Crash(step)

    trainer, _, _ = build(
        tmp_path,
        extra=(LambdaCallback(on_batch_begin=crash),),
        every_n_steps=every,
        every_n_epochs=epochs_every,
        steps_per_execution=spe,
    )
    train, val = make_data()
    with pytest.raises(Crash):
        trainer.fit(train, epochs=EPOCHS, val_data=val)
    saved = restore_checkpoint(tmp_path / "checkpoints")
    assert (saved.step, saved.position) == (k, position)
    assert saved.epoch == (k // 6 if position is not None else k // 6 - 1)
    assert bool(saved.metrics) == (position is None)  # mid-epoch checkpoints have no logs
    del trainer, train

    trainer, early, history = build(
        tmp_path,
        seed=123,
        every_n_steps=every,
        every_n_epochs=epochs_every,
        steps_per_execution=spe,
    )
    train, val = make_data()
    epoch = saved.epoch if position is not None else saved.epoch + 1
    rest = trainer.fit(
        train, epochs=EPOCHS - epoch, val_data=val, resume_from=tmp_path / "checkpoints"
    )
    assert rest == want_logs[epoch:]
    assert_same(outcome(trainer, early, history, tmp_path), want)


def test_step_saves_fall_on_chunk_ends_and_epoch_ends_once(tmp_path: Path) -> None:
    trainer, _, _ = build(tmp_path, every_n_steps=3, every_n_epochs=None, steps_per_execution=4)
    train, val = make_data()
    trainer.fit(train, epochs=2, val_data=val)
    # Chunks [0, 4), singles 4, 5 | chunk [6, 10), singles 10, 11: multiple 3 -> chunk
    # end 4; 6 and 12 are epoch ends (saved there, once); 9 -> chunk end 10.
    directory = tmp_path / "checkpoints"
    steps = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())
    assert steps == [4, 6, 10, 12]
    positions = [restore_checkpoint(directory, step=s).position for s in steps]
    assert positions == [4, None, 4, None]
    meta = json.loads((directory / "6" / "meta" / "metadata").read_text())
    assert (meta["epoch"], meta["position"], sorted(meta["metrics"])) == (
        0,
        None,
        ["loss", "val_loss"],
    )


def test_state_dict_inside_an_epoch_holds_the_epoch_in_progress(tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []

    def look(trainer: Any, step: int, _logs: dict[str, Any]) -> None:
        state = trainer.state_dict()
        progress = state.get("epoch_progress")
        seen.append((state["epoch"], None if progress is None else progress["batches"]))

    trainer = Trainer(
        make_model(), optax.adam(1e-2), loss_fn, callbacks=[LambdaCallback(on_batch_end=look)]
    )
    train, _ = make_data()
    trainer.fit(train, epochs=1)
    assert seen == [(0, b) for b in range(1, 7)]
    assert "epoch_progress" not in trainer.state_dict()
    assert not trainer.resumable_mid_epoch


def test_a_mid_epoch_resume_refuses_data_without_state(tmp_path: Path) -> None:
    def crash(_trainer: object, step: int) -> None:
        if step == 3:
            raise Crash(step)

    trainer, _, _ = build(tmp_path, extra=(LambdaCallback(on_batch_begin=crash),), every_n_steps=3)
    train, val = make_data()
    with pytest.raises(Crash):
        trainer.fit(train, epochs=2, val_data=val)
    trainer, _, _ = build(tmp_path / "other", seed=5)
    batches = list(train)
    with pytest.raises(
        ValueError,
        match=r"inside epoch 0 \(after 3 of its batches\).*StatefulData.*"
        r"data_resume='refuse'; pass data_resume='replay'",
    ):
        trainer.fit(batches, epochs=2, resume_from=tmp_path / "checkpoints", data_resume="refuse")
    assert not (tmp_path / "other" / "log.csv").exists()  # refused before on_train_begin


class Unsized:
    """A ``StatefulData`` without ``len``: the trainer cannot know an epoch's last batch."""

    def __init__(self) -> None:
        self.batcher, _ = make_data()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.batcher)

    def state_dict(self) -> dict[str, Any]:
        return self.batcher.state_dict()

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        self.batcher.load_state_dict(state)


def test_with_unsized_data_the_epoch_end_replaces_the_step_checkpoint(tmp_path: Path) -> None:
    trainer, _, _ = build(tmp_path, every_n_steps=3, every_n_epochs=None)
    _, val = make_data()
    trainer.fit(Unsized(), epochs=2, val_data=val)
    directory = tmp_path / "checkpoints"
    steps = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())
    assert steps == [3, 6, 9, 12]
    positions = [restore_checkpoint(directory, step=s).position for s in steps]
    assert positions == [3, None, 3, None]  # steps 6 and 12: one epoch-end checkpoint each
