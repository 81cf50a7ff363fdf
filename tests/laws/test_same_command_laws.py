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
import random
import subprocess
import time
from pathlib import Path

import pytest

from artifex.generative_models.training._checkpointing._lock import LOCK_FILE
from artifex.generative_models.training._checkpointing._step_dirs import complete_steps
from tests.laws import _resume_script
from tests.laws._outcomes import assert_all_restore
from tests.laws._processes import (
    Final,
    Interruption,
    assert_same_final,
    final,
    interrupt,
    log_tail,
    log_text,
    start,
    wait_for_a_save_beyond,
)

EPOCHS = 8  # 48 steps
EVERY_N_STEPS = 2
BATCH_SLEEP = 0.02
CYCLES = 4

pytestmark = pytest.mark.one_python


def _args(*extra: str) -> list[str]:
    return ["--epochs", str(EPOCHS), "--every-n-steps", str(EVERY_N_STEPS), *extra]


def _start(workdir: Path, *extra: str) -> subprocess.Popen[bytes]:
    return start(_resume_script.__name__, workdir, *_args(*extra))


def _digest(path: Path) -> dict[str, str]:
    return {
        str(file.relative_to(path)): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(path.rglob("*"))
        if file.is_file()
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Final:
    workdir = tmp_path_factory.mktemp("reference")
    assert _resume_script.main([str(workdir), *_args()]) == 0
    return final(workdir)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_the_same_command_rerun_until_done_ends_bit_identical(
    how: Interruption, reference: Final, tmp_path: Path
) -> None:
    delays = random.Random(20261205 if how == "sigterm" else 20261206)
    latest = -1
    for _ in range(CYCLES):
        proc = _start(tmp_path, "--same-command", "--batch-sleep", str(BATCH_SLEEP))
        latest = wait_for_a_save_beyond(proc, tmp_path, latest)
        time.sleep(delays.uniform(0.0, 0.1))
        interrupt(proc, tmp_path, how)
        if how == "sigkill":
            assert (tmp_path / "checkpoints" / LOCK_FILE).exists()  # left behind
        assert not (tmp_path / "final.npz").exists(), "the run ended before the signal"
        latest = assert_all_restore(tmp_path / "checkpoints")[-1]
    reruns = 0
    while not (tmp_path / "final.npz").exists():  # the same command, until done
        reruns += 1
        assert reruns <= 3, log_tail(tmp_path)
        assert _start(tmp_path, "--same-command").wait(timeout=300) == 0, log_tail(tmp_path)
    assert_same_final(tmp_path, reference)
    if how == "sigkill":  # each rerun took over the lock its killed run left
        assert log_text(tmp_path).count("replacing the checkpoint lock") >= CYCLES
        assert "its process is gone" in log_text(tmp_path)
    assert not (tmp_path / "checkpoints" / LOCK_FILE).exists()
    # The finished run, rerun: nothing is trained, and it says so.
    (tmp_path / "final.npz").unlink()
    before = _digest(tmp_path / "checkpoints")
    assert _start(tmp_path, "--same-command").wait(timeout=300) == 0, log_tail(tmp_path)
    assert "completed at step 48 (8 epochs run); nothing is trained" in log_text(tmp_path)
    assert _digest(tmp_path / "checkpoints") == before
    assert_same_final(tmp_path, reference)  # it holds the final checkpoint; the CSV unchanged


def test_an_early_stopped_run_rerun_trains_nothing_and_says_so(tmp_path: Path) -> None:
    assert _start(tmp_path, "--same-command", "--stop-early").wait(timeout=300) == 0
    csv = (tmp_path / "log.csv").read_text()
    assert csv.count("\n") == 5  # the header and epochs 0 to 3: stopped after epoch 3
    before = _digest(tmp_path / "checkpoints")
    assert _start(tmp_path, "--same-command", "--stop-early").wait(timeout=300) == 0
    log = log_text(tmp_path)
    assert "was stopped early by EarlyStopping[val_loss] at step 24" in log
    assert "nothing is trained" in log
    assert (tmp_path / "log.csv").read_text() == csv
    assert _digest(tmp_path / "checkpoints") == before


def test_resuming_from_an_older_step_moves_the_later_ones_aside_and_finishes(
    reference: Final, tmp_path: Path
) -> None:
    assert _resume_script.main([str(tmp_path), *_args()]) == 0
    checkpoints = tmp_path / "checkpoints"
    steps = complete_steps(checkpoints)
    older = random.Random(20261207).choice(steps[:-2])
    later = {step: _digest(checkpoints / str(step)) for step in steps if step > older}
    (tmp_path / "final.npz").unlink()
    supersede = _start(tmp_path, "--supersede-from", str(older))
    assert supersede.wait(timeout=300) == 0, log_tail(tmp_path)
    for step, digest in later.items():  # every byte kept, under a name that says so
        assert _digest(checkpoints / f"{step}.superseded-1") == digest
        assert f"moved the later checkpoint {step} aside" in log_text(tmp_path)
    assert complete_steps(checkpoints)[-1] == steps[-1]  # written again, to the end
    assert_same_final(tmp_path, reference)
