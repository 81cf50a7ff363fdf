"""A failed Orbax save as an ``OSError`` naming the directory and the step.

Orbax reports a failed write as it met it: an ``OSError`` of its own threads, or
TensorStore's ``ValueError`` (``RESOURCE_EXHAUSTED`` for a full disk,
``PERMISSION_DENIED`` for a read-only one). ``ModelCheckpoint`` raises instead an
``OSError`` with the ``errno`` of the cause (``ENOSPC``, ``EROFS``, ...; ``EIO`` when
none is known), naming the directory and the step, from the original error. Before
that, the partial step Orbax leaves (its ``<step>.orbax-checkpoint-tmp*`` directory
in the checkpoint directory) is removed, and the manager re-reads the steps on disk:
the checkpoints saved before the failure are kept.

An asynchronous save fails in Orbax's background threads; ``SaveWatch`` holds the
step in flight and reports its failure when asked (without waiting, between steps).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import threading
import time
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
_WRITERS_BOUND: Final = 10.0
"""Seconds to wait at most for Orbax's remaining writer threads of a failed save."""


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
    for status, code in _STATUS_ERRNO:
        if status in text:
            return code
    return errno.EIO


def _await_writers() -> None:
    """Let Orbax's writer threads of the failed save end (bounded) before tidying up.

    Orbax stops waiting for a save's writers at the first that fails; the others may
    still be writing into the step's temporary directory.
    """
    deadline = time.monotonic() + _WRITERS_BOUND
    for thread in threading.enumerate():
        if type(thread).__name__ == "_SignalingThread" and thread.is_alive():
            # Thread's own join: Orbax's raises the thread's error.
            threading.Thread.join(thread, max(0.0, deadline - time.monotonic()))


def _remove_partial_step(directory: Path, step: int) -> str:
    """Remove the temporary directories of ``step`` in ``directory`` (process 0 only).

    Returns:
        What became of them, for the error message.
    """
    if jax.process_index() != 0:
        return "process 0 removes its partial directory"
    try:
        partial = list(directory.glob(f"{step}.orbax-checkpoint-tmp*"))
        for path in partial:
            shutil.rmtree(path)
    except OSError as error:
        _log.warning("could not remove the partial step %d in %s: %s", step, directory, error)
        return f"its partial directory could not be removed ({error.strerror})"
    return "its partial directory was removed" if partial else "it left no partial directory"


def save_failure(
    manager: ocp.CheckpointManager, directory: Path, step: int, error: BaseException
) -> OSError:
    """The ``OSError`` to raise (``from error``) for the failed save of ``step``.

    Removes the step's partial directory first, and has ``manager`` re-read the
    steps on disk (Orbax has already dropped the ones retention was to delete).

    Args:
        manager: The manager that failed to save.
        directory: The checkpoint directory.
        step: The step whose save failed.
        error: Orbax's error.

    Returns:
        The error, with the ``errno`` of the cause.
    """
    _await_writers()
    fate = _remove_partial_step(directory, step)
    try:
        manager.reload()
    except Exception as reload_error:  # the directory may be unreadable too
        _log.warning("could not re-read the steps in %s: %s", directory, reload_error)
    code = _errno_of(error)
    detail = str(error).split(" [tensorstore_spec=", 1)[0][:400]
    return OSError(
        code,
        f"ModelCheckpoint could not save step {step} in {str(directory)!r}: "
        f"{os.strerror(code)}; {fate}, and the checkpoints saved before it are kept "
        f"(Orbax: {detail})",
    )


class SaveWatch:
    """The asynchronous save in flight of a ``ModelCheckpoint``, and its failure.

    Attributes:
        step: The step of the asynchronous save not yet seen to finish, or ``None``.
    """

    __slots__ = ("_directory", "_failed", "_last", "_manager", "_solo", "step")

    def __init__(self) -> None:
        """Watch nothing yet."""
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
        """Report a finished failed save without waiting (in a single process only).

        Costs an attribute check while no save is in flight. In a multi-process job
        it does nothing: the processes would see the end of the save at different
        steps, so a failure is reported at the next save, where they agree.

        Raises:
            OSError: If the save failed.
        """
        if self.step is not None and self._solo:
            self.settle(block=False)

    def settle(self, *, block: bool) -> None:
        """Wait for the save in flight (if ``block``, else only if it has finished).

        Raises:
            OSError: If the save failed, naming the directory and the step.
        """
        manager, step = self._manager, self.step
        if manager is None or step is None:
            return
        if not block and manager.is_saving_in_progress():
            return
        self.step, self._manager = None, None
        try:
            manager.wait_until_finished()
        except Exception as error:
            raise self.failure(manager, self._directory, step, error) from error

    def close(self, manager: ocp.CheckpointManager, directory: Path) -> None:
        """Close ``manager`` (after ``settle``) and watch nothing again.

        After a reported failure, Orbax's close raises its error again; it is logged.

        Raises:
            OSError: If closing fails after no failure, naming the last step saved.
        """
        failed, last = self._failed, self._last
        self.step, self._manager, self._failed, self._last = None, None, False, -1
        try:
            manager.close()
        except Exception as error:
            if failed:
                _log.debug("closing the manager of %s after its failed save: %s", directory, error)
                return
            raise save_failure(manager, directory, last, error) from error
