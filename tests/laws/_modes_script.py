"""The dropout / batch-norm model trained on one device, or data-parallel on a mesh.

Imported by ``tests/laws/test_modes_spmd.py`` (the single-device reference, in process)
and run by it on 8 host devices::

    python -m tests.laws._modes_script OUT [--mesh] [--steps-per-execution K]

Writes ``OUT/process-0.json``: the per-step losses, the epoch logs (with validation),
an ``evaluate`` result, the eval-mode loss computed by hand on the final model, and the
final parameters and batch-norm statistics.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tests._distributed import initialize

if __name__ == "__main__":
    initialize()  # before anything else touches JAX

import jax
import numpy as np
import optax
from jax.sharding import Mesh

from artifex.generative_models.training.callbacks import LambdaCallback, TrainerLike
from artifex.generative_models.training.trainer import Trainer
from tests.training._models import batch_stats, batches, eval_mode_mean, mse, new_model, params

TRAIN = 8  # batches of 16 per epoch: 2 examples per device on 8 devices
VAL = 2


def _lists(tree: Any) -> list[Any]:
    return [np.asarray(leaf).tolist() for leaf in jax.tree.leaves(tree)]


def train(*, mesh: bool = False, steps_per_execution: int = 1) -> dict[str, Any]:
    """Train for two epochs with validation; return what the test compares."""
    device_mesh = Mesh(np.array(jax.devices()), ("data",)) if mesh else None
    losses: list[float] = []

    def record(trainer: TrainerLike, step: int, logs: dict[str, Any]) -> None:
        losses.append(float(logs["loss"]))

    trainer = Trainer(
        new_model(),
        optax.adam(1e-2),
        mse,
        callbacks=[LambdaCallback(on_batch_end=record)],
        steps_per_execution=steps_per_execution,
        mesh=device_mesh,
    )
    train_data, val_data = batches(TRAIN, size=16), batches(VAL, size=16, seed=1)
    history = trainer.fit(train_data, epochs=2, val_data=val_data)
    model = trainer.model
    return {
        "losses": losses,
        "history": history,
        "evaluate": trainer.evaluate(val_data),
        "by_hand": eval_mode_mean(model, val_data),
        "params": _lists(params(model)),
        "batch_stats": _lists(batch_stats(model)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--mesh", action="store_true")
    parser.add_argument("--steps-per-execution", type=int, default=1)
    args = parser.parse_args()
    result = train(mesh=args.mesh, steps_per_execution=args.steps_per_execution)
    (args.out / "process-0.json").write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
