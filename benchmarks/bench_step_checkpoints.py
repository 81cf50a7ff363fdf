"""The step-time cost of mid-epoch checkpoints, as a ratio to no step saving.

Run: ``nox -s bench`` (or ``python benchmarks/bench_step_checkpoints.py [--quick]``).
A small MLP (64-256-256-10, batch 128, 200 batches per epoch) trains with a
``ModelCheckpoint`` that saves at epoch ends only (the baseline, = 1.00), and with
``every_n_steps`` = 100, 50 and 20 (asynchronous Orbax saves). Variants run
interleaved, one epoch each per round, in fresh checkpoint directories; the medians
of the per-round ratios of epoch time to the baseline's are printed (higher is
slower).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx

from artifex.generative_models.training import Trainer
from artifex.generative_models.training.callbacks import CheckpointConfig, ModelCheckpoint
from artifex.generative_models.training.data import ArrayBatcher

Batch = tuple[jax.Array, jax.Array]
EVERY = (None, 100, 50, 20)


class MLP(nnx.Module):
    def __init__(self, sizes: tuple[int, ...], *, rngs: nnx.Rngs) -> None:
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[:-1]:
            x = nnx.relu(layer(x))
        return self.layers[-1](x)


def loss_fn(model: MLP, batch: Batch) -> jax.Array:
    x, y = batch
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


def epoch_time(every: int | None, root: Path, data: ArrayBatcher[Any]) -> float:
    """One epoch (after a compiling one) of a fresh trainer saving every ``every`` steps."""
    directory = root / f"ck-{every}"
    shutil.rmtree(directory, ignore_errors=True)
    config = CheckpointConfig(dirpath=directory, save_top_k=2, every_n_steps=every)
    trainer = Trainer(
        MLP((64, 256, 256, 10), rngs=nnx.Rngs(0)),
        optax.adam(1e-3),
        loss_fn,
        callbacks=[ModelCheckpoint(config)],
    )
    trainer.fit(data, epochs=1)  # compile
    start = time.perf_counter()
    trainer.fit(data, epochs=1)  # on_train_end waits for the pending saves
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 7; 2 quick)")
    args = parser.parse_args()
    rounds = (2 if args.quick else 7) if args.rounds is None else args.rounds
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200 * 128, 64)).astype(np.float32)
    y = rng.integers(0, 10, size=200 * 128).astype(np.int32)
    data = ArrayBatcher((x, y), batch_size=128, shuffle=True, seed=0)
    ratios: dict[int | None, list[float]] = {every: [] for every in EVERY}
    extra: dict[int | None, list[float]] = {every: [] for every in EVERY}
    baseline: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            times = {every: epoch_time(every, Path(tmp), data) for every in EVERY}
            baseline.append(times[None])
            for every in EVERY:
                ratios[every].append(times[every] / times[None])
                saves = 0 if every is None else 200 // every
                extra[every].append((times[every] - times[None]) / max(saves, 1))
    print(
        f"step-time cost of every_n_steps saving, 200 steps per epoch ({rounds} rounds; "
        f"baseline epoch {statistics.median(baseline):.2f} s)"
    )
    for every in EVERY:
        label = "epoch ends only (baseline)" if every is None else f"every_n_steps={every}"
        cost = "" if every is None else f", {statistics.median(extra[every]) * 1e3:5.1f} ms/save"
        print(f"  {label:<28} {statistics.median(ratios[every]):5.2f}x epoch time{cost}")


if __name__ == "__main__":
    main()
