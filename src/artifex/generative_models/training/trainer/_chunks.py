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
fetched batches untrained, [`EpochChunks.give_back`][] rewinds a ``StatefulData``
through its protocol alone: with ``steps_per_execution > 1`` its ``state_dict()`` is
taken before each batch is fetched, and the one before the first untrained batch is
loaded back, so that its position counts exactly the batches trained.

With ``steps_per_epoch``, one iterator lives across the epochs of a fit and each epoch
draws that many batches from it (fewer where it ends; the next epoch then starts a new
pass). Data without a saved position resumed inside an epoch replays the epoch from its
start and skips (draws, does not train) the batches already trained, with a warning.

Where a host-to-device transfer can overlap a step (on an accelerator, see
[`transfers_overlap`][]), batches are prefetched: [`EpochChunks.ahead`][], called right
after a step is dispatched, draws the next batch and starts its transfer
(``jax.device_put`` of its non-JAX leaves; JAX leaves stay as they are). Only data that
can be put back is drawn ahead: a ``StatefulData`` (rewound by the same per-batch
``state_dict()`` marks as a chunk) or a list or tuple (which nothing can observe); a
plain iterator or generator never is, and a ``steps_per_epoch`` stream is never drawn
past its epoch's last batch. The prefetch is invisible to positions: while a batch is
drawn ahead, [`EpochChunks.held_state`][] gives the position before it (the trainer's
``state_dict()`` reports that one), and a stop, a failure or a discarded chunk puts it
back.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, Literal, TypeAlias

import jax
import numpy as np

from artifex.generative_models.training._checks import check_int
from artifex.generative_models.training._grain import (
    ENDLESS_LENGTH,
    GrainData,
    grain_data,
    grain_source,
    is_endless_grain,
)
from artifex.generative_models.training._spmd import DataParallel
from artifex.generative_models.training.data import StatefulData
from artifex.generative_models.training.trainer._leaves import same

__all__ = [
    "DataResume",
    "DataSource",
    "EpochChunks",
    "ReplayedDataWarning",
    "check_reiterable",
    "check_training_data",
    "checked_batches",
    "iterate",
]

DataSource: TypeAlias = Iterable[Any] | Callable[[], Iterable[Any]]
"""Batches: a re-iterable (iterated once per epoch) or a callable returning a fresh one."""

DataResume: TypeAlias = Literal["replay", "refuse"]
"""What a fit resumed inside an epoch does with data that has no saved position."""


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


def check_training_data(
    data: DataSource,
    current: object,
    epochs: int,
    steps_per_epoch: int | None,
    data_resume: DataResume,
) -> DataSource:
    """Check ``fit``'s training data and options; return the data the fit iterates.

    A grain dataset or loader becomes a [`GrainData`][] (the one of ``current``, the
    trainer's data so far, where it wraps the same object, so its live iterator goes on).

    Raises:
        TypeError: If ``data`` is a one-shot iterator iterated more than once, or an
            option has the wrong type.
        ValueError: If ``data`` is endless and ``steps_per_epoch`` is ``None``, or an
            option is out of range.
    """
    if steps_per_epoch is not None:
        check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    if data_resume not in ("replay", "refuse"):
        raise ValueError(f"data_resume must be 'replay' or 'refuse', got {data_resume!r}")
    if steps_per_epoch is None and _endless(data):
        raise ValueError(
            f"train_data ({type(data).__qualname__}) is endless, so an epoch would never "
            "end; pass steps_per_epoch=N (the batches of one epoch) to fit"
        )
    check_reiterable(data, "train_data", epochs if steps_per_epoch is None else 1)
    if not grain_source(data):
        return data
    if isinstance(current, GrainData) and current.source is data:
        return current
    return grain_data(data)


def _endless(data: object) -> bool:
    """Whether ``data`` is known to be endless (see docs/lifecycle.md for what is known)."""
    if isinstance(data, itertools.count | itertools.cycle):
        return True
    if grain_source(data):
        return is_endless_grain(data)
    try:
        return len(data) >= ENDLESS_LENGTH  # type: ignore[arg-type]  # probed  # ty: ignore[invalid-argument-type]
    except TypeError:
        return False


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


def transfers_overlap() -> bool:
    """Whether a batch's transfer to the device can overlap a running step.

    Not on a CPU: host and device share memory, and there ``jax.device_put`` costs the
    host more than the transfer inside the jitted call it would save.
    """
    return jax.default_backend() != "cpu"


def _signature(leaves: list[Any]) -> tuple[tuple[tuple[int, ...], Any], ...]:
    """Shapes and dtypes: batches with equal signatures can share a chunk."""
    return tuple((np.shape(leaf), getattr(leaf, "dtype", None)) for leaf in leaves)


