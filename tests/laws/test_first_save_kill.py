"""Issue 18, item 6: a kill during the very first save, then a restart with ``append=True``.

No checkpoint exists, so the restarted run starts from epoch 0 again. ``CSVLogger`` moves
the killed run's rows of the epochs it writes again aside (``log.csv.superseded-1``):
each epoch appears once in the log, and no row is lost. Runs in bounded subprocesses.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from tests.laws import _first_save_kill_script

ROOT = Path(_first_save_kill_script.__file__).resolve().parents[2]
TIMEOUT = 300  # seconds per subprocess: a bound, far above the few seconds it takes


def _run(workdir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "tests.laws._first_save_kill_script", str(workdir), *flags]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=TIMEOUT, check=False
    )


def _epochs(path: Path) -> list[str]:
    with path.open(newline="") as file:
        return [row["epoch"] for row in csv.DictReader(file)]


def test_kill_during_the_first_save_then_restart_keeps_each_epoch_once(tmp_path: Path) -> None:
    killed = _run(tmp_path, "--kill")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not [p for p in (tmp_path / "checkpoints").glob("*") if p.name.isdigit()]
    assert _epochs(tmp_path / "log.csv") == ["0"]

    restarted = _run(tmp_path)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert _epochs(tmp_path / "log.csv") == ["0", "1"]
    assert _epochs(tmp_path / "log.csv.superseded-1") == ["0"]  # the killed run's row, kept
