"""Checksums of a checkpoint's items, written in the save and verified on restore.

The layout of the ``checksums`` item is in docs/checkpoints.md. The save copies the
leaves to the host before it returns (the next step may donate them) and sums them in
Orbax's background commit. The JSON items are summed as their canonical JSON text, and
a sealed record (``seal``: format 5 on) carries the checksum of its own content.
"""

from __future__ import annotations

import asyncio
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

from artifex.generative_models.training._checkpointing._pytree import dotted

__all__ = [
    "CHECKSUMS_ITEM",
    "ChecksumHandler",
    "ChecksumRestore",
    "ChecksumSave",
    "check_bound",
    "checksum_record",
    "json_checksum",
    "seal",
    "unseal",
    "verify",
    "verify_json",
]

CHECKSUMS_ITEM: Final = "checksums"

_FILENAME: Final = "metadata"  # JsonCheckpointHandler's file name: read back as a JSON item
_SHARDS: Final = "shards-{}.json"  # a process's sums of its shards, by process index
_RECORD: Final = ("crc32", "dtype", "shape")
_SEAL: Final = "crc32"  # a sealed record's checksum of the rest of it

ChecksumTable = dict[str, dict[str, dict[str, Any]]]  # {item: {entry: record}}
Index = list[list[int]]  # a shard's place in its array: [start, stop] per dimension
ShardCopies = dict[str, dict[str, list[tuple[Index, np.ndarray]]]]  # {item: {entry: [...]}}


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
            yield dotted(tuple(path)), value


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
                yield dotted(tuple(path)), place, shard.data


def _sum(value: np.ndarray) -> dict[str, Any]:
    data = np.ascontiguousarray(value).reshape(-1).view(np.uint8)  # 1-d, even for a scalar
    return {"crc32": zlib.crc32(data.data), "dtype": str(value.dtype), "shape": list(value.shape)}


def json_checksum(value: object) -> int:
    """The CRC-32 of ``value``'s canonical JSON text (as read back: sorted keys, no spaces)."""
    text = json.dumps(json.loads(json.dumps(value)), sort_keys=True, separators=(",", ":"))
    return zlib.crc32(text.encode())


def seal(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` with the checksum of its content (``unseal`` checks it)."""
    return {**record, _SEAL: json_checksum(dict(record))}


def unseal(record: object, what: str) -> dict[str, Any]:
    """The content of the sealed ``record``, checked against its own checksum."""
    if not isinstance(record, dict) or not isinstance(record.get(_SEAL), int):
        raise ValueError(f"{what} has no checksum of its own (a mapping with {_SEAL!r})")
    content = {key: value for key, value in record.items() if key != _SEAL}
    found = json_checksum(content)
    if found != record[_SEAL]:
        raise ValueError(f"{what} fails its own checksum (saved {record[_SEAL]}, read {found})")
    return content


def check_bound(
    where: str, item: str, saved: tuple[object, object], step: int, run: object
) -> None:
    """Refuse an item saved (``saved``: step, run) for another checkpoint than its ``meta``'s."""
    if saved != (step, run):
        raise ValueError(
            f"{where}: its {item!r} item was saved for step {saved[0]} of run {saved[1]!r}, "
            f"not for step {step} of run {run!r} as its 'meta' item: items of different "
            "checkpoints (one put there from another step?); it is not restored"
        )


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
    """Save arguments of the checksums item."""

    trees: Mapping[str, object]  # the pytrees to sum, by item name
    binding: Mapping[str, Any]  # the rest of the record: step, run, the JSON items' sums


@dataclasses.dataclass
class ChecksumRestore(ocp_args.CheckpointArgs):
    """Restore arguments of the checksums item (none: its files are read as JSON)."""


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

        binding = dict(args.binding)

        def write() -> None:
            if primary:
                record = seal({**binding, "arrays": checksums(copies)})
                (Path(directory) / _FILENAME).write_text(json.dumps(record))
            if shards:
                mine = Path(directory) / _SHARDS.format(jax.process_index())
                mine.write_text(json.dumps(seal({"arrays": _shard_sums(shards)})))

        async def commit() -> None:  # summed in a thread: the other items' writes go on
            await asyncio.to_thread(write)

        return [ocp_future.CommitFutureAwaitingContractedSignals(commit(), name="checksums")]

    def restore(
        self,
        directory: os.PathLike[str],
        item: Mapping[str, Any] | None = None,
        args: ChecksumRestore | None = None,
    ) -> Mapping[str, Any]:
        """Read process 0's record and every process's shard sums (``checksum_record``)."""
        shards = {
            found.name: json.loads(found.read_text())
            for found in sorted(Path(directory).glob(_SHARDS.format("*")))
        }
        return {"record": super().restore(directory, item, args), "shards": shards}


# Orbax picks an item's handler by the type of its save arguments.
ocp_args.register_with_handler(ChecksumHandler, for_save=True)(ChecksumSave)
ocp_args.register_with_handler(ChecksumHandler, for_restore=True)(ChecksumRestore)


def checksum_record(read: object, *, sealed: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(binding, sums by item)`` of the checksums item as ``ChecksumHandler`` read it."""
    # Format 5's record and shard files are sealed; format 4's are taken as they are.
    found = read if isinstance(read, Mapping) else {}
    record, shards = found.get("record"), found.get("shards")
    binding: dict[str, Any] = {}
    if sealed:
        binding = unseal(record, f"its {CHECKSUMS_ITEM!r} item")
        record = binding.pop("arrays", None)
    sums = _mapping_of_mappings(record, f"its {CHECKSUMS_ITEM!r} item")
    for name, content in (shards if isinstance(shards, Mapping) else {}).items():
        what = f"its checksum file {CHECKSUMS_ITEM}/{name}"
        if sealed:
            content = unseal(content, what).get("arrays")
        for item, entries in _mapping_of_mappings(content, what).items():
            merged = sums.setdefault(item, {})
            for entry, records in entries.items():
                merged.setdefault(entry, {"shards": []})["shards"].extend(records)
    return binding, sums


def _mapping_of_mappings(found: object, what: str) -> dict[str, dict[str, Any]]:
    if not isinstance(found, Mapping) or not all(isinstance(v, Mapping) for v in found.values()):
        raise ValueError(f"{what} is garbled (not a mapping of items)")
    return {str(item): dict(entries) for item, entries in found.items()}


def verify_json(saved: object, items: Mapping[str, object], where: str) -> None:
    """Check the JSON ``items`` (by name) against their saved checksums ``saved``."""
    sums = saved if isinstance(saved, Mapping) else {}
    for name, value in items.items():
        want, got = sums.get(name), json_checksum(value)
        if want != got:
            raise ValueError(
                f"{where}: item {name!r} fails its checksum (saved {want}, read {got}): "
                "it is damaged, or was put there from another checkpoint"
            )


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
            if not isinstance(want, Mapping):  # every leaf held whole was summed
                raise ValueError(
                    f"{where}: item {item!r} entry {entry!r} has no checksum record: its "
                    f"{CHECKSUMS_ITEM!r} item is damaged"
                )
            if "shards" not in want:
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
