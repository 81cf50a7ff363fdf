"""Data-parallel ``Trainer`` throughput on 1, 2, 4 and 8 devices, as ratios to one device.

Run: ``nox -s bench`` (or ``python benchmarks/bench_data_parallel.py [--quick]``). On
the medium MLP (784-1024-1024-10, Adam) with the per-device batch held fixed (weak
scaling), it times ``Trainer(..., mesh=Mesh(devices[:n], ("data",)))`` for each ``n``
against the single-device run (``Trainer`` without a mesh, = 1.00) and prints:

* ``steps/s`` ratio: the step rate relative to one device. Ideal weak scaling keeps
  it at 1.00; this is the *efficiency*;
* ``examples/s`` ratio: ``n`` times the efficiency;
* the same for a hand-written SPMD loop on the same mesh (a ``jax.jit`` step with the
  same shardings, the batch put on the mesh each step), and ``Trainer / raw``: what
  the trainer itself costs on a mesh (target about 1.00).

Without accelerators the script asks XLA for 8 host CPU devices. They share this
machine's cores, and one CPU device already uses all of them, so on CPU the examples/s
ratio cannot exceed about 1: read the lines as a check that nothing serialises on the
host (``Trainer / raw`` would fall well below 1). On a GPU machine the same script runs
unchanged over the GPUs it finds. Variants run interleaved, one epoch each per round, and medians of
the per-round ratios are reported, because this machine is noisy.
"""

from __future__ import annotations

import os

_FLAG = "--xla_force_host_platform_device_count"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):  # must precede JAX's start
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}=8".strip()

import argparse  # noqa: E402 - after the XLA flag, as are the imports below
import statistics  # noqa: E402
from collections.abc import Callable  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

from _spmd_mlp import loss_fn, make_batches, make_model, raw_step, timed  # noqa: E402
from artifex.generative_models.training import Trainer  # noqa: E402

_spec: Callable[..., PartitionSpec] = PartitionSpec  # untyped __init__ in jax 0.10
SIZES = (784, 1024, 1024, 10)
DEVICE_COUNTS = (1, 2, 4, 8)


def trainer_runner(devices: int | None, per_device: int, steps: int) -> Callable[[], float]:
    """One ``Trainer`` epoch: on the first ``devices`` devices, or without a mesh."""
    mesh = None if devices is None else Mesh(np.array(jax.devices()[:devices]), ("data",))
    trainer = Trainer(make_model(SIZES), optax.adam(1e-3), loss_fn, mesh=mesh)
    batches = make_batches(SIZES, per_device * (devices or 1), steps)

    def epoch() -> jax.Array:
        trainer.fit(batches, epochs=1)
        last: jax.Array = jax.tree.leaves(trainer.opt_state)[-1]
        return last

    return timed(epoch, steps)


def raw_runner(devices: int, per_device: int, steps: int) -> Callable[[], float]:
    """One epoch of a hand-written SPMD loop: ``jax.jit`` with the trainer's shardings."""
    mesh = Mesh(np.array(jax.devices()[:devices]), ("data",))
    split = NamedSharding(mesh, _spec("data"))
    state, compiled = raw_step(SIZES, NamedSharding(mesh, _spec()))
    batches = make_batches(SIZES, per_device * devices, steps)

    def epoch() -> jax.Array:
        nonlocal state
        value = jnp.zeros(())
        for batch in batches:
            state, value = compiled(state, jax.device_put(batch, split))
        return value

    return timed(epoch, steps)


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
    batch = args.per_device_batch
    runners = {n: (trainer_runner(n, batch, steps), raw_runner(n, batch, steps)) for n in counts}
    single = trainer_runner(None, batch, steps)
    ratios: dict[int, list[float]] = {n: [] for n in counts}
    raw_ratios: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(rounds):
        base = single()
        for n, (trainer, raw) in runners.items():
            ratios[n].append(trainer() / base)
            raw_ratios[n].append(raw() / base)

    platform = jax.devices()[0].platform
    print(
        f"\nData-parallel Trainer, medium MLP {'-'.join(map(str, SIZES))}, "
        f"{args.per_device_batch} examples per device, {platform} x{available}, "
        f"{rounds} rounds x {steps} steps (ratios to one device without a mesh = 1.00)"
    )
    print(
        f"{'devices':>8} {'steps/s (efficiency)':>21} {'examples/s':>11} "
        f"{'raw SPMD examples/s':>20} {'Trainer / raw':>14}"
    )
    for n in counts:
        efficiency = statistics.median(ratios[n])
        raw_efficiency = statistics.median(raw_ratios[n])
        overhead = statistics.median(t / r for t, r in zip(ratios[n], raw_ratios[n], strict=True))
        print(
            f"{n:>8} {efficiency:>20.2f}x {n * efficiency:>10.2f}x {n * raw_efficiency:>19.2f}x "
            f"{overhead:>13.2f}x"
        )


if __name__ == "__main__":
    main()
