"""Data-parallel ``Trainer`` throughput on 1, 2, 4 and 8 devices, as ratios to one device.

Run: ``nox -s bench`` (or ``python benchmarks/bench_data_parallel.py [--quick]``). On
the medium MLP (784-1024-1024-10, Adam) with the per-device batch held fixed (weak
scaling), it times ``Trainer(..., mesh=Mesh(devices[:n], ("data",)))`` for each ``n``
against the single-device run (``Trainer`` without a mesh, = 1.00) and prints:

* ``steps/s`` ratio: the step rate relative to one device. Ideal weak scaling keeps
  it at 1.00; this is the *efficiency*;
* ``examples/s`` ratio: ``n`` times the efficiency.

Without accelerators the script asks XLA for 8 host CPU devices. They share this
machine's cores, so on CPU the efficiency cannot exceed ``cores / n``: read the line
as a check that nothing serialises on the host (a per-step transfer or sync would
push it far below that bound). On a GPU machine the same script runs unchanged over
the GPUs it finds. Variants run interleaved, one epoch each per round, and medians of
the per-round ratios are reported, because this machine is noisy.
"""

from __future__ import annotations

import os

_FLAG = "--xla_force_host_platform_device_count"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):  # must precede JAX's start
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}=8".strip()

import argparse  # noqa: E402 - after the XLA flag, as are the imports below
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import Mesh  # noqa: E402

from artifex.generative_models.training import Trainer  # noqa: E402

Batch = tuple[np.ndarray, np.ndarray]
SIZES = (784, 1024, 1024, 10)
DEVICE_COUNTS = (1, 2, 4, 8)


def make_model() -> nnx.Sequential:
    rngs = nnx.Rngs(0)
    return nnx.Sequential(
        nnx.Linear(SIZES[0], SIZES[1], rngs=rngs),
        nnx.relu,
        nnx.Linear(SIZES[1], SIZES[2], rngs=rngs),
        nnx.relu,
        nnx.Linear(SIZES[2], SIZES[3], rngs=rngs),
    )


def loss_fn(model: nnx.Sequential, batch: Batch) -> jax.Array:
    x, y = batch
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


def make_batches(global_batch: int, steps: int) -> list[Batch]:
    rng = np.random.default_rng(0)
    return [
        (
            rng.normal(size=(global_batch, SIZES[0])).astype(np.float32),
            rng.integers(0, SIZES[-1], size=global_batch).astype(np.int32),
        )
        for _ in range(steps)
    ]


def epoch_runner(devices: int | None, per_device: int, steps: int) -> Callable[[], float]:
    """A function running one epoch and returning its steps per second."""
    mesh = None if devices is None else Mesh(np.array(jax.devices()[:devices]), ("data",))
    trainer = Trainer(make_model(), optax.adam(1e-3), loss_fn, mesh=mesh)
    batches = make_batches(per_device * (devices or 1), steps)

    def run() -> float:
        start = time.perf_counter()
        trainer.fit(batches, epochs=1)
        for leaf in jax.tree.leaves(trainer.opt_state):
            leaf.block_until_ready()
        return steps / (time.perf_counter() - start)

    run()  # compile
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    parser.add_argument("--per-device-batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=None, help="override the round count")
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)
    steps = 10 if args.quick else 20
    available = len(jax.devices())
    counts = [n for n in DEVICE_COUNTS if n <= available]
    runners = {n: epoch_runner(n, args.per_device_batch, steps) for n in counts}
    single = epoch_runner(None, args.per_device_batch, steps)
    ratios: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(rounds):
        base = single()
        for n, run in runners.items():
            ratios[n].append(run() / base)

    platform = jax.devices()[0].platform
    cores = os.cpu_count() or 1
    print(
        f"\nData-parallel Trainer, medium MLP {'-'.join(map(str, SIZES))}, "
        f"{args.per_device_batch} examples per device, {platform} x{available}, "
        f"{rounds} rounds x {steps} steps (ratios to one device without a mesh = 1.00)"
    )
    print(f"{'devices':>8} {'steps/s (efficiency)':>22} {'examples/s':>11}", end="")
    print(f" {'CPU bound':>10}" if platform == "cpu" else "")
    for n in counts:
        efficiency = statistics.median(ratios[n])
        line = f"{n:>8} {efficiency:>21.2f}x {n * efficiency:>10.2f}x"
        if platform == "cpu":
            line += f" {min(1.0, cores / n):>9.2f}x"
        print(line)
    if platform == "cpu":
        print(f"(CPU bound: the best efficiency {cores} shared cores allow)")


if __name__ == "__main__":
    main()
