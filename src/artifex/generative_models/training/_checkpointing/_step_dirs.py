"""Which step directories are checkpoints: those holding Orbax's metadata, ``state`` and ``meta``.

Orbax is given a step name format that lists only those (a kill during retention can leave
an emptied step directory; a user may keep a folder named ``1/``).
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
    "incomplete_steps",
    "is_complete_step",
    "lacking",
    "missing_parts",
    "tidy_step_directories",
]

logger = logging.getLogger(__name__)

_ORBAX_FILES: Final = frozenset({"_CHECKPOINT_METADATA", "commit_success.txt"})
# Every name a step directory of ours holds (extra items aside).
_OURS: Final = _ORBAX_FILES | {STATE_ITEM, META_ITEM, CALLBACKS_ITEM, ARRAYS_ITEM}


def is_complete_step(path: Path) -> bool:
    """Whether the step directory ``path`` holds a complete checkpoint."""
    return not missing_parts(path)


def missing_parts(path: Path) -> tuple[str, ...]:
    """What the step directory ``path`` lacks of a complete checkpoint (nothing if complete)."""
    parts = (
        ("_CHECKPOINT_METADATA", Path.is_file),
        (STATE_ITEM, Path.is_dir),
        (META_ITEM, Path.is_dir),
    )
    return tuple(name for name, present in parts if not present(path / name))


def incomplete_steps(directory: Path) -> dict[int, tuple[str, ...]]:
    """The step-named directories of ``directory`` that are not complete checkpoints."""
    found: dict[int, tuple[str, ...]] = {}
    for path in directory.iterdir():
        if path.is_dir() and path.name.isdigit():
            missing = missing_parts(path)
            if missing:
                found[int(path.name)] = missing
    return dict(sorted(found.items()))


def lacking(directory: Path, step: int, missing: tuple[str, ...]) -> str:
    """Why ``step`` is no checkpoint: ``"step 4 ('<dir>/4') lacks the 'state' item, ..."``."""
    names = [f"Orbax's {n!r}" if n.startswith("_") else f"the {n!r} item" for n in missing]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return (
        f"step {step} ({str(directory / str(step))!r}) lacks {listed}, so it is incomplete "
        "(a save or a deletion was interrupted?) and skipped"
    )


class CompleteStepsOnly(ocp.step.NameFormat[ocp.step.Metadata]):
    """Orbax's standard step names, listing only the complete checkpoints."""

    def __init__(self) -> None:
        self._standard = ocp.step.standard_name_format()

    def build_name(self, step: int) -> str:
        return self._standard.build_name(step)

    def find_all(self, base_path: str | os.PathLike[str]) -> Iterator[ocp.step.Metadata]:
        for metadata in self._standard.find_all(base_path):
            if is_complete_step(Path(metadata.path)):
                yield metadata

    def find_step(self, base_path: str | os.PathLike[str], step: int) -> ocp.step.Metadata:
        metadata = self._standard.find_step(base_path, step)
        if not is_complete_step(Path(metadata.path)):
            # A FileNotFoundError, as for a missing step: Orbax takes it as "no metrics"
            # when a step it has just listed is deleted before it reads them.
            raise FileNotFoundError(
                f"step {step} in {str(base_path)!r} is not a complete checkpoint"
            )
        return metadata


def tidy_step_directories(directory: Path) -> None:
    """Remove the incomplete step directories of ours; warn about the foreign ones."""
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
