"""A small model with dropout and batch norm, its data, and hand-written references.

Shared by the trainer's mode tests, the performance guards and the multi-device law.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

Batch = tuple[jax.Array, jax.Array]


class DropoutBatchNorm(nnx.Module):
    """Linear -> Dropout(0.5) -> BatchNorm -> Linear."""

    def __init__(self, *, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(3, 8, rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)
        self.norm = nnx.BatchNorm(8, rngs=rngs)
        self.out = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y: jax.Array = self.out(self.norm(self.dropout(self.hidden(x))))
        return y


def new_model(seed: int = 0) -> DropoutBatchNorm:
    return DropoutBatchNorm(rngs=nnx.Rngs(seed))


def mse(model: DropoutBatchNorm, batch: Batch) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def batches(count: int, *, size: int = 4, seed: int = 0) -> list[Batch]:
    x = jax.random.normal(jax.random.key(seed), (count * size, 3))
    y = jnp.sum(x, axis=-1, keepdims=True)
    return [(x[i * size : (i + 1) * size], y[i * size : (i + 1) * size]) for i in range(count)]


def batch_stats(model: nnx.Module) -> Any:
    """The batch-norm running statistics, on the host."""
    return jax.device_get(nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)))


def params(model: nnx.Module) -> Any:
    """The trained parameters, on the host."""
    return jax.device_get(nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def host_state(model: nnx.Module) -> Any:
    """The whole state on the host, RNG keys as their raw data (comparable arrays)."""

    def raw(leaf: Any) -> Any:
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.key_data(leaf)
        return leaf

    return jax.device_get(jax.tree.map(raw, nnx.to_pure_dict(nnx.state(model))))


def reference_losses(
    model: DropoutBatchNorm, tx: optax.GradientTransformation, data: list[Batch], epochs: int
) -> list[float]:
    """A hand-written ``jax.jit`` loop over ``nnx.split`` state: every step's loss.

    Trains ``model`` in place (its RNG streams and batch statistics advance as in any
    training step).
    """
    graphdef, *states = nnx.split(model, nnx.Param, ...)
    trained, rest = states
    opt_state = tx.init(trained)

    @jax.jit
    def step(trained: Any, rest: Any, opt_state: Any, batch: Batch) -> Any:
        def objective(trained: Any) -> tuple[jax.Array, Any]:
            # Fresh variables at this trace level: the dropout's RNG count advances.
            module = nnx.merge(graphdef, trained, jax.tree.map(lambda leaf: leaf, rest))
            loss = mse(module, batch)
            _, *new_states = nnx.split(module, nnx.Param, ...)
            return loss, new_states[1]

        (loss, new_rest), grads = jax.value_and_grad(objective, has_aux=True)(trained)
        updates, opt_state = tx.update(grads, opt_state, trained)
        return optax.apply_updates(trained, updates), new_rest, opt_state, loss

    losses: list[float] = []
    for _ in range(epochs):
        for batch in data:
            trained, rest, opt_state, loss = step(trained, rest, opt_state, batch)
            losses.append(float(loss))
    nnx.update(model, trained, rest)
    return losses


def eval_mode_mean(model: DropoutBatchNorm, data: list[Batch]) -> float:
    """The mean loss of an evaluation-mode copy of ``model``, summed as the trainer sums."""
    copy: DropoutBatchNorm = nnx.clone(model)
    copy.set_attributes(deterministic=True, use_running_average=True)  # model.eval()
    return mean_loss(copy, data)


def mean_loss(model: DropoutBatchNorm, data: list[Batch]) -> float:
    """The mean loss of ``model`` as it is, summed in float32 as the trainer sums."""
    total = jnp.zeros((), jnp.float32)
    for batch in data:
        total = _add_loss(model, batch, total)
    return float(total) / len(data)


@nnx.jit
def _add_loss(model: DropoutBatchNorm, batch: Batch, total: jax.Array) -> jax.Array:
    # Compiled, as the trainer's eval step is: XLA's fused float32 arithmetic differs
    # from op-by-op execution in the last bit on some JAX versions.
    return total + mse(model, batch).astype(jnp.float32)
