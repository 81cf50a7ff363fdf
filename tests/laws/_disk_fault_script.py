"""A run whose checkpoint disk fails after the first save: it fills up, or turns read-only.

    python -m tests.laws._disk_fault_script WORKDIR {full,read-only} [--sync]

``WORKDIR/checkpoints`` must be a mount of its own (a small tmpfs, made by the test
in a private mount namespace): at the end of epoch 1, once the first checkpoint
(step 6) is on disk, the script fills it with a file, or remounts it read-only.
``ModelCheckpoint``'s next save (step 12) fails. The script writes what it saw to
``WORKDIR/report.json`` (the mount vanishes with the namespace) and re-raises the
error of ``fit``: the process must then exit promptly, with a nonzero status.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from artifex.generative_models.training.callbacks import LambdaCallback, ModelCheckpoint
from tests.laws._outcomes import assert_all_restore
from tests.laws._resume_script import build, make_data

FILLER = "filler"
"""The file that fills the disk, in the checkpoint directory."""


def _fill(directory: Path) -> None:
    """Write ``directory / FILLER`` until the disk is full."""
    chunk = b"\0" * 65536
    with (directory / FILLER).open("wb", buffering=0) as file:
        try:
            while True:
                file.write(chunk)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise


def main(argv: list[str] | None = None) -> int:
    """Train 4 epochs in ``WORKDIR``; the checkpoint disk fails at epoch 1's end."""
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("fault", choices=("full", "read-only"))
    parser.add_argument("--sync", action="store_true")
    args = parser.parse_args(argv)
    workdir: Path = args.workdir
    checkpoints = workdir / "checkpoints"
    savers: list[ModelCheckpoint] = []

    def fault(_trainer: object, epoch: int, _logs: dict[str, Any]) -> None:
        if epoch != 1:
            return
        savers[0].wait_until_finished()  # step 6 is on disk
        if args.fault == "full":
            _fill(checkpoints)
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(checkpoints)], check=True)

    def pace(_trainer: object, _batch: int, _logs: dict[str, Any]) -> None:
        time.sleep(0.05)  # a failed background save ends within the next epoch

    hooks = LambdaCallback(on_epoch_end=fault, on_batch_end=pace)
    trainer, _, _ = build(workdir, extra=(hooks,), async_save=not args.sync)
    savers.extend(cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint))
    train, val = make_data()
    try:
        trainer.fit(train, epochs=4, val_data=val)
    except Exception as error:
        failed_at = time.monotonic()
        report = {
            "type": type(error).__name__,
            "errno": getattr(error, "errno", None),
            "message": str(error),
            "notes": getattr(error, "__notes__", []),
            "cause": type(error.__cause__).__name__,
            "status": trainer.status,
            "names": sorted(p.name for p in checkpoints.iterdir() if p.name != FILLER),
            "restored": assert_all_restore(checkpoints),
            "failed_at": failed_at,
        }
        (workdir / "report.json").write_text(json.dumps(report))
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
