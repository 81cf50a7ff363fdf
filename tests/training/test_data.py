"""ArrayBatcher: determinism, shuffling, drop_last, and saving/restoring its position."""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from artifex.generative_models.training import ArrayBatcher, StatefulData


def rows(batches: list[Any]) -> list[list[int]]:
    return [np.asarray(b["i"]).tolist() for b in batches]


def make(n: int, **options: Any) -> ArrayBatcher[dict[str, np.ndarray]]:
    return ArrayBatcher({"i": np.arange(n), "x": np.ones((n, 3))}, **options)


def test_no_shuffle_in_order_with_ragged_last() -> None:
    batcher = make(10, batch_size=4, shuffle=False)
    assert len(batcher) == 3
    assert rows(list(batcher)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batcher.state_dict() == {"seed": 0, "epoch": 1, "position": 0}


def test_drop_last() -> None:
    batcher = make(10, batch_size=4, shuffle=False, drop_last=True)
    assert len(batcher) == 2
    assert rows(list(batcher)) == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_shuffle_is_a_permutation_per_epoch_determined_by_seed() -> None:
    a, b, c = (make(20, batch_size=6, seed=s) for s in (1, 1, 2))
    epochs_a = [list(itertools.chain(*rows(list(a)))) for _ in range(3)]
    epochs_b = [list(itertools.chain(*rows(list(b)))) for _ in range(3)]
    epochs_c = [list(itertools.chain(*rows(list(c)))) for _ in range(3)]
    assert epochs_a == epochs_b
    assert epochs_a != epochs_c
    assert all(sorted(e) == list(range(20)) for e in epochs_a)
    assert epochs_a[0] != epochs_a[1]  # a new permutation each epoch


def test_batches_have_the_data_structure_and_work_on_device() -> None:
    data = (jnp.arange(9.0), {"y": jnp.arange(9)})
    batcher = ArrayBatcher(data, batch_size=4, seed=3)
    first = next(iter(batcher))
    structure: object = jax.tree.structure(first)
    assert structure == jax.tree.structure(data)
    assert isinstance(first[0], jax.Array)
    np.testing.assert_array_equal(np.asarray(first[0]), np.asarray(first[1]["y"], np.float32))
    assert np.asarray(first[0]).tolist() == batcher.order(0)[:4].tolist()


def test_mixed_numpy_and_jax_leaves() -> None:
    batcher = ArrayBatcher((np.arange(6), jnp.arange(6)), batch_size=3, seed=0)
    for a, b in batcher:
        assert isinstance(a, np.ndarray)
        assert isinstance(b, jax.Array)
        assert a.tolist() == np.asarray(b).tolist()


@settings(deadline=None, max_examples=25)
@given(
    n=st.integers(1, 30),
    batch_size=st.integers(1, 8),
    drop_last=st.booleans(),
    cut=st.integers(0, 60),
)
def test_save_and_restore_position_resumes_exactly(
    n: int, batch_size: int, drop_last: bool, cut: int
) -> None:
    if drop_last and n < batch_size:
        with pytest.raises(ValueError, match="leaves no batch"):
            make(n, batch_size=batch_size, drop_last=drop_last)
        return
    reference = make(n, batch_size=batch_size, seed=4, drop_last=drop_last)
    stream = [rows(list(reference)) for _ in range(3)]
    flat = list(itertools.chain(*stream))
    cut = min(cut, len(flat))

    first = make(n, batch_size=batch_size, seed=4, drop_last=drop_last)
    seen: list[list[int]] = []
    while len(seen) < cut:
        for batch in first:
            seen.extend(rows([batch]))
            if len(seen) == cut:
                break
    saved = first.state_dict()
    resumed = make(n, batch_size=batch_size, seed=0, drop_last=drop_last)
    resumed.load_state_dict({k: np.asarray(v) for k, v in saved.items()})  # as from a checkpoint
    assert resumed.state_dict() == saved
    while len(seen) < len(flat):
        seen.extend(rows(list(resumed)))
    assert seen == flat


def test_is_stateful_data() -> None:
    assert isinstance(make(3, batch_size=2), StatefulData)


@pytest.mark.parametrize(
    ("data", "options", "error", "message"),
    [
        ({}, {"batch_size": 2}, ValueError, "at least one array"),
        (np.zeros((0, 2)), {"batch_size": 2}, ValueError, "data is empty"),
        ((np.zeros(3), np.zeros(4)), {"batch_size": 2}, ValueError, "different leading"),
        (np.asarray(1.0), {"batch_size": 2}, ValueError, "leading"),
        ([1, 2], {"batch_size": 2}, TypeError, "NumPy or JAX array, got int"),
        (np.zeros(3), {"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
        (np.zeros(3), {"batch_size": 2.0}, TypeError, "batch_size must be an int"),
        (np.zeros(3), {"batch_size": 2, "seed": -1}, ValueError, "seed must be >= 0"),
        (np.zeros(3), {"batch_size": 2, "shuffle": 1}, TypeError, "shuffle must be a bool"),
        (np.zeros(8), {"batch_size": 4, "process_count": 0}, ValueError, "process_count must be"),
        (
            np.zeros(8),
            {"batch_size": 4, "process_index": 2, "process_count": 2},
            ValueError,
            "process_index must be < process_count=2, got 2",
        ),
        (
            np.zeros(8),
            {"batch_size": 3, "process_count": 2},
            ValueError,
            r"batch_size \(3 examples\) does not split evenly over process_count=2",
        ),
        (
            np.zeros(10),
            {"batch_size": 4, "process_count": 4, "drop_last": False, "shuffle": False},
            ValueError,
            r"the last batch \(2 examples\)",
        ),
        (
            np.zeros(11),
            {"batch_size": 4, "process_count": 2},
            ValueError,
            "or drop_last=True",
        ),
    ],
)
def test_bad_input(
    data: Any, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ArrayBatcher(data, **options)


def test_bad_state() -> None:
    batcher = make(10, batch_size=4)
    with pytest.raises(KeyError, match="'position'"):
        batcher.load_state_dict({"seed": 0, "epoch": 0})
    with pytest.raises(ValueError, match="position'\\] must be <= 3"):
        batcher.load_state_dict({"seed": 0, "epoch": 0, "position": 4})
    with pytest.raises(TypeError, match="epoch'\\] must be an int"):
        batcher.load_state_dict({"seed": 0, "epoch": 0.5, "position": 0})


@given(
    processes=st.integers(1, 4),
    share=st.integers(1, 3),
    batches=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=25)
def test_process_shares_concatenate_to_the_single_process_batches(
    processes: int, share: int, batches: int, seed: int
) -> None:
    n = processes * share * batches
    whole = rows(list(make(n, batch_size=processes * share, seed=seed)))
    parts = [
        rows(
            list(
                make(
                    n,
                    batch_size=processes * share,
                    seed=seed,
                    process_index=i,
                    process_count=processes,
                )
            )
        )
        for i in range(processes)
    ]
    joined = [
        list(itertools.chain.from_iterable(part[b] for part in parts)) for b in range(batches)
    ]
    assert joined == whole
    assert all(len(batch) == share for part in parts for batch in part)
