"""The callbacks' paths against ``ModelCheckpoint``'s directories, and which names the run.

A checkpoint directory's run lists, replaces and deletes what lies in it, and takes a file
named like its marker or lock for its own. So no other callback may write there, two
``ModelCheckpoint``s may not nest, and no path may be named like those files. The paths
are read from the built-in callbacks' configs: every field typed ``os.PathLike``. A
same-command resume (``fit(..., resume=True)``) continues the run of the first
``ModelCheckpoint``'s directory (``run_directory``). A ``ModelCheckpoint`` is told by its
config, so that nothing here imports Orbax.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from artifex.generative_models.training._checkpointing._paths import check_user_path
from artifex.generative_models.training.callbacks._checkpoint_config import CheckpointConfig
from artifex.generative_models.training.callbacks._configured import ConfiguredCallback
from artifex.generative_models.training.callbacks.base import TrainingCallback, flatten_callbacks

__all__ = ["check_callback_paths", "run_directory"]


def _checkpoint_config(callback: TrainingCallback) -> CheckpointConfig | None:
    config: object = callback.config if isinstance(callback, ConfiguredCallback) else None
    return config if isinstance(config, CheckpointConfig) else None


def run_directory(callbacks: Iterable[TrainingCallback]) -> Path | None:
    """The resolved ``dirpath`` of the first ``ModelCheckpoint`` (nested lists too), or ``None``."""
    for _, callback in flatten_callbacks(callbacks):
        config = _checkpoint_config(callback)
        if config is not None:
            return Path(config.dirpath).resolve()
    return None


def _paths(callback: TrainingCallback) -> Iterator[tuple[str, Path]]:
    """``(what, resolved path)`` of each path field of a built-in callback's config."""
    config: object = callback.config if isinstance(callback, ConfiguredCallback) else None
    if config is None or not dataclasses.is_dataclass(config):
        return
    for field in dataclasses.fields(config):
        value: object = getattr(config, field.name)
        if "PathLike" in str(field.type) and isinstance(value, str | os.PathLike):
            what = f"{type(callback).__name__} {field.name}"
            yield what, Path(os.fspath(value)).resolve()


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def check_callback_paths(callbacks: Iterable[TrainingCallback]) -> None:
    """Refuse a callback's path that a ``ModelCheckpoint`` directory would take for its own."""
    owned: list[tuple[str, Path]] = []
    written: list[tuple[str, Path]] = []
    for callback in callbacks:
        for found in _paths(callback):
            (written if _checkpoint_config(callback) is None else owned).append(found)
    for what, path in written:
        check_user_path(what, path)
        for owner, directory in owned:
            if _inside(path, directory):
                raise ValueError(
                    f"{what} {str(path)!r} lies inside the {owner} {str(directory)!r}, whose "
                    "run lists, replaces and deletes what is there; choose a path outside it"
                )
    for index, (first, one) in enumerate(owned):
        for second, other in owned[index + 1 :]:
            if _inside(one, other) or _inside(other, one):
                raise ValueError(
                    f"two checkpoint directories nest: {first} {str(one)!r} and {second} "
                    f"{str(other)!r}; each run would list, replace and delete the other's "
                    "files; give them separate directories"
                )
