"""The on-disk format of a ``ModelCheckpoint`` directory: its marker, items and handlers.

The layout is described in [`artifex.generative_models.training.callbacks.model_checkpoint`][].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orbax.checkpoint as ocp

from artifex.generative_models.training._checkpointing._integrity import (
    CHECKSUMS_ITEM,
    ChecksumHandler,
    ChecksumSave,
)

__all__ = [
    "ARRAYS_ITEM",
    "CALLBACKS_ITEM",
    "CHECKPOINT_FORMAT",
    "CHECKSUMS_ITEM",
    "FORMAT_3",
    "MARKER_FILE",
    "META_ITEM",
    "READABLE_FORMATS",
    "RESERVED_ITEMS",
    "RETIRED_FORMATS",
    "STATE_ITEM",
    "item_handlers",
    "save_args",
]

FORMAT_3: Final = "artifex-nnx-callbacks/checkpoint/3"
"""The format before the current one, still restored (without checksums to verify).

Format 3 has mid-epoch checkpoints: the ``meta`` key ``"position"`` (how many batches
of ``meta["epoch"]``, the epoch in progress, had run; ``None`` at an epoch end) and, in
a mid-epoch checkpoint's ``state``, the entry ``"epoch_progress"`` (``{"batches",
"sums"}``). It holds the optional ``ARRAYS_ITEM`` listed in ``meta["callback_arrays"]``.
"""

CHECKPOINT_FORMAT: Final = "artifex-nnx-callbacks/checkpoint/4"
"""The ``format`` recorded in every checkpoint's ``meta`` item and in the marker file.

Format 4 adds checksums: the JSON item ``CHECKSUMS_ITEM`` (see ``_integrity``), written
in the same atomic save, and the ``meta`` key ``"checksums"`` (``true``). Otherwise laid
out as format 3.
"""

READABLE_FORMATS: Final = frozenset({FORMAT_3, CHECKPOINT_FORMAT})
"""The formats that ``restore_checkpoint`` reads: the current one and the one before."""

RETIRED_FORMATS: Final = {
    "artifex-nnx-callbacks/checkpoint/1": "0.1.0 up to commit 31164a9",
    "artifex-nnx-callbacks/checkpoint/2": "0.1.0 up to commit 31164a9",
}
"""Formats no longer read, with the artifex-nnx-callbacks version that reads them."""

MARKER_FILE: Final = "artifex_checkpoints.json"
"""The file that marks a directory as written by ``ModelCheckpoint``."""

STATE_ITEM: Final = "state"
"""The checkpoint item holding the training-state pytree (Orbax ``StandardSave``)."""

META_ITEM: Final = "meta"
"""The JSON checkpoint item: format, step, epoch, position, metrics, monitor, mode, items."""

CALLBACKS_ITEM: Final = "callbacks"
"""The checkpoint item holding the stateful callbacks' states, by ``state_key``."""

ARRAYS_ITEM: Final = "callback_arrays"
"""The checkpoint item holding the callbacks' array states (Orbax ``StandardSave``).

A pytree ``{state_key: array_state()}`` of the ``ArrayStatefulCallback`` instances whose
``array_state()`` was not ``None``; absent when there is none.
"""

RESERVED_ITEMS: Final = frozenset({STATE_ITEM, META_ITEM, ARRAYS_ITEM, CHECKSUMS_ITEM})
"""The item names that further JSON items may not use."""


def item_handlers(
    extra: tuple[str, ...] = (), *, arrays: bool = False, checksums: bool = False
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
    args: dict[str, ocp.args.CheckpointArgs] = {
        STATE_ITEM: ocp.args.StandardSave(state),
        META_ITEM: ocp.args.JsonSave({**meta, "checksums": checksums}),
    }
    trees: dict[str, object] = {STATE_ITEM: state}
    if arrays:
        trees[ARRAYS_ITEM] = dict(arrays)
        args[ARRAYS_ITEM] = ocp.args.StandardSave(trees[ARRAYS_ITEM])
    if checksums:
        args[CHECKSUMS_ITEM] = ChecksumSave(trees)
    for name, value in extra.items():
        args[name] = ocp.args.JsonSave(value)
    return ocp.args.Composite(**args)
