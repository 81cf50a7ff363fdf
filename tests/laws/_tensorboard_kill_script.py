"""A run with a ``TensorBoardLogger`` that waits to be SIGKILLed after an epoch, or resumes.

    python -m tests.laws._tensorboard_kill_script WORKDIR --epochs N [--block-after E]
        [--resume]

``--block-after E`` prints ``epoch E flushed`` once epoch ``E``'s ``on_epoch_end`` ran
(the logger flushed) and then blocks on stdin, for the parent to SIGKILL it. Checkpoints
come every second epoch, so the killed run's events go past its last checkpoint.
``--resume`` continues with ``fit(..., resume_from=WORKDIR/checkpoints)``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import optax

from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    LambdaCallback,
    ModelCheckpoint,
    TensorBoardLogger,
)
from artifex.generative_models.training.trainer import Trainer
from tests.laws._resume_script import loss_fn, make_data, make_model


def main(argv: list[str] | None = None) -> int:
    """Train in ``WORKDIR`` (see the module docs)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--block-after", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    checkpoints = args.workdir / "checkpoints"

    def block(_trainer: object, epoch: int, _logs: dict[str, Any]) -> None:
        if epoch == args.block_after:
            print(f"epoch {epoch} flushed", flush=True)  # the marker the parent waits for
            sys.stdin.read()  # until the parent's SIGKILL

    trainer = Trainer(
        make_model(),
        optax.adam(1e-2),
        loss_fn,
        callbacks=[
            # flush_secs far above the run: only the logger's own flushes write events.
            TensorBoardLogger(log_dir=args.workdir / "tb", log_every_n_steps=1, flush_secs=3600),
            ModelCheckpoint(
                CheckpointConfig(
                    dirpath=checkpoints, every_n_epochs=2, save_top_k=-1, async_save=False
                )
            ),
            LambdaCallback(on_epoch_end=block),
        ],
    )
    train, _ = make_data()
    trainer.fit(train, epochs=args.epochs, resume_from=checkpoints if args.resume else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
