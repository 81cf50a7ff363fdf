"""Issue 26, item 7: after a SIGKILL and a resume, TensorBoard shows every epoch once.

The killed run flushed its events at every epoch end, past its last checkpoint (saved
every second epoch); the resumed run opens its event file with ``purge_step`` at the
checkpoint's step + 1, so what ``EventAccumulator`` reads holds each epoch, and each
batch step, exactly once, with the resumed run's values. The parent waits for the
child's marker line (no sleep), then kills it.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.laws import _tensorboard_kill_script
from tests.laws._processes import ROOT, environment, run_command, script_command

TIMEOUT = 300  # seconds per subprocess: a bound, far above the seconds it takes
STEPS = 6  # batches per epoch (tests/laws/_resume_script.make_data)

pytestmark = pytest.mark.one_python


def _command(workdir: Path, *flags: str) -> list[str]:
    return script_command(_tensorboard_kill_script.__name__, workdir, *flags)


def _scalars(log_dir: Path, tag: str) -> list[tuple[int, float]]:
    accumulator = EventAccumulator(str(log_dir)).Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def test_sigkill_then_resume_shows_every_epoch_once(tmp_path: Path) -> None:
    # Killed after epoch 2's events were flushed; its last checkpoint is epoch 1's.
    with subprocess.Popen(
        _command(tmp_path, "--epochs", "4", "--block-after", "2"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        cwd=ROOT,
    ) as killed:
        assert killed.stdout is not None
        for line in killed.stdout:  # blocks until the marker: no sleep
            if line.strip() == "epoch 2 flushed":
                break
        else:
            killed.wait(TIMEOUT)
            assert killed.stderr is not None  # piped
            pytest.fail(f"the run ended without its marker: {killed.stderr.read()[-3000:]}")
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(TIMEOUT) == -signal.SIGKILL
    before = _scalars(tmp_path / "tb", "epoch/epoch")
    assert before == [(STEPS, 0.0), (2 * STEPS, 1.0), (3 * STEPS, 2.0)]  # flushed at each end

    resumed = run_command(_command(tmp_path, "--epochs", "2", "--resume"), timeout=TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    epochs = _scalars(tmp_path / "tb", "epoch/epoch")
    assert epochs == [(STEPS * (e + 1), float(e)) for e in range(4)]  # each once
    batches = [step for step, _ in _scalars(tmp_path / "tb", "batch/loss")]
    assert batches == list(range(1, 4 * STEPS + 1))
    losses = dict(_scalars(tmp_path / "tb", "epoch/loss"))
    assert len(losses) == 4  # the killed run's epoch 2 is hidden, the resumed one's shown
