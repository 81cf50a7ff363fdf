"""Data positions: the StatefulData contract, replay-and-skip, streams.

A user's ``StatefulData`` is rewound through its protocol alone (no ``"position"``
key) after a stop or a failure inside a ``steps_per_execution`` chunk; it and an
``ArrayBatcher`` resume exactly from a mid-epoch checkpoint, with a prefetch (forced
on the CPU) too; data without a saved position replays a resumed epoch and skips its
trained batches, with a warning; ``steps_per_epoch`` keeps one iterator across epochs,
and endless data without it is refused before anything is touched.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from artifex.generative_models.training import ArrayBatcher
from artifex.generative_models.training.callbacks import LambdaCallback, restore_checkpoint
from artifex.generative_models.training.trainer import _chunks
from artifex.generative_models.training.trainer._chunks import ReplayedDataWarning
from tests.laws._outcomes import assert_same, outcome
from tests.laws._resume_script import Batch, build, flat_state, make_data


class Crash(Exception):
    """Raised by a test callback inside a chunk."""


VAL = make_data()[1]


def batches() -> list[Batch]:
    """Epoch 0's six batches of the laws' data, in a fixed order."""
    return list(make_data()[0])


class Cursor:
    """A user's StatefulData: a list of batches and a cursor, no ``"position"`` key."""

    def __init__(self, items: list[Batch]) -> None:
        self.items = items
        self.cursor = 0
        self.drawn: list[int] = []

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Batch]:
        if self.cursor >= len(self.items):
            self.cursor = 0
        while self.cursor < len(self.items):
            self.drawn.append(self.cursor)
            self.cursor += 1
            yield self.items[self.cursor - 1]

    def state_dict(self) -> dict[str, Any]:
        return {"cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        assert type(state["cursor"]) is int  # Python values, never arrays
        self.cursor = state["cursor"]


# A stop skips validation: EarlyStopping's val_loss is missing then.
@pytest.mark.filterwarnings("ignore:EarlyStopping monitors 'val_loss'")
@pytest.mark.parametrize("how", ["stop", "failure"])
def test_a_user_stateful_data_is_rewound_inside_a_chunk(tmp_path: Path, how: str) -> None:
    def end(trainer: Any, step: int, _logs: object) -> None:
        if step == 5:  # the second step of the chunk of steps 4 to 7
            if how == "failure":
                raise Crash(step)
            trainer.stop_training = True

    extra = (LambdaCallback(on_batch_end=end),)
    trainer, _, _ = build(tmp_path, extra=extra, steps_per_execution=4)
    data = Cursor(batches())
    if how == "failure":
        with pytest.raises(Crash):
            trainer.fit(data, epochs=2, val_data=VAL)
    else:
        trainer.fit(data, epochs=2, val_data=VAL)
    assert trainer.step == 6
    assert data.state_dict() == {"cursor": 6}  # fetched 8, trained 6
    data.drawn.clear()
    trainer.fit(data, epochs=1, val_data=VAL)  # a new pass: all six were trained
    assert data.drawn == list(range(6))
    assert trainer.step == 12


@pytest.mark.filterwarnings("ignore:EarlyStopping monitors 'val_loss'")
def test_a_stop_inside_a_chunk_resumes_exactly_from_the_checkpoint_it_left(
    tmp_path: Path,
) -> None:
    """The epoch-end checkpoint after a stop inside a chunk holds the rewound position."""

    def end(trainer: Any, step: int, _logs: object) -> None:
        if step == 5:
            trainer.stop_training = True

    extra = (LambdaCallback(on_batch_end=end),)
    trainer, _, _ = build(tmp_path, extra=extra, steps_per_execution=4)
    data = Cursor(batches())
    trainer.fit(data, epochs=2, val_data=VAL)
    assert restore_checkpoint(tmp_path / "checkpoints").state["data"] == {"cursor": 6}
    trainer.fit(data, epochs=2, val_data=VAL)  # goes on in this process
    want = flat_state(trainer.state_dict()["model"])

    resumed, _, _ = build(tmp_path / "resumed", steps_per_execution=4)
    resumed.resume(tmp_path / "checkpoints" / "6")
    resumed.fit(Cursor(batches()), epochs=2, val_data=VAL)
    got = flat_state(resumed.state_dict()["model"])
    assert resumed.step == trainer.step
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


STATEFUL: dict[str, Callable[[], Cursor | ArrayBatcher[Batch]]] = {
    "user": lambda: Cursor(batches()),
    "ArrayBatcher": lambda: make_data()[0],
}


@pytest.mark.parametrize("kind", sorted(STATEFUL))
@pytest.mark.parametrize(("chunk", "prefetch"), [(4, False), (4, True), (1, True)])
def test_a_stateful_data_resumes_exactly_from_a_mid_epoch_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, chunk: int, prefetch: bool
) -> None:
    """With a prefetch too: the saved position counts the batches trained, not drawn."""
    monkeypatch.setattr(_chunks, "transfers_overlap", lambda: prefetch)
    new_data = STATEFUL[kind]
    reference, early, history = build(tmp_path / "one", every_n_steps=4, steps_per_execution=chunk)
    reference.fit(new_data(), epochs=2, val_data=VAL)
    want = outcome(reference, early, history, tmp_path / "one")

    def crash(_trainer: object, step: int, _logs: object) -> None:
        if step == 9:
            raise Crash(step)

    work = tmp_path / "two"
    extra = (LambdaCallback(on_batch_end=crash),)
    trainer, _, _ = build(work, extra=extra, every_n_steps=4, steps_per_execution=chunk)
    with pytest.raises(Crash):
        trainer.fit(new_data(), epochs=2, val_data=VAL)
    trainer, early, history = build(work, every_n_steps=4, steps_per_execution=chunk)
    trainer.fit(new_data(), epochs=1, resume_from=work / "checkpoints", val_data=VAL)
    assert_same(outcome(trainer, early, history, work), want)


