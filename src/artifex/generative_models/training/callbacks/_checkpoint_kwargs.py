"""The keyword form of ``CheckpointConfig`` (re-exported by ``callbacks.model_checkpoint``)."""

from __future__ import annotations

import os
from typing import TypedDict

from artifex.generative_models.training.callbacks._monitor import Mode

__all__ = ["CheckpointKwargs"]


class CheckpointKwargs(TypedDict, total=False):
    """The fields of [`CheckpointConfig`][], as keyword arguments (each optional)."""

    dirpath: str | os.PathLike[str]
    monitor: str | None
    mode: Mode
    save_top_k: int
    every_n_epochs: int | None
    every_n_steps: int | None
    save_last: bool
    async_save: bool
    strict: bool
