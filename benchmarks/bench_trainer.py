"""Training throughput of ``Trainer`` as ratios to a raw functional ``jax.jit`` loop.

Run: ``nox -s bench`` (or ``python benchmarks/bench_trainer.py [--quick]``). For a
small MLP (64-256-256-10, batch 128), a medium one (784-1024-1024-10, batch 256) and a
small CNN with batch norm and dropout (``bench_peers``'s, 8x8 images, batch 128), with
the same data, optimiser (Adam) and initial weights, it prints the throughput of:

* the raw loop: a params pytree, ``optax`` and a ``jax.jit`` step donating params and
  optimizer state (= 1.00);
* ``Trainer`` with no callbacks (target on the small MLP >= 0.97x);
* ``Trainer`` with a typical set: a history, an early-stopping-like ``StopRequester``
  and a progress-like callback that counts batches without syncing (target >= 0.95x);
* ``Trainer`` with ``steps_per_execution=10`` (target: >= 0.97x ``Trainer`` on every
  model, >= 1.2x raw on the small MLP; on a CPU only small convolution-free steps run
  in a scan, others step by step: see ``trainer/_chunk_rule.py``);
* the eager step of the original project: un-jitted ``nnx.value_and_grad`` with a
  ``float(loss)`` sync per step;
* host data: the raw loop fed the same examples as host NumPy arrays (each epoch it
  slices them in ``ArrayBatcher``'s order and passes the NumPy batches to its jitted
  step, as a hand-written loop would), and ``Trainer`` on an ``ArrayBatcher`` over the
  same arrays; their ratio is printed (target >= 0.95x on the small MLP).

Ratios are throughput relative to the raw loop (higher is faster); the chunked
trainer's ratio to the unchunked one is printed too. Variants run interleaved in one
process, one epoch each per round, and the per-round ratios' medians are reported,
because this machine is noisy. Beside each, its compile time: the first epoch's time
(trace, compile, run) less a steady epoch's.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import bench_peers
from artifex.generative_models.training import ArrayBatcher, Trainer
from artifex.generative_models.training.callbacks import BaseCallback, Logs, TrainerLike

Batch = tuple[jax.Array, jax.Array]
CHUNKED = "Trainer, steps_per_execution=10"
CHUNKED_VS_UNCHUNKED = "steps_per_execution=10 / Trainer"
RAW_HOST = "raw loop, host NumPy batches"
TRAINER_HOST = "Trainer, ArrayBatcher of NumPy"
HOST_VS_RAW_HOST = "host: Trainer / raw loop"


class MLP(nnx.Module):
    def __init__(self, sizes: tuple[int, ...], *, rngs: nnx.Rngs) -> None:
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[:-1]:
            x = nnx.relu(layer(x))
        return self.layers[-1](x)


def mlp_loss(model: MLP, batch: Batch) -> jax.Array:
    x, y = batch
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


# ------------------------------------------------------------------ raw baseline

RawParams = list[dict[str, jax.Array]]


def raw_params(model: MLP) -> RawParams:
    params: RawParams = []
    for layer in model.layers:
        assert layer.bias is not None
        params.append({"kernel": jnp.copy(layer.kernel[...]), "bias": jnp.copy(layer.bias[...])})
    return params


def raw_forward(params: RawParams, x: jax.Array) -> jax.Array:
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["kernel"] + layer["bias"])
    return x @ params[-1]["kernel"] + params[-1]["bias"]


def make_raw_step(
    tx: optax.GradientTransformation,
) -> Callable[[RawParams, Any, Batch], tuple[RawParams, Any, jax.Array]]:
    def loss(params: RawParams, batch: Batch) -> jax.Array:
        x, y = batch
        return optax.softmax_cross_entropy_with_integer_labels(raw_forward(params, x), y).mean()

    def step(params: RawParams, opt_state: Any, batch: Batch) -> tuple[RawParams, Any, jax.Array]:
        value, grads = jax.value_and_grad(loss)(params, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return jax.jit(step, donate_argnums=(0, 1))


# ------------------------------------------------------------------ typical callbacks


class SmallHistory(BaseCallback):
    __slots__ = ("epochs",)

    def __init__(self) -> None:
        self.epochs: list[Logs] = []

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: Logs, /) -> None:
        self.epochs.append(dict(logs))


class SmallEarlyStopping(BaseCallback):
    __slots__ = ("_best", "_wait", "patience")

    def __init__(self, patience: int = 1000) -> None:
        self.patience = patience
        self._best = float("inf")
        self._wait = 0

    @property
    def should_stop(self) -> bool:
        return self._wait > self.patience

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: Logs, /) -> None:
        if logs["loss"] < self._best:
            self._best, self._wait = logs["loss"], 0
        else:
            self._wait += 1


class SmallProgress(BaseCallback):
    """Counts batches (as a progress bar would) and never reads the device logs."""

    __slots__ = ("batches", "epoch")

    def __init__(self) -> None:
        self.batches = 0
        self.epoch = 0

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, /) -> None:
        self.epoch = epoch

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: Logs, /) -> None:
        self.batches += 1


# ------------------------------------------------------------------ harness


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    name: str
    sizes: tuple[int, ...]
    batch_size: int
    batches: int
    eager_steps: int


HostArrays = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Bench:
    """What a case's variants train: its batches, a fresh model, its loss, the raw epoch.

    ``host`` holds the same examples as NumPy arrays, and ``new_raw_step`` gives a raw
    jitted step (with its own state) that the host-fed raw loop calls.
    """

    batches: list[Batch]
    host: HostArrays
    new_model: Callable[[], nnx.Module]
    loss: Callable[[Any, Any], jax.Array]
    raw_epoch: Callable[[], None]
    new_raw_step: Callable[[], Callable[[Any], jax.Array]]


def host_raw_epoch(
    step: Callable[[Any], jax.Array], host: HostArrays, batch_size: int, seed: int = 0
) -> Callable[[], None]:
    """A hand-written loop over host data: ``ArrayBatcher``'s order, NumPy batches to ``step``.

    Each epoch slices the NumPy arrays with the permutation ``ArrayBatcher(host,
    batch_size=batch_size, seed=seed)`` uses in that data epoch, and passes the NumPy
    slices to the jitted, donating step (its transfer happens in the call).
    """
    x, y = host
    epoch = 0

    def run() -> None:
        nonlocal epoch
        order = np.random.default_rng((seed, epoch)).permutation(len(x))
        epoch += 1
        loss = None
        for start in range(0, len(x), batch_size):
            index = order[start : start + batch_size]
            loss = step((x[index], y[index]))
        assert loss is not None
        loss.block_until_ready()

    return run


def mlp_bench(case: Case) -> Bench:
    batches = make_batches(case)
    tx = optax.adam(1e-3)
    raw_step = make_raw_step(tx)
    params = raw_params(MLP(case.sizes, rngs=nnx.Rngs(0)))
    opt_state = tx.init(params)

    def raw_epoch() -> None:
        nonlocal params, opt_state
        for batch in batches:
            params, opt_state, _ = raw_step(params, opt_state, batch)
        for leaf in jax.tree.leaves(params):
            leaf.block_until_ready()

    def new_raw_step() -> Callable[[Any], jax.Array]:
        params = raw_params(MLP(case.sizes, rngs=nnx.Rngs(0)))
        opt_state = tx.init(params)

        def step(batch: Any) -> jax.Array:
            nonlocal params, opt_state
            params, opt_state, loss = raw_step(params, opt_state, batch)
            return loss

        return step

    return Bench(
        batches=batches,
        host=host_arrays(batches),
        new_model=lambda: MLP(case.sizes, rngs=nnx.Rngs(0)),
        loss=mlp_loss,
        raw_epoch=raw_epoch,
        new_raw_step=new_raw_step,
    )


def cnn_bench(case: Case) -> Bench:
    """``bench_peers``'s CNN (conv16-BN-conv32-BN-dropout-10 on 8x8x1) and raw loop."""
    workload = next(w for w in bench_peers.workloads(quick=False) if w.key == "cnn")
    workload = replace(workload, batch_size=case.batch_size, batches=case.batches)
    data = bench_peers.make_data(workload)
    return Bench(
        batches=data.batches,
        host=(data.x, data.y),
        new_model=lambda: bench_peers.Net(workload, rngs=nnx.Rngs(0)),
        loss=bench_peers.net_loss,
        raw_epoch=bench_peers.raw_loop(workload, data).epoch,
        new_raw_step=lambda: bench_peers.raw_loop(workload, data).step,
    )


