"""The lock of a checkpoint directory: stale locks are replaced, live and foreign ones refuse.

A lock whose owner is provably gone (a dead process of this host and pid namespace, a
reused pid, this pid without holding it, a lock left unreadable) is replaced; one whose
owner cannot be seen (another host, a restarted container's namespace) is taken over
only by a run continuing the lock's own run.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from artifex.generative_models.training._checkpointing import _lock
from artifex.generative_models.training._checkpointing._format import MARKER_FILE
from artifex.generative_models.training._checkpointing._lock import (
    LOCK_FILE,
    LockHeld,
    acquire_lock,
    check_lock,
)
from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    ModelCheckpoint,
    restore_checkpoint,
)
from tests.training.callbacks._stubs import FullTrainer, drive

HERE = {"host": socket.gethostname(), "namespace": _lock._namespace()}  # pyright: ignore[reportPrivateUsage]


def _write_lock(ck: Path, **owner: Any) -> None:
    ck.mkdir(parents=True, exist_ok=True)
    (ck / LOCK_FILE).write_text(json.dumps(owner))


def _dead_pid() -> int:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=60)
    return dead.pid


def test_stale_and_live_locks(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    dead = _dead_pid()
    _write_lock(ck, pid=dead, token="dead", **HERE)
    acquire_lock(ck).release()  # a dead process's lock is replaced
    assert not (ck / LOCK_FILE).exists()
    _write_lock(ck, pid=os.getpid(), token="earlier", **HERE)
    acquire_lock(ck).release()  # this pid, not held here: a previous incarnation
    _write_lock(ck, pid=os.getppid(), token="parent", started=-1, **HERE)  # a reused pid
    acquire_lock(ck).release()
    _write_lock(ck, pid=os.getppid(), token="parent", **HERE)  # alive
    with pytest.raises(LockHeld, match=f"pid {os.getppid()}"):
        acquire_lock(ck)
    _write_lock(ck, pid=dead, token="remote", host="elsewhere.invalid")
    with pytest.raises(LockHeld, match=r"elsewhere\.invalid"):
        acquire_lock(ck)  # another host's process cannot be checked
    (ck / LOCK_FILE).write_text("{")  # a writer died while filling it
    with pytest.raises(LockHeld, match="unreadable"):
        acquire_lock(ck)
    old = time.time() - 120
    os.utime(ck / LOCK_FILE, (old, old))
    acquire_lock(ck).release()
    assert sorted(p.name for p in ck.iterdir()) == []


def test_a_lock_held_by_this_process_refuses_a_second_taker(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    held = acquire_lock(tmp_path, "run-a")
    assert json.loads((tmp_path / LOCK_FILE).read_text())["run"] == "run-a"
    with pytest.raises(LockHeld, match=r"run 'run-a' \(pid"):
        acquire_lock(tmp_path, "run-a")  # even of the same run: another callback here
    with pytest.raises(LockHeld):
        check_lock(tmp_path, "run-a")
    held.release()
    assert not (tmp_path / LOCK_FILE).exists()


@pytest.mark.parametrize(
    "elsewhere",
    [{"host": "elsewhere.invalid"}, {**HERE, "namespace": "pid:[4026531836]-restarted"}],
    ids=["another-host", "restarted-container"],
)
def test_a_rerun_takes_over_its_own_runs_lock_and_no_other(
    tmp_path: Path, elsewhere: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    ck = tmp_path / "ck"
    _write_lock(ck, run="run-a", pid=1, token="killed", **elsewhere)
    for other in (None, "run-b"):  # a new run, another run: the owner cannot be seen
        with pytest.raises(LockHeld, match=r"run 'run-a' \(pid 1 on host"):
            check_lock(ck, other)
        with pytest.raises(LockHeld, match=r"run 'run-a'"):
            acquire_lock(ck, other)
    check_lock(ck, "run-a")  # passes: the run continuing run-a may take it over
    with caplog.at_level(logging.WARNING, logger=_lock.__name__):
        held = acquire_lock(ck, "run-a")
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1
    assert str(ck / LOCK_FILE) in warned[0]
    assert "run 'run-a'" in warned[0]
    assert "continues its run 'run-a'" in warned[0]
    assert json.loads((ck / LOCK_FILE).read_text())["pid"] == os.getpid()
    held.release()
    assert sorted(p.name for p in ck.iterdir()) == []


def test_a_rerun_in_a_restarted_container_resumes_past_its_killed_runs_lock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ck = tmp_path / "ck"
    config = CheckpointConfig(dirpath=ck, async_save=False)
    drive(FullTrainer(), [ModelCheckpoint(config)], [[1.0, 1.0]])  # step 2, run R
    run = json.loads((ck / MARKER_FILE).read_text())["run"]
    restarted = {**HERE, "namespace": "pid:[1]-before-the-restart"}
    _write_lock(ck, run=run, pid=os.getpid(), token="killed", **restarted)

    stranger = FullTrainer()  # a new run: refused, naming the lock
    with pytest.raises(FileExistsError, match=rf"run '{run}' .* holds its lock .*resume it"):
        ModelCheckpoint(config).on_train_begin(stranger)

    rerun = FullTrainer()
    restore_checkpoint(ck, target=rerun)  # continues run R
    with caplog.at_level(logging.WARNING, logger=_lock.__name__):
        drive(rerun, [ModelCheckpoint(config)], [[1.0, 1.0]], start_step=2, start_epoch=1)
    assert any(str(ck / LOCK_FILE) in r.getMessage() for r in caplog.records)
    assert sorted(int(p.name) for p in ck.iterdir() if p.name.isdigit()) == [2, 4]
    assert not (ck / LOCK_FILE).exists()
