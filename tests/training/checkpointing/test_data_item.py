"""The ``data`` item's JSON: what a data position holds comes back as it was saved."""

from __future__ import annotations

import json
from pathlib import Path

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
    saved = json.loads(json.dumps(encode_data(state)))
    assert decode_data(saved) == {**state, "scalar": 7}
    assert type(decode_data(saved)["scalar"]) is int


def test_tuples_come_back_as_lists() -> None:
    assert decode_data(encode_data({"t": (1, (2, 3))})) == {"t": [1, [2, 3]]}


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
        encode_data(state)


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
