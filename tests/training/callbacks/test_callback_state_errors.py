"""Callback states a checkpoint cannot hold, and bad loaded states, are named (issue 30).

A stateful callback whose ``state_dict()`` holds a ``set`` or ``bytes`` once failed
mid-run with ``OSError [Errno 5]`` naming no callback; a ``History`` state with a bad
epoch was a bare ``ValueError``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optax
import pytest

from artifex.generative_models.training.callbacks import (
    BaseCallback,
    CheckpointConfig,
    History,
    ModelCheckpoint,
    TrainerLike,
    list_checkpoints,
)
from artifex.generative_models.training.callbacks._state import check_json, load_callback_states
from artifex.generative_models.training.trainer import Trainer
from tests.laws._resume_script import loss_fn, make_data, make_model


class Seen(BaseCallback):
    """A stateful callback whose state turns into ``bad`` from epoch ``from_epoch`` on."""

    def __init__(self, bad: object, from_epoch: int = 0) -> None:
        self.bad, self.from_epoch, self.epoch = bad, from_epoch, 0

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, /) -> None:
        self.epoch = epoch

    @property
    def state_key(self) -> str:
        return "seen"

    def state_dict(self) -> dict[str, Any]:
        return {
            "ok": [1, 2.5, "x", None, True],
            "seen": self.bad if self.epoch >= self.from_epoch else [],
        }

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        del state


def _fit(ck: Path, callback: Seen, epochs: int = 2) -> None:
    trainer = Trainer(
        make_model(),
        optax.adam(1e-2),
        loss_fn,
        callbacks=[callback, ModelCheckpoint(CheckpointConfig(dirpath=ck, save_top_k=-1))],
    )
    train, _ = make_data()
    trainer.fit(train, epochs=epochs)


@pytest.mark.parametrize(
    ("bad", "where", "kind"),
    [
        ({3, 1}, "state['seen']", "set"),
        (b"abc", "state['seen']", "bytes"),
        ([1, {"deep": {2}}], "state['seen'][1]['deep']", "set"),
    ],
)
def test_a_state_json_cannot_hold_is_refused_in_preflight_naming_it(
    tmp_path: Path, bad: object, where: str, kind: str
) -> None:
    ck = tmp_path / "ck"
    with pytest.raises(TypeError) as info:
        _fit(ck, Seen(bad))
    message = str(info.value)
    assert "callback Seen (state_key 'seen')" in message
    assert f"{where} is a {kind}, which a checkpoint's JSON cannot hold" in message
    assert not ck.exists()  # refused before anything was written


def test_a_state_that_turns_bad_mid_run_is_refused_at_its_save(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    with pytest.raises(TypeError, match=r"Seen \(state_key 'seen'\): state\['seen'\] is a set"):
        _fit(ck, Seen({1}, from_epoch=1))
    assert [info.step for info in list_checkpoints(ck)] == [6]  # the first epoch's is intact


def test_non_str_keys_are_refused_naming_the_key() -> None:
    with pytest.raises(TypeError, match=r"owner: state\['a'\] has the key 1 \(int\)"):
        check_json({"a": {1: "x"}}, "owner")
    check_json({"a": ({"b": [1.5, math.inf]},)}, "owner")  # tuples and floats pass


def test_json_items_are_checked_naming_the_item(tmp_path: Path) -> None:
    class Extra(ModelCheckpoint):
        def json_items(self, trainer: TrainerLike, /) -> dict[str, Any]:
            return {"notes": {"tags": frozenset({"a"})}}

    trainer = Trainer(
        make_model(),
        optax.adam(1e-2),
        loss_fn,
        callbacks=[Extra(CheckpointConfig(dirpath=tmp_path / "ck"))],
    )
    train, _ = make_data()
    with pytest.raises(
        TypeError, match=r"Extra.json_items\(\): item 'notes'\['tags'\] is a frozenset"
    ):
        trainer.fit(train, epochs=1)


@pytest.mark.parametrize(
    ("state", "error", "message"),
    [
        (
            {"epochs": [0, "x"], "history": {}},
            TypeError,
            r"History state 'epochs'\[1\] must be an int, got str 'x'",
        ),
        (
            {"epochs": [0, -1], "history": {}},
            ValueError,
            r"History state 'epochs'\[1\] must be >= 0",
        ),
        ({"epochs": 3, "history": {}}, TypeError, r"History state 'epochs' must be a list"),
        (
            {"epochs": [0], "history": {"loss": [1.0, 2.0]}},
            ValueError,
            r"'history'\['loss'\] has 2 values for 1 epochs",
        ),
        (
            {"epochs": [0], "history": {"loss": ["a"]}},
            TypeError,
            r"'history'\['loss'\]\[0\] must be a number",
        ),
        ({"history": {}}, KeyError, r"History state has no 'epochs'"),
    ],
)
def test_a_bad_history_state_names_the_callback_and_field(
    state: dict[str, Any], error: type[Exception], message: str
) -> None:
    history = History()
    with pytest.raises(error, match=message) as info:
        load_callback_states([history], {"History": state})
    assert info.value.__notes__ == [
        "while loading the checkpointed state of callback History (state_key 'History')"
    ]
    assert (history.epochs, history.history) == ([], {})  # nothing half-loaded


def test_a_good_history_state_loads_nan_included() -> None:
    history = History()
    history.load_state_dict({"epochs": [0, 1], "history": {"loss": [1, math.nan]}})
    assert history.epochs == [0, 1]
    assert history.history["loss"][0] == 1.0
    assert math.isnan(history.history["loss"][1])
