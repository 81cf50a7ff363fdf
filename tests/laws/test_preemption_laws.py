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

import random
import subprocess
import time
from pathlib import Path

import pytest

from tests.laws import _resume_script
from tests.laws._outcomes import assert_all_restore, checkpoint_steps
from tests.laws._processes import (
    Final,
    Interruption,
    assert_resumed_like,
    final,
    interrupt,
    start,
    wait_for,
    wait_for_a_save_beyond,
)

EPOCHS = 16  # 96 steps: ten interruptions of a few steps each stay inside the run
BATCH_SLEEP = 0.02
EVERY_N_STEPS = 2
CYCLES = 10

pytestmark = pytest.mark.one_python


def _start(workdir: Path) -> subprocess.Popen[bytes]:
    args = ["--resume", "--epochs", str(EPOCHS), "--batch-sleep", str(BATCH_SLEEP)]
    return start(_resume_script.__name__, workdir, *args, "--every-n-steps", str(EVERY_N_STEPS))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Final:
    workdir = tmp_path_factory.mktemp("reference")
    assert _resume_script.main([str(workdir), "--epochs", str(EPOCHS)]) == 0
    return final(workdir)


def _finish_and_compare(workdir: Path, reference: Final) -> None:
    args = [str(workdir), "--epochs", str(EPOCHS), "--resume"]
    assert _resume_script.main([*args, "--every-n-steps", str(EVERY_N_STEPS)]) == 0
    assert_resumed_like(workdir, reference)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_interrupted_at_random_moments_then_resumed(
    how: Interruption, reference: Final, tmp_path: Path
) -> None:
    checkpoints = tmp_path / "checkpoints"
    delays = random.Random(20261202 if how == "sigterm" else 20261203)
    latest = -1
    for _ in range(CYCLES):
        proc = _start(tmp_path)
        stepped = tmp_path / f"stepped-{proc.pid}"
        wait_for(proc, tmp_path, stepped.exists, what="a step", seconds=90)
        if how == "sigkill":  # only after a save committed beyond the last: progress
            wait_for_a_save_beyond(proc, tmp_path, latest)
        time.sleep(delays.uniform(0.0, 0.1))
        interrupt(proc, tmp_path, how)
        if how == "sigterm":
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
