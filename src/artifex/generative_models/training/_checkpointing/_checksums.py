"""Content checksums of a checkpoint's arrays: written in the save, verified on restore.

Format 4 adds the JSON item ``CHECKSUMS_ITEM``: ``{item: {entry: {"crc32", "dtype",
"shape"}}}`` for the ``state`` and ``callback_arrays`` items, ``entry`` being the
dotted path of the leaf (``"model.hidden.kernel"``). The CRC-32 (``zlib.crc32``) is
taken over the C-ordered bytes of the leaf's value (a PRNG key's key data; a Python
number as ``np.asarray`` makes it).

The save takes the host copies in ``ModelCheckpoint``'s save call, before it returns
(the next step may donate the buffers), and sums them in Orbax's background commit,
so the step only waits for the copies; the item is part of the same atomic save.

In a multi-process job process 0 writes the item (as every JSON item): it sums the
leaves it holds whole, that is every array of a single-process job and, in a
multi-process one, the fully replicated arrays and those on its own devices only.
An array sharded across processes gets no sum (each process holds a part; no
process reads all of it back either). A restore verifies every summed leaf it
holds whole, on each process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import args as ocp_args
from orbax.checkpoint import future as ocp_future

__all__ = ["CHECKSUMS_ITEM", "ChecksumHandler", "ChecksumRestore", "ChecksumSave", "verify"]

CHECKSUMS_ITEM: Final = "checksums"
"""The JSON checkpoint item holding the checksums (format 4 on)."""

_FILENAME: Final = "metadata"  # JsonCheckpointHandler's file name: read back as a JSON item

Sums = dict[str, dict[str, dict[str, Any]]]
"""``{item: {entry: {"crc32": int, "dtype": str, "shape": [int, ...]}}}``."""


def _entry_name(path: tuple[Any, ...]) -> str:
    """The dotted name of a pytree path (``model.hidden.kernel``)."""
    parts: list[str] = []
    for key in path:
        if isinstance(key, jax.tree_util.DictKey | jax.tree_util.FlattenedIndexKey):
            parts.append(str(key.key))
        elif isinstance(key, jax.tree_util.SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, jax.tree_util.GetAttrKey):
            parts.append(key.name)
        else:  # pragma: no cover - no other key types in the saved pytrees
            parts.append(str(key))
    return ".".join(parts)


def _whole(leaf: object) -> Any:
    """The leaf's whole value as held by this process (host or device), or ``None``.

    ``None`` for a leaf that is not a number or an array, and for an array of which
    this process holds only a part.
    """
    if isinstance(leaf, jax.Array):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        if leaf.is_fully_addressable:
            return leaf
        if leaf.is_fully_replicated:
            return leaf.addressable_shards[0].data
        return None
    if isinstance(leaf, np.ndarray | np.generic | int | float):
        return leaf
    return None


def _leaves(tree: object) -> Iterator[tuple[str, Any]]:
    """``(entry, whole value)`` of every leaf of ``tree`` this process holds whole."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        value = _whole(leaf)
        if value is not None:
            yield _entry_name(tuple(path)), value


def _sum(value: np.ndarray) -> dict[str, Any]:
    """The checksum record of one host value."""
    data = np.ascontiguousarray(value).reshape(-1).view(np.uint8)  # 1-d, even for a scalar
    return {"crc32": zlib.crc32(data.data), "dtype": str(value.dtype), "shape": list(value.shape)}


def host_copies(trees: Mapping[str, object]) -> dict[str, dict[str, np.ndarray]]:
    """Host copies of the leaves of ``trees`` (by item) that this process holds whole.

    All device-to-host transfers are started before the first is awaited.

    Args:
        trees: The pytrees to sum, by item name.

    Returns:
        ``{item: {entry: host value}}``.
    """
    held = {item: dict(_leaves(tree)) for item, tree in trees.items()}
    for values in held.values():
        for value in values.values():
            if isinstance(value, jax.Array):
                value.copy_to_host_async()
    return {item: {k: np.asarray(v) for k, v in values.items()} for item, values in held.items()}


