"""The on-disk format of a ``ModelCheckpoint`` directory: its marker, items and handlers.

The layout is described in :mod:`artifex.generative_models.training.callbacks.model_checkpoint`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orbax.checkpoint as ocp

__all__ = [
    "CALLBACKS_ITEM",
    "CHECKPOINT_FORMAT",
    "MARKER_FILE",
    "META_ITEM",
    "RESERVED_ITEMS",
    "STATE_ITEM",
    "item_handlers",
    "save_args",
]

CHECKPOINT_FORMAT: Final = "artifex-nnx-callbacks/checkpoint/1"
"""The ``format`` recorded in every checkpoint's ``meta`` item and in the marker file."""

MARKER_FILE: Final = "artifex_checkpoints.json"
"""The file that marks a directory as written by ``ModelCheckpoint``."""

STATE_ITEM: Final = "state"
"""The checkpoint item holding the training-state pytree (Orbax ``StandardSave``)."""

META_ITEM: Final = "meta"
"""The JSON checkpoint item: format, step, epoch, metrics, monitor, mode, items."""

CALLBACKS_ITEM: Final = "callbacks"
"""The checkpoint item holding the stateful callbacks' states, by ``state_key``."""

RESERVED_ITEMS: Final = frozenset({STATE_ITEM, META_ITEM})
"""The item names that further JSON items may not use."""


def item_handlers(extra: tuple[str, ...] = ()) -> dict[str, ocp.CheckpointHandler]:
    """The Orbax handlers of a checkpoint's items.

    Args:
        extra: The names of the further JSON items (``meta["items"]``).

    Returns:
        A handler for ``state``, ``meta`` and each of ``extra``, by item name.
    """
    handlers: dict[str, ocp.CheckpointHandler] = {
        STATE_ITEM: ocp.StandardCheckpointHandler(),
        META_ITEM: ocp.JsonCheckpointHandler(),
    }
    for name in extra:
        handlers[name] = ocp.JsonCheckpointHandler()
    return handlers


def save_args(
    state: object, meta: Mapping[str, Any], extra: Mapping[str, Any]
) -> ocp.args.Composite:
    """The Orbax save arguments of one checkpoint.

    Args:
        state: The training-state pytree, as saved (pure dicts, see ``to_savable``).
        meta: The ``meta`` item.
        extra: The further JSON items, by name (none of :data:`RESERVED_ITEMS`).

    Returns:
        The composite of the ``state``, ``meta`` and further items.
    """
    args: dict[str, ocp.args.CheckpointArgs] = {
        STATE_ITEM: ocp.args.StandardSave(state),
        META_ITEM: ocp.args.JsonSave(meta),
    }
    for name, value in extra.items():
        args[name] = ocp.args.JsonSave(value)
    return ocp.args.Composite(**args)
