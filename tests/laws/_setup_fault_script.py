"""A checkpoint disk that fails before training: read-only at a resume, full at set-up.

    python -m tests.laws._setup_fault_script WORKDIR {read-only,full}

``WORKDIR/checkpoints`` must be a mount of its own (a small tmpfs, made by the test in a
private mount namespace). The script writes what it saw to ``WORKDIR/report.json``.

* ``read-only``: a run trains 2 epochs; then a row its checkpoint does not count is
  appended to the CSV log (outside the mount: a resume moves it aside), a stale lock (a
  dead pid) is left, and the mount is remounted read-only. The resumed run must be
  refused before the log moves.
* ``full``: the mount is filled; a run set up in ``checkpoints/run`` must fail naming
  what it wrote, and, the disk emptied, the next run must start at once (no lock left).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import optax

from artifex.generative_models.training.callbacks import CheckpointConfig, ModelCheckpoint
from artifex.generative_models.training.trainer import Trainer
from tests.laws._disk_fault_script import FILLER, _fill
from tests.laws._resume_script import build, loss_fn, make_data, make_model


def _failure(error: BaseException) -> dict[str, Any]:
    return {
        "type": type(error).__name__,
        "errno": getattr(error, "errno", None),
        "message": str(error),
        "notes": getattr(error, "__notes__", []),
    }


def _dead_pid() -> int:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=60)
    return dead.pid


def _read_only(workdir: Path) -> dict[str, Any]:
    checkpoints, log = workdir / "checkpoints", workdir / "log.csv"
    trainer, _, _ = build(workdir)
    train, val = make_data()
    trainer.fit(train, epochs=2, val_data=val)
    last = log.read_text().splitlines()[-1].split(",")
    with log.open("a") as file:  # epoch 2's row, which no checkpoint counts
        file.write(",".join(["2", *last[1:]]) + "\n")
    owner = {"pid": _dead_pid(), "token": "gone", "host": socket.gethostname()}
    owner["namespace"] = os.readlink("/proc/self/ns/pid")
    (checkpoints / "artifex_checkpoints.lock").write_text(json.dumps(owner))
    before = log.read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(checkpoints)], check=True)
    resumed, _, _ = build(workdir)
    report: dict[str, Any] = {}
    try:
        resumed.fit(train, epochs=1, val_data=val, resume_from=checkpoints)
    except Exception as error:
        report = _failure(error)
    report["log_kept"] = log.read_bytes() == before
    report["names"] = sorted(p.name for p in workdir.iterdir())
    return report


def _full(workdir: Path) -> dict[str, Any]:
    checkpoints = workdir / "checkpoints"
    directory = checkpoints / "run"

    def run() -> None:
        checkpoint = ModelCheckpoint(CheckpointConfig(dirpath=directory, async_save=False))
        trainer = Trainer(make_model(0), optax.adam(1e-2), loss_fn, callbacks=[checkpoint])
        trainer.fit(make_data()[0], epochs=1)

    _fill(checkpoints)
    report: dict[str, Any] = {}
    try:
        run()
    except Exception as error:
        report = _failure(error)
    report["left"] = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    (checkpoints / FILLER).unlink()
    try:
        run()  # at once: no empty lock of the failed run refuses it
        report["next"] = "ran"
    except Exception as error:
        report["next"] = str(error)
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the fault named on the command line; write ``WORKDIR/report.json``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("fault", choices=("read-only", "full"))
    args = parser.parse_args(argv)
    workdir: Path = args.workdir
    report = _read_only(workdir) if args.fault == "read-only" else _full(workdir)
    (workdir / "report.json").write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
