"""Laws 2 and 3 at step granularity: SIGTERM and SIGKILL at random moments, then resume.

One training run (``tests/laws/_resume_script.py`` with ``every_n_steps``, asynchronous
Orbax saves) is interrupted ten times, each a seeded random delay after the first step
of a fresh subprocess (a SIGKILL: after a checkpoint committed beyond the last one, so
every kill makes progress on a loaded machine), and resumed from the latest checkpoint
each time (the last resume runs in-process):

* law 2, SIGTERM: each signal leaves a checkpoint at the step reached after it (the
  script reports it from ``Preempted``), teardown ran (the process exits with the
  script's status, the CSV holds only whole rows), and the resumed run ends with
  bit-identical parameters and the same CSV;
* law 3, SIGKILL with step checkpoints: every checkpoint on disk restores after each
  kill, and the resumed run ends bit-identical, with the same CSV (superseded rows
  moved aside, not lost).

Heavy (ten subprocesses each): marked ``one_python``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from artifex.generative_models.training._checkpointing._step_dirs import complete_steps
from tests.laws import _resume_script
from tests.laws._outcomes import assert_all_restore, checkpoint_steps

ROOT = Path(_resume_script.__file__).resolve().parents[2]
EPOCHS = 16  # 96 steps: ten interruptions of a few steps each stay inside the run
BATCH_SLEEP = 0.02
EVERY_N_STEPS = 2
CYCLES = 10

pytestmark = pytest.mark.one_python


def _start(workdir: Path) -> subprocess.Popen[bytes]:
    # Run as a module from the repository root (tests/ holds a ``typing`` package).
    args = [sys.executable, "-m", "tests.laws._resume_script", str(workdir), "--resume"]
    args += ["--epochs", str(EPOCHS), "--batch-sleep", str(BATCH_SLEEP)]
    args += ["--every-n-steps", str(EVERY_N_STEPS)]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    with (workdir / "subprocess.log").open("ab") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def _log_tail(workdir: Path) -> str:
    return (workdir / "subprocess.log").read_text(errors="replace")[-3000:]


def _wait_first_step(proc: subprocess.Popen[bytes], workdir: Path) -> None:
    marker = workdir / f"stepped-{proc.pid}"
    deadline = time.monotonic() + 90
    while not marker.exists():
        assert proc.poll() is None, f"the run ended before a step:\n{_log_tail(workdir)}"
        assert time.monotonic() < deadline, f"no step in 90 s:\n{_log_tail(workdir)}"
        time.sleep(0.005)


def _wait_for_a_save_beyond(proc: subprocess.Popen[bytes], workdir: Path, latest: int) -> None:
    """Wait for a checkpoint later than ``latest`` committed on disk (not a fixed sleep)."""
    deadline = time.monotonic() + 120
    while (complete_steps(workdir / "checkpoints") or [-1])[-1] <= latest:
        assert proc.poll() is None, f"the run ended before a new save:\n{_log_tail(workdir)}"
        assert time.monotonic() < deadline, f"no new save in 120 s:\n{_log_tail(workdir)}"
        time.sleep(0.005)


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, np.ndarray], str]:
    workdir = tmp_path_factory.mktemp("reference")
    assert _resume_script.main([str(workdir), "--epochs", str(EPOCHS)]) == 0
    return _load(workdir / "final.npz"), (workdir / "log.csv").read_text()


def _finish_and_compare(workdir: Path, reference: tuple[dict[str, np.ndarray], str]) -> None:
    args = [str(workdir), "--epochs", str(EPOCHS), "--resume"]
    assert _resume_script.main([*args, "--every-n-steps", str(EVERY_N_STEPS)]) == 0
    assert_all_restore(workdir / "checkpoints")
    want, csv = reference
    got = _load(workdir / "final.npz")
    assert got.keys() == want.keys()
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    assert (workdir / "log.csv").read_text() == csv
    aside = sorted(workdir.glob("log.csv.superseded-*"))
    assert all(path.read_text().startswith("epoch,") for path in aside)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_interrupted_at_random_moments_then_resumed(
    how: str, reference: tuple[dict[str, np.ndarray], str], tmp_path: Path
) -> None:
    checkpoints = tmp_path / "checkpoints"
    delays = random.Random(20261202 if how == "sigterm" else 20261203)
    latest = -1
    for _ in range(CYCLES):
        proc = _start(tmp_path)
        _wait_first_step(proc, tmp_path)
        if how == "sigkill":  # only after a save committed beyond the last: progress
            _wait_for_a_save_beyond(proc, tmp_path, latest)
        time.sleep(delays.uniform(0.0, 0.1))
        if how == "sigkill":
            proc.kill()
            assert proc.wait(timeout=30) == -signal.SIGKILL, _log_tail(tmp_path)
        else:
            proc.send_signal(signal.SIGTERM)
            status = proc.wait(timeout=60)
            assert status == _resume_script.PREEMPTED, f"{status}:\n{_log_tail(tmp_path)}"
            saved = int((tmp_path / f"preempted-{proc.pid}").read_text())
            # The checkpoint of the step reached after the signal: the latest on disk.
            assert checkpoint_steps(checkpoints)[-1] == saved
            csv = tmp_path / "log.csv"  # written at epoch ends: none before the first
            assert not csv.exists() or csv.read_text().endswith("\n")  # whole rows only
        assert not (tmp_path / "final.npz").exists(), "the run ended before the signal"
        steps = assert_all_restore(checkpoints) if checkpoints.exists() else []
        if how == "sigterm":
            assert steps, "no checkpoint after a SIGTERM"
        if steps:  # a SIGKILL before the first save completed leaves none
            assert steps[-1] >= latest  # never behind the previous interruption
            latest = steps[-1]
    assert latest > EVERY_N_STEPS, "the interruptions made no progress"
    _finish_and_compare(tmp_path, reference)
