"""``bench_peers``'s workloads: each model written once, built as NNX modules and with jax.numpy.

A workload is a list of layers; ``Net`` builds it as NNX modules (the ``Trainer``'s and the
NNX docs loop's model), ``raw_forward`` writes it with ``jax.numpy`` for the raw loop, which
starts from the NNX model's initial weights (``block_arrays``). ``bench_trainer.py`` reuses
the CNN and its raw loop.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

Batch = tuple[jax.Array, jax.Array]
Kind = Literal["dense", "conv", "batchnorm", "relu", "flatten", "dropout"]
LEARNING_RATE = 1e-3
ADAM_EPS = 1e-8  # optax's default; Keras's is 1e-7, so it is passed to Keras
BN_MOMENTUM, BN_EPS = 0.99, 1e-5  # NNX's defaults; Keras's epsilon is 1e-3, so it is passed
CHECK_BATCHES = 10  # batches per epoch in the loss check


def adam() -> optax.GradientTransformation:
    return optax.adam(LEARNING_RATE, eps=ADAM_EPS)


# ------------------------------------------------------------------ workloads


@dataclass(frozen=True, slots=True)
class Layer:
    kind: Kind
    size: int = 0  # output features of a dense or conv layer
    rate: float = 0.0  # dropout rate


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """One model, written once as layers that each contender builds in its own framework."""

    key: str
    name: str
    input_shape: tuple[int, ...]  # one example's
    classes: int
    layers: tuple[Layer, ...]
    batch_size: int
    batches: int  # per epoch; a multiple of 10 for steps_per_execution=10

    def for_check(self) -> Workload:
        """The same model without dropout, on fewer batches, for the loss check."""
        layers = tuple(replace(layer, rate=0.0) for layer in self.layers)
        return replace(self, layers=layers, batches=CHECK_BATCHES)


def mlp(*sizes: int) -> tuple[Layer, ...]:
    dense = [Layer("dense", size) for size in sizes[1:]]
    return (*(item for layer in dense[:-1] for item in (layer, Layer("relu"))), dense[-1])


def workloads(quick: bool) -> list[Workload]:
    conv = (Layer("conv", 16), Layer("batchnorm"), Layer("relu"))
    return [
        Workload(key="tiny", name="tiny MLP 64-256-256-10, batch 128", input_shape=(64,),
                 classes=10, layers=mlp(64, 256, 256, 10), batch_size=128,
                 batches=100 if quick else 200),
        Workload(key="medium", name="medium MLP 784-1024-1024-10, batch 256",
                 input_shape=(784,), classes=10, layers=mlp(784, 1024, 1024, 10),
                 batch_size=256, batches=10 if quick else 30),
        Workload(key="cnn", name="small CNN 8x8x1, conv16-BN-conv32-BN-dropout-10, batch 128",
                 input_shape=(8, 8, 1), classes=10,
                 layers=(*conv, Layer("conv", 32), *conv[1:], Layer("flatten"),
                         Layer("dropout", rate=0.2), Layer("dense", 10)),
                 batch_size=128, batches=10 if quick else 20),
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Data:
    """The same examples as host NumPy arrays (for Keras) and as device batches."""

    x: np.ndarray[Any, np.dtype[np.float32]]
    y: np.ndarray[Any, np.dtype[np.int32]]
    batches: list[Batch]


def make_data(workload: Workload, seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    count = workload.batch_size * workload.batches
    x = rng.normal(size=(count, *workload.input_shape)).astype(np.float32)
    y = rng.integers(0, workload.classes, size=(count,)).astype(np.int32)
    size = workload.batch_size
    batches = [
        (jnp.asarray(x[i : i + size]), jnp.asarray(y[i : i + size])) for i in range(0, count, size)
    ]
    return Data(x, y, batches)


# ------------------------------------------------------------------ the NNX model

Block: TypeAlias = nnx.Linear | nnx.Conv | nnx.BatchNorm | nnx.Dropout


class Net(nnx.Module):
    """The workload's layers as NNX modules (the Trainer's and the NNX docs loop's model)."""

    def __init__(self, workload: Workload, *, rngs: nnx.Rngs) -> None:
        self.kinds: tuple[Kind, ...] = tuple(layer.kind for layer in workload.layers)
        shape = workload.input_shape
        blocks: list[Block] = []
        for layer in workload.layers:
            if layer.kind == "dense":
                blocks.append(nnx.Linear(shape[-1], layer.size, rngs=rngs))
                shape = (layer.size,)
            elif layer.kind == "conv":
                blocks.append(nnx.Conv(shape[-1], layer.size, kernel_size=(3, 3), rngs=rngs))
                shape = (*shape[:-1], layer.size)
            elif layer.kind == "batchnorm":
                blocks.append(nnx.BatchNorm(shape[-1], rngs=rngs))
            elif layer.kind == "dropout":
                blocks.append(nnx.Dropout(layer.rate, rngs=rngs))
            elif layer.kind == "flatten":
                shape = (math.prod(shape),)
        self.blocks = nnx.List(blocks)

    def __call__(self, x: jax.Array) -> jax.Array:
        blocks = iter(self.blocks)
        for kind in self.kinds:
            if kind == "relu":
                x = nnx.relu(x)
            elif kind == "flatten":
                x = x.reshape(x.shape[0], -1)
            else:
                x = next(blocks)(x)
        return x


def net_loss(model: Net, batch: Batch) -> jax.Array:
    x, y = batch
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