def checksums(copies: Mapping[str, Mapping[str, np.ndarray]]) -> Sums:
    """The checksum records of host copies (``host_copies``'s result).

    Args:
        copies: ``{item: {entry: host value}}``.

    Returns:
        ``{item: {entry: {"crc32", "dtype", "shape"}}}``.
    """
    return {item: {k: _sum(v) for k, v in values.items()} for item, values in copies.items()}


@dataclasses.dataclass
class ChecksumSave(ocp_args.CheckpointArgs):
    """Save arguments of the checksums item: the pytrees to sum, by item name.

    Attributes:
        trees: ``{item: pytree}``, as given to the items' ``StandardSave``.
    """

    trees: Mapping[str, object]


@dataclasses.dataclass
class ChecksumRestore(ocp_args.CheckpointArgs):
    """Restore arguments of the checksums item (none: it is read as JSON)."""


class ChecksumHandler(ocp.JsonCheckpointHandler):
    """Writes the checksums of ``ChecksumSave.trees`` as a JSON item (read back as one).

    ``async_save`` copies the leaves to the host before it returns and sums them in
    the commit future (in the background with asynchronous saves); only the
    primary host (process 0) does either.
    """

    async def async_save(
        self,
        directory: os.PathLike[str],
        item: Mapping[str, Any] | None = None,
        args: ChecksumSave | None = None,
    ) -> list[ocp_future.Future] | None:
        """Copy the summed leaves to the host; return the future that sums and writes them.

        Args:
            directory: The item's directory.
            item: Unused (Orbax's legacy argument).
            args: The pytrees to sum.

        Returns:
            The commit future.
        """
        del item
        if args is None or jax.process_index() != 0:
            return None
        copies = host_copies(args.trees)

        async def commit() -> None:
            (Path(directory) / _FILENAME).write_text(json.dumps(checksums(copies)))

        return [ocp_future.CommitFutureAwaitingContractedSignals(commit(), name="checksums")]


# Orbax picks an item's handler by the type of its save arguments.
ocp_args.register_with_handler(ChecksumHandler, for_save=True)(ChecksumSave)
ocp_args.register_with_handler(ChecksumHandler, for_restore=True)(ChecksumRestore)


def verify(sums: object, trees: Mapping[str, object], where: str) -> None:
    """Check the restored ``trees`` (by item) against the saved checksums ``sums``.

    Leaves this process does not hold whole, and entries not restored, are skipped.

    Args:
        sums: The restored checksums item.
        trees: The restored pytrees, by item name.
        where: ``"checkpoint step <s> in <dir>"``, for the error.

    Raises:
        ValueError: If the checksums item is not a mapping, or a restored leaf's
            bytes, dtype or shape differ from what was saved.
    """
    if not isinstance(sums, Mapping):
        raise ValueError(
            f"{where}: its {CHECKSUMS_ITEM!r} item is not a mapping: {type(sums).__qualname__}"
        )
    checks: list[tuple[str, str, Mapping[str, Any], Any]] = []
    for item, tree in trees.items():
        saved: object = sums.get(item, {})
        if not isinstance(saved, Mapping):
            raise ValueError(f"{where}: the {CHECKSUMS_ITEM!r} of item {item!r} are garbled")
        for entry, value in _leaves(tree):
            want = saved.get(entry)
            if isinstance(want, Mapping):  # not summed (sharded across processes): skipped
                checks.append((item, entry, want, value))
                if isinstance(value, jax.Array):
                    value.copy_to_host_async()

    def read(check: tuple[str, str, Mapping[str, Any], Any]) -> dict[str, Any]:
        _, _, want, value = check
        # A Python number is summed as saved: np.asarray of it, in the saved dtype.
        dtype = want.get("dtype") if isinstance(value, int | float) else None
        return _sum(np.asarray(value, dtype=dtype))

    # zlib.crc32 releases the GIL: the leaves are summed in parallel.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        found = list(pool.map(read, checks))
    for (item, entry, want, _), got in zip(checks, found, strict=True):
        if got != want:
            raise ValueError(
                f"{where}: item {item!r} entry {entry!r} fails its checksum (saved "
                f"{dict(want)}, read {got}): the checkpoint's array data is damaged"
            )