def test_a_generator_function_is_replayed_and_its_trained_batches_skipped(
    tmp_path: Path,
) -> None:
    items = batches()

    def generate() -> Iterator[Batch]:
        yield from items

    reference, early, history = build(tmp_path / "one", every_n_steps=3)
    reference.fit(generate, epochs=2, val_data=VAL)
    want = outcome(reference, early, history, tmp_path / "one")

    def crash(_trainer: object, step: int) -> None:
        if step == 10:
            raise Crash(step)

    work = tmp_path / "two"
    trainer, _, _ = build(work, extra=(LambdaCallback(on_batch_begin=crash),), every_n_steps=3)
    with pytest.raises(Crash):
        trainer.fit(generate, epochs=2, val_data=VAL)
    trainer, early, history = build(work, every_n_steps=3)
    with pytest.warns(ReplayedDataWarning, match=r"epoch 1 .* first 3 batches .* exact only if"):
        trainer.fit(generate, epochs=1, resume_from=work / "checkpoints", val_data=VAL)
    assert_same(outcome(trainer, early, history, work), want)


def test_replayed_data_that_ends_early_is_named(tmp_path: Path) -> None:
    def crash(_trainer: object, step: int) -> None:
        if step == 4:
            raise Crash(step)

    trainer, _, _ = build(tmp_path, extra=(LambdaCallback(on_batch_begin=crash),), every_n_steps=3)
    with pytest.raises(Crash):
        trainer.fit(batches(), epochs=1, val_data=VAL)
    trainer, _, _ = build(tmp_path, every_n_steps=3)
    with pytest.raises(ValueError, match=r"skip the 3 batches .* yielded only 2"):
        trainer.fit(
            lambda: iter(batches()[:2]),
            epochs=1,
            resume_from=tmp_path / "checkpoints",
            val_data=VAL,
        )


def test_endless_data_without_steps_per_epoch_is_refused_before_anything(
    tmp_path: Path,
) -> None:
    trainer, _, _ = build(tmp_path)
    with pytest.raises(ValueError, match=r"train_data \(cycle\) is endless.*steps_per_epoch=N"):
        trainer.fit(itertools.cycle(batches()), epochs=2)
    assert not (tmp_path / "log.csv").exists()
    assert trainer.step == 0


def test_steps_per_epoch_keeps_one_iterator_across_epochs(tmp_path: Path) -> None:
    items = batches()
    drawn: list[int] = []

    def stream() -> Iterator[Batch]:
        for index in itertools.count():
            drawn.append(index)
            yield items[index % len(items)]

    trainer, _, history = build(tmp_path)
    trainer.fit(stream, epochs=3, steps_per_epoch=4, val_data=VAL)
    assert trainer.step == 12
    assert history.epochs == [0, 1, 2]
    assert drawn == list(range(12))  # one iterator: no epoch restarted it
    assert trainer.steps_per_epoch == 4


def test_steps_per_epoch_over_finite_data_starts_a_new_pass_where_it_ends(
    tmp_path: Path,
) -> None:
    trainer, _, _ = build(tmp_path)
    logs = trainer.fit(batches(), epochs=3, steps_per_epoch=4, val_data=VAL)
    assert trainer.step == 4 + 2 + 4  # the pass ends inside epoch 1; epoch 2 starts anew
    assert len(logs) == 3


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"steps_per_epoch": 0}, ValueError, "steps_per_epoch"),
        ({"steps_per_epoch": 1.5}, TypeError, "steps_per_epoch"),
        ({"data_resume": "skip"}, ValueError, "data_resume must be 'replay' or 'refuse'"),
    ],
)
def test_bad_options_are_named(
    tmp_path: Path, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    trainer, _, _ = build(tmp_path)
    with pytest.raises(error, match=match):
        trainer.fit(batches(), epochs=1, **options, val_data=VAL)
    assert not (tmp_path / "log.csv").exists()


def test_a_loaded_state_is_python_values(tmp_path: Path) -> None:
    trainer, _, _ = build(tmp_path, every_n_steps=3)
    data = Cursor(batches())
    trainer.fit(data, epochs=1, val_data=VAL)
    fresh, _, _ = build(tmp_path / "other")
    again = Cursor(batches())
    fresh.fit(again, epochs=0, resume_from=tmp_path / "checkpoints" / "3", val_data=VAL)
    assert again.cursor == 3
    assert np.ndim(again.cursor) == 0
