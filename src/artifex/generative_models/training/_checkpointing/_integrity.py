"""Checksums of a checkpoint's arrays, written in the save and verified on restore.

The layout of the ``checksums`` item is in docs/checkpoints.md. The save copies the
leaves to the host before it returns (the next step may donate them) and sums them in
Orbax's background commit.
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

_FILENAME: Final = "metadata"  # JsonCheckpointHandler's file name: read back as a JSON item
_SHARDS: Final = "shards-{}.json"  # a process's sums of its shards, by process index
_RECORD: Final = ("crc32", "dtype", "shape")

ChecksumTable = dict[str, dict[str, dict[str, Any]]]  # {item: {entry: record}}
Index = list[list[int]]  # a shard's place in its array: [start, stop] per dimension
ShardCopies = dict[str, dict[str, list[tuple[Index, np.ndarray]]]]  # {item: {entry: [...]}}


def _entry_name(path: tuple[Any, ...]) -> str:
    return jax.tree_util.keystr(path, simple=True, separator=".")  # model.hidden.kernel


def _data(leaf: jax.Array) -> jax.Array:
    return jax.random.key_data(leaf) if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key) else leaf


def _whole(leaf: object) -> Any:
    """The leaf's whole value as held by this process (host or device), or ``None``."""
    if isinstance(leaf, jax.Array):
        leaf = _data(leaf)
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


