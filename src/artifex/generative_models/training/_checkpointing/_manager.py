"""The writing side of a checkpoint directory: its Orbax manager, agreed saves, failed saves.

A failed save is raised as an ``OSError`` with the ``errno`` of the cause (``EIO`` when
none is known), naming the directory and the step; see the docs' Reliability page.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeAlias

import jax
import orbax.checkpoint as ocp

from artifex.generative_models.training._checkpointing._retention import (
    Ranking,
    preservation_policy,
)
from artifex.generative_models.training._checkpointing._step_dirs import (
    CompleteStepsOnly,
    tidy_step_directories,
)
from artifex.generative_models.training._spmd import allgather_bytes

if TYPE_CHECKING:  # types only: this package imports nothing of callbacks/ at run time
    from artifex.generative_models.training.callbacks._checkpoint_config import CheckpointConfig

__all__ = ["SavePlan", "SaveWatch", "agree_on_save_plan", "open_manager", "save_failure"]

_log = logging.getLogger(__name__)

SavePlan: TypeAlias = tuple[int, float | None] | None
"""``(step, score)`` of the checkpoint due now, or ``None`` if none is."""

_PLAN: Final = struct.Struct("<??q?d")  # failed, due, step, has score, score
_OS_ERROR_CODE: Final = re.compile(r"os_error_code='(\d+)'")
_STATUS_ERRNO: Final = (
    ("RESOURCE_EXHAUSTED", errno.ENOSPC),
    ("Read-only file system", errno.EROFS),
    ("PERMISSION_DENIED", errno.EACCES),
)


def open_manager(
    directory: Path, settings: CheckpointConfig
) -> tuple[ocp.CheckpointManager, Ranking | None] | None:
    """Open the writing manager of a prepared checkpoint directory (a collective)."""
    policy = preservation_policy(settings)
    if policy is None:
        return None
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy,
        enable_async_checkpointing=settings.async_save,
        # Created in Orbax's background, a step directory that cannot be created (a
        # read-only disk) left the save's other writers waiting 300 s for its signal.
        async_options=ocp.AsyncOptions(create_directories_asynchronously=False),
        create=True,
        # Orbax's own removal runs in a thread that only its save waits for: a run that
        # saves nothing would exit with it running ("cannot schedule new futures").
        cleanup_tmp_directories=False,
        step_name_format=CompleteStepsOnly(),  # never a user's folder, nor a partial step
    )
    if jax.process_index() == 0:
        tidy_step_directories(directory)
        for partial in ocp.utils.tmp_checkpoints(directory):
            shutil.rmtree(partial.get(), ignore_errors=True)
    manager = ocp.CheckpointManager(directory, options=options)
    ranking = policy if isinstance(policy, Ranking) else None
    if ranking is not None and settings.monitor is not None:
        ranking.read(directory, manager.all_steps(), settings.monitor)
    return manager, ranking


def agree_on_save_plan(where: str, plan: SavePlan, failure: Exception | None) -> SavePlan:
    """Check that every process of the job plans the same save (a collective)."""
    # Orbax's saves are collective and each process ranks from its own scores:
    # processes that differed on the step or the score would wait forever for each other.
    step, score = plan if plan is not None else (-1, None)
    payload = _PLAN.pack(
        failure is not None, plan is not None, step, score is not None, score or 0.0
    )
    rows = allgather_bytes(payload)
    if failure is not None:
        raise failure
    failed = [index for index, row in enumerate(rows) if _PLAN.unpack(row)[0]]
    if failed:
        raise RuntimeError(
            f"ModelCheckpoint failed at {where} on process(es) {failed} "
            "(see their errors); this process stops with them"
        )
    if any(row != payload for row in rows):
        seen = []
        for index, row in enumerate(rows):
            _, row_due, row_step, has_score, row_score = _PLAN.unpack(row)
            what = f"step {row_step}, score {row_score if has_score else None}"
            seen.append(f"process {index}: {what if row_due else 'no save'}")
        raise RuntimeError(
            f"ModelCheckpoint: the processes of the job disagree at {where} "
            f"({'; '.join(seen)}). Every process must pass the same step and logs."
        )
    return plan


def _errno_of(error: BaseException) -> int:
    """The ``errno`` behind ``error`` or its causes (TensorStore's text too), else ``EIO``."""
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
