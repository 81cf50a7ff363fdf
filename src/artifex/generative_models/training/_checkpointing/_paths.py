"""Which paths a checkpoint directory may have, and which user paths would hit our files.

Imports no Orbax: the callbacks that write files of their own (``CSVLogger``, and the
preflight pass for every callback's path fields) check their paths with it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Final

from artifex.generative_models.training._checkpointing._lock import LOCK_FILE, is_lock_litter

__all__ = [
    "MARKER_FILE",
    "check_round_trip",
    "check_user_path",
    "check_writable",
    "checkpoint_directory_above",
]

MARKER_FILE: Final = "artifex_checkpoints.json"

# Characters TensorStore does not read back in a checkpoint's path (tried with Orbax
# 0.11 and TensorStore on Linux): a backslash is taken as a separator, so the arrays
# land beside the directory; a bracket pair reads as a glob class, so the arrays are
# written but never found again. Every other character round-trips
# (tests/training/checkpointing/test_paths.py tries each class).
_UNSAFE: Final = {
    "\\": "TensorStore takes a backslash for a path separator",
    "[": "TensorStore reads brackets as a glob pattern",
    "]": "TensorStore reads brackets as a glob pattern",
}


def check_round_trip(path: Path) -> None:
    """Refuse a checkpoint directory whose arrays could not be written and read back."""
    text = os.fsencode(path)
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = text[error.start : error.start + 1]
        raise ValueError(
            f"checkpoint dirpath {str(path)!r} holds the byte {byte!r}, which is not UTF-8: "
            "TensorStore cannot write the checkpoint's arrays there; choose a UTF-8 path"
        ) from None
    for character, why in _UNSAFE.items():
        if character in str(path):
            raise ValueError(
                f"checkpoint dirpath {str(path)!r} holds {character!r}, and {why}: its "
                "checkpoints would save but never restore; choose a path without '\\', '[' "
                "or ']'"
            )


def checkpoint_directory_above(path: Path) -> Path | None:
    """The checkpoint directory that ``path`` (absolute) lies in, or ``None``."""
    return next((above for above in path.parents if (above / MARKER_FILE).is_file()), None)


def check_user_path(what: str, path: Path) -> None:
    """Refuse a user's file or folder that a checkpoint directory's run would take for its own."""
    if path.name == MARKER_FILE or is_lock_litter(path.name):
        kind = "marker" if path.name == MARKER_FILE else "lock"
        raise ValueError(
            f"{what} {str(path)!r} is named like ModelCheckpoint's {kind} "
            f"({MARKER_FILE if kind == 'marker' else LOCK_FILE}): a checkpoint directory "
            "there would read, replace or delete it; choose another name"
        )
    above = path if (path / MARKER_FILE).is_file() else checkpoint_directory_above(path)
    if above is not None:
        raise ValueError(
            f"{what} {str(path)!r} lies inside the checkpoint directory {str(above)!r} (it "
            f"holds {MARKER_FILE}), whose run lists, replaces and deletes what is there; "
            "choose a path outside it"
        )


def check_writable(what: str, path: Path) -> None:
    """Refuse a path that cannot be written: it, or the nearest folder above it, is not writable."""
    # Read only (access(2)): a read-only file system refuses root too, permission bits do not.
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None:
        return
    wanted = os.W_OK | os.X_OK if existing.is_dir() else os.W_OK
    if os.access(existing, wanted):
        return
    read_only = hasattr(os, "statvfs") and bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    code, why = (
        (errno.EROFS, "is on a read-only file system")
        if read_only
        else (errno.EACCES, "is not writable by this user")
    )
    raise PermissionError(
        code,
        f"{what} {str(path)!r} cannot be written: {str(existing)!r} {why}; make it "
        "writable or choose another path",
    )
