"""A checkpoint directory holds one run, written by one run at a time (issue 18, items 2, 4).

A run that does not continue the directory's run is refused before anything is
written (retention would otherwise delete that run's checkpoints); a second run
writing the directory while the first holds its lock is refused; a lock left by a
killed process is replaced by the next run.
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

import optax
import pytest
from flax import nnx

from artifex.generative_models.training._checkpointing._format import MARKER_FILE
from artifex.generative_models.training._checkpointing._lock import LOCK_FILE
from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    LambdaCallback,
    ModelCheckpoint,
    restore_checkpoint,
)
from artifex.generative_models.training.callbacks.protocols import RunStatus, TrainerState
from artifex.generative_models.training.trainer import Trainer
from tests.laws._resume_script import DropoutMLP, loss_fn, make_data, make_model
from tests.training.callbacks._stubs import FullTrainer, ModelOnlyTrainer, TinyModel, drive

REPO = Path(__file__).resolve().parents[3]


def _config(path: Path, **kwargs: Any) -> CheckpointConfig:
    return CheckpointConfig(dirpath=path, save_top_k=3, async_save=False, **kwargs)


def _run_a(path: Path) -> FullTrainer:
    """Run A: steps 2, 4 and 6 in ``path``."""
    trainer = FullTrainer()
    drive(trainer, [ModelCheckpoint(_config(path))], [[1.0, 1.0]] * 3)
    return trainer


def _marker(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((path / MARKER_FILE).read_text())
    return found


def _meta_run(path: Path, step: int) -> object:
    meta: dict[str, Any] = json.loads((path / str(step) / "meta" / "metadata").read_text())
    return meta.get("run")


def _listing(path: Path) -> dict[str, float]:
    return {str(p.relative_to(path)): p.stat().st_mtime for p in sorted(path.rglob("*"))}


def _steps(path: Path) -> list[int]:
    return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit())


# ---------------------------------------------------------------- ownership


def test_a_run_id_is_in_the_marker_and_every_checkpoint(tmp_path: Path) -> None:
    _run_a(tmp_path / "ck")
    run = _marker(tmp_path / "ck")["run"]
    assert isinstance(run, str)
    assert len(run) == 32
    assert [_meta_run(tmp_path / "ck", step) for step in (2, 4, 6)] == [run] * 3


def test_another_runs_directory_is_refused_and_its_checkpoints_kept(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    _run_a(ck)
    run = _marker(ck)["run"]
    before = _listing(ck)
    other = FullTrainer(seed=1)
    other.step, other.epoch = 20, 10  # beyond run A: the step check lets it in
    callback = ModelCheckpoint(_config(ck))
    with pytest.raises(FileExistsError) as refused:
        drive(other, [callback], [[1.0, 1.0]] * 3, start_step=20, start_epoch=10)
    message = str(refused.value)
    assert str(ck) in message
    assert run in message
    assert "resume_from" in message
    assert _listing(ck) == before  # nothing written, no lock left behind
    assert _steps(ck) == [2, 4, 6]
    assert restore_checkpoint(ck).step == 6


def test_a_plain_trainer_of_another_run_is_refused(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    drive(ModelOnlyTrainer(), [ModelCheckpoint(_config(ck))], [[1.0, 1.0]] * 3)
    with pytest.raises(FileExistsError, match="does not continue it"):
        drive(ModelOnlyTrainer(), [ModelCheckpoint(_config(ck))], [[1.0]], start_step=20)
    assert _steps(ck) == [2, 4, 6]


def test_a_run_continued_from_the_directory_is_accepted(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    _run_a(ck)
    run = _marker(ck)["run"]
    resumed = FullTrainer(seed=1)
    restore_checkpoint(ck, target=resumed)  # a trainer's whole state
    drive(resumed, [ModelCheckpoint(_config(ck))], [[1.0, 1.0]], start_step=6, start_epoch=3)
    assert _steps(ck) == [4, 6, 8]
    assert _meta_run(ck, 8) == run


class CountingTrainer(ModelOnlyTrainer):
    """A ``TrainerState`` without ``state_dict``: only its model is checkpointed."""

    def __init__(self, model: nnx.Module | None = None) -> None:
        super().__init__(model)
        self.step, self.epoch, self.stop_training = 0, 0, False
        self.status: RunStatus = "running"
        self.stopped_by: object | None = None
        self.error: BaseException | None = None


@pytest.mark.parametrize("target", ["trainer", "model"])
def test_a_plain_trainer_continues_after_restoring(tmp_path: Path, target: str) -> None:
    ck = tmp_path / "ck"
    drive(CountingTrainer(), [ModelCheckpoint(_config(ck))], [[1.0, 1.0]])  # step 2
    plain = CountingTrainer(TinyModel(nnx.Rngs(3)))
    assert isinstance(plain, TrainerState)
    restored = restore_checkpoint(ck, target=plain if target == "trainer" else plain.model)
    plain.step = restored.step  # not a CheckpointableTrainer: it sets its counters itself
    drive(plain, [ModelCheckpoint(_config(ck))], [[1.0, 1.0]], start_step=2, start_epoch=1)
    assert _steps(ck) == [2, 4]
    assert _meta_run(ck, 4) == _meta_run(ck, 2) == _marker(ck)["run"]


def test_the_same_callback_and_trainer_continue_on_a_later_fit(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    trainer, callback = FullTrainer(), ModelCheckpoint(_config(ck))
    drive(trainer, [callback], [[1.0, 1.0]])
    drive(trainer, [callback], [[1.0, 1.0]], start_step=2, start_epoch=1)
    assert callback.saved_checkpoint_steps == (2, 4)
    assert _meta_run(ck, 2) == _meta_run(ck, 4) == _marker(ck)["run"]


def test_a_directory_without_run_id_is_adopted(tmp_path: Path) -> None:
    # a directory of formats 1 to 3 names no run: its checkpoints cannot be told apart
    ck = tmp_path / "ck"
    _run_a(ck)
    legacy = {"format": _marker(ck)["format"]}
    (ck / MARKER_FILE).write_text(json.dumps(legacy))
    before = _listing(ck)
    with pytest.raises(FileExistsError, match="up to step 6"):  # refused: not adopted
        drive(FullTrainer(seed=2), [ModelCheckpoint(_config(ck))], [[1.0]])
    assert _listing(ck) == before
    other = FullTrainer(seed=1)
    other.step = 20
    drive(other, [ModelCheckpoint(_config(ck))], [[1.0]], start_step=20, start_epoch=10)
    assert _marker(ck)["format"] == legacy["format"]
    assert _meta_run(ck, 21) == _marker(ck)["run"]


def test_a_directory_without_checkpoints_is_taken_over(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    first = ModelCheckpoint(_config(ck))
    first.on_train_begin(FullTrainer())
    first.on_train_end(FullTrainer())  # a run that saved nothing
    abandoned = _marker(ck)["run"]
    drive(FullTrainer(seed=1), [ModelCheckpoint(_config(ck))], [[1.0]])
    assert _steps(ck) == [1]
    assert _meta_run(ck, 1) == _marker(ck)["run"] != abandoned


def _fit_trainer(ck: Path, *callbacks: Any) -> Trainer[DropoutMLP]:
    return Trainer(
        make_model(),
        optax.adam(1e-2),
        loss_fn,
        callbacks=[*callbacks, ModelCheckpoint(_config(ck))],
    )


def test_the_reference_trainer_continues_with_resume_and_is_refused_without(
    tmp_path: Path,
) -> None:
    ck = tmp_path / "ck"
    train, val = make_data()
    _fit_trainer(ck).fit(train, epochs=2, val_data=val)  # steps 6 and 12
    run = _marker(ck)["run"]
    ahead = _fit_trainer(tmp_path / "elsewhere")
    ahead.fit(train, epochs=3)  # step 18, in another directory
    ahead.callbacks.append(ModelCheckpoint(_config(ck)))
    with pytest.raises(FileExistsError, match=run):
        ahead.fit(train, epochs=1)
    assert _steps(ck) == [6, 12]
    _fit_trainer(ck).fit(train, epochs=1, val_data=val, resume_from=ck)
    assert _steps(ck) == [6, 12, 18]
    again = _fit_trainer(ck)
    again.resume(ck)
    again.fit(train, epochs=1, val_data=val)
    assert _steps(ck) == [12, 18, 24]
    assert _meta_run(ck, 24) == run


# ----------------------------------------------------------------------- lock


def test_a_second_run_at_the_same_time_is_refused(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    trainer = FullTrainer()
    first = ModelCheckpoint(_config(ck))
    first.on_train_begin(trainer)
    holder = json.loads((ck / LOCK_FILE).read_text())
    assert holder["pid"] == os.getpid()
    assert holder["host"] == socket.gethostname()
    with pytest.raises(FileExistsError) as refused:
        ModelCheckpoint(_config(ck)).on_train_begin(trainer)
    message = str(refused.value)
    assert str(ck) in message
    assert f"pid {os.getpid()}" in message
    assert socket.gethostname() in message
    assert "Wait for that run" in message
    first.on_train_end(trainer)
    assert not (ck / LOCK_FILE).exists()
    second = ModelCheckpoint(_config(ck))
    second.on_train_begin(trainer)  # the first run ended
    second.on_train_end(trainer)


def test_preflight_refuses_a_locked_or_another_runs_directory_writing_nothing(
    tmp_path: Path,
) -> None:
    ck = tmp_path / "ck"
    trainer = _run_a(ck)
    before = _listing(ck)
    with pytest.raises(FileExistsError, match="holds the checkpoints of run"):
        ModelCheckpoint(_config(ck)).preflight(FullTrainer())  # another run
    ModelCheckpoint(_config(ck)).preflight(trainer)  # the same trainer continues its run
    assert _listing(ck) == before
    first = ModelCheckpoint(_config(ck))
    first.on_train_begin(trainer)
    locked = _listing(ck)
    with pytest.raises(FileExistsError, match="being written by another run"):
        ModelCheckpoint(_config(ck)).preflight(trainer)
    first.preflight(trainer)  # the holder itself is not refused
    assert _listing(ck) == locked
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

    failing = _fit_trainer(ck, LambdaCallback(on_batch_end=fail))
    with pytest.raises(RuntimeError, match="boom"):
        failing.fit(train, epochs=3, val_data=val)
    assert held == [True]
    assert not (ck / LOCK_FILE).exists()
    _fit_trainer(ck).fit(train, epochs=1, val_data=val, resume_from=ck)
    assert _steps(ck) == [6, 12]


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
            ModelCheckpoint(_config(ck)).on_train_begin(trainer)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    assert json.loads((ck / LOCK_FILE).read_text())["pid"] == holder.pid  # left behind
    drive(trainer, [ModelCheckpoint(_config(ck))], [[1.0, 1.0]], start_step=2, start_epoch=1)
    assert _steps(ck) == [2, 4]
    assert not (ck / LOCK_FILE).exists()
    assert _meta_run(ck, 4) == _meta_run(ck, 2) == _marker(ck)["run"]
