"""Same-command resume, as a user runs it (issue 26, points 5 and 6).

One script (``tests/laws/_resume_script.py --same-command``: ``fit(..., resume=True)``
with ``epochs`` the total, ``every_n_steps`` and asynchronous saves, a shuffling
``ArrayBatcher``) is started, interrupted (SIGTERM or SIGKILL) and started again with
the very same command line, until it finishes:

* it ends bit-identical to an uninterrupted run, with the same CSV;
* after a SIGKILL the lock the killed run left is taken over by the rerun (a warning
  names it), which resumes;
* a rerun of the finished run trains nothing and says so; so does a rerun of an
  early-stopped one;
* resuming from an older step with ``supersede=True`` moves every later checkpoint
  aside, byte for byte, and the run finishes as the uninterrupted one.

Every interruption waits for a checkpoint committed beyond the last one (a marker
written after a save, not a fixed sleep), so each cycle makes progress on a loaded
machine. Heavy (subprocesses): marked ``one_python``.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from artifex.generative_models.training._checkpointing._lock import LOCK_FILE
from artifex.generative_models.training._checkpointing._step_dirs import complete_steps
from tests.laws import _resume_script
from tests.laws._outcomes import assert_all_restore

ROOT = Path(_resume_script.__file__).resolve().parents[2]
EPOCHS = 8  # 48 steps
EVERY_N_STEPS = 2
BATCH_SLEEP = 0.02
CYCLES = 4

pytestmark = pytest.mark.one_python


def _command(workdir: Path, *extra: str) -> list[str]:
    # Run as a module from the repository root (tests/ holds a ``typing`` package).
    args = [sys.executable, "-m", "tests.laws._resume_script", str(workdir)]
    return [*args, "--epochs", str(EPOCHS), "--every-n-steps", str(EVERY_N_STEPS), *extra]


def _start(workdir: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    with (workdir / "subprocess.log").open("ab") as log:
        return subprocess.Popen(
            _command(workdir, *extra), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )


def _log(workdir: Path) -> str:
    return (workdir / "subprocess.log").read_text(errors="replace")


def _wait_for_a_save_beyond(proc: subprocess.Popen[bytes], workdir: Path, latest: int) -> int:
    """Wait until a checkpoint later than ``latest`` is committed on disk; return its step."""
    checkpoints = workdir / "checkpoints"
    deadline = time.monotonic() + 120
    while True:
        steps = complete_steps(checkpoints)
        if steps and steps[-1] > latest:
            return steps[-1]
        assert proc.poll() is None, f"the run ended before a new save:\n{_log(workdir)[-3000:]}"
        assert time.monotonic() < deadline, f"no new save in 120 s:\n{_log(workdir)[-3000:]}"
        time.sleep(0.005)


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def _assert_matches(workdir: Path, reference: tuple[dict[str, np.ndarray], str]) -> None:
    want, csv = reference
    got = _load(workdir / "final.npz")
    assert got.keys() == want.keys()
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    assert (workdir / "log.csv").read_text() == csv


def _digest(path: Path) -> dict[str, str]:
    return {
        str(file.relative_to(path)): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(path.rglob("*"))
        if file.is_file()
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, np.ndarray], str]:
    workdir = tmp_path_factory.mktemp("reference")
    args = [str(workdir), "--epochs", str(EPOCHS), "--every-n-steps", str(EVERY_N_STEPS)]
    assert _resume_script.main(args) == 0
    return _load(workdir / "final.npz"), (workdir / "log.csv").read_text()


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_the_same_command_rerun_until_done_ends_bit_identical(
    how: str, reference: tuple[dict[str, np.ndarray], str], tmp_path: Path
) -> None:
    delays = random.Random(20261205 if how == "sigterm" else 20261206)
    latest = -1
    for _ in range(CYCLES):
        proc = _start(tmp_path, "--same-command", "--batch-sleep", str(BATCH_SLEEP))
        latest = _wait_for_a_save_beyond(proc, tmp_path, latest)
        time.sleep(delays.uniform(0.0, 0.1))
        if how == "sigkill":
            proc.kill()
            assert proc.wait(timeout=30) == -signal.SIGKILL, _log(tmp_path)[-3000:]
            assert (tmp_path / "checkpoints" / LOCK_FILE).exists()  # left behind
        else:
            proc.send_signal(signal.SIGTERM)
            status = proc.wait(timeout=60)
            assert status == _resume_script.PREEMPTED, f"{status}:\n{_log(tmp_path)[-3000:]}"
        assert not (tmp_path / "final.npz").exists(), "the run ended before the signal"
        latest = assert_all_restore(tmp_path / "checkpoints")[-1]
    reruns = 0
    while not (tmp_path / "final.npz").exists():  # the same command, until done
        reruns += 1
        assert reruns <= 3, _log(tmp_path)[-3000:]
        assert _start(tmp_path, "--same-command").wait(timeout=300) == 0, _log(tmp_path)[-3000:]
    _assert_matches(tmp_path, reference)
    if how == "sigkill":  # each rerun took over the lock its killed run left
        assert _log(tmp_path).count("replacing the checkpoint lock") >= CYCLES
        assert "its process is gone" in _log(tmp_path)
    assert not (tmp_path / "checkpoints" / LOCK_FILE).exists()
    # The finished run, rerun: nothing is trained, and it says so.
    (tmp_path / "final.npz").unlink()
    before = _digest(tmp_path / "checkpoints")
    assert _start(tmp_path, "--same-command").wait(timeout=300) == 0, _log(tmp_path)[-3000:]
    assert "completed at step 48 (8 epochs run); nothing is trained" in _log(tmp_path)
    assert _digest(tmp_path / "checkpoints") == before
    _assert_matches(tmp_path, reference)  # it holds the final checkpoint; the CSV unchanged


def test_an_early_stopped_run_rerun_trains_nothing_and_says_so(tmp_path: Path) -> None:
    assert _start(tmp_path, "--same-command", "--stop-early").wait(timeout=300) == 0
    csv = (tmp_path / "log.csv").read_text()
    assert csv.count("\n") == 5  # the header and epochs 0 to 3: stopped after epoch 3
    before = _digest(tmp_path / "checkpoints")
    assert _start(tmp_path, "--same-command", "--stop-early").wait(timeout=300) == 0
    log = _log(tmp_path)
    assert "was stopped early by EarlyStopping[val_loss] at step 24" in log
    assert "nothing is trained" in log
    assert (tmp_path / "log.csv").read_text() == csv
    assert _digest(tmp_path / "checkpoints") == before


def test_resuming_from_an_older_step_moves_the_later_ones_aside_and_finishes(
    reference: tuple[dict[str, np.ndarray], str], tmp_path: Path
) -> None:
    assert _resume_script.main([*_command(tmp_path)[3:]]) == 0
    checkpoints = tmp_path / "checkpoints"
    steps = complete_steps(checkpoints)
    older = random.Random(20261207).choice(steps[:-2])
    later = {step: _digest(checkpoints / str(step)) for step in steps if step > older}
    (tmp_path / "final.npz").unlink()
    assert _start(tmp_path, "--supersede-from", str(older)).wait(timeout=300) == 0, _log(tmp_path)[
        -3000:
    ]
    for step, digest in later.items():  # every byte kept, under a name that says so
        assert _digest(checkpoints / f"{step}.superseded-1") == digest
        assert f"moved the later checkpoint {step} aside" in _log(tmp_path)
    assert complete_steps(checkpoints)[-1] == steps[-1]  # written again, to the end
    _assert_matches(tmp_path, reference)
