"""The on-disk format of a checkpoint: items, format line, Orbax handlers (docs/checkpoints.md)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, cast

import orbax.checkpoint as ocp

from artifex.generative_models.training._checkpointing._data_item import (
    DATA_ITEM,
    DataHandler,
    DataSave,
    encode_data,
)
from artifex.generative_models.training._checkpointing._integrity import (
    CHECKSUMS_ITEM,
    ChecksumHandler,
    ChecksumSave,
    json_checksum,
    seal,
)
from artifex.generative_models.training._checkpointing._paths import MARKER_FILE
from artifex.generative_models.training._checks import python_scalars

__all__ = [
    "ARRAYS_ITEM",
    "CALLBACKS_ITEM",
    "CHECKPOINT_FORMAT",
    "CHECKSUMS_ITEM",
    "DATA_ITEM",
    "FORMAT_4",
    "MARKER_FILE",
    "META_ITEM",
    "READABLE_FORMATS",
    "RESERVED_ITEMS",
    "RETIRED_FORMATS",
    "STATE_ITEM",
    "format_problem",
    "item_handlers",
    "read_meta",
    "save_args",
]

FORMAT_4: Final = "artifex-nnx-callbacks/checkpoint/4"  # still restored: arrays summed only
CHECKPOINT_FORMAT: Final = "artifex-nnx-callbacks/checkpoint/5"
"""The ``format`` recorded in every checkpoint's ``meta`` item and in the marker file."""

READABLE_FORMATS: Final = frozenset({FORMAT_4, CHECKPOINT_FORMAT})
# Formats no longer read, with the artifex-nnx-callbacks version that reads them.
RETIRED_FORMATS: Final = {
    "artifex-nnx-callbacks/checkpoint/1": "0.1.0 up to commit 31164a9",
    "artifex-nnx-callbacks/checkpoint/2": "0.1.0 up to commit 31164a9",
    "artifex-nnx-callbacks/checkpoint/3": "0.1.0 up to commit 00a1ee1",
}

STATE_ITEM: Final = "state"
META_ITEM: Final = "meta"
CALLBACKS_ITEM: Final = "callbacks"
ARRAYS_ITEM: Final = "callback_arrays"
RESERVED_ITEMS: Final = frozenset({STATE_ITEM, META_ITEM, ARRAYS_ITEM, CHECKSUMS_ITEM, DATA_ITEM})


def item_handlers(
    extra: tuple[str, ...] = (),
    *,
    arrays: bool = False,
    checksums: bool = False,
    data: bool = False,
) -> dict[str, ocp.CheckpointHandler]:
    """The Orbax handlers of a checkpoint's items."""
    handlers: dict[str, ocp.CheckpointHandler] = {
        STATE_ITEM: ocp.StandardCheckpointHandler(),
        META_ITEM: ocp.JsonCheckpointHandler(),
    }
    if arrays:
        handlers[ARRAYS_ITEM] = ocp.StandardCheckpointHandler()
    if checksums:
        handlers[CHECKSUMS_ITEM] = ChecksumHandler()
    if data:
        handlers[DATA_ITEM] = DataHandler()
    for name in extra:
        handlers[name] = ocp.JsonCheckpointHandler()
    return handlers


def save_args(
    state: object,
    meta: Mapping[str, Any],
    extra: Mapping[str, Any],
    arrays: Mapping[str, Any] | None = None,
    *,
    checksums: bool = True,
) -> ocp.args.Composite:
    """The Orbax save arguments of one checkpoint (all its items, saved atomically)."""
    data = None
    if isinstance(state, dict) and DATA_ITEM in state:
        state = dict(state)
        data = encode_data(state.pop(DATA_ITEM), step=meta.get("step"), run=meta.get("run"))
    # NumPy scalars (np.int64 patience, a custom trainer's epoch) saved as Python's,
    # and summed as saved.
    content = cast(
        "dict[str, Any]",
        python_scalars({**meta, "checksums": checksums, "data": data is not None}),
    )
    extra = {name: python_scalars(value) for name, value in extra.items()}
    sealed = seal(content)
    args: dict[str, ocp.args.CheckpointArgs] = {
        STATE_ITEM: ocp.args.StandardSave(state),
        META_ITEM: ocp.args.JsonSave(sealed),
    }
    if data is not None:
        args[DATA_ITEM] = DataSave(data)
    trees: dict[str, object] = {STATE_ITEM: state}
    if arrays:
        trees[ARRAYS_ITEM] = dict(arrays)
        args[ARRAYS_ITEM] = ocp.args.StandardSave(trees[ARRAYS_ITEM])
    if checksums:
        json_sums = {META_ITEM: json_checksum(content)}
        json_sums.update((name, json_checksum(value)) for name, value in extra.items())
        binding = {"step": meta.get("step"), "run": meta.get("run"), "json": json_sums}
        args[CHECKSUMS_ITEM] = ChecksumSave(trees, binding)
    for name, value in extra.items():
        args[name] = ocp.args.JsonSave(value)
    return ocp.args.Composite(**args)


def read_meta(step_dir: Path) -> object:
    """The parsed ``meta`` item of the step directory ``step_dir`` (no array is read)."""
    try:
        meta: object = ocp.JsonCheckpointHandler().restore(step_dir / META_ITEM)
    except (OSError, ValueError, KeyError) as error:  # JSONDecodeError is a ValueError
        raise ValueError(
            f"its {META_ITEM!r} item ({str(step_dir / META_ITEM)!r}) cannot be read: {error}"
        ) from error
    return meta


def format_problem(where: str, meta: object) -> str | None:
    """Why a checkpoint whose ``meta`` is ``meta`` cannot be read here, or ``None``."""
    found = meta.get("format") if isinstance(meta, dict) else None
    if found in RETIRED_FORMATS:
        return (
            f"{where} has the format {found!r}, which this version no longer reads (it reads "
            f"{sorted(READABLE_FORMATS)}); restore it with artifex-nnx-callbacks "
            f"{RETIRED_FORMATS[found]}"
        )
    if found not in READABLE_FORMATS:
        return (
            f"{where} has the format {found!r}; this version reads {sorted(READABLE_FORMATS)} "
            "(a newer artifex-nnx-callbacks wrote it?)"
        )
    return None
