"""Issue 30, points 7 and 10: a checkpoint disk that fails before training, for real.

Each run (``tests/laws/_setup_fault_script.py``) has its checkpoint directory on a
1 MiB tmpfs of a private mount namespace (as ``test_disk_faults.py``; skipped where
mounting is not allowed). The unit tests simulate these faults
(``tests/training/checkpointing/test_writable.py``, ``test_setup_failures.py``); here the
kernel gives them:

* a resume into a directory remounted read-only, onto a stale lock, is refused in
  preflight with ``EROFS`` naming it, and the CSV log is byte-identical (no row moved);
* a full disk at set-up is an ``OSError`` (``ENOSPC``) naming what was written, and
  leaves no lock: the next run, the disk emptied, starts at once.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

from tests._tmpfs import in_tmpfs, skip_unless_mountable
from tests.laws import _setup_fault_script
from tests.laws._processes import run_command, script_command

TIMEOUT = 150  # seconds per run: a bound, far above the seconds it takes


def _run(tmp_path: Path, fault: str) -> dict[str, Any]:
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    skip_unless_mountable(checkpoints)
    command = script_command(_setup_fault_script.__name__, tmp_path, fault)
    run = run_command(in_tmpfs(checkpoints, *command), timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr[-3000:]
    report: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    return report


@pytest.mark.one_python
def test_a_resume_into_a_read_only_directory_is_refused_before_the_log_moves(
    tmp_path: Path,
) -> None:
    report = _run(tmp_path, "read-only")
    assert (report.get("type"), report.get("errno")) == ("PermissionError", errno.EROFS)
    checkpoints = str(tmp_path / "checkpoints")
    assert f"checkpoint dirpath {checkpoints!r} cannot be written" in str(report["message"])
    assert "read-only file system" in str(report["message"])
    assert any("in preflight" in note for note in report["notes"])
    assert report["log_kept"] is True
    assert report["names"] == ["checkpoints", "log.csv"]  # no log.csv.superseded-1


@pytest.mark.one_python
def test_a_full_disk_at_set_up_names_the_file_and_leaves_no_lock(tmp_path: Path) -> None:
    report = _run(tmp_path, "full")
    assert (report.get("type"), report.get("errno")) == ("OSError", errno.ENOSPC)
    assert str(tmp_path / "checkpoints" / "run") in str(report["message"])
    assert "artifex_checkpoints.lock" not in report["left"]
    assert report["next"] == "ran"
