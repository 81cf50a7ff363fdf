"""A failed Orbax save as an ``OSError`` naming the directory and the step.

Orbax reports a failed write as it met it: an ``OSError`` of its own threads, or
TensorStore's ``ValueError`` (``RESOURCE_EXHAUSTED`` for a full disk,
``PERMISSION_DENIED`` for a read-only one). ``ModelCheckpoint`` raises instead an
``OSError`` with the ``errno`` of the cause (``EIO`` when none is known), naming the
directory and the step, from the original error; the checkpoints saved before it are
kept. The failed step's temporary directory is removed when the directory is next
opened for writing (see ``open_manager``).

An asynchronous save fails in Orbax's background; ``SaveWatch`` holds the step in
flight and reports its failure when asked, through Orbax's public
``is_saving_in_progress`` and ``wait_until_finished``.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from pathlib import Path
from typing import Final

import jax
import orbax.checkpoint as ocp

__all__ = ["SaveWatch", "save_failure"]

_log = logging.getLogger(__name__)

_OS_ERROR_CODE: Final = re.compile(r"os_error_code='(\d+)'")
_STATUS_ERRNO: Final = (
    ("RESOURCE_EXHAUSTED", errno.ENOSPC),
    ("Read-only file system", errno.EROFS),
    ("PERMISSION_DENIED", errno.EACCES),
)


def _errno_of(error: BaseException) -> int:
    """The ``errno`` behind ``error`` or its causes, ``EIO`` if none is known."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    text = str(error)
    found = _OS_ERROR_CODE.search(text)
    if found is not None:
        return int(found.group(1))
    return next((code for status, code in _STATUS_ERRNO if status in text), errno.EIO)


def save_failure(
    manager: ocp.CheckpointManager, directory: Path, step: int, error: BaseException
) -> OSError:
    """The ``OSError`` to raise (``from error``) for the failed save of ``step``."""
    try:  # Orbax has already dropped the steps retention was to delete: re-read them
        manager.reload()
    except Exception as reload_error:  # the directory may be unreadable too
        _log.warning("could not re-read the steps in %s: %s", directory, reload_error)
    code = _errno_of(error)
    detail = str(error).split(" [tensorstore_spec=", 1)[0][:400]
    return OSError(
        code,
        f"ModelCheckpoint could not save step {step} in {str(directory)!r}: "
        f"{os.strerror(code)}; the checkpoints saved before it are kept, and its partial "
        f"directory is removed when the directory is next opened (Orbax: {detail})",
    )


class SaveWatch:
    """The asynchronous save in flight of a ``ModelCheckpoint``, and its failure."""

    __slots__ = ("_directory", "_failed", "_last", "_manager", "_solo", "step")

    def __init__(self) -> None:
        self.step: int | None = None
        self._manager: ocp.CheckpointManager | None = None
        self._directory = Path()
        self._solo = True
        self._failed = False
        self._last = -1

    def started(
        self, manager: ocp.CheckpointManager, directory: Path, step: int, *, asynchronous: bool
    ) -> None:
        """Note the save of ``step`` that ``manager`` has just begun; watch it if asynchronous."""
        self._directory, self._last = directory, step
        if asynchronous:
            self.step, self._manager = step, manager
            self._solo = jax.process_count() == 1

    def failure(
        self, manager: ocp.CheckpointManager, directory: Path, step: int, error: BaseException
    ) -> OSError:
        """``save_failure``, remembered: closing the manager then fails quietly."""
        self._failed = True
        return save_failure(manager, directory, step, error)

    def poll(self) -> None:
        """Report a finished failed save without waiting (in a single process only)."""
        # Processes would see the save end at different steps: a multi-process job
        # reports the failure at the next save, where they agree.
        if self.step is not None and self._solo:
            self.settle(block=False)

    def settle(self, *, block: bool) -> None:
        """Wait for the save in flight (if ``block``, else only if it has finished)."""
        manager, step = self._manager, self.step
        if manager is None or step is None or (not block and manager.is_saving_in_progress()):
            return
        self.step, self._manager = None, None
        try:
            manager.wait_until_finished()
        except Exception as error:
            raise self.failure(manager, self._directory, step, error) from error

    def close(self, manager: ocp.CheckpointManager, directory: Path) -> None:
        """Close ``manager`` (after ``settle``) and watch nothing again."""
        failed, last = self._failed, self._last
        self.step, self._manager, self._failed, self._last = None, None, False, -1
        try:
            manager.close()
        except Exception as error:
            if not failed:  # after a reported failure Orbax's close raises it again
                raise save_failure(manager, directory, last, error) from error
            _log.debug("closing the manager of %s after its failed save: %s", directory, error)
