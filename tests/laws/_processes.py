"""The laws' training scripts in subprocesses: run, or started, waited on, interrupted.

A script runs as a module from the repository root (``python -m tests.laws._x``): tests/
holds a ``typing`` package that would shadow the standard library's if the script's
folder led ``sys.path``. A started one's output goes to ``WORKDIR/subprocess.log``,
appended across the runs of one law, and a failed wait or interruption shows the log's
tail. A law waits for a marker the script writes (a file, a checkpoint on disk), never
for a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from artifex.generative_models.training._checkpointing._step_dirs import complete_steps
from tests.laws._outcomes import assert_all_restore
from tests.laws._resume_script import PREEMPTED

ROOT = Path(__file__).resolve().parents[2]
LOG = "subprocess.log"

Interruption = Literal["sigterm", "sigkill"]


def script_command(module: str, workdir: Path, *args: str) -> list[str]:
    """The command line ``python -m module workdir *args``."""
    return [sys.executable, "-m", module, str(workdir), *args]


def environment() -> dict[str, str]:
    """This process's environment, on the CPU."""
    return {**os.environ, "JAX_PLATFORMS": "cpu"}


def start(module: str, workdir: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start ``python -m module workdir *args``, its output appended to the log."""
    command = script_command(module, workdir, *args)
    with (workdir / LOG).open("ab") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment(), cwd=ROOT
        )


def run_command(command: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``command`` (a ``script_command``, or one wrapping it) to its end, output captured."""
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=environment(),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def log_text(workdir: Path) -> str:
    """What the scripts started in ``workdir`` printed, all runs together."""
    return (workdir / LOG).read_text(errors="replace")


def log_tail(workdir: Path) -> str:
    """The last 3,000 characters of the log, for a failure message."""
    return log_text(workdir)[-3000:]


def wait_for(
    proc: subprocess.Popen[bytes],
    workdir: Path,
    ready: Callable[[], bool],
    *,
    what: str,
    seconds: float,
) -> None:
    """Wait until ``ready()`` (a marker ``proc`` writes); fail if ``proc`` ends first or it is late.

    Args:
        proc: The running script.
        workdir: Its work directory (the log's).
        ready: Whether the marker is there.
        what: The marker, as the failure messages name it ("a new save").
        seconds: The bound, far above what a loaded machine takes.
    """
    deadline = time.monotonic() + seconds
    while not ready():
        assert proc.poll() is None, f"the run ended before {what}:\n{log_tail(workdir)}"
        assert time.monotonic() < deadline, f"no {what} in {seconds:g} s:\n{log_tail(workdir)}"
        time.sleep(0.005)


def wait_for_a_save_beyond(proc: subprocess.Popen[bytes], workdir: Path, latest: int) -> int:
    """Wait until a checkpoint later than step ``latest`` is committed; return its step."""
    steps: list[int] = []

    def saved_beyond() -> bool:
        steps[:] = complete_steps(workdir / "checkpoints")
        return bool(steps) and steps[-1] > latest

    wait_for(proc, workdir, saved_beyond, what="a new save", seconds=120)
    return steps[-1]


def interrupt(proc: subprocess.Popen[bytes], workdir: Path, how: Interruption) -> None:
    """SIGKILL ``proc``, or SIGTERM it (a preemption notice: it saves and exits ``PREEMPTED``)."""
    if how == "sigkill":
        proc.kill()
        assert proc.wait(timeout=60) == -signal.SIGKILL, log_tail(workdir)
    else:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=120)
        assert status == PREEMPTED, f"{status}:\n{log_tail(workdir)}"


def _load(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (a script's ``final.npz``), by name."""
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


Final = tuple[dict[str, np.ndarray], str]
"""A finished run's final model state (``final.npz``) and its CSV log."""


def final(workdir: Path) -> Final:
    """The final state and CSV log of the run finished in ``workdir``."""
    return _load(workdir / "final.npz"), (workdir / "log.csv").read_text()


def assert_same_final(workdir: Path, reference: Final) -> None:
    """The run in ``workdir`` ended bit-identical to ``reference``, with the same CSV."""
    want, csv = reference
    got = _load(workdir / "final.npz")
    assert got.keys() == want.keys()
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    assert (workdir / "log.csv").read_text() == csv


def assert_resumed_like(workdir: Path, reference: Final) -> None:
    """The run resumed to its end in ``workdir`` after interruptions matches ``reference``.

    Every checkpoint on disk restores, the final state is bit-identical and the CSV the
    same, and each CSV log moved aside (rows of epochs run again) holds whole rows.
    """
    assert_all_restore(workdir / "checkpoints")
    assert_same_final(workdir, reference)
    aside = sorted(workdir.glob("log.csv.superseded-*"))
    assert all(path.read_text().startswith("epoch,") for path in aside)