def _placed(batch: Any, leaves: list[Any], treedef: Any) -> Any:
    """``batch`` with its NumPy leaves put on the device (asynchronously), the rest as is.

    A leaf JAX cannot take leaves the batch as it is: the step then names the leaf.
    """
    host = [index for index, leaf in enumerate(leaves) if isinstance(leaf, np.ndarray)]
    if not host:
        return batch
    placed = list(leaves)
    try:
        for index, array in zip(host, jax.device_put([leaves[i] for i in host]), strict=True):
            placed[index] = array
    except Exception:  # JAX's, for a dtype it cannot take: explained at the step
        return batch
    return jax.tree.unflatten(treedef, placed)


_END: Any = object()  # the end of the data, for next(iterator, _END)


class _Failed:
    """A prefetch's error, raised where the loop takes the batch it failed to draw."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class EpochChunks:
    """The training data of one fit, cut into chunks epoch by epoch (see the module docs).

    Args:
        data: This fit's training data.
        chunk_size: Batches per chunk (``steps_per_execution``).
        spmd: The mesh placement, or ``None``.
        steps_per_epoch: Batches per epoch drawn from one iterator that lives across
            epochs, or ``None`` (an epoch is one pass, a fresh iterator each).
        replay: Whether the first epoch, resumed inside, replays its start: its
            trained batches are drawn and skipped (data without a saved position).
    """

    __slots__ = (
        "_ahead",
        "_batch_def",
        "_drawn",
        "_fetched",
        "_live",
        "_marks",
        "_replay",
        "_source",
        "chunk_size",
        "data",
        "length",
        "prefetch",
        "spmd",
        "steps_per_epoch",
    )

    def __init__(
        self,
        data: DataSource,
        *,
        chunk_size: int,
        spmd: DataParallel | None,
        steps_per_epoch: int | None = None,
        replay: bool = False,
    ) -> None:
        self.data = data
        self.chunk_size = chunk_size
        self.spmd = spmd
        self.steps_per_epoch = steps_per_epoch
        self.length: int | None = None
        """Batches in the current epoch, where the data is sized (or ``steps_per_epoch``)."""
        self.prefetch = transfers_overlap() and isinstance(data, StatefulData | list | tuple)
        """Whether the next batch is drawn (and its transfer started) after each dispatch."""
        self._batch_def: Any = None  # every batch of a fit has the first one's structure
        self._fetched = 0  # batches of this epoch handed to the loop, a resumed part included
        self._drawn = 0  # ... and drawn from the data: one more while one is drawn ahead
        self._live: Iterator[Any] | None = None  # the iterator steps_per_epoch keeps
        self._replay = replay
        self._source: Iterator[tuple[Any, Any]] | None = None  # the epoch's checked batches
        self._ahead: list[Any] = []  # the batch drawn ahead (or _END, or _Failed)
        # (batches drawn, data.state_dict()) before each draw, for give_back
        self._marks: deque[tuple[int, dict[str, Any]]] = deque(maxlen=chunk_size + 3)

    def epoch(self, epoch: int, start: int) -> Iterator[tuple[Any, ...]]:
        """One epoch's chunks, for an epoch whose first ``start`` batches already ran.

        Raises:
            ValueError: If a batch's structure differs from the first batch of this fit,
                or replayed data ends before the batches to skip.
        """
        data: object = self.data
        self.length = len(data) if isinstance(data, Sized) else None
        if self.steps_per_epoch is not None:  # shorter only where the data ends
            self.length = self.steps_per_epoch
        self._fetched = self._drawn = start
        self._marks.clear()
        self._ahead.clear()
        self._source = None
        if start and self.length is not None and start >= self.length:
            return iter(())  # resumed after the epoch's last batch: nothing left
        self._source = self._batches(epoch, start)
        batches = self._handed(self._source)
        return self._singles(batches) if self.chunk_size == 1 else self._chunks(batches)

    @property
    def fetched(self) -> int:
        """How many batches of the current epoch were fetched (a resumed part included)."""
        return self._fetched

    def give_back(self, batches: int) -> None:
        """Rewind a stateful batcher by ``batches`` fetched but untrained batches.

        Loads the ``state_dict()`` taken before the first untrained batch was fetched;
        a batch drawn ahead (a prefetch) is put back too, whatever ``batches`` is.
        """
        data: object = self.data
        ahead = bool(self._ahead)
        self._ahead.clear()
        if (batches <= 0 and not ahead) or not isinstance(data, StatefulData):
            return
        data.load_state_dict(self._mark(self._fetched - max(batches, 0)))
        self._live = None  # the next epoch's iter() continues from the state

    def held_state(self) -> dict[str, Any] | None:
        """The data's position as of the batches handed to the loop, while one is drawn ahead.

        ``None`` where nothing is drawn ahead (the data's own ``state_dict()`` is right).
        """
        data: object = self.data
        if not self._ahead or not isinstance(data, StatefulData):
            return None
        return copy.deepcopy(self._mark(self._fetched))  # the caller keeps it

    def ahead(self) -> None:
        """Draw the next batch now and start its transfer, where prefetching.

        An error drawing it is raised where the loop takes that batch.
        """
        if not self.prefetch or self._ahead or self._source is None:
            return
        try:
            self._ahead.append(next(self._source, _END))
        except Exception as error:  # the data's, or a batch check's: raised in its turn
            self._ahead.append(_Failed(error))

    def _mark(self, drawn: int) -> dict[str, Any]:
        """The ``state_dict()`` taken before the data's batch ``drawn`` was drawn."""
        for index, state in self._marks:
            if index == drawn:
                return state
        raise RuntimeError(  # pragma: no cover - the marks cover every untrained batch
            f"no data position was kept before batch {drawn}"
        )

    def _draw(self, epoch: int, start: int) -> Iterator[Any]:
        """The epoch's raw batches: a new pass, or the next ones of the live iterator.

        A live iterator that ends before its first batch of the epoch is replaced by
        a new pass.
        """
        carried = self._live is not None
        while True:
            if self._live is None:
                self._live = iterate(self.data, "train_data")
            source = self._live
            if self._replay:
                self._replay = False
                _skip(source, start, epoch)
            limit = None if self.steps_per_epoch is None else self.steps_per_epoch - start
            drawn = 0
            for batch in itertools.islice(source, limit):
                drawn += 1
                yield batch
            if limit is not None and drawn == limit:
                return  # the epoch is complete: the iterator lives on
            self._live = None  # the data ended: the next epoch starts a new pass
            if drawn or not carried:
                return
            carried = False

    def _batches(self, epoch: int, start: int) -> Iterator[tuple[Any, tuple[Any, ...]]]:
        """``(batch, signature)``: each batch checked, then placed (on the mesh, or prefetched)."""
        data: object = self.data
        rewinds = self.chunk_size > 1 or self.prefetch
        mark = data.state_dict if rewinds and isinstance(data, StatefulData) else None
        source = self._draw(epoch, start)
        while True:
            if mark is not None:
                self._marks.append((self._drawn, mark()))
            batch = next(source, _END)
            if batch is _END:
                return
            leaves, treedef = jax.tree.flatten(batch)
            if not same(treedef, self._batch_def):
                if self._batch_def is not None:
                    raise ValueError(
                        f"train_data batch {self._drawn} of epoch {epoch} has structure "
                        f"{treedef}, but the first batch of this fit had {self._batch_def}"
                    )
                self._batch_def = treedef
            self._drawn += 1
            if self.spmd is not None:
                batch = self.spmd.shard_batch(batch, "train_data")
            elif self.prefetch:
                batch = _placed(batch, leaves, treedef)
            yield batch, _signature(leaves) if self.chunk_size > 1 else ()

    def _handed(self, batches: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
        """The checked batches as the loop takes them: the one drawn ahead first."""
        while True:
            item = self._ahead.pop() if self._ahead else next(batches, _END)
            if isinstance(item, _Failed):
                raise item.error
            if item is _END:
                self._source = None
                return
            self._fetched += 1
            yield item

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


def _skip(source: Iterator[Any], batches: int, epoch: int) -> None:
    """Draw and drop the ``batches`` already trained of a replayed epoch; warn once.

    Raises:
        ValueError: If the data ends before.
    """
    if not batches:
        return
    drawn = sum(1 for _ in itertools.islice(source, batches))
    if drawn < batches:
        raise ValueError(
            f"train_data has no saved position, so the resumed epoch {epoch} was replayed "
            f"from its start to skip the {batches} batches already trained, but it yielded "
            f"only {drawn}: it does not yield the same batches again"
        )
    warnings.warn(
        f"train_data has no saved position: epoch {epoch} was replayed from its start and "
        f"its first {batches} batches (already trained) were skipped; the resume is exact "
        "only if the data yields the same batches again",
        ReplayedDataWarning,
        stacklevel=2,
    )


class ReplayedDataWarning(UserWarning):
    """A resumed fit replayed data without a saved position and skipped trained batches."""
