"""Issue 26's laws for data beyond ``ArrayBatcher``: grain and a generator function.

A training process (``tests/laws/_data_kinds_script.py``) is interrupted twice, each
time a seeded random delay after a marker that a new checkpoint is on disk, with
SIGTERM (a preemption notice: it saves where it is, mid-epoch as a rule, and exits) or
SIGKILL, and resumed each time with ``fit(resume_from=...)``; the last resume runs
in-process. With a grain pipeline (its iterator's state saved in the ``data`` item)
the final weights and the CSV are bit-identical to an uninterrupted run's. With a
deterministic generator function (no saved position) every resume inside an epoch
replays the epoch and skips its trained batches, warning how many, and the final
weights and CSV are the same too.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.laws import _data_kinds_script
from tests.laws._resume_script import PREEMPTED

ROOT = Path(_data_kinds_script.__file__).resolve().parents[2]
EPOCHS = 5  # 30 steps; a checkpoint every 2
BATCH_SLEEP = 0.03
KILLS = 2

pytestmark = pytest.mark.one_python


def _start(workdir: Path, data: str, *, resume: bool) -> subprocess.Popen[bytes]:
    # Run as a module from the repository root (tests/ holds a ``typing`` package).
    args = [sys.executable, "-m", "tests.laws._data_kinds_script", str(workdir)]
    args += ["--data", data, "--epochs", str(EPOCHS), "--batch-sleep", str(BATCH_SLEEP)]
    args += ["--resume"] if resume else []
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    with (workdir / "subprocess.log").open("ab") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def _tail(workdir: Path) -> str:
    return (workdir / "subprocess.log").read_text(errors="replace")[-3000:]


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def _saved(workdir: Path) -> int:
    """The latest step a ``saved-<step>`` marker names (-1 before any)."""
    return max((int(p.name.split("-")[1]) for p in workdir.glob("saved-*")), default=-1)


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The uninterrupted runs, by data kind."""
    out: dict[str, Path] = {}
    for data in ("grain", "generator"):
        workdir = tmp_path_factory.mktemp(f"reference-{data}")
        assert _data_kinds_script.main([str(workdir), "--data", data, "--epochs", str(EPOCHS)]) == 0
        out[data] = workdir
    return out


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
@pytest.mark.parametrize("data", ["grain", "generator"])
def test_interrupted_at_random_moments_then_resumed(
    data: str, how: str, references: dict[str, Path], tmp_path: Path
) -> None:
    delays = random.Random(f"{data}-{how}-26")
    for cycle in range(KILLS):
        seen = _saved(tmp_path)
        proc = _start(tmp_path, data, resume=cycle > 0)
        deadline = time.monotonic() + 300  # a loaded machine: the marker, not a sleep
        while _saved(tmp_path) <= seen:
            assert proc.poll() is None, f"the run ended before a new save:\n{_tail(tmp_path)}"
            assert time.monotonic() < deadline, f"no new save in 300 s:\n{_tail(tmp_path)}"
            time.sleep(0.005)
        time.sleep(delays.uniform(0.0, 0.15))
        if how == "sigkill":
            proc.kill()
            assert proc.wait(timeout=60) == -signal.SIGKILL
        else:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == PREEMPTED, _tail(tmp_path)
        assert not (tmp_path / "final.npz").exists()

    args = [str(tmp_path), "--data", data, "--epochs", str(EPOCHS), "--resume"]
    assert _data_kinds_script.main(args) == 0
    want, got = _load(references[data] / "final.npz"), _load(tmp_path / "final.npz")
    assert got.keys() == want.keys()
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    resumed_mid = {p.name.split("-")[1]: p.read_text() for p in tmp_path.glob("resumed-*")}
    skipped = {p.name.split("-")[1]: p.read_text() for p in tmp_path.glob("skipped-*")}
    assert (tmp_path / "log.csv").read_text() == (references[data] / "log.csv").read_text()
    if data == "grain":
        assert not skipped  # its position is saved: nothing replayed
    else:
        assert skipped.keys() == resumed_mid.keys()  # every mid-epoch resume replayed
        for pid, position in resumed_mid.items():
            assert re.search(
                rf"its first {position} batches \(already trained\) were skipped; the resume "
                "is exact only if the data yields the same batches again",
                skipped[pid],
            ), skipped[pid]
        if how == "sigterm":
            assert resumed_mid, "a preemption save inside an epoch was expected"
