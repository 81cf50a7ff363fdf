"""A run whose retention deletes a checkpoint at every step, for the restore-while-deleting law.

Run as ``python -m tests.laws._retention_script WORKDIR --steps N`` from the repository
root: ``ModelCheckpoint(every_n_steps=1, save_top_k=1)`` saves every step into
``WORKDIR/checkpoints`` and Orbax's retention deletes the one before. The script touches
``WORKDIR/started`` once two checkpoints were saved (one deleted), and ``WORKDIR/trained``
at the end.

With ``--evaluate`` instead, it is the evaluator: it restores the latest checkpoint in a
loop until ``WORKDIR/trained`` exists, then prints, as one JSON line, the steps restored
and the messages of the ``FileNotFoundError``s met. (In a process of its own, so that
what Orbax's abandoned reads report when collected never reaches the test process.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    LambdaCallback,
    ModelCheckpoint,
    restore_checkpoint,
)
from artifex.generative_models.training.data import ArrayBatcher
from artifex.generative_models.training.trainer import Trainer

WIDE = 32  # a 32 x 32 kernel: array data worth reading


def _loss(model: nnx.Linear, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def _evaluate(workdir: Path) -> None:
    """Restore the latest checkpoint until the run has trained; print what came back."""
    restored: list[int] = []
    gone: list[str] = []
    while not (workdir / "trained").exists():
        try:
            restored.append(restore_checkpoint(workdir / "checkpoints").step)
        except FileNotFoundError as error:  # went, and so did the latest left
            gone.append(str(error))
    print(json.dumps({"restored": restored, "gone": gone}))


def main(argv: list[str]) -> int:
    """Train ``--steps`` steps, saving (and deleting the previous checkpoint) at each."""
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--evaluate", action="store_true")
    args = parser.parse_args(argv)
    workdir: Path = args.workdir
    if args.evaluate:
        _evaluate(workdir)
        return 0
    x = np.random.default_rng(0).normal(size=(args.steps * 4, WIDE)).astype(np.float32)

    def started(trainer: Any, batch: int, logs: dict[str, Any]) -> None:
        if batch == 1:
            (workdir / "started").touch()

    checkpoint = ModelCheckpoint(
        CheckpointConfig(
            dirpath=workdir / "checkpoints",
            every_n_epochs=None,
            every_n_steps=1,
            save_top_k=1,
            async_save=False,
        )
    )
    trainer = Trainer(
        nnx.Linear(WIDE, WIDE, rngs=nnx.Rngs(0)),
        optax.sgd(0.01),
        _loss,
        callbacks=[LambdaCallback(on_batch_end=started), checkpoint],
    )
    trainer.fit(ArrayBatcher((x, x), batch_size=4), epochs=1)
    (workdir / "trained").touch()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
