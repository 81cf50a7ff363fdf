"""Same-command resume: ``fit(..., resume=True)`` (issue 26, point 5).

The same call, run again with a fresh trainer, continues the run of its
``ModelCheckpoint`` from the latest checkpoint, with ``epochs`` as the run's total; a
run that completed or was stopped early is not trained again; a lock left by the
run, whose holder cannot be proven alive, is taken over.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import numpy as np
import optax
import pytest

from artifex.generative_models.training._checkpointing._lock import LOCK_FILE
from artifex.generative_models.training.callbacks.base import Logs
from artifex.generative_models.training.trainer import Trainer
from tests.laws._resume_script import (
    DropoutMLP,
    build,
    early_stopping,
    flat_state,
    loss_fn,
    make_data,
    make_model,
)
from tests.training.checkpointing._dirs import marker


def _run(
    workdir: Path, epochs: int, *, stop_early: bool = False
) -> tuple[Trainer[DropoutMLP], list[Logs]]:
    """A fresh trainer (the same script, run again) doing ``fit(..., resume=True)``."""
    trainer, _, _ = build(workdir, early=early_stopping() if stop_early else None)
    train, val = make_data()
    logs = trainer.fit(train, epochs=epochs, val_data=val, resume=True)
    return trainer, list(logs)


def _model(trainer: Trainer[DropoutMLP]) -> dict[str, np.ndarray]:
    return flat_state(trainer.state_dict()["model"])


def test_epochs_is_the_runs_total_and_the_rerun_continues_bit_identically(
    tmp_path: Path,
) -> None:
    whole, _ = _run(tmp_path / "whole", 4)
    first, logs = _run(tmp_path / "split", 2)  # an empty directory: a fresh start
    assert len(logs) == 2
    assert first.step == 12
    second, logs = _run(tmp_path / "split", 4)  # the same command, now for 4 in all
    assert len(logs) == 2
    assert second.epoch == 4
    for key, value in _model(whole).items():
        np.testing.assert_array_equal(_model(second)[key], value, err_msg=key)
    assert (tmp_path / "split" / "log.csv").read_text() == (
        tmp_path / "whole" / "log.csv"
    ).read_text()


def test_a_completed_run_is_not_trained_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    done, _ = _run(tmp_path, 2)
    assert marker(tmp_path / "checkpoints")["ended"]["status"] == "completed"
    csv = (tmp_path / "log.csv").read_text()
    with caplog.at_level(logging.WARNING):
        again, logs = _run(tmp_path, 2)
    assert logs == []
    assert again.step == 12
    assert again.status == "completed"
    assert "completed at step 12 (2 epochs run)" in caplog.text
    assert "nothing is trained" in caplog.text
    for key, value in _model(done).items():  # it holds the run's final checkpoint
        np.testing.assert_array_equal(_model(again)[key], value, err_msg=key)
    assert (tmp_path / "log.csv").read_text() == csv  # no hook ran
    longer, logs = _run(tmp_path, 3)  # asked for more epochs in all: trains on
    assert len(logs) == 1
    assert longer.step == 18


def test_an_early_stopped_run_is_not_trained_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stopped, logs = _run(tmp_path, 10, stop_early=True)
    assert len(logs) == 4
    assert stopped.status == "stopped"
    ended = marker(tmp_path / "checkpoints")["ended"]
    assert ended["stopped_by"] == "EarlyStopping[val_loss]"
    with caplog.at_level(logging.WARNING):
        again, logs = _run(tmp_path, 10, stop_early=True)
    assert logs == []
    assert again.step == 24
    assert again.status == "stopped"
    assert "was stopped early by EarlyStopping[val_loss] at step 24" in caplog.text


def test_an_in_process_continuation_after_the_end_trains_on(tmp_path: Path) -> None:
    trainer, _, _ = build(tmp_path)
    train, val = make_data()
    trainer.fit(train, epochs=1, val_data=val, resume=True)
    assert trainer.fit(train, epochs=1, val_data=val, resume=True) == []
    assert len(trainer.fit(train, epochs=2, val_data=val, resume=True)) == 1
    assert trainer.step == 12


@pytest.mark.parametrize(
    "host", ["a-restarted-vm", socket.gethostname()], ids=["another-host", "another-pid-namespace"]
)
def test_a_lock_the_run_left_elsewhere_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, host: str
) -> None:
    _run(tmp_path, 1)
    run = marker(tmp_path / "checkpoints")["run"]
    left = {"run": run, "pid": 1, "host": host, "namespace": "pid:[1]", "since": "restarted"}
    (tmp_path / "checkpoints" / LOCK_FILE).write_text(json.dumps(left) + "\n")
    with caplog.at_level(logging.WARNING):
        trainer, logs = _run(tmp_path, 2)
    assert len(logs) == 1
    assert trainer.step == 12
    assert "replacing the checkpoint lock" in caplog.text
    assert f"on host {host!r} since 'restarted'" in caplog.text
    assert not (tmp_path / "checkpoints" / LOCK_FILE).exists()


def test_another_runs_lock_still_refuses(tmp_path: Path) -> None:
    _run(tmp_path, 1)
    left = {"run": "another", "pid": 1, "host": "a-restarted-vm", "namespace": "pid:[1]"}
    (tmp_path / "checkpoints" / LOCK_FILE).write_text(json.dumps(left) + "\n")
    with pytest.raises(FileExistsError, match="being written by another run"):
        _run(tmp_path, 2)


def test_a_trainer_with_another_runs_state_is_refused(tmp_path: Path) -> None:
    _run(tmp_path / "a", 1)
    _run(tmp_path / "b", 1)
    trainer, _, _ = build(tmp_path / "a")
    trainer.resume(tmp_path / "b" / "checkpoints")  # another run's state, in memory
    train, val = make_data()
    with pytest.raises(FileExistsError, match="does not continue it"):
        trainer.fit(train, epochs=2, val_data=val, resume=True)
    assert trainer.step == 6


def test_resume_needs_a_model_checkpoint_and_not_resume_from(tmp_path: Path) -> None:
    trainer, _, _ = build(tmp_path)
    train, val = make_data()
    with pytest.raises(ValueError, match="pass one"):
        trainer.fit(train, epochs=1, resume=True, resume_from=tmp_path)
    bare = Trainer(make_model(), optax.adam(1e-2), loss_fn)
    with pytest.raises(ValueError, match="has none among its callbacks"):
        bare.fit(train, epochs=1, val_data=val, resume=True)
    with pytest.raises(TypeError, match="resume"):
        trainer.fit(train, epochs=1, resume="auto")  # type: ignore[arg-type]  # ty: ignore[invalid-argument-type]
