"""The Orbax ``CheckpointManager`` that ``ModelCheckpoint`` writes a directory with."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import jax
import orbax.checkpoint as ocp

from artifex.generative_models.training._checkpointing._retention import (
    RetentionSettings,
    best_fn,
    preservation_policy,
)
from artifex.generative_models.training._checkpointing._step_dirs import (
    CompleteStepsOnly,
    tidy_step_directories,
)

__all__ = ["ManagerSettings", "await_tmp_cleanup", "open_manager"]


class ManagerSettings(RetentionSettings, Protocol):
    """The fields of a checkpoint config that the manager needs (``CheckpointConfig`` has them)."""

    @property
    def async_save(self) -> bool:
        """Whether checkpoints are written in the background."""
        ...


def open_manager(directory: Path, settings: ManagerSettings) -> ocp.CheckpointManager | None:
    """Open the writing manager of a prepared checkpoint directory.

    Retention is Orbax's, from ``settings`` (see ``preservation_policy`` and
    ``best_fn``); the temporary directories of saves interrupted by a crash are
    removed (they are Orbax's own, inside the marked directory) before this returns.
    A collective in a multi-process job, like every ``CheckpointManager`` creation.

    An asynchronous save creates its step directory before it returns: created in
    Orbax's background, a failure to create it (a read-only disk) left the save's
    other writers waiting 300 s for its signal, and the interpreter's exit with them.

    Args:
        directory: The resolved directory, as ``prepare_directory`` left it.
        settings: The checkpoint config.

    Returns:
        The manager, or ``None`` if ``settings`` would keep no checkpoint at all.
    """
    policy = preservation_policy(settings)
    if policy is None:
        return None
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy,
        best_fn=best_fn(settings),
        best_mode="max",
        enable_async_checkpointing=settings.async_save,
        async_options=ocp.AsyncOptions(create_directories_asynchronously=False),  # see above
        create=True,
        cleanup_tmp_directories=True,
        step_name_format=CompleteStepsOnly(),  # never a user's folder, nor a partial step
    )
    if jax.process_index() == 0:
        tidy_step_directories(directory)
    manager = ocp.CheckpointManager(directory, options=options)
    await_tmp_cleanup(manager)
    return manager


def await_tmp_cleanup(manager: ocp.CheckpointManager) -> None:
    """Wait for the removal of interrupted saves that Orbax starts in the background.

    ``CheckpointManager`` starts it in its constructor, and only ``save`` waits for it,
    not ``close``. A run that saves nothing would leave that thread running; at
    interpreter exit it dies with "cannot schedule new futures after shutdown" and a
    logged traceback. Waiting here also means the directory is clean when
    ``on_train_begin`` returns. The method is private in Orbax 0.12, hence the
    ``getattr``: an Orbax without it cleans up synchronously.

    Args:
        manager: A freshly created manager of the checkpoint directory.
    """
    wait = getattr(manager, "_maybe_await_cleanup_tmp_directory", None)
    if callable(wait):
        wait()
