"""Which step directories are checkpoints: those holding Orbax's metadata, ``state`` and ``meta``.

Orbax is given a step name format that lists only those (a kill during retention can leave
an emptied step directory; a user may keep a folder named ``1/``). An incomplete step
directory is ours, and removed, only if every file in it, at any depth, is named as Orbax
and this package name the files of a checkpoint; anything else is a user's, never touched.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import orbax.checkpoint as ocp

from artifex.generative_models.training._checkpointing._format import (
    META_ITEM,
    STATE_ITEM,
)

__all__ = [
    "CompleteStepsOnly",
    "complete_steps",
    "foreign_steps",
    "incomplete_steps",
    "is_complete_step",
    "lacking",
    "missing_parts",
    "move_aside_after",
    "tidy_step_directories",
]

logger = logging.getLogger(__name__)

_STEP_NAME: Final = re.compile(r"0|[1-9][0-9]*")  # Orbax's standard step names
# Every file a step directory of ours holds, by its path inside the step directory: Orbax's
# files at the top, and in each item (any name: ``json_items`` chooses some) the files of a
# JSON item, of an OCDBT array item (``d/`` and ``ocdbt.process_<n>/`` hold hex-named data
# files) or of the checksums item (``shards-<n>.json``).
_OUR_FILES: Final = re.compile(
    r"(_CHECKPOINT_METADATA|commit_success\.txt"
    r"|[^/]+/(metadata|commit_success\.txt|_METADATA|_sharding|_CHECKPOINT_METADATA"
    r"|manifest\.ocdbt|shards-\d+\.json|array_metadatas/process_\d+"
    r"|(ocdbt\.process_\d+/)?(manifest\.ocdbt|d/[0-9a-f]+)))"
)


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


def complete_steps(directory: Path) -> list[int]:
    """The steps of ``directory``'s complete checkpoints, ascending (none if it is missing)."""
    # What CompleteStepsOnly lists (Orbax's names), without Orbax's thread pool.
    if not directory.is_dir():
        return []
    return sorted(
        int(path.name)
        for path in directory.iterdir()
        if _STEP_NAME.fullmatch(path.name) and is_complete_step(path)
    )


def move_aside_after(directory: Path, step: int) -> list[Path]:
    """Move the checkpoints after ``step`` aside, as ``<step>.superseded-<n>``; return where."""
    # Never deleted: not named like a step, they are never listed, restored or deleted.
    moved: list[Path] = []
    for later in (s for s in complete_steps(directory) if s > step):
        number = 1
        while (aside := directory / f"{later}.superseded-{number}").exists():
            number += 1
        (directory / str(later)).rename(aside)
        moved.append(aside)
    return moved


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


def foreign_files(path: Path) -> list[str]:
    """The files under the step directory ``path`` that no checkpoint holds (a few, sorted)."""
    # A link anywhere is foreign: nothing reached through a link is ever deleted.
    if path.is_symlink() or not path.is_dir():
        return [path.name]
    found: list[str] = []
    for root, folders, files in os.walk(path):
        for name in [*files, *folders]:
            entry = Path(root, name)
            relative = entry.relative_to(path).as_posix()
            if entry.is_symlink() or (name in files and not _OUR_FILES.fullmatch(relative)):
                found.append(relative)
    return sorted(found)[:5]


def foreign_steps(directory: Path) -> dict[int, list[str]]:
    """The entries of ``directory`` named like a step that are not checkpoints of ours."""
    found: dict[int, list[str]] = {}
    for path in directory.iterdir():
        if path.name.isdigit() and not is_complete_step(path):
            foreign = foreign_files(path)
            if foreign:
                found[int(path.name)] = foreign
    return dict(sorted(found.items()))


def tidy_step_directories(directory: Path) -> None:
    """Remove the incomplete step directories of ours; warn about the foreign ones."""
    for path in sorted(directory.iterdir()):
        if not path.name.isdigit() or (path.is_dir() and is_complete_step(path)):
            continue
        foreign = foreign_files(path)
        if not foreign:
            logger.warning("removing the incomplete checkpoint step directory %s", path)
            shutil.rmtree(path)
        else:
            logger.warning(
                "leaving %s alone: it is named like a step but is not a checkpoint (it "
                "holds %s); it is never restored, listed or deleted",
                path,
                ", ".join(foreign),
            )