def make_batches(case: Case, seed: int = 0) -> list[Batch]:
    rng = np.random.default_rng(seed)
    return [
        (
            jnp.asarray(rng.normal(size=(case.batch_size, case.sizes[0])).astype(np.float32)),
            jnp.asarray(rng.integers(0, case.sizes[-1], size=(case.batch_size,)).astype(np.int32)),
        )
        for _ in range(case.batches)
    ]


def host_arrays(batches: list[Batch]) -> HostArrays:
    """The examples of ``batches`` as two NumPy arrays (inputs, labels)."""
    return (
        np.concatenate([np.asarray(x) for x, _ in batches]),
        np.concatenate([np.asarray(y) for _, y in batches]),
    )


def run_case(case: Case, rounds: int) -> dict[str, float]:
    bench = cnn_bench(case) if case.sizes == () else mlp_bench(case)
    batches, tx = bench.batches, optax.adam(1e-3)

    def trainer(data: Any = batches, **options: Any) -> Callable[[], None]:
        t = Trainer(bench.new_model(), tx, bench.loss, **options)

        def epoch() -> None:
            t.fit(data, epochs=1)

        return epoch

    eager_model = bench.new_model()
    eager_opt = nnx.Optimizer(eager_model, tx, wrt=nnx.Param)
    eager_batches = batches[: case.eager_steps]

    def eager_epoch() -> None:
        total = 0.0
        for batch in eager_batches:
            loss, grads = nnx.value_and_grad(bench.loss)(eager_model, batch)
            eager_opt.update(eager_model, grads)
            total += float(loss)

    variants: dict[str, Callable[[], None]] = {
        "raw jax.jit loop": bench.raw_epoch,
        "Trainer, no callbacks": trainer(),
        "Trainer, typical callbacks": trainer(
            callbacks=[SmallHistory(), SmallEarlyStopping(), SmallProgress()]
        ),
        CHUNKED: trainer(steps_per_execution=10),
        "eager nnx step + float(loss)": eager_epoch,
        RAW_HOST: host_raw_epoch(bench.new_raw_step(), bench.host, case.batch_size),
        TRAINER_HOST: trainer(data=ArrayBatcher(bench.host, batch_size=case.batch_size)),
    }
    steps = {name: case.batches for name in variants}
    steps["eager nnx step + float(loss)"] = case.eager_steps
    first: dict[str, float] = {}
    for name, fn in variants.items():  # warm up: compile everything
        start = time.perf_counter()
        fn()
        first[name] = time.perf_counter() - start
        fn()
    per_step: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for index in range(rounds):  # rotate the order, so that drift hits every variant alike
        for name in names[index % len(names) :] + names[: index % len(names)]:
            start = time.perf_counter()
            variants[name]()
            per_step[name].append((time.perf_counter() - start) / steps[name])

    def ratios(base: list[float], times: list[float]) -> float:
        return statistics.median(b / v for b, v in zip(base, times, strict=True))

    raw, raw_host = per_step["raw jax.jit loop"], per_step[RAW_HOST]
    chunked, unchunked = per_step[CHUNKED], per_step["Trainer, no callbacks"]
    return (
        {name: ratios(raw, times) for name, times in per_step.items()}
        | {f"{name} [us/step]": statistics.median(times) * 1e6 for name, times in per_step.items()}
        | {
            f"{name} [compile s]": first[name] - statistics.median(times) * steps[name]
            for name, times in per_step.items()
        }
        | {CHUNKED_VS_UNCHUNKED: ratios(unchunked, chunked)}
        | {HOST_VS_RAW_HOST: ratios(raw_host, per_step[TRAINER_HOST])}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    parser.add_argument("--case", choices=["small", "medium", "cnn", "all"], default="all")
    parser.add_argument("--rounds", type=int, default=None, help="override the round count")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 15)
    cases = [
        Case(name="small MLP 64-256-256-10, batch 128", sizes=(64, 256, 256, 10),
             batch_size=128, batches=100 if args.quick else 200, eager_steps=5),
        Case(name="medium MLP 784-1024-1024-10, batch 256", sizes=(784, 1024, 1024, 10),
             batch_size=256, batches=10 if args.quick else 30, eager_steps=3),
        Case(name="cnn 8x8x1 conv16-BN-conv32-BN-dropout-10, batch 128", sizes=(),
             batch_size=128, batches=20 if args.quick else 40, eager_steps=3),
    ]  # fmt: skip
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.device_count()} device(s)")
    print("throughput relative to the raw jax.jit loop (higher is faster), medians over rounds")
    if args.case != "all":
        cases = [case for case in cases if case.name.startswith(args.case)]
    for case in cases:
        result = run_case(case, rounds)
        print(f"\n{case.name} ({case.batches} steps/epoch, {rounds} rounds)")
        for name, ratio in result.items():
            if name == CHUNKED_VS_UNCHUNKED:
                print(f"  {name:34s} {ratio:6.3f}x   (target >= 0.97x)")
            elif name == HOST_VS_RAW_HOST:
                print(f"  {name:34s} {ratio:6.3f}x   (target >= 0.95x on the small MLP)")
            elif not name.endswith("]"):
                us, compile_s = result[f"{name} [us/step]"], result[f"{name} [compile s]"]
                print(
                    f"  {name:34s} {ratio:6.3f}x   {us:10.1f} us/step   compile {compile_s:5.2f} s"
                )


if __name__ == "__main__":
    main()
