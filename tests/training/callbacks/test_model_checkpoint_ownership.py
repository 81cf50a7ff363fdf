"""A checkpoint directory is written by one run at a time (issue 18, item 4), through fit.

A second run writing the directory while the first holds its lock is refused; a
lock left by a killed process is replaced by the next run. The marker and run
ownership rules are tested in tests/training/checkpointing/.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from artifex.generative_models.training._checkpointing._lock import LOCK_FILE
from artifex.generative_models.training.callbacks import (
    LambdaCallback,
    ModelCheckpoint,
    restore_checkpoint,
)
from tests.laws._resume_script import make_data
from tests.training.callbacks._stubs import FullTrainer, drive
from tests.training.checkpointing._dirs import (
    config,
    fit_trainer,
    listing,
    marker,
    meta_run,
    run_a,
    steps,
)

REPO = Path(__file__).resolve().parents[3]


def test_a_second_run_at_the_same_time_is_refused(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    trainer = FullTrainer()
    first = ModelCheckpoint(config(ck))
    first.on_train_begin(trainer)
    holder = json.loads((ck / LOCK_FILE).read_text())
    assert holder["pid"] == os.getpid()
    assert holder["host"] == socket.gethostname()
    with pytest.raises(FileExistsError) as refused:
        ModelCheckpoint(config(ck)).on_train_begin(trainer)
    message = str(refused.value)
    assert str(ck) in message
    assert f"pid {os.getpid()}" in message
    assert socket.gethostname() in message
    assert "Wait for that run" in message
    first.on_train_end(trainer)
    assert not (ck / LOCK_FILE).exists()
    second = ModelCheckpoint(config(ck))
    second.on_train_begin(trainer)  # the first run ended
    second.on_train_end(trainer)


def test_preflight_refuses_a_locked_or_another_runs_directory_writing_nothing(
    tmp_path: Path,
) -> None:
    ck = tmp_path / "ck"
    trainer = run_a(ck)
    before = listing(ck)
    with pytest.raises(FileExistsError, match="holds the checkpoints of run"):
        ModelCheckpoint(config(ck)).preflight(FullTrainer())  # another run
    ModelCheckpoint(config(ck)).preflight(trainer)  # the same trainer continues its run
    assert listing(ck) == before
    first = ModelCheckpoint(config(ck))
    first.on_train_begin(trainer)
    locked = listing(ck)
    with pytest.raises(FileExistsError, match="being written by another run"):
        ModelCheckpoint(config(ck)).preflight(trainer)
    first.preflight(trainer)  # the holder itself is not refused
    assert listing(ck) == locked
    first.on_train_end(trainer)
    assert not (ck / LOCK_FILE).exists()


def test_the_lock_is_released_when_fit_fails(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    train, val = make_data()

    held: list[bool] = []

    def fail(_trainer: object, step: int, _logs: dict[str, Any]) -> None:
        if step == 8:
            held.append((ck / LOCK_FILE).is_file())
            raise RuntimeError("boom")

    failing = fit_trainer(ck, LambdaCallback(on_batch_end=fail))
    with pytest.raises(RuntimeError, match="boom"):
        failing.fit(train, epochs=3, val_data=val)
    assert held == [True]
    assert not (ck / LOCK_FILE).exists()
    fit_trainer(ck).fit(train, epochs=1, val_data=val, resume_from=ck)
    assert steps(ck) == [6, 12]


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("failed", [False, True])
def test_the_lock_is_released_when_an_earlier_teardown_is_interrupted(
    tmp_path: Path, kind: type[BaseException], failed: bool
) -> None:
    ck = tmp_path / "ck"
    train, val = make_data()
    interrupt, failure = kind("Ctrl-C in on_train_end"), RuntimeError("boom")

    def fail(_trainer: object, step: int, _logs: dict[str, Any]) -> None:
        if failed and step == 8:
            raise failure

    def interrupted(_trainer: object) -> None:
        raise interrupt

    first = fit_trainer(ck, LambdaCallback(on_batch_end=fail, on_train_end=interrupted))
    with pytest.raises(BaseException) as info:  # noqa: PT011  # which one is the point
        first.fit(train, epochs=3, val_data=val)
    # The first exception propagates: the run's failure, else the interrupt itself.
    assert info.value is (failure if failed else interrupt)
    assert not (ck / LOCK_FILE).exists()  # ModelCheckpoint's teardown ran all the same
    fit_trainer(ck).fit(train, epochs=1, val_data=val, resume_from=ck)  # not "another run"
    assert steps(ck)[-1] == (12 if failed else 24)


_HOLDER = """
import sys, time
from pathlib import Path
from artifex.generative_models.training.callbacks import CheckpointConfig, ModelCheckpoint
from tests.training.callbacks._stubs import FullTrainer
trainer = FullTrainer()
callback = ModelCheckpoint(CheckpointConfig(dirpath=sys.argv[1], async_save=False))
callback.on_train_begin(trainer)
trainer.step = 2
callback.on_epoch_end(trainer, 0, {"loss": 1.0})
(Path(sys.argv[1]).parent / "ready").touch()
time.sleep(120)
"""


@pytest.mark.one_python
def test_a_lock_left_by_a_killed_run_is_recovered(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(ck)], cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "ready").exists():
            assert holder.poll() is None, "the lock holder exited"
            assert time.monotonic() < deadline, "the lock holder did not start"
            time.sleep(0.1)
        trainer = FullTrainer()
        restore_checkpoint(ck, target=trainer)
        with pytest.raises(FileExistsError, match=f"pid {holder.pid}"):
            ModelCheckpoint(config(ck)).on_train_begin(trainer)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    assert json.loads((ck / LOCK_FILE).read_text())["pid"] == holder.pid  # left behind
    drive(trainer, [ModelCheckpoint(config(ck))], [[1.0, 1.0]], start_step=2, start_epoch=1)
    assert steps(ck) == [2, 4]
    assert not (ck / LOCK_FILE).exists()
    assert meta_run(ck, 4) == meta_run(ck, 2) == marker(ck)["run"]
