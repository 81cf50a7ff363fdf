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

import random
import time
from pathlib import Path

from tests.laws import _resume_script
from tests.laws._outcomes import assert_all_restore
from tests.laws._processes import assert_resumed_like, final, interrupt, start, wait_for

EPOCHS = 8
BATCH_SLEEP = 0.02  # seconds per batch: an epoch lasts long enough to be hit
KILL_AFTER_EPOCHS = (1, 3, 5)  # kill a random delay after these epochs' ends


def test_sigkill_at_random_moments_then_resume(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    reference.mkdir()
    assert _resume_script.main([str(reference), "--epochs", str(EPOCHS)]) == 0
    want = final(reference)

    workdir = tmp_path / "crashing"
    workdir.mkdir()
    checkpoints = workdir / "checkpoints"
    delays = random.Random(20261128)
    latest = -1
    for cycle, epoch in enumerate(KILL_AFTER_EPOCHS):
        args = ["--epochs", str(EPOCHS), "--batch-sleep", str(BATCH_SLEEP)]
        args += ["--resume"] if cycle > 0 else []
        proc = start(_resume_script.__name__, workdir, *args)
        marker = workdir / f"epoch-{epoch}"
        wait_for(proc, workdir, marker.exists, what=f"epoch {epoch}", seconds=60)
        time.sleep(delays.uniform(0.0, 0.3))
        interrupt(proc, workdir, "sigkill")
        assert not (workdir / "final.npz").exists()
        steps = assert_all_restore(checkpoints)
        assert steps, f"no checkpoint after the kill past epoch {epoch}"
        assert steps[-1] > latest  # each resumed run made progress
        latest = steps[-1]

    # The last resume runs in this process (what matters is the state on disk it
    # starts from; it saves a subprocess start, a few seconds of JAX import).
    assert _resume_script.main([str(workdir), "--epochs", str(EPOCHS), "--resume"]) == 0
    assert_resumed_like(workdir, want)
