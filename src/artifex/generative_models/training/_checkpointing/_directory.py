"""The checkpoint directory: its marker and its set-up across the processes of a job.

A directory belongs to ``ModelCheckpoint`` when it holds ``MARKER_FILE``; one
that does not, and is not empty, is never written into.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Final

import jax

from artifex.generative_models.training._checkpointing._format import (
    CHECKPOINT_FORMAT,
    MARKER_FILE,
)
from artifex.generative_models.training._spmd import allgather_bytes

__all__ = ["check_directory", "is_checkpoint_directory", "prepare_directory"]

# The verdicts of process 0 on the directory, gathered as one signed byte.
_DIRECTORY_OK: Final = 0
_DIRECTORY_IS_FILE: Final = 1
_DIRECTORY_FOREIGN: Final = 2
_DIRECTORY_OS_ERROR: Final = 3


def is_checkpoint_directory(path: Path) -> bool:
    """Whether ``path`` holds the marker of a ``ModelCheckpoint`` directory.

    Args:
        path: The directory.

    Returns:
        ``True`` if ``path / MARKER_FILE`` is a file.
    """
    return (path / MARKER_FILE).is_file()


def _verdict(path: Path) -> int:
    """The ``_DIRECTORY_*`` code of ``path`` as it stands (reads only, creates nothing)."""
    if path.exists():
        if not path.is_dir():
            return _DIRECTORY_IS_FILE
        if not is_checkpoint_directory(path) and any(path.iterdir()):
            return _DIRECTORY_FOREIGN
    return _DIRECTORY_OK


def _check_and_mark(path: Path) -> int:
    """Create ``path`` and its marker unless it is someone else's; return a ``_DIRECTORY_*`` code.

    The marker is written to a temporary file and renamed into place, so a reader
    never sees a partial marker.
    """
    code = _verdict(path)
    if code != _DIRECTORY_OK:
        return code
    path.mkdir(parents=True, exist_ok=True)
    marker = path / MARKER_FILE
    if not marker.exists():
        partial = path / f".{MARKER_FILE}.{os.getpid()}.tmp"
        partial.write_text(json.dumps({"format": CHECKPOINT_FORMAT}) + "\n")
        partial.replace(marker)
    return _DIRECTORY_OK


def check_directory(path: Path) -> None:
    """Raise as ``prepare_directory`` would for ``path``, creating nothing.

    The same rule and the same collective (every process must call it); a run is
    refused here before anything is written.

    Args:
        path: The resolved checkpoint directory.

    Raises:
        FileExistsError: If ``path`` is a file, or a non-empty directory without marker.
        OSError: If process 0 could not read the directory.
    """
    _agree(path, _verdict)


def prepare_directory(path: Path) -> None:
    """Create ``path`` (and its marker) unless it is someone else's non-empty directory.

    In a multi-process job only process 0 checks and writes; the other processes wait
    for its verdict (a collective, so every process must call this), so no process
    can see the directory half-made, and every process raises the same error.

    Args:
        path: The resolved checkpoint directory.

    Raises:
        FileExistsError: If ``path`` is a file, or a non-empty directory without marker.
        OSError: If process 0 could not create the directory or its marker.
    """
    _agree(path, _check_and_mark)


def _agree(path: Path, judge: Callable[[Path], int]) -> None:
    """Run ``judge`` on process 0, share its verdict, and raise it on every process."""
    primary = jax.process_index() == 0
    code, failure = _DIRECTORY_OK, None
    if primary:
        try:
            code = judge(path)
        except OSError as error:
            code, failure = _DIRECTORY_OS_ERROR, error
    code = allgather_bytes(struct.pack("<b", code))[0][0]
    if code == _DIRECTORY_IS_FILE:
        raise FileExistsError(f"checkpoint dirpath {str(path)!r} exists and is a file")
    if code == _DIRECTORY_FOREIGN:
        raise FileExistsError(
            f"checkpoint dirpath {str(path)!r} is not empty and was not created by "
            f"ModelCheckpoint (it has no {MARKER_FILE}); refusing to write into it. "
            "Choose a new or empty directory."
        )
    if code == _DIRECTORY_OS_ERROR:
        if failure is not None:
            raise failure
        raise OSError(f"process 0 could not check or create the checkpoint dirpath {str(path)!r}")
