"""A deterministic, seedable in-memory batcher for arrays, with a resumable position.

[`ArrayBatcher`][] cuts a pytree of arrays (NumPy or JAX, with a common leading
dimension) into batches. Iterating it yields the rest of the current pass over the
data; each pass (a *data epoch*) has its own permutation, a pure function of
``(seed, epoch)``, so runs are reproducible and a saved position
([`ArrayBatcher.state_dict`][]) resumes exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from typing_extensions import Protocol, runtime_checkable

from artifex.generative_models.training._checks import check_bool, check_int, describe

__all__ = ["ArrayBatcher", "StatefulData"]

T = TypeVar("T")


@runtime_checkable
class StatefulData(Protocol):
    """Training data whose position can be saved and restored (``ArrayBatcher`` is one).

    The contract, which the trainer relies on for exact resumes:

    - [`state_dict`][] returns the position as a new dict (the trainer keeps it, so later
      iteration must not change it) holding only JSON values: Python ``int``,
      ``float``, ``bool``, ``str``, ``None``, ``bytes``, and lists and dicts of them.
    - After ``load_state_dict(s)``, the next ``iter(data)`` continues from ``s``: it
      yields the batches that followed the position ``s`` was taken at.
    - ``state_dict()`` taken between two batches of an iteration describes the
      position after the batches yielded so far (so the state has to advance as
      batches are yielded, not when the iteration ends).

    ``load_state_dict`` receives Python values, never arrays: a checkpoint stores the
    state as JSON (``bytes`` as base64), and a format-4 checkpoint's 0-d arrays are
    turned back into Python scalars before the call.

    With ``steps_per_execution > 1``, or where it prefetches (on an accelerator), the
    trainer takes ``state_dict()`` before fetching each batch, and after a stop or a
    failure with batches fetched but not trained it loads the one taken before the
    first untrained batch: one ``state_dict()`` call per batch, and no batch is fetched
    twice. Otherwise it never calls ``state_dict()`` between checkpoints.
    """

    def state_dict(self) -> dict[str, Any]:
        """Return the position as a new dict of JSON values (see the class docs)."""
        ...

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        """Restore what [`state_dict`][] returned; the next ``iter()`` continues there.

        Args:
            state: A dict [`state_dict`][] returned, with Python values.
        """
        ...


def _take_rows(tree: Any, index: jax.Array) -> Any:
    return jax.tree.map(lambda leaf: jnp.take(leaf, index, axis=0), tree)


_take_rows_jit = jax.jit(_take_rows)


class ArrayBatcher(Generic[T]):
    """Deterministic, seedable batches of a pytree of in-memory arrays.

    Every leaf of ``data`` must be an array with the same leading dimension (the number
    of examples). Each batch has the same pytree structure as ``data``. NumPy leaves
    are indexed on the host (the trainer transfers them: on an accelerator it prefetches
    the next batch with ``jax.device_put`` while a step runs); JAX leaves
    are gathered on their device by one jitted call per batch.

    Iterating yields the remaining batches of the current data epoch, starting at the
    saved position; when a pass is exhausted the epoch advances and the position
    returns to 0, so ``iter()`` once per training epoch gives one pass each. With
    ``shuffle=True``, data epoch ``e`` uses the permutation drawn from
    ``numpy.random.default_rng((seed, e))``. The last batch is smaller when the number
    of examples is not a multiple of ``batch_size``, unless ``drop_last=True``, which
    drops it (a ragged last batch costs the trainer one extra compilation).

    In a multi-process job, give every process the same ``data``, ``seed`` and
    (global) ``batch_size``, and its own ``process_index`` out of ``process_count``:
    each process then yields its contiguous share of every global batch, in process
    order, which is what a data-parallel trainer expects of each process.

    Not safe for two concurrent iterations: they share the position.

    Args:
        data: A pytree of arrays with a common leading dimension of at least 1.
        batch_size: Examples per batch (>= 1).
        shuffle: Whether to permute the examples differently in each data epoch.
        seed: The shuffling seed (>= 0).
        drop_last: Whether to drop a last batch smaller than ``batch_size``.
        process_index: This process's index in a multi-process job (>= 0).
        process_count: How many processes share each batch (>= 1).

    Raises:
        TypeError: If an option has the wrong type or a leaf is not an array.
        ValueError: If ``data`` is empty or has no leaves, leading dimensions differ,
            ``drop_last`` leaves no batch at all, ``process_index`` is not below
            ``process_count``, or a batch (the last one included) does not split
            evenly over the processes.
    """

    __slots__ = (
        "_batch_size",
        "_data",
        "_drop_last",
        "_epoch",
        "_leaves",
        "_num_batches",
        "_num_examples",
        "_on_device",
        "_position",
        "_process_count",
        "_process_index",
        "_seed",
        "_shuffle",
        "_treedef",
    )

    def __init__(
        self,
        data: T,
        *,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        process_index: int = 0,
        process_count: int = 1,
    ) -> None:
        self._batch_size = check_int("batch_size", batch_size, minimum=1)
        self._process_count = check_int("process_count", process_count, minimum=1)
        self._process_index = check_int("process_index", process_index, minimum=0)
        if self._process_index >= self._process_count:
            raise ValueError(
                f"process_index must be < process_count={process_count}, got {process_index}"
            )
        self._seed = check_int("seed", seed, minimum=0)
        check_bool("shuffle", shuffle)
        check_bool("drop_last", drop_last)
        self._shuffle = shuffle
        self._drop_last = drop_last
        leaves, self._treedef = jax.tree.flatten(data)
        if not leaves:
            raise ValueError(f"data must hold at least one array, got {describe(data)}")
        sizes: set[int] = set()
        for leaf in leaves:
            if not isinstance(leaf, np.ndarray | jax.Array):
                raise TypeError(
                    f"every leaf of data must be a NumPy or JAX array, got {describe(leaf)}"
                )
            if leaf.ndim == 0:
                raise ValueError("every leaf of data needs a leading (example) axis; got a scalar")
            sizes.add(int(leaf.shape[0]))
        if len(sizes) != 1:
            raise ValueError(
                f"the leaves of data have different leading dimensions: {sorted(sizes)}"
            )
        self._num_examples = sizes.pop()
        if self._num_examples == 0:
            raise ValueError("data is empty: its leading dimension is 0")
        full, rest = divmod(self._num_examples, self._batch_size)
        self._num_batches = full if drop_last or rest == 0 else full + 1
        if self._num_batches == 0:
            raise ValueError(
                f"drop_last=True with batch_size={self._batch_size} > "
                f"{self._num_examples} examples leaves no batch"
            )
        last = self._batch_size if drop_last or rest == 0 else rest
        for size, which in ((self._batch_size, "batch_size"), (last, "the last batch")):
            if size % self._process_count:
                raise ValueError(
                    f"{which} ({size} examples) does not split evenly over "
                    f"process_count={process_count} processes; use a multiple of it"
                    + (", or drop_last=True" if which == "the last batch" else "")
                )
        self._data = data
        self._leaves: list[np.ndarray | jax.Array] = leaves
        on_device = [isinstance(leaf, jax.Array) for leaf in leaves]
        self._on_device = "all" if all(on_device) else "some" if any(on_device) else "none"
        self._epoch = 0
        self._position = 0

    # ------------------------------------------------------------------ properties

    @property
    def batch_size(self) -> int:
        """Examples per batch."""
        return self._batch_size

    @property
    def num_examples(self) -> int:
        """The number of examples (the leading dimension of ``data``)."""
        return self._num_examples

    @property
    def epoch(self) -> int:
        """The current data epoch (how many full passes have completed)."""
        return self._epoch

    @property
    def position(self) -> int:
        """How many batches of the current data epoch have been yielded."""
        return self._position

    def __len__(self) -> int:
        """The number of batches in one full pass."""
        return self._num_batches

    def __repr__(self) -> str:
        return (
            f"ArrayBatcher(num_examples={self._num_examples}, batch_size={self._batch_size}, "
            f"shuffle={self._shuffle}, seed={self._seed}, drop_last={self._drop_last}, "
            f"epoch={self._epoch}, position={self._position}"
            + (
                f", process_index={self._process_index}, process_count={self._process_count})"
                if self._process_count > 1
                else ")"
            )
        )

    # ------------------------------------------------------------------ iteration

    def order(self, epoch: int) -> np.ndarray:
        """The example order of data epoch ``epoch`` (a pure function of seed and epoch).

        Args:
            epoch: The data epoch (>= 0).

        Returns:
            An ``int64`` array of the ``num_examples`` example indices.
        """
        if not self._shuffle:
            return np.arange(self._num_examples)
        return np.random.default_rng((self._seed, epoch)).permutation(self._num_examples)

    def _batch(self, index: np.ndarray) -> T:
        if self._on_device == "all":
            return _take_rows_jit(self._data, jnp.asarray(index))  # type: ignore[no-any-return]  # data's structure
        # the leaves flattened once (a tree map per batch costs more than the indexing)
        if self._on_device == "none":
            rows = [leaf[index] for leaf in self._leaves]
        else:
            device_index = jnp.asarray(index)
            rows = [
                leaf[index] if isinstance(leaf, np.ndarray) else _take_rows_jit(leaf, device_index)
                for leaf in self._leaves
            ]
        return jax.tree.unflatten(self._treedef, rows)  # type: ignore[no-any-return]  # data's structure

    def __iter__(self) -> Iterator[T]:
        """Yield the remaining batches of the current data epoch, then advance the epoch."""
        if self._position >= self._num_batches:
            self._epoch, self._position = self._epoch + 1, 0
        order = self.order(self._epoch)
        size = self._batch_size
        while self._position < self._num_batches:
            start = self._position * size
            index = order[start : start + size]
            if self._process_count > 1:
                share = len(index) // self._process_count
                index = index[self._process_index * share : (self._process_index + 1) * share]
            self._position += 1
            yield self._batch(index)
        self._epoch, self._position = self._epoch + 1, 0

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Return the position: ``{"seed", "epoch", "position"}`` as Python ints.

        Returns:
            A dict that [`load_state_dict`][] accepts.
        """
        return {"seed": self._seed, "epoch": self._epoch, "position": self._position}

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        """Restore a position saved by [`state_dict`][].

        Args:
            state: A dict with ``"seed"``, ``"epoch"`` and ``"position"``.

        Raises:
            KeyError: If a key is missing (the message names it).
            TypeError: If a value is not an int.
            ValueError: If a value is out of range.
        """
        for key in ("seed", "epoch", "position"):
            if key not in state:
                raise KeyError(f"batcher state lacks {key!r}; got keys {sorted(state)}")
        seed = check_int("state['seed']", _as_int(state["seed"]), minimum=0)
        epoch = check_int("state['epoch']", _as_int(state["epoch"]), minimum=0)
        position = check_int("state['position']", _as_int(state["position"]), minimum=0)
        if position > self._num_batches:
            raise ValueError(
                f"state['position'] must be <= {self._num_batches} (batches per epoch), "
                f"got {position}"
            )
        self._seed, self._epoch, self._position = seed, epoch, position


def _as_int(value: object) -> object:
    """Accept 0-d integer arrays (as restored from a checkpoint) as Python ints."""
    if (
        isinstance(value, np.ndarray | jax.Array)
        and value.ndim == 0
        and np.issubdtype(value.dtype, np.integer)
    ):
        return int(value)
    return value
