"""Gradient accumulation with ``optax.MultiSteps``, against a hand-written accumulation loop."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from artifex.generative_models.training import Trainer
from tests.training._models import Batch, batches

EVERY = 2  # micro-batches per optimiser update
LR = 0.1


def linear() -> nnx.Linear:
    return nnx.Linear(3, 1, rngs=nnx.Rngs(0))


def loss_fn(model: nnx.Linear, batch: Batch) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def accumulated_by_hand(data: list[Batch], epochs: int) -> Any:
    """Average the gradients of every ``EVERY`` micro-batches, then take one SGD step."""
    graphdef, params = nnx.split(linear(), nnx.Param)

    @jax.jit
    def grads_of(params: Any, batch: Batch) -> Any:
        return jax.grad(lambda p: loss_fn(nnx.merge(graphdef, p), batch))(params)

    pending: list[Any] = []
    for _ in range(epochs):
        for batch in data:
            pending.append(grads_of(params, batch))
            if len(pending) == EVERY:
                mean = jax.tree.map(lambda *g: sum(g) / EVERY, *pending)
                params = jax.tree.map(lambda p, g: p - LR * g, params, mean)
                pending = []
    return jax.device_get(nnx.to_pure_dict(params))


@pytest.mark.parametrize("chunk", [1, 2, 4])
def test_multi_steps_trains_as_a_hand_written_accumulation_loop(chunk: int) -> None:
    data = batches(6)
    tx = optax.MultiSteps(optax.sgd(LR), every_k_schedule=EVERY).gradient_transformation()
    trainer = Trainer(linear(), tx, loss_fn, steps_per_execution=chunk)
    trainer.fit(data, epochs=2)
    assert trainer.step == 12  # trainer.step counts micro-batches, not optimiser updates
    got = jax.device_get(nnx.to_pure_dict(nnx.state(trainer.model, nnx.Param)))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
        got,
        accumulated_by_hand(data, epochs=2),
    )


def test_an_unfinished_accumulation_carries_over_to_the_next_fit() -> None:
    data = batches(3)  # odd: every epoch ends mid-accumulation
    tx = optax.MultiSteps(optax.sgd(LR), every_k_schedule=EVERY).gradient_transformation()
    trainer = Trainer(linear(), tx, loss_fn)
    trainer.fit(data, epochs=1)
    trainer.fit(data, epochs=1)
    got = jax.device_get(nnx.to_pure_dict(nnx.state(trainer.model, nnx.Param)))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
        got,
        accumulated_by_hand(data, epochs=2),
    )