def _shards(tree: object, *, written: bool) -> Iterator[tuple[str, Index, jax.Array]]:
    """``(entry, index, data)`` of this process's shards of arrays split across processes."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if not isinstance(leaf, jax.Array) or _whole(leaf) is not None:
            continue
        leaf = _data(leaf)
        for shard in leaf.addressable_shards:
            if not written or shard.replica_id == 0:
                cuts = zip(shard.index, leaf.shape, strict=True)
                place = [list(cut.indices(n)[:2]) for cut, n in cuts]
                yield _entry_name(tuple(path)), place, shard.data


def _sum(value: np.ndarray) -> dict[str, Any]:
    data = np.ascontiguousarray(value).reshape(-1).view(np.uint8)  # 1-d, even for a scalar
    return {"crc32": zlib.crc32(data.data), "dtype": str(value.dtype), "shape": list(value.shape)}


def host_copies(
    trees: Mapping[str, object], *, whole: bool = True
) -> tuple[dict[str, dict[str, np.ndarray]], ShardCopies]:
    """Host copies of what this process sums of ``trees`` (by item)."""
    held = {item: dict(_leaves(tree)) if whole else {} for item, tree in trees.items()}
    split = {item: list(_shards(tree, written=True)) for item, tree in trees.items()}
    for item in trees:
        for value in [*held[item].values(), *(data for _, _, data in split[item])]:
            if isinstance(value, jax.Array):
                value.copy_to_host_async()
    shards: ShardCopies = {}
    for item, found in split.items():
        for entry, place, data in found:
            shards.setdefault(item, {}).setdefault(entry, []).append((place, np.asarray(data)))
    copies = {item: {k: np.asarray(v) for k, v in values.items()} for item, values in held.items()}
    return copies, shards


def checksums(copies: Mapping[str, Mapping[str, np.ndarray]]) -> ChecksumTable:
    """The checksum records of host copies (``host_copies``'s result)."""
    return {item: {k: _sum(v) for k, v in values.items()} for item, values in copies.items()}


def _shard_sums(shards: ShardCopies) -> dict[str, dict[str, list[dict[str, Any]]]]:
    return {
        item: {e: [{"index": i, **_sum(v)} for i, v in found] for e, found in entries.items()}
        for item, entries in shards.items()
    }


@dataclasses.dataclass
class ChecksumSave(ocp_args.CheckpointArgs):
    """Save arguments of the checksums item: the pytrees to sum, by item name."""

    trees: Mapping[str, object]


@dataclasses.dataclass
class ChecksumRestore(ocp_args.CheckpointArgs):
    """Restore arguments of the checksums item (none: it is read as JSON)."""


class ChecksumHandler(ocp.JsonCheckpointHandler):
    """Writes the checksums of ``ChecksumSave.trees`` as a JSON item (read back as one)."""

    async def async_save(
        self,
        directory: os.PathLike[str],
        item: Mapping[str, Any] | None = None,
        args: ChecksumSave | None = None,
    ) -> list[ocp_future.Future] | None:
        """Copy the summed leaves to the host; return the future that sums and writes them."""
        del item
        primary = jax.process_index() == 0
        if args is None:
            return None
        copies, shards = host_copies(args.trees, whole=primary)
        if not primary and not shards:
            return None

        async def commit() -> None:
            if primary:
                (Path(directory) / _FILENAME).write_text(json.dumps(checksums(copies)))
            if shards:
                mine = Path(directory) / _SHARDS.format(jax.process_index())
                mine.write_text(json.dumps(_shard_sums(shards)))

        return [ocp_future.CommitFutureAwaitingContractedSignals(commit(), name="checksums")]

    def restore(
        self,
        directory: os.PathLike[str],
        item: Mapping[str, Any] | None = None,
        args: ChecksumRestore | None = None,
    ) -> Mapping[str, Any]:
        """Read process 0's JSON file with every process's shard sums merged in."""
        sums: dict[str, Any] = dict(super().restore(directory, item, args))
        for found in sorted(Path(directory).glob(_SHARDS.format("*"))):
            try:
                content: object = json.loads(found.read_text())
            except ValueError as error:
                raise ValueError(f"the checksum file {str(found)!r} is garbled: {error}") from None
            if not isinstance(content, dict) or not all(
                isinstance(entries, dict) for entries in content.values()
            ):
                raise ValueError(f"the checksum file {str(found)!r} is garbled (not a mapping)")
            for name, entries in content.items():
                merged = sums.setdefault(name, {})
                for entry, records in entries.items():
                    merged.setdefault(entry, {"shards": []})["shards"].extend(records)
        return sums


# Orbax picks an item's handler by the type of its save arguments.
ocp_args.register_with_handler(ChecksumHandler, for_save=True)(ChecksumSave)
ocp_args.register_with_handler(ChecksumHandler, for_restore=True)(ChecksumRestore)


def _shard_records(want: object) -> Iterator[tuple[Index, dict[str, Any]]]:
    """``(index, record)`` of each saved shard of an entry whose record is ``want``."""
    records = want.get("shards") if isinstance(want, Mapping) else None
    for record in records if isinstance(records, list) else ():
        place = record.get("index") if isinstance(record, Mapping) else None
        if isinstance(place, list) and all(
            isinstance(pair, list) and len(pair) == 2 for pair in place
        ):
            yield place, {key: record.get(key) for key in _RECORD}


def verify(sums: object, trees: Mapping[str, object], where: str) -> None:
    """Check the restored ``trees`` (by item) against the saved checksums ``sums``."""
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
            if isinstance(want, Mapping) and "shards" not in want:
                checks.append((item, f"entry {entry!r}", want, value))
            for place, record in _shard_records(want):
                cut = value[tuple(slice(start, stop) for start, stop in place)]
                checks.append((item, f"entry {entry!r} shard {place}", record, cut))
        for entry, place, data in _shards(tree, written=False):
            for saved_place, record in _shard_records(saved.get(entry)):
                if saved_place == place:
                    checks.append((item, f"entry {entry!r} shard {place}", record, data))
    for _, _, _, value in checks:
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
    for (item, label, want, _), got in zip(checks, found, strict=True):
        if got != want:
            raise ValueError(
                f"{where}: item {item!r} {label} fails its checksum (saved "
                f"{dict(want)}, read {got}): the checkpoint's array data is damaged"
            )
