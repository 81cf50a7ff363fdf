"""grain data as a ``StatefulData``: the live iterator, its state saved and restored.

A grain dataset keeps no position: its iterator does, and ``iter()`` starts a new one
each time. [`GrainData`][] holds the live iterator of a ``grain.MapDataset``,
``grain.IterDataset`` or ``grain.DataLoader`` across epochs (and across ``fit`` calls on
the same trainer), so that ``state_dict()`` is the iterator's ``get_state()`` (a nested
dict for a dataset iterator, bytes for a ``DataLoaderIterator``) and
``load_state_dict`` a new iterator's ``set_state()``. grain is imported only where a
user's object is already one of its types (``sys.modules``), never by this module.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

ENDLESS_LENGTH = sys.maxsize >> 16
"""A length no finite data has: ``repeat()``'s ``sys.maxsize``, even divided by a batch size."""

__all__ = [
    "ENDLESS_LENGTH",
    "GrainData",
    "SizedGrainData",
    "grain_data",
    "grain_source",
    "is_endless_grain",
]


def grain_source(data: object) -> bool:
    """Whether ``data`` is a grain ``MapDataset``, ``IterDataset`` or ``DataLoader``."""
    grain: Any = sys.modules.get("grain")
    if grain is None:
        return False  # grain was never imported, so data is none of its types
    return isinstance(data, grain.MapDataset | grain.IterDataset | grain.DataLoader)


def is_endless_grain(data: object) -> bool:
    """Whether a grain dataset repeats forever, as far as its public API tells.

    A ``MapDataset`` is endless when its length is near ``sys.maxsize`` (``repeat()``
    without ``num_epochs`` sets it, and a ``batch`` after it divides it); an
    ``IterDataset`` when a ``MapDataset`` it is built on is (through ``parents``). A
    ``DataLoader``'s sampler cannot be asked: never detected.
    """
    grain: Any = sys.modules.get("grain")
    dataset: Any = data  # grain's types are not known statically
    if grain is None:
        return False
    if isinstance(dataset, grain.MapDataset):
        return len(dataset) >= ENDLESS_LENGTH
    if isinstance(dataset, grain.IterDataset):
        return any(is_endless_grain(parent) for parent in dataset.parents)
    return False


class GrainData:
    """A grain dataset or data loader whose live iterator is the training position.

    Iterating yields the rest of the live iterator (a new one where there is none, or
    where the live one has ended before yielding anything), so an ``iter()`` per epoch
    gives one pass each, and a ``load_state_dict`` makes the next ``iter()`` continue
    at the loaded position.

    Args:
        source: A ``grain.MapDataset``, ``grain.IterDataset`` or ``grain.DataLoader``.
    """

    __slots__ = ("_live", "source")

    def __init__(self, source: Any) -> None:
        self.source = source
        self._live: Any = None

    def __iter__(self) -> Iterator[Any]:
        """Yield the rest of the live iterator, or of a new pass if it has ended."""
        if self._live is not None:  # carried over: continue it
            yielded = False
            for batch in self._live:
                yielded = True
                yield batch
            self._live = None
            if yielded:
                return
        self._live = iter(self.source)
        for batch in self._live:  # not ``yield from``: closing this must not close it
            yield batch
        self._live = None

    def state_dict(self) -> dict[str, Any]:
        """``{"grain": iterator.get_state()}``, or ``{"grain": None}`` before a pass."""
        return {"grain": None if self._live is None else self._live.get_state()}

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        """Continue at ``state["grain"]`` (a new iterator), or at a new pass for ``None``.

        Raises:
            KeyError: If ``"grain"`` is missing.
        """
        if "grain" not in state:
            raise KeyError(f"grain data state lacks 'grain'; got keys {sorted(state)}")
        saved = state["grain"]
        if saved is None:
            self._live = None
            return
        live = iter(self.source)
        live.set_state(saved)
        self._live = live


class SizedGrainData(GrainData):
    """A ``GrainData`` of a ``grain.MapDataset``: ``len()`` is its batches per pass."""

    __slots__ = ()

    def __len__(self) -> int:
        """The batches of one pass."""
        return len(self.source)


def grain_data(source: Any) -> GrainData:
    """The ``GrainData`` of a grain dataset or loader (sized for a ``MapDataset``)."""
    grain: Any = sys.modules["grain"]
    return SizedGrainData(source) if isinstance(source, grain.MapDataset) else GrainData(source)
