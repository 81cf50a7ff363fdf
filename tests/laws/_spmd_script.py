"""A small, fully seeded training run, on one device, on a device mesh, or as a job.

Imported by ``tests/laws/test_spmd.py`` (the single-device reference run, in process) and
run by it as a script on 8 host devices or as 2 processes of 4 devices each::

    python -m tests.laws._spmd_script OUT [--mesh] [--steps-per-execution K]
        [--stop-process P --stop-step S] [--checkpoints DIR] [--epochs N] [--resume]
        [--allgather-stops]

Every process writes ``OUT/process-<i>.json``: the per-step losses, the epoch logs,
the final parameters (gathered from all processes), how the run ended, what the
process-aware callbacks did, each epoch's throughput (taken out of the epoch logs), and
how many ``process_allgather`` calls the process had made at each ``on_batch_end`` (counted
when run as a script; ``--allgather-stops`` takes the stop agreement's fallback path).
The learning rate is injected (``LearningRateMonitor`` logs it) and halved after epoch 0.
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
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    CSVLogger,
    CSVLoggerConfig,
    LambdaCallback,
    LearningRateMonitor,
    ModelCheckpoint,
    ThroughputMonitor,
    TrainerLike,
    TrainingCallback,
)
from artifex.generative_models.training.data import ArrayBatcher
from artifex.generative_models.training.trainer import Trainer, _coordination

Batch = tuple[np.ndarray, np.ndarray]
GLOBAL_BATCH = 16
ALLGATHERS = [0]
"""``process_allgather`` calls so far (counted once ``count_allgathers`` ran)."""


def count_allgathers() -> None:
    """Count the calls of ``multihost_utils.process_allgather`` in ``ALLGATHERS``."""
    original = multihost_utils.process_allgather

    def counting(*args: Any, **kwargs: Any) -> Any:
        ALLGATHERS[0] += 1
        return original(*args, **kwargs)

    multihost_utils.process_allgather = counting  # ty: ignore[invalid-assignment]


class MLP(nnx.Module):
    """Two layers; with ``sharded``, the hidden layer's kernel is split over ``"data"``."""

    def __init__(self, *, sharded: bool, rngs: nnx.Rngs) -> None:
        init = nnx.initializers.lecun_normal()
        kernel_init = nnx.with_partitioning(init, (None, "data")) if sharded else init
        self.hidden = nnx.Linear(8, 16, kernel_init=kernel_init, rngs=rngs)
        self.out = nnx.Linear(16, 4, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jnp.tanh(self.hidden(x)))


