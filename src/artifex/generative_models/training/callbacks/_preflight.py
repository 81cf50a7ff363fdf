"""The preflight pass: every check that can refuse a run, before the first side effect.

A trainer calls ``preflight`` once per ``fit``, after restoring a ``resume_from``
checkpoint and before ``on_train_begin``. It calls ``preflight(trainer)`` of each
callback that has one (a ``PreflightCallback``), nested lists included, in dispatch
order, and on a process other than 0 skips the callbacks declaring
``process_scope = "main"`` (as dispatch does).
The first exception propagates, with a PEP 678 note naming the callback, and the later
callbacks are not asked. Before them, the callbacks' paths are checked against each
other (``_path_claims``): no file of another callback inside a checkpoint directory.
"""

from __future__ import annotations

import jax

from artifex.generative_models.training.callbacks._path_claims import check_callback_paths
from artifex.generative_models.training.callbacks.base import (
    CallbackList,
    TrainerLike,
    flatten_callbacks,
)
from artifex.generative_models.training.callbacks.protocols import PreflightCallback

__all__ = ["preflight"]


def preflight(trainer: TrainerLike, callbacks: CallbackList) -> None:
    """Call ``preflight(trainer)`` of every callback that has one, in dispatch order.

    Args:
        trainer: The trainer about to run.
        callbacks: Its callbacks.

    Raises:
        ValueError: If a callback's path would hit a ``ModelCheckpoint`` directory's
            files (``_path_claims``), naming both.
        Exception: The first exception a callback's ``preflight`` raised, as the same
            object, with a note naming the callback (type and index path).
    """
    index = callbacks.process_index
    main = (jax.process_index() if index is None else index) == 0
    found = list(flatten_callbacks(callbacks))
    check_callback_paths(callback for _, callback in found)
    for path, callback in found:
        if not main and getattr(callback, "process_scope", "all") == "main":
            continue
        if isinstance(callback, PreflightCallback):
            try:
                callback.preflight(trainer)
            except Exception as exc:
                where = ".".join(map(str, path))
                exc.add_note(
                    f"raised by callback #{where} ({type(callback).__qualname__}) in preflight"
                )
                raise
