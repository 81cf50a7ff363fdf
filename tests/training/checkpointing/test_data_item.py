"""The ``data`` item's JSON: what a data position holds comes back as it was saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from artifex.generative_models.training._checkpointing._data_item import (
    DataHandler,
    decode_data,
    encode_data,
)


def test_bytes_nested_dicts_and_scalars_round_trip_through_json() -> None:
    state = {
        "grain": b'{"version": 2}\x00\xff',
        "nested": {"a": [1, 2.5, None, True, "s"], "b": {"c": b""}},
        "scalar": np.int64(7),
    }
    saved = json.loads(json.dumps(encode_data(state, step=3, run="r")))
    assert _decode(saved) == {**state, "scalar": 7}
    assert type(_decode(saved)["scalar"]) is int


def _decode(saved: object, step: int = 3, run: str = "r") -> Any:
    return decode_data(saved, "checkpoint step 3", step=step, run=run)


def test_tuples_come_back_as_lists() -> None:
    assert _decode(encode_data({"t": (1, (2, 3))}, step=3, run="r")) == {"t": [1, [2, 3]]}


def test_a_changed_position_or_another_checkpoints_item_is_refused() -> None:
    saved = encode_data({"position": 4}, step=3, run="r")
    with pytest.raises(ValueError, match=r"step 3 is damaged: its 'data' item fails its own"):
        _decode({**saved, "state": {"position": 5}})
    with pytest.raises(ValueError, match=r"'data' item was saved for step 3 of run 'r', not"):
        _decode(saved, step=9)
    with pytest.raises(ValueError, match=r"saved for step 3 of run 'r', not for step 3 of run 'x'"):
        _decode(saved, run="x")


@pytest.mark.parametrize(
    ("state", "match"),
    [
        (
            {"a": {"b": object()}},
            r"state_dict\(\)\['a'\]\['b'\] is of type object, which a checkpoint",
        ),
        ({"a": np.zeros(3)}, r"state_dict\(\)\['a'\] is of type ndarray"),
        ({"a": {1: 2}}, r"state_dict\(\)\['a'\] has the key 1 \(int\); .* string keys"),
    ],
)
def test_a_value_a_checkpoint_cannot_hold_is_named(state: object, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        encode_data(state, step=0, run="r")


def test_each_process_reads_its_own_file_else_process_0s(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "process_0-of-1.json").write_text('{"state": 1}')
    (mine / "process_0-of-2.json").write_text('{"state": 2}')
    assert DataHandler().restore(mine) == {"state": 1}  # this one process's file
    other = tmp_path / "two_processes"
    other.mkdir()
    for index in (1, 0):
        (other / f"process_{index}-of-2.json").write_text(f'{{"state": {10 + index}}}')
    assert DataHandler().restore(other) == {"state": 10}  # index 0 saved it: the same index
