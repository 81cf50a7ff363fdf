"""Checkpoints of ``ModelCheckpoint``: format, pytrees, directory, retention, restore.

Private: ``ModelCheckpoint`` (in ``callbacks/model_checkpoint.py``) is built on these
modules and re-exports the public names (``CHECKPOINT_FORMAT``,
``RestoredCheckpoint``, ``restore_checkpoint``); the reference trainer's ``resume``
calls :func:`restore_run`.

* ``_format``: the marker file, item names, Orbax handlers and save arguments;
* ``_pytree``: the conversions between ``nnx.State`` and what Orbax saves and restores;
* ``_directory``: the marker and the directory's set-up across processes;
* ``_retention``: which checkpoints Orbax keeps (the best ``save_top_k``, plus the last);
* ``_manager``: the Orbax manager that writes a directory, with that retention;
* ``_agreement``: the processes' agreement on each save;
* ``_restore`` and ``_resume``: reading a checkpoint back, and resuming a run from it.

Nothing here imports the callbacks package at import time (it imports
``ModelCheckpoint``, which imports this package); the restore functions import the
callback protocols and helpers when called.
"""

from __future__ import annotations

from artifex.generative_models.training._checkpointing._agreement import (
    SavePlan,
    agree_on_save_plan,
)
from artifex.generative_models.training._checkpointing._directory import (
    is_checkpoint_directory,
    prepare_directory,
)
from artifex.generative_models.training._checkpointing._format import (
    CALLBACKS_ITEM,
    CHECKPOINT_FORMAT,
    MARKER_FILE,
    META_ITEM,
    RESERVED_ITEMS,
    STATE_ITEM,
    save_args,
)
from artifex.generative_models.training._checkpointing._manager import (
    ManagerSettings,
    open_manager,
)
from artifex.generative_models.training._checkpointing._pytree import to_savable
from artifex.generative_models.training._checkpointing._restore import (
    RestoredCheckpoint,
    restore_checkpoint,
)
from artifex.generative_models.training._checkpointing._resume import restore_run
from artifex.generative_models.training._checkpointing._retention import (
    RetentionSettings,
    rank,
    saved_scores,
)

__all__ = [
    "CALLBACKS_ITEM",
    "CHECKPOINT_FORMAT",
    "MARKER_FILE",
    "META_ITEM",
    "RESERVED_ITEMS",
    "STATE_ITEM",
    "ManagerSettings",
    "RestoredCheckpoint",
    "RetentionSettings",
    "SavePlan",
    "agree_on_save_plan",
    "is_checkpoint_directory",
    "open_manager",
    "prepare_directory",
    "rank",
    "restore_checkpoint",
    "restore_run",
    "save_args",
    "saved_scores",
    "to_savable",
]
