"""A run killed (SIGKILL) at its first epoch end, after CSVLogger wrote the row and before
ModelCheckpoint saved anything: as a kill during the very first save leaves things.

    python -m tests.laws._first_save_kill_script WORKDIR [--kill]

Without ``--kill`` it trains 2 epochs, resuming from a checkpoint if one exists.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from artifex.generative_models.training.callbacks import LambdaCallback
from tests.laws._resume_script import build, make_data


def main(argv: list[str] | None = None) -> int:
    """Train in ``WORKDIR``; with ``--kill``, SIGKILL this process at the first epoch end."""
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--kill", action="store_true")
    args = parser.parse_args(argv)

    def kill(_trainer: object, _epoch: int, _logs: dict[str, Any]) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    extra = (LambdaCallback(on_epoch_end=kill),) if args.kill else ()
    trainer, _, _ = build(args.workdir, extra=extra)  # the killer runs before ModelCheckpoint
    train, val = make_data()
    checkpoints = args.workdir / "checkpoints"
    if any(p.name.isdigit() for p in checkpoints.glob("*")):
        trainer.resume(checkpoints)
    trainer.fit(train, epochs=2 - trainer.epoch, val_data=val)
    return 0


if __name__ == "__main__":
    sys.exit(main())
