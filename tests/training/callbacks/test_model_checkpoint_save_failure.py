"""A failed Orbax save becomes an ``OSError`` naming the directory and the step (issue 18).

Unit tests of ``_checkpointing._manager`` with a stand-in manager; the real disk
faults (a full tmpfs, a read-only remount) are in ``tests/laws/test_disk_faults.py``.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import cast

import orbax.checkpoint as ocp
import pytest

from artifex.generative_models.training._checkpointing._manager import (
    SaveWatch,
    save_failure,
)

TENSORSTORE_FULL = (
    'RESOURCE_EXHAUSTED: Error writing local file "x/_sharding": No space left on device '
    "[os_error_code='28'] [tensorstore_spec='{\"driver\": \"zarr\"}']"
)


class FakeManager:
    """What ``SaveWatch`` uses of an Orbax ``CheckpointManager``."""

    def __init__(self, error: Exception | None, *, in_progress: bool = False) -> None:
        self.error = error
        self.in_progress = in_progress
        self.waits = 0
        self.reloads = 0
        self.closed = False

    def is_saving_in_progress(self) -> bool:
        return self.in_progress

    def wait_until_finished(self) -> None:
        self.waits += 1
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def reload(self) -> None:
        self.reloads += 1

    def close(self) -> None:
        self.closed = True
        raise OSError(errno.ENOSPC, "No space left on device")  # Orbax's close re-raises


def _watching(manager: FakeManager, directory: Path, step: int) -> SaveWatch:
    watch = SaveWatch()
    watch.started(cast("ocp.CheckpointManager", manager), directory, step, asynchronous=True)
    return watch


def test_a_finished_failed_async_save_is_reported_at_the_next_poll(tmp_path: Path) -> None:
    for name in ("6", "12.orbax-checkpoint-tmp", "120.orbax-checkpoint-tmp"):
        (tmp_path / name / "state").mkdir(parents=True)
    orbax_error = ValueError(TENSORSTORE_FULL)
    manager = FakeManager(orbax_error)
    watch = _watching(manager, tmp_path, 12)

    with pytest.raises(OSError, match=r"step 12 in .*No space left on device") as raised:
        watch.poll()

    assert raised.value.errno == errno.ENOSPC
    assert str(tmp_path) in str(raised.value)
    assert "tensorstore_spec" not in str(raised.value)  # Orbax's detail, without the spec
    assert raised.value.__cause__ is orbax_error
    # The partial step is Orbax's to remove when the directory is next opened (issue 24).
    assert "its partial directory is removed when the directory is next opened" in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "12.orbax-checkpoint-tmp",
        "120.orbax-checkpoint-tmp",
        "6",
    ]
    assert manager.reloads == 1  # the steps on disk are read again
    assert watch.step is None
    watch.poll()  # reported once
    watch.settle(block=True)
    assert manager.waits == 1


def test_poll_does_not_wait_for_a_save_in_progress(tmp_path: Path) -> None:
    manager = FakeManager(ValueError(TENSORSTORE_FULL), in_progress=True)
    watch = _watching(manager, tmp_path, 12)
    watch.poll()
    watch.settle(block=False)
    assert (manager.waits, watch.step) == (0, 12)
    with pytest.raises(OSError, match="step 12"):
        watch.settle(block=True)  # at the next save, or at on_train_end


def test_a_synchronous_save_is_not_watched(tmp_path: Path) -> None:
    manager = FakeManager(ValueError(TENSORSTORE_FULL))
    watch = SaveWatch()
    watch.started(cast("ocp.CheckpointManager", manager), tmp_path, 6, asynchronous=False)
    watch.settle(block=True)
    assert manager.waits == 0


def test_close_after_a_reported_failure_is_quiet_and_else_an_os_error(tmp_path: Path) -> None:
    manager = FakeManager(ValueError(TENSORSTORE_FULL))
    watch = _watching(manager, tmp_path, 12)
    with pytest.raises(OSError, match="step 12"):
        watch.settle(block=True)
    watch.close(cast("ocp.CheckpointManager", manager), tmp_path)  # Orbax's error again: logged
    assert manager.closed

    other = FakeManager(None)
    watch = _watching(other, tmp_path, 18)
    watch.settle(block=True)
    with pytest.raises(OSError, match=r"step 18 in") as raised:
        watch.close(cast("ocp.CheckpointManager", other), tmp_path)
    assert raised.value.errno == errno.ENOSPC


def _chained() -> RuntimeError:
    error = RuntimeError("commit failed")
    error.__cause__ = OSError(errno.EROFS, "Read-only file system")
    return error


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), errno.ENOSPC),
        (_chained(), errno.EROFS),
        (ValueError("PERMISSION_DENIED: Failed to open [os_error_code='30']"), errno.EROFS),
        (ValueError("RESOURCE_EXHAUSTED: out of space"), errno.ENOSPC),
        (ValueError("PERMISSION_DENIED: no"), errno.EACCES),
        (ValueError("something else"), errno.EIO),
    ],
    ids=["oserror", "chained", "os-error-code", "resource-exhausted", "denied", "unknown"],
)
def test_the_errno_is_the_causes(tmp_path: Path, error: Exception, code: int) -> None:
    failure = save_failure(cast("ocp.CheckpointManager", FakeManager(None)), tmp_path, 3, error)
    assert failure.errno == code
    assert f"step 3 in {str(tmp_path)!r}" in str(failure)
    assert "the checkpoints saved before it are kept" in str(failure)
