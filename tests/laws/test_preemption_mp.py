"""Law 4: a SIGTERM to one process of a 2-process job makes both save at one step and stop.

Both processes poll JAX's preemption sync point after every step (no Python handler is
installed in a multi-process job; JAX's own SIGTERM notice reaches the coordination
service), so they save the same mid-epoch checkpoint and exit through ``Preempted``.
Resuming the 2-process job reaches the parameters of an uninterrupted 2-process run,
bit for bit. Heavy (three 2-process jobs): marked ``one_python``.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest

from artifex.generative_models.training.callbacks import restore_checkpoint
from tests._distributed import run_job, start_job
from tests.laws._preempt_mp_script import PREEMPTED

SCRIPT = "tests.laws._preempt_mp_script"

pytestmark = pytest.mark.one_python


def test_sigterm_to_one_process_preempts_both_at_one_step(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    reference.mkdir()
    run_job(SCRIPT, str(reference), processes=2, timeout=240)
    want = [json.loads((reference / f"final-{i}.json").read_text()) for i in range(2)]

    workdir = tmp_path / "preempted"
    workdir.mkdir()
    procs = start_job(SCRIPT, str(workdir), processes=2)
    try:
        deadline = time.monotonic() + 120
        while not all((workdir / f"stepped-{i}").exists() for i in range(2)):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() < deadline, "no step in 120 s"
            time.sleep(0.01)
        time.sleep(random.Random(20261204).uniform(0.0, 0.3))
        procs[1].send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    statuses = [p.returncode for p in procs]
    assert statuses == [PREEMPTED, PREEMPTED], (statuses, outputs)
    saved = {int((workdir / f"preempted-{i}").read_text()) for i in range(2)}
    assert len(saved) == 1, saved  # both processes saved at the same step
    step = saved.pop()
    assert restore_checkpoint(workdir / "checkpoints").step == step
    assert step < want[0]["step"]

    run_job(SCRIPT, str(workdir), "--resume", processes=2, timeout=240)
    got = [json.loads((workdir / f"final-{i}.json").read_text()) for i in range(2)]
    assert got == want
