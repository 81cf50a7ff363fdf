"""Which ``ModelCheckpoint`` names a run: the first registered, in dispatch order.

A same-command resume (``Trainer.fit(..., resume=True)``) continues the run whose
checkpoints this directory holds. Here, in ``callbacks/``, because only callbacks
import the checkpoint callback (which imports Orbax: deferred until asked).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from artifex.generative_models.training.callbacks.base import TrainingCallback, flatten_callbacks

__all__ = ["run_directory"]


def run_directory(callbacks: Iterable[TrainingCallback]) -> Path | None:
    """The resolved ``dirpath`` of the first ``ModelCheckpoint`` (nested lists too), or ``None``."""
    from artifex.generative_models.training.callbacks.model_checkpoint import ModelCheckpoint

    for _, callback in flatten_callbacks(callbacks):
        if isinstance(callback, ModelCheckpoint):
            return Path(callback.config.dirpath).resolve()
    return None
