"""Which step directories of a checkpoint directory are checkpoints.

A step directory (named by its step) is a complete checkpoint when it holds Orbax's
``_CHECKPOINT_METADATA`` and the ``state`` and ``meta`` items. Orbax is given a step
name format that lists only those, so restoring, the step listing and retention never
see anything else: a kill during retention's deletion can leave an emptied step
directory, and a user may keep a folder named ``1/`` there. Before a run writes,
``tidy_step_directories`` removes the step directories that hold nothing but our
own, partial, files and leaves every other one alone, with a warning naming it.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import orbax.checkpoint as ocp

from artifex.generative_models.training._checkpointing._format import (
    ARRAYS_ITEM,
    CALLBACKS_ITEM,
    META_ITEM,
    STATE_ITEM,
)

__all__ = [
    "CompleteStepsOnly",
    "is_complete_step",
    "latest_complete_step",
    "tidy_step_directories",
]

logger = logging.getLogger(__name__)

_ORBAX_FILES: Final = frozenset({"_CHECKPOINT_METADATA", "commit_success.txt"})
_OURS: Final = _ORBAX_FILES | {STATE_ITEM, META_ITEM, CALLBACKS_ITEM, ARRAYS_ITEM}
"""Every name a step directory of ours holds (extra items aside)."""


def is_complete_step(path: Path) -> bool:
    """Whether the step directory ``path`` holds a complete checkpoint.

    Args:
        path: A step directory.

    Returns:
        ``True`` if it has Orbax's checkpoint metadata and the state and meta items.
    """
    return (
        (path / "_CHECKPOINT_METADATA").is_file()
        and (path / STATE_ITEM).is_dir()
        and (path / META_ITEM).is_dir()
    )


class CompleteStepsOnly(ocp.step.NameFormat[ocp.step.Metadata]):
    """Orbax's standard step names, listing only the complete checkpoints."""

    def __init__(self) -> None:
        """Wrap Orbax's standard name format (the step number as the name)."""
        self._standard = ocp.step.standard_name_format()

    def build_name(self, step: int) -> str:
        """The directory name of ``step``."""
        return self._standard.build_name(step)

    def find_all(self, base_path: str | os.PathLike[str]) -> Iterator[ocp.step.Metadata]:
        """The metadata of every complete checkpoint under ``base_path``."""
        for metadata in self._standard.find_all(base_path):
            if is_complete_step(Path(metadata.path)):
                yield metadata

    def find_step(self, base_path: str | os.PathLike[str], step: int) -> ocp.step.Metadata:
        """The metadata of ``step``.

        Raises:
            ValueError: If ``step`` is not a complete checkpoint (Orbax's own contract).
        """
        metadata = self._standard.find_step(base_path, step)
        if not is_complete_step(Path(metadata.path)):
            raise ValueError(f"step {step} in {str(base_path)!r} is not a complete checkpoint")
        return metadata


def latest_complete_step(directory: Path) -> int | None:
    """The latest step of ``directory`` that is a complete checkpoint (reads only).

    The step the writing manager's ``latest_step()`` gives once it has opened the
    directory (``tidy_step_directories`` removes incomplete steps only).

    Args:
        directory: A checkpoint directory; it need not exist.

    Returns:
        The step, or ``None`` if there is none (or no such directory).
    """
    if not directory.is_dir():
        return None
    return max((int(found.step) for found in CompleteStepsOnly().find_all(directory)), default=None)


def tidy_step_directories(directory: Path) -> None:
    """Remove the incomplete step directories of ours; warn about the foreign ones.

    A step directory that is not a complete checkpoint is ours, and removed, when all
    it holds are names a checkpoint holds (an emptied one, say). One holding anything
    else (a user's ``1/user.txt``) is never touched; a warning names it.

    Args:
        directory: A marked checkpoint directory (on process 0 only).
    """
    for path in sorted(directory.iterdir()):
        if not path.is_dir() or not path.name.isdigit() or is_complete_step(path):
            continue
        names = {child.name for child in path.iterdir()}
        if names <= _OURS:
            logger.warning("removing the incomplete checkpoint step directory %s", path)
            shutil.rmtree(path)
        else:
            logger.warning(
                "leaving %s alone: it is named like a step but is not a checkpoint (it "
                "holds %s); it is never restored, listed or deleted",
                path,
                ", ".join(sorted(names - _OURS)),
            )