def block_arrays(model: Net) -> list[dict[str, jax.Array]]:
    """Copies of each block's arrays, in Keras's weight order (kernel, bias; BN's four)."""
    arrays: list[dict[str, jax.Array]] = []
    for block in model.blocks:
        if isinstance(block, nnx.Linear | nnx.Conv):
            assert block.bias is not None
            named = {"kernel": block.kernel[...], "bias": block.bias[...]}
        elif isinstance(block, nnx.BatchNorm):
            assert block.scale is not None
            assert block.bias is not None
            named = {"scale": block.scale[...], "bias": block.bias[...]}
            named |= {"mean": block.mean[...], "var": block.var[...]}
        else:
            named = {}
        arrays.append({name: jnp.copy(value) for name, value in named.items()})
    return arrays


# ------------------------------------------------------------------ the raw loop

RawParams = list[dict[str, jax.Array]]
RawState = tuple[RawParams, RawParams, Any, jax.Array | None]  # params, BN stats, opt, key


def raw_forward(
    workload: Workload, params: RawParams, stats: RawParams, x: jax.Array, key: jax.Array | None
) -> tuple[jax.Array, RawParams]:
    """The forward pass written with jax.numpy; returns the logits and the new BN stats."""
    index, new_stats = 0, list(stats)
    for layer in workload.layers:
        if layer.kind == "relu":
            x = jax.nn.relu(x)
            continue
        if layer.kind == "flatten":
            x = x.reshape(x.shape[0], -1)
            continue
        p = params[index]
        if layer.kind == "dense":
            x = x @ p["kernel"] + p["bias"]
        elif layer.kind == "conv":
            dims = ("NHWC", "HWIO", "NHWC")
            x = jax.lax.conv_general_dilated(
                x, p["kernel"], (1, 1), "SAME", dimension_numbers=dims
            ) + p["bias"]  # fmt: skip
        elif layer.kind == "batchnorm":
            axes = tuple(range(x.ndim - 1))
            mean = x.mean(axes)
            var = jnp.maximum(0.0, (x * x).mean(axes) - mean * mean)
            x = (x - mean) * jax.lax.rsqrt(var + BN_EPS) * p["scale"] + p["bias"]
            old = stats[index]
            new_stats[index] = {
                "mean": BN_MOMENTUM * old["mean"] + (1 - BN_MOMENTUM) * mean,
                "var": BN_MOMENTUM * old["var"] + (1 - BN_MOMENTUM) * var,
            }
        elif layer.rate > 0:  # dropout, the kind left
            assert key is not None
            key, sub = jax.random.split(key)
            keep = jax.random.bernoulli(sub, 1.0 - layer.rate, x.shape)
            x = jnp.where(keep, x / (1.0 - layer.rate), 0.0)
        index += 1
    return x, new_stats


def make_raw_step(
    workload: Workload, tx: optax.GradientTransformation
) -> Callable[[RawState, Batch], tuple[RawState, jax.Array]]:
    def loss(
        params: RawParams, stats: RawParams, key: jax.Array | None, batch: Batch
    ) -> tuple[jax.Array, RawParams]:
        logits, new_stats = raw_forward(workload, params, stats, batch[0], key)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean(), new_stats

    def step(state: RawState, batch: Batch) -> tuple[RawState, jax.Array]:
        params, stats, opt_state, key = state
        sub = None
        if key is not None:
            key, sub = jax.random.split(key)
        (value, stats), grads = jax.value_and_grad(loss, has_aux=True)(params, stats, sub, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), stats, opt_state, key), value

    return jax.jit(step, donate_argnums=0)


# ------------------------------------------------------------------ hand-written loops


class StepLoop:
    """A hand-written loop calling a jitted step per batch (the raw loop, the NNX docs')."""

    def __init__(self, step: Callable[[Batch], jax.Array], batches: list[Batch]) -> None:
        self.step = step
        self.batches = batches

    def epoch(self) -> None:
        """Train one epoch, until its results are on the device."""
        loss = None
        for batch in self.batches:
            loss = self.step(batch)
        assert loss is not None
        loss.block_until_ready()

    def run(self, epochs: int) -> None:
        for _ in range(epochs):
            self.epoch()

    def losses(self, epochs: int) -> list[float]:
        return [
            statistics.fmean(float(self.step(batch)) for batch in self.batches)
            for _ in range(epochs)
        ]


class RawLoop(StepLoop):
    """The raw loop: a params pytree, optax, and a ``jax.jit`` step donating its state."""

    def __init__(self, workload: Workload, data: Data) -> None:
        tx = adam()
        arrays = block_arrays(Net(workload, rngs=nnx.Rngs(0)))
        params = [{k: v for k, v in a.items() if k not in ("mean", "var")} for a in arrays]
        stats = [{k: v for k, v in a.items() if k in ("mean", "var")} for a in arrays]
        has_dropout = any(layer.kind == "dropout" and layer.rate > 0 for layer in workload.layers)
        key = jax.random.key(0) if has_dropout else None
        self.state: RawState = (params, stats, tx.init(params), key)
        self.jitted = make_raw_step(workload, tx)
        super().__init__(self.raw_step, data.batches)

    def raw_step(self, batch: Batch) -> jax.Array:
        self.state, loss = self.jitted(self.state, batch)
        return loss


def raw_loop(workload: Workload, data: Data) -> RawLoop:
    return RawLoop(workload, data)
