"""The data side of a fit: data sources, checked batches, and one epoch cut into chunks.

As Keras's ``EpochIterator``, [`EpochChunks`][] turns the training data into what the
epoch loop executes, so that the loop stays one loop whatever ``steps_per_execution``
is: each item is a tuple of batches, run by one compiled dispatch. With
``steps_per_execution=k > 1`` an item is a chunk of ``k`` consecutive batches of equal
shapes (the compiled chunk stacks them), and leftovers (fewer than ``k`` before the
data ends or its shapes change) come one batch at a time; with ``k = 1`` every item is
one batch. Every batch is checked against the structure of the fit's first batch and,
on a mesh, split over the data axis as it is fetched.

A chunk is fetched whole before any of its steps runs, and leftovers are known only
once the next batch (or the end) is fetched. When a stop or a discarded chunk leaves
fetched batches untrained, [`EpochChunks.give_back`][] rewinds a stateful batcher, so
that its position counts exactly the batches trained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, TypeAlias

import jax
import numpy as np

from artifex.generative_models.training._spmd import DataParallel
from artifex.generative_models.training.data import StatefulData
from artifex.generative_models.training.trainer._leaves import same

__all__ = ["DataSource", "EpochChunks", "checked_batches", "check_reiterable", "iterate"]

DataSource: TypeAlias = Iterable[Any] | Callable[[], Iterable[Any]]
"""Batches: a re-iterable (iterated once per epoch) or a callable returning a fresh one."""


def iterate(data: DataSource, name: str) -> Iterator[Any]:
    """Start one pass over ``data`` (calling it first if it is a factory).

    Raises:
        TypeError: If ``data`` is neither iterable nor a callable returning an iterable.
    """
    source: object = data
    if not isinstance(source, Iterable) and callable(source):
        source = source()
        if not isinstance(source, Iterable):
            raise TypeError(
                f"{name} is a callable, so it must return an iterable of batches; it "
                f"returned {type(source).__qualname__}"
            )
    if not isinstance(source, Iterable):
        raise TypeError(
            f"{name} must be an iterable of batches or a callable returning one, got "
            f"{type(data).__qualname__}"
        )
    return iter(source)


def check_reiterable(data: DataSource, name: str, epochs: int) -> None:
    """Refuse a one-shot iterator that would be iterated more than once.

    Raises:
        TypeError: If ``data`` is an iterator and ``epochs > 1``.
    """
    if isinstance(data, Iterator) and epochs > 1:
        raise TypeError(
            f"{name} is a one-shot iterator ({type(data).__qualname__}), but it is "
            f"iterated once per epoch and epochs={epochs}; pass a re-iterable (a list, an "
            "ArrayBatcher) or a callable that returns a fresh iterable"
        )


def checked_batches(
    data: DataSource, name: str, spmd: DataParallel | None
) -> Iterator[tuple[int, Any]]:
    """One evaluation pass: ``(index, batch)``, each batch of the first one's structure.

    Raises:
        ValueError: If a batch's structure differs from the first batch's.
    """
    first: Any = None
    for index, batch in enumerate(iterate(data, name)):
        treedef = jax.tree.structure(batch)
        if first is None:
            first = treedef
        elif not same(treedef, first):
            raise ValueError(
                f"{name} batch {index} has structure {treedef}, but the first had {first}"
            )
        yield index, batch if spmd is None else spmd.shard_batch(batch, name)


def _signature(leaves: list[Any]) -> tuple[tuple[tuple[int, ...], Any], ...]:
    """Shapes and dtypes: batches with equal signatures can share a chunk."""
    return tuple((np.shape(leaf), getattr(leaf, "dtype", None)) for leaf in leaves)


class EpochChunks:
    """The training data of one fit, cut into chunks epoch by epoch (see the module docs).

    Args:
        data: This fit's training data.
        chunk_size: Batches per chunk (``steps_per_execution``).
        spmd: The mesh placement, or ``None``.
    """

    __slots__ = ("_batch_def", "_fetched", "chunk_size", "data", "length", "spmd")

    def __init__(self, data: DataSource, *, chunk_size: int, spmd: DataParallel | None) -> None:
        self.data = data
        self.chunk_size = chunk_size
        self.spmd = spmd
        self.length: int | None = None
        """Batches in the current epoch, where the data is sized."""
        self._batch_def: Any = None  # every batch of a fit has the first one's structure
        self._fetched = 0  # batches of this epoch fetched so far, a resumed part included

    def epoch(self, epoch: int, start: int) -> Iterator[tuple[Any, ...]]:
        """One epoch's chunks, for an epoch whose first ``start`` batches already ran.

        Raises:
            ValueError: If a batch's structure differs from the first batch of this fit.
        """
        data: object = self.data
        self.length = len(data) if isinstance(data, Sized) else None
        self._fetched = start
        if start and self.length is not None and start >= self.length:
            return iter(())  # resumed after the epoch's last batch: nothing left
        batches = self._batches(epoch)
        return self._singles(batches) if self.chunk_size == 1 else self._chunks(batches)

    @property
    def fetched(self) -> int:
        """How many batches of the current epoch were fetched (a resumed part included)."""
        return self._fetched

    def give_back(self, batches: int) -> None:
        """Rewind a stateful batcher by ``batches`` fetched but untrained batches."""
        data: object = self.data
        if batches > 0 and isinstance(data, StatefulData):
            state = data.state_dict()
            if "position" in state:
                state["position"] = max(0, int(state["position"]) - batches)
                data.load_state_dict(state)

    def _batches(self, epoch: int) -> Iterator[tuple[Any, tuple[Any, ...]]]:
        """``(batch, signature)``: each batch checked, then placed on the mesh."""
        for batch in iterate(self.data, "train_data"):
            leaves, treedef = jax.tree.flatten(batch)
            if not same(treedef, self._batch_def):
                if self._batch_def is not None:
                    raise ValueError(
                        f"train_data batch {self._fetched} of epoch {epoch} has structure "
                        f"{treedef}, but the first batch of this fit had {self._batch_def}"
                    )
                self._batch_def = treedef
            self._fetched += 1
            if self.spmd is not None:
                batch = self.spmd.shard_batch(batch, "train_data")
            yield batch, _signature(leaves) if self.chunk_size > 1 else ()

    @staticmethod
    def _singles(batches: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, ...]]:
        for batch, _ in batches:
            yield (batch,)

    def _chunks(self, batches: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, ...]]:
        pending: list[Any] = []
        pending_signature: Any = None
        for batch, signature in batches:
            if pending and signature != pending_signature:
                yield from ((single,) for single in pending)  # leftovers of another shape
                pending = []
            pending.append(batch)
            pending_signature = signature
            if len(pending) == self.chunk_size:
                yield tuple(pending)
                pending = []
        yield from ((single,) for single in pending)
