"""The MLP, data and hand-written SPMD step shared by the multi-device benchmarks.

Used by ``bench_data_parallel.py`` and ``bench_stop_agreement.py``; import it after any
XLA flag or ``jax.distributed.initialize`` the script needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding

Batch = tuple[Any, Any]
Step = Callable[[Any, Batch], tuple[Any, jax.Array]]


def make_model(sizes: Sequence[int]) -> nnx.Sequential:
    """An MLP of three ``Linear`` layers with ReLUs, seeded."""
    rngs = nnx.Rngs(0)
    return nnx.Sequential(
        nnx.Linear(sizes[0], sizes[1], rngs=rngs),
        nnx.relu,
        nnx.Linear(sizes[1], sizes[2], rngs=rngs),
        nnx.relu,
        nnx.Linear(sizes[2], sizes[3], rngs=rngs),
    )


def loss_fn(model: nnx.Sequential, batch: Batch) -> jax.Array:
    """Softmax cross-entropy on integer labels."""
    x, y = batch
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


def make_batches(sizes: Sequence[int], rows: int, steps: int, seed: int = 0) -> list[Batch]:
    """``steps`` random batches of ``rows`` rows for an MLP of ``sizes``."""
    rng = np.random.default_rng(seed)
    return [
        (
            rng.normal(size=(rows, sizes[0])).astype(np.float32),
            rng.integers(0, sizes[-1], size=rows).astype(np.int32),
        )
        for _ in range(steps)
    ]


def timed(epoch: Callable[[], jax.Array], steps: int) -> Callable[[], float]:
    """Compile ``epoch``; return a function running it and giving its steps per second."""

    def run() -> float:
        start = time.perf_counter()
        epoch().block_until_ready()
        return steps / (time.perf_counter() - start)

    run()  # compile
    return run


def raw_step(sizes: Sequence[int], replicated: NamedSharding) -> tuple[Any, Step]:
    """The hand-written baseline: replicated ``(params, opt_state)`` and a jitted Adam step.

    Returns:
        The initial state and ``step(state, batch) -> (state, loss)``, donating the state.
    """
    graphdef, params = nnx.split(make_model(sizes))
    tx = optax.adam(1e-3)
    state = jax.device_put((params, tx.init(params)), replicated)

    def step(state: Any, batch: Batch) -> tuple[Any, jax.Array]:
        params, opt_state = state

        def loss(params: Any) -> jax.Array:
            return loss_fn(nnx.merge(graphdef, params), batch)

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    compiled: Step = jax.jit(step, donate_argnums=0, out_shardings=replicated)
    return state, compiled
