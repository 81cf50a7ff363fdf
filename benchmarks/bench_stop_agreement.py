"""The multi-process stop agreement: a 2-process ``Trainer`` job against a hand-written loop.

Run: ``nox -s bench`` (or ``python benchmarks/bench_stop_agreement.py [--quick]``). The
script starts itself as a 2-process JAX job on loopback (``jax.distributed.initialize``
with a local coordinator, one CPU device per process, gloo collectives) and times, on
one mesh over both processes' devices, epochs of:

* a hand-written SPMD loop: a ``jax.jit`` step with the trainer's shardings, each
  process's rows put on the mesh with ``jax.make_array_from_process_local_data``,
  nothing read back per step (= 1.00);
* the same loop with a ``process_allgather`` of one flag after every step (what an
  allgather stop agreement costs a loop that does nothing else);
* ``Trainer(..., mesh=mesh)`` agreeing every stop check through the allgather (the
  fallback, forced by hiding JAX's coordination client);
* ``Trainer(..., mesh=mesh)`` agreeing through the coordination service's key-value
  store (the default);
* ``Trainer(..., mesh=mesh)`` with no agreement at all (stops are then unsafe: only a
  bound on what the agreement may cost),

and, without any training, one agreement alone (microseconds per call). Variants run
interleaved, one epoch each per round; medians of the per-round ratios to the
hand-written loop of the same round are printed (higher is faster).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

_COORDINATOR = "BENCH_STOP_COORDINATOR"
_PROCESS_ID = "BENCH_STOP_PROCESS_ID"
PROCESSES = 2
SIZES = (64, 256, 256, 10)


def launch(argv: list[str]) -> None:
    """Start this script as the 2 processes of one job; print process 0's report."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
        _COORDINATOR: f"127.0.0.1:{port}",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, *argv],
            env={**env, _PROCESS_ID: str(pid)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pid in range(PROCESSES)
    ]
    outputs = [proc.communicate(timeout=1800) for proc in procs]
    for pid, (proc, (_, stderr)) in enumerate(zip(procs, outputs, strict=True)):
        if proc.returncode:
            raise SystemExit(f"process {pid} failed (exit {proc.returncode}):\n{stderr[-4000:]}")
    print(outputs[0][0], end="")


def worker(args: argparse.Namespace) -> None:
    """One process of the job: build the variants, time them, print (process 0)."""
    import jax

    jax.distributed.initialize(
        coordinator_address=os.environ[_COORDINATOR],
        num_processes=PROCESSES,
        process_id=int(os.environ[_PROCESS_ID]),
    )
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.experimental import multihost_utils
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from _spmd_mlp import loss_fn, make_batches, make_model, raw_step, timed
    from artifex.generative_models.training import Trainer
    from artifex.generative_models.training.trainer import _coordination, _stops

    spec: Callable[..., PartitionSpec] = PartitionSpec  # untyped __init__ in jax 0.10
    local_data: Callable[[NamedSharding, np.ndarray], jax.Array] = (
        jax.make_array_from_process_local_data  # untyped in jax 0.10
    )
    mesh = Mesh(np.array(jax.devices()), ("data",))
    replicated, split = NamedSharding(mesh, spec()), NamedSharding(mesh, spec("data"))
    rounds = args.rounds or (3 if args.quick else 9)
    steps = 50 if args.quick else 200
    batches = make_batches(SIZES, args.batch, steps, seed=jax.process_index())

    def raw(agree_each_step: bool) -> Callable[[], float]:
        state, compiled = raw_step(SIZES, replicated)

        def epoch() -> jax.Array:
            nonlocal state
            value = jnp.zeros(())
            for x, y in batches:
                batch = (local_data(split, x), local_data(split, y))
                state, value = compiled(state, batch)
                if agree_each_step:
                    np.asarray(multihost_utils.process_allgather(np.int32(0)))
            return value

        return timed(epoch, steps)

    def trainer(agreement: str) -> Callable[[], float]:
        def nobody(allgather: object) -> Callable[[bool], tuple[int, ...]]:
            return lambda flag: ()

        def epoch() -> jax.Array:
            # Private hooks: hide JAX's client (the fallback), or skip agreeing at all.
            module, name, value = (
                (_coordination, "coordination_client", lambda: None)
                if agreement == "allgather"
                else (_stops, "stop_agreement", nobody)
            )
            original = getattr(module, name)
            if agreement != "key-value":
                setattr(module, name, value)
            try:
                fitted.fit(batches, epochs=1)
            finally:
                setattr(module, name, original)
            last: jax.Array = jax.tree.leaves(fitted.opt_state)[-1]
            return last

        fitted = Trainer(make_model(SIZES), optax.adam(1e-3), loss_fn, mesh=mesh)
        return timed(epoch, steps)

    variants = {
        "hand-written SPMD loop": raw(agree_each_step=False),
        "  + process_allgather per step": raw(agree_each_step=True),
        "Trainer, allgather agreement (before)": trainer("allgather"),
        "Trainer, key-value agreement (after)": trainer("key-value"),
        "Trainer, no agreement (unsafe; a bound)": trainer("none"),
    }
    ratios: dict[str, list[float]] = {name: [] for name in variants}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        base = 0.0
        for name, run in variants.items():
            rate = run()
            base = base or rate
            rates[name].append(rate)
            ratios[name].append(rate / base)

    def per_call(agree: Callable[[bool], tuple[int, ...]], calls: int) -> float:
        agree(False)
        start = time.perf_counter()
        for _ in range(calls):
            agree(False)
        return (time.perf_counter() - start) / calls * 1e6

    client = _coordination.coordination_client()
    assert client is not None, "JAX's coordination client is missing: nothing to compare"
    calls = 200 if args.quick else 1000
    kv = _coordination.KeyValueAgreement(client, jax.process_index(), PROCESSES)

    def gathered(flag: bool) -> tuple[int, ...]:
        flags = np.asarray(multihost_utils.process_allgather(np.int32(flag)))
        return tuple(int(i) for i in np.flatnonzero(flags))

    alone = {"process_allgather": per_call(gathered, calls), "key-value": per_call(kv, calls)}
    if jax.process_index():
        return
    print(
        f"\nStop agreement, {PROCESSES} processes x 1 CPU device, MLP "
        f"{'-'.join(map(str, SIZES))}, {args.batch} rows per process, Adam; jax "
        f"{jax.__version__}, Python {sys.version_info.major}.{sys.version_info.minor}; "
        f"medians of {rounds} rounds x {steps} steps"
    )
    print(f"{'variant':<40} {'steps/s':>8} {'vs hand-written':>16}")
    for name in variants:
        print(
            f"{name:<40} {statistics.median(rates[name]):>8.0f} "
            f"{statistics.median(ratios[name]):>15.2f}x"
        )
    print(f"one agreement alone, microseconds per call ({calls} calls):")
    for name, micros in alone.items():
        print(f"  {name:<20} {micros:>8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="override the round count")
    parser.add_argument("--batch", type=int, default=64, help="rows per process and step")
    args = parser.parse_args()
    if _PROCESS_ID in os.environ:
        worker(args)
    else:
        launch(sys.argv[1:])


if __name__ == "__main__":
    main()
