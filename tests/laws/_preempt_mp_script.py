"""A data-parallel run of two processes that a SIGTERM to one of them preempts.

Run by ``tests/laws/test_preemption_mp.py`` through :mod:`tests._distributed`::

    python -m tests.laws._preempt_mp_script WORKDIR [--resume]

Every process trains ``tests.laws._spmd_script``'s MLP on a mesh over both processes'
devices, with ``ModelCheckpoint(every_n_steps=4)`` and a slow batch callback, touches
``WORKDIR/stepped-<i>`` after its first step, and on ``Preempted`` writes the saved
step to ``WORKDIR/preempted-<i>`` and exits with ``PREEMPTED``; a run that completes
writes its final parameters to ``WORKDIR/final-<i>.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests._distributed import initialize

if __name__ == "__main__":
    initialize()  # before anything else touches JAX

import argparse
import json
import time
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    LambdaCallback,
    ModelCheckpoint,
)
from artifex.generative_models.training.data import ArrayBatcher
from artifex.generative_models.training.trainer import Preempted, Trainer
from tests.laws._spmd_script import GLOBAL_BATCH, MLP, dataset, gather, loss_fn

PREEMPTED = 3
EPOCHS = 30  # 4 steps each


def main() -> int:
    """Train (or resume) in ``WORKDIR``; see the module docstring."""
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    workdir: Path = args.workdir
    index, count = jax.process_index(), jax.process_count()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    with jax.set_mesh(mesh):
        model = MLP(sharded=True, rngs=nnx.Rngs(0))
    stepped = workdir / f"stepped-{index}"

    def slow(_trainer: object, _step: int, _logs: dict[str, Any]) -> None:
        stepped.touch()
        time.sleep(0.03)

    checkpoints = workdir / "checkpoints"
    trainer = Trainer(
        model,
        optax.adam(1e-2),
        loss_fn,
        callbacks=[
            LambdaCallback(on_batch_end=slow),
            ModelCheckpoint(CheckpointConfig(dirpath=checkpoints, every_n_steps=4)),
        ],
        mesh=mesh,
    )
    train = ArrayBatcher(
        dataset(64, 1), batch_size=GLOBAL_BATCH, seed=1, process_index=index, process_count=count
    )
    if args.resume:
        trainer.resume(checkpoints)
    try:
        trainer.fit(train, epochs=EPOCHS - trainer.epoch)
    except Preempted as preempted:
        (workdir / f"preempted-{index}").write_text(str(preempted.step))
        return PREEMPTED
    params = [gather(leaf) for leaf in jax.tree.leaves(nnx.state(trainer.model, nnx.Param))]
    (workdir / f"final-{index}.json").write_text(
        json.dumps({"step": trainer.step, "params": params})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