def loss_fn(model: MLP, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    x, y = batch
    error = model(jnp.asarray(x)) - jnp.asarray(y)
    return jnp.mean(error**2), {"mae": jnp.mean(jnp.abs(error))}


def dataset(n: int, seed: int) -> Batch:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = np.tanh(x[:, :4] * 2.0).astype(np.float32)
    return x, y


def gather(leaf: jax.Array) -> list[Any]:
    """A parameter's global value, on every process (sharded ones are all-gathered)."""
    if leaf.is_fully_addressable or leaf.is_fully_replicated:
        value: list[Any] = np.asarray(leaf).tolist()
        return value
    gathered: list[Any] = np.asarray(multihost_utils.process_allgather(leaf, tiled=True)).tolist()
    return gathered


def train(
    out: Path,
    *,
    mesh: bool = False,
    steps_per_execution: int = 1,
    stop_process: int | None = None,
    stop_step: int | None = None,
    checkpoints: Path | None = None,
    epochs: int = 3,
    resume: bool = False,
) -> dict[str, Any]:
    """Train the MLP; return (and, as a script, save) what the test compares."""
    index, count = jax.process_index(), jax.process_count()
    device_mesh = Mesh(np.array(jax.devices()), ("data",)) if mesh else None
    if device_mesh is not None:
        with jax.set_mesh(device_mesh):  # NNX shards annotated variables at creation
            model = MLP(sharded=True, rngs=nnx.Rngs(0))
    else:
        model = MLP(sharded=False, rngs=nnx.Rngs(0))

    def batches(n: int, seed: int, shuffle: bool) -> ArrayBatcher[Batch]:
        return ArrayBatcher(
            dataset(n, seed),
            batch_size=GLOBAL_BATCH,
            shuffle=shuffle,
            seed=seed,
            process_index=index,
            process_count=count,
        )

    losses: list[tuple[int, float]] = []
    allgathers: list[int] = []
    main_only: list[int] = []

    def record(trainer: TrainerLike, step: int, logs: dict[str, Any]) -> None:
        losses.append((step, float(logs["loss"])))
        allgathers.append(ALLGATHERS[0])
        if step == stop_step and index == stop_process:
            assert isinstance(trainer, Trainer)
            trainer.stop_training = True

    def halve_after_epoch_0(trainer: TrainerLike, epoch: int, logs: dict[str, Any]) -> None:
        if epoch == 0:  # a new value of the same dtype and sharding, on every process
            assert isinstance(trainer, Trainer)
            trainer.set_hyperparameter("learning_rate", 5e-3)

    callbacks: list[TrainingCallback] = [
        LearningRateMonitor(),  # adds "lr": before the callbacks that read the logs
        ThroughputMonitor(),
        LambdaCallback(on_batch_end=record, on_epoch_end=halve_after_epoch_0),
        LambdaCallback(on_epoch_end=lambda t, e, logs: main_only.append(e), process_scope="main"),
        CSVLogger(CSVLoggerConfig(filename=out / f"log-{index}.csv")),
    ]
    if checkpoints is not None:
        callbacks.append(ModelCheckpoint(CheckpointConfig(dirpath=checkpoints, async_save=False)))
    trainer = Trainer(
        model,
        optax.inject_hyperparams(optax.adam)(learning_rate=1e-2),
        loss_fn,
        callbacks=callbacks,
        steps_per_execution=steps_per_execution,
        mesh=device_mesh,
    )
    history = trainer.fit(
        batches(64, 1, True),
        epochs=epochs,
        val_data=batches(32, 2, False),
        resume_from=checkpoints if resume else None,
    )
    params = nnx.state(trainer.model, nnx.Param)
    timings = ("steps_per_second", "examples_per_second")  # they differ from run to run
    throughput = [{key: logs.pop(key) for key in timings} for logs in history]
    result = {
        "process": index,
        "losses": losses,
        "allgathers": allgathers,
        "history": history,
        "throughput": throughput,
        "evaluate": trainer.evaluate(batches(32, 2, False)),
        "params": [gather(leaf) for leaf in jax.tree.leaves(params)],
        "param_specs": [
            str(getattr(leaf.sharding, "spec", None)) for leaf in jax.tree.leaves(params)
        ],
        "step": trainer.step,
        "epoch": trainer.epoch,
        "status": trainer.status,
        "stopped_by": type(trainer.stopped_by).__name__,
        "stopped_by_processes": list(getattr(trainer.stopped_by, "processes", ())),
        "main_only_epochs": main_only,
        "callback_process_index": trainer.callbacks.process_index,
        "ragged_error": "",
    }
    if device_mesh is not None:  # 3 rows per process do not split over the devices
        probe = Trainer(trainer.model, optax.sgd(0.1), loss_fn, mesh=device_mesh)
        try:
            probe.fit([dataset(3, 0)], epochs=1)
        except ValueError as error:
            result["ragged_error"] = str(error)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--mesh", action="store_true")
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument("--stop-process", type=int)
    parser.add_argument("--stop-step", type=int)
    parser.add_argument("--checkpoints", type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--allgather-stops", action="store_true")
    args = parser.parse_args()
    count_allgathers()
    if args.allgather_stops:  # as if JAX had no coordination-service client
        _coordination.coordination_client = lambda: None  # ty: ignore[invalid-assignment]
    result = train(
        args.out,
        mesh=args.mesh,
        steps_per_execution=args.steps_per_execution,
        stop_process=args.stop_process,
        stop_step=args.stop_step,
        checkpoints=args.checkpoints,
        epochs=args.epochs,
        resume=args.resume,
    )
    (args.out / f"process-{result['process']}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
