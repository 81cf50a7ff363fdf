"""Law 2, crash safety: SIGKILLed training leaves only sound checkpoints, and resumes exactly.

One training run (``tests/laws/_resume_script.py``, asynchronous Orbax saves) is killed
with SIGKILL three times, each a seeded random delay after a given epoch's end (so
the kill lands in a save, between saves or mid-epoch), and resumed from the latest
checkpoint each time (the last resume runs in-process). After every kill every
checkpoint on disk restores, and the run that finally completes ends with the same
model state, bit for bit, and the same CSV log, as an uninterrupted run (rows of
epochs that were run again are moved aside, not lost).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.laws import _resume_script
from tests.laws._outcomes import assert_all_restore

ROOT = Path(_resume_script.__file__).resolve().parents[2]
EPOCHS = 8
BATCH_SLEEP = 0.02  # seconds per batch: an epoch lasts long enough to be hit
KILL_AFTER_EPOCHS = (1, 3, 5)  # kill a random delay after these epochs' ends


def _start(workdir: Path, *, resume: bool) -> subprocess.Popen[bytes]:
    # Run as a module from the repository root: tests/ holds a ``typing`` package
    # that would shadow the standard library's if the script's folder led sys.path.
    args = [sys.executable, "-m", "tests.laws._resume_script", str(workdir)]
    args += ["--epochs", str(EPOCHS), "--batch-sleep", str(BATCH_SLEEP)]
    args += ["--resume"] if resume else []
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    with (workdir / "subprocess.log").open("ab") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def _log_tail(workdir: Path) -> str:
    return (workdir / "subprocess.log").read_text(errors="replace")[-3000:]


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def test_sigkill_at_random_moments_then_resume(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    reference.mkdir()
    assert _resume_script.main([str(reference), "--epochs", str(EPOCHS)]) == 0
    want = _load(reference / "final.npz")

    workdir = tmp_path / "crashing"
    workdir.mkdir()
    checkpoints = workdir / "checkpoints"
    delays = random.Random(20261128)
    latest = -1
    for cycle, epoch in enumerate(KILL_AFTER_EPOCHS):
        proc = _start(workdir, resume=cycle > 0)
        marker = workdir / f"epoch-{epoch}"
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, f"run ended before epoch {epoch}:\n{_log_tail(workdir)}"
            assert time.monotonic() < deadline, f"no epoch {epoch} in 60 s:\n{_log_tail(workdir)}"
            time.sleep(0.005)
        time.sleep(delays.uniform(0.0, 0.3))
        proc.kill()  # SIGKILL
        assert proc.wait(timeout=30) == -9
        assert not (workdir / "final.npz").exists()
        steps = assert_all_restore(checkpoints)
        assert steps, f"no checkpoint after the kill past epoch {epoch}"
        assert steps[-1] > latest  # each resumed run made progress
        latest = steps[-1]

    # The last resume runs in this process (what matters is the state on disk it
    # starts from; it saves a subprocess start, a few seconds of JAX import).
    assert _resume_script.main([str(workdir), "--epochs", str(EPOCHS), "--resume"]) == 0
    assert_all_restore(checkpoints)
    got = _load(workdir / "final.npz")
    assert got.keys() == want.keys()
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    assert (workdir / "log.csv").read_text() == (reference / "log.csv").read_text()
    aside = sorted(workdir.glob("log.csv.superseded-*"))
    assert all(path.read_text().startswith("epoch,") for path in aside)
