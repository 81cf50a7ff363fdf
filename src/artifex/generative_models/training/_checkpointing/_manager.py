"""The Orbax ``CheckpointManager`` that ``ModelCheckpoint`` writes a directory with."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import orbax.checkpoint as ocp

from artifex.generative_models.training._checkpointing._retention import (
    Ranking,
    preservation_policy,
)
from artifex.generative_models.training._checkpointing._step_dirs import (
    CompleteStepsOnly,
    tidy_step_directories,
)

if TYPE_CHECKING:  # types only: this package imports nothing of callbacks/ at run time
    from artifex.generative_models.training.callbacks._checkpoint_config import CheckpointConfig

__all__ = ["open_manager"]


def open_manager(
    directory: Path, settings: CheckpointConfig
) -> tuple[ocp.CheckpointManager, Ranking | None] | None:
    """Open the writing manager of a prepared checkpoint directory (a collective)."""
    policy = preservation_policy(settings)
    if policy is None:
        return None
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy,
        enable_async_checkpointing=settings.async_save,
        # Created in Orbax's background, a step directory that cannot be created (a
        # read-only disk) left the save's other writers waiting 300 s for its signal.
        async_options=ocp.AsyncOptions(create_directories_asynchronously=False),
        create=True,
        # Orbax's own removal runs in a thread that only its save waits for: a run that
        # saves nothing would exit with it running ("cannot schedule new futures").
        cleanup_tmp_directories=False,
        step_name_format=CompleteStepsOnly(),  # never a user's folder, nor a partial step
    )
    if jax.process_index() == 0:
        tidy_step_directories(directory)
        for partial in ocp.utils.tmp_checkpoints(directory):
            shutil.rmtree(partial.get(), ignore_errors=True)
    manager = ocp.CheckpointManager(directory, options=options)
    ranking = policy if isinstance(policy, Ranking) else None
    if ranking is not None and settings.monitor is not None:
        ranking.read(directory, manager.all_steps(), settings.monitor)
    return manager, ranking
