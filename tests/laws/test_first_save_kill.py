"""Issue 18, item 6: a kill during the very first save, then a restart with ``append=True``.

No checkpoint exists, so the restarted run starts from epoch 0 again. ``CSVLogger`` moves
the killed run's rows of the epochs it writes again aside (``log.csv.superseded-1``):
each epoch appears once in the log, and no row is lost. Runs in bounded subprocesses.
"""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from tests.laws import _first_save_kill_script
from tests.laws._processes import run_command, script_command

TIMEOUT = 300  # seconds per subprocess: a bound, far above the few seconds it takes


def _run(workdir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = script_command(_first_save_kill_script.__name__, workdir, *flags)
    return run_command(command, timeout=TIMEOUT)


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
