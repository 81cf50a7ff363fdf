"""Issue 30, point 10: clear errors when a checkpoint directory's set-up fails.

* A full disk while the lock or the marker is written: an ``OSError`` (``ENOSPC``) naming
  the file, not a bare ``[Errno 28]``; and nothing is left that refuses the next run
  (no empty lock, which read as "an unknown run" for 30 s; no partial marker).
* A lock whose pid is no process id (``2**40``): a damaged lock, described as such,
  not a bare ``OverflowError``; replaced like an unreadable one once it is old.

The full disk is simulated (``os.fsync`` or the marker's write raising ``ENOSPC``, as a
full disk makes them); a real full tmpfs at set-up is ``tests/laws/test_setup_faults.py``.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path

import pytest

from artifex.generative_models.training._checkpointing import _lock
from artifex.generative_models.training._checkpointing._format import MARKER_FILE
from artifex.generative_models.training._checkpointing._lock import (
    LOCK_FILE,
    LockHeld,
    acquire_lock,
)
from artifex.generative_models.training.callbacks import ModelCheckpoint
from tests.training.callbacks._stubs import FullTrainer
from tests.training.checkpointing._dirs import config


def _full(*args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _set_up_and_end(ck: Path) -> None:
    callback = ModelCheckpoint(config(ck))
    callback.on_train_begin(FullTrainer())
    callback.on_train_end(FullTrainer())


def test_a_full_disk_while_writing_the_lock_names_it_and_leaves_no_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ck = tmp_path / "ck"
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", _full)
        with pytest.raises(OSError, match="could not write the checkpoint lock") as failed:
            ModelCheckpoint(config(ck)).on_train_begin(FullTrainer())
    assert failed.value.errno == errno.ENOSPC
    assert str(ck / LOCK_FILE) in str(failed.value)
    assert not (ck / LOCK_FILE).exists()
    _set_up_and_end(ck)  # the next run is not refused as "an unknown run"


def test_a_full_disk_while_writing_the_marker_names_it_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ck = tmp_path / "ck"
    write_text = Path.write_text

    def full_for_the_marker(path: Path, *args: str) -> int:
        if path.name.startswith(f".{MARKER_FILE}"):
            _full()
        return write_text(path, *args)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_text", full_for_the_marker)
        with pytest.raises(OSError, match="could not write the checkpoint marker") as failed:
            ModelCheckpoint(config(ck)).on_train_begin(FullTrainer())
    assert failed.value.errno == errno.ENOSPC
    assert str(ck / MARKER_FILE) in str(failed.value)
    assert list(ck.iterdir()) == []  # no partial marker, and the lock released
    _set_up_and_end(ck)


def test_a_lock_with_a_pid_out_of_range_is_a_damaged_lock(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    ck.mkdir()
    owner = {"pid": 2**40, "token": "x", "host": socket.gethostname(), "run": "r"}
    owner["namespace"] = _lock._namespace()  # pyright: ignore[reportPrivateUsage]
    (ck / LOCK_FILE).write_text(json.dumps(owner))
    with pytest.raises(LockHeld, match="the lock file is unreadable or damaged"):
        acquire_lock(ck)
    with pytest.raises(FileExistsError, match="unreadable or damaged"):
        ModelCheckpoint(config(ck)).preflight(FullTrainer())
    old = time.time() - 3600
    os.utime(ck / LOCK_FILE, (old, old))
    acquire_lock(ck).release()  # replaced, as an unreadable lock is, once old
    assert not (ck / LOCK_FILE).exists()
