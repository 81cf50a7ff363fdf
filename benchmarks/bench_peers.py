"""Training throughput of ``Trainer`` beside its peers, as ratios to a raw ``jax.jit`` loop.

Run: ``nox -s bench`` (which installs Keras) or ``python benchmarks/bench_peers.py
[--quick] [--rounds N] [--workload tiny|medium|cnn|all]``. Over three workloads (a tiny
MLP 64-256-256-10 at batch 128, a medium MLP 784-1024-1024-10 at batch 256, and a small
CNN with batch norm and dropout on 8x8 images at batch 128), with the same model, data,
Adam and initial weights, it interleaves in one process:

* the raw loop: a params pytree, ``optax`` and a ``jax.jit`` step donating its state
  (= 1.00);
* ``Trainer``; ``Trainer`` with the typical callbacks (``History``, ``EarlyStopping``,
  ``CSVLogger``, ``ProgressBar``, ``ModelCheckpoint`` every epoch, into a temporary
  folder); ``Trainer`` with ``steps_per_execution=10``;
* the loop the Flax NNX docs teach (``nnx.jit`` + ``nnx.Optimizer``);
* Keras 3 ``fit`` on the JAX backend: bare, with its equivalent callbacks (``History``,
  ``EarlyStopping``, ``CSVLogger``, ``ModelCheckpoint`` into a temporary folder, the
  progress bar) and with ``steps_per_execution=10``. Keras is optional: without it
  these are skipped, with a printed line saying how to install it.

First it checks that every contender computes the same epoch losses as the raw loop, on
twins built the same way (dropout off, 2 epochs of 10 batches), and refuses to report if
one does not. Then it prints
the min, median and max over rounds of each contender's steps/s relative to the raw
loop in the same round (higher is faster), and the median time per step.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Protocol, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from rich.console import Console

from artifex.generative_models.training import Trainer
from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    CSVLogger,
    CSVLoggerConfig,
    EarlyStopping,
    EarlyStoppingConfig,
    History,
    ModelCheckpoint,
    ProgressBar,
    ProgressBarConfig,
    TrainingCallback,
)

Batch = tuple[jax.Array, jax.Array]
Kind = Literal["dense", "conv", "batchnorm", "relu", "flatten", "dropout"]
LEARNING_RATE = 1e-3
ADAM_EPS = 1e-8  # optax's default; Keras's is 1e-7, so it is passed to Keras
BN_MOMENTUM, BN_EPS = 0.99, 1e-5  # NNX's defaults; Keras's epsilon is 1e-3, so it is passed
CHECK_EPOCHS, CHECK_BATCHES = 2, 10  # the loss check's run: 20 steps
# Keras's Adam adds epsilon to sqrt(v) before the bias correction, optax's after it, so its
# losses drift from optax's: by 5.5e-4 relative in 20 steps on the medium MLP (small
# gradients), 1e-5 on the others; with an epsilon of 1e-13 the drift is under 1e-7. A learning
# rate 10% off gives 6e-3 on the tiny MLP; a wrong model or wrong weights differ by far more.
CHECK_RTOL = 2e-3
RAW = "raw jax.jit loop, donated (= 1.00)"
KERAS_VERSION = "3.15.1"  # the version pyproject.toml's `bench` group pins


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


# ------------------------------------------------------------------ contenders


class Contender(Protocol):
    def epoch(self) -> None:
        """Train one epoch over the data, until its results are on the device."""
        ...

    def losses(self, epochs: int) -> list[float]:
        """Train ``epochs`` epochs; return each one's mean loss."""
        ...


class StepLoop:
    """A hand-written loop calling a jitted step per batch (the raw loop, the NNX docs')."""

    def __init__(self, step: Callable[[Batch], jax.Array], batches: list[Batch]) -> None:
        self.step = step
        self.batches = batches

    def epoch(self) -> None:
        loss = None
        for batch in self.batches:
            loss = self.step(batch)
        assert loss is not None
        loss.block_until_ready()

    def losses(self, epochs: int) -> list[float]:
        return [
            statistics.fmean(float(self.step(batch)) for batch in self.batches)
            for _ in range(epochs)
        ]


def raw_loop(workload: Workload, data: Data) -> StepLoop:
    tx = adam()
    arrays = block_arrays(Net(workload, rngs=nnx.Rngs(0)))
    params = [{k: v for k, v in a.items() if k not in ("mean", "var")} for a in arrays]
    stats = [{k: v for k, v in a.items() if k in ("mean", "var")} for a in arrays]
    has_dropout = any(layer.kind == "dropout" and layer.rate > 0 for layer in workload.layers)
    key = jax.random.key(0) if has_dropout else None
    state: RawState = (params, stats, tx.init(params), key)
    jitted = make_raw_step(workload, tx)

    def step(batch: Batch) -> jax.Array:
        nonlocal state
        state, loss = jitted(state, batch)
        return loss

    return StepLoop(step, data.batches)


def nnx_docs_loop(workload: Workload, data: Data) -> StepLoop:
    """The training loop of the Flax NNX docs (``nnx.jit``, ``nnx.Optimizer``)."""
    model = Net(workload, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, adam(), wrt=nnx.Param)

    @nnx.jit
    def train_step(model: Net, optimizer: nnx.Optimizer[Net], batch: Batch) -> jax.Array:
        loss: jax.Array
        loss, grads = nnx.value_and_grad(net_loss)(model, batch)
        optimizer.update(model, grads)
        return loss

    return StepLoop(lambda batch: train_step(model, optimizer, batch), data.batches)


class TrainerContender:
    def __init__(
        self,
        workload: Workload,
        data: Data,
        *,
        callbacks: Sequence[TrainingCallback] = (),
        steps_per_execution: int = 1,
    ) -> None:
        model = Net(workload, rngs=nnx.Rngs(0))
        self.trainer = Trainer(
            model, adam(), net_loss, callbacks=callbacks, steps_per_execution=steps_per_execution
        )
        self.batches = data.batches

    def epoch(self) -> None:
        self.trainer.fit(self.batches, epochs=1)

    def losses(self, epochs: int) -> list[float]:
        return [float(logs["loss"]) for logs in self.trainer.fit(self.batches, epochs=epochs)]


def trainer_callbacks(folder: Path) -> list[TrainingCallback]:
    """The typical set; the progress bar draws on a console that is not a terminal."""
    return [
        History(),
        EarlyStopping(EarlyStoppingConfig(monitor="loss", patience=10**6)),
        CSVLogger(CSVLoggerConfig(filename=folder / "log.csv")),
        ProgressBar(ProgressBarConfig(console=Console(file=io.StringIO()))),
        ModelCheckpoint(CheckpointConfig(dirpath=folder / "checkpoints", save_top_k=1)),
    ]


# ------------------------------------------------------------------ Keras (optional)

# Keras is imported here only, through importlib: it is not installed where the
# benchmarks are type-checked, and it has no type information to check against, so its
# objects cross this boundary as ``Any``.


def import_keras() -> ModuleType | None:
    """Keras on the JAX backend, or ``None`` (with a printed line saying why)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if os.environ["KERAS_BACKEND"] != "jax":
        print(f"KERAS_BACKEND={os.environ['KERAS_BACKEND']}: skipping the Keras contenders")
        return None
    if importlib.util.find_spec("keras") is None:
        print(
            "Keras is not installed: skipping the Keras contenders. Install it with "
            f"`pip install keras=={KERAS_VERSION}`, or run `nox -s bench`, which does."
        )
        return None
    try:
        keras = importlib.import_module("keras")
    except Exception as error:  # e.g. a Keras that does not fit this JAX: run the rest
        print(f"Keras failed to import ({type(error).__name__}: {error}): skipping its contenders")
        return None
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}")
    return keras


def keras_model(keras: ModuleType, workload: Workload, steps_per_execution: int) -> Any:
    """A compiled ``keras.Sequential`` of the workload, with the NNX model's initial weights."""
    layers = keras.layers
    stack: list[Any] = [keras.Input(workload.input_shape)]
    for layer in workload.layers:
        if layer.kind == "dense":
            stack.append(layers.Dense(layer.size))
        elif layer.kind == "conv":
            stack.append(layers.Conv2D(layer.size, 3, padding="same"))
        elif layer.kind == "batchnorm":
            stack.append(layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPS))
        elif layer.kind == "relu":
            stack.append(layers.ReLU())
        elif layer.kind == "flatten":
            stack.append(layers.Flatten())
        else:
            stack.append(layers.Dropout(layer.rate))
    model = keras.Sequential(stack)
    arrays = block_arrays(Net(workload, rngs=nnx.Rngs(0)))
    model.set_weights([np.asarray(value) for named in arrays for value in named.values()])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE, epsilon=ADAM_EPS),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=steps_per_execution,
    )
    return model


class KerasContender:
    def __init__(
        self,
        keras: ModuleType,
        workload: Workload,
        data: Data,
        *,
        folder: Path | None = None,
        steps_per_execution: int = 1,
    ) -> None:
        self.model = keras_model(keras, workload, steps_per_execution)
        self.data = data
        self.batch_size = workload.batch_size
        self.callbacks: list[Any] = []
        self.verbose = 0
        if folder is not None:  # History is always there; verbose=1 adds the progress bar
            folder.mkdir(parents=True)
            callbacks = keras.callbacks
            self.callbacks = [
                callbacks.EarlyStopping(monitor="loss", patience=10**6),
                callbacks.CSVLogger(str(folder / "log.csv"), append=True),
                callbacks.ModelCheckpoint(str(folder / "model.keras")),
            ]
            self.verbose = 1

    def fit(self, epochs: int) -> Any:
        # The progress bar writes to standard output, here not a terminal (as ours).
        with contextlib.redirect_stdout(io.StringIO()):
            return self.model.fit(
                self.data.x,
                self.data.y,
                batch_size=self.batch_size,
                epochs=epochs,
                shuffle=False,
                verbose=self.verbose,
                callbacks=self.callbacks,
            )

    def epoch(self) -> None:
        self.fit(1)

    def losses(self, epochs: int) -> list[float]:
        return [float(loss) for loss in self.fit(epochs).history["loss"]]


def contenders(
    workload: Workload, data: Data, keras: ModuleType | None, folder: Path
) -> dict[str, Contender]:
    """Every contender, built afresh, the raw loop first."""
    found: dict[str, Contender] = {
        RAW: raw_loop(workload, data),
        "Trainer": TrainerContender(workload, data),
        "Trainer + typical callbacks": TrainerContender(
            workload, data, callbacks=trainer_callbacks(folder / "trainer")
        ),
        "Trainer, steps_per_execution=10": TrainerContender(workload, data, steps_per_execution=10),
        "NNX docs loop (nnx.jit + nnx.Optimizer)": nnx_docs_loop(workload, data),
    }
    if keras is not None:
        found["Keras fit"] = KerasContender(keras, workload, data)
        found["Keras fit + same callbacks"] = KerasContender(
            keras, workload, data, folder=folder / "keras"
        )
        found["Keras fit, steps_per_execution=10"] = KerasContender(
            keras, workload, data, steps_per_execution=10
        )
    return found


# ------------------------------------------------------------------ harness


def check_losses(entrants: dict[str, Contender]) -> None:
    """Exit (refusing to report) unless every contender's epoch losses match the raw loop's."""
    losses = {name: entrant.losses(CHECK_EPOCHS) for name, entrant in entrants.items()}
    reference = losses[RAW]
    wrong = [
        name
        for name, values in losses.items()
        if not np.allclose(values, reference, rtol=CHECK_RTOL, atol=0.0)
    ]
    differences = {
        name: max(abs(v / r - 1) for v, r in zip(values, reference, strict=True))
        for name, values in losses.items()
    }
    worst = max(differences, key=differences.__getitem__)
    print(
        f"  loss check, {CHECK_EPOCHS}x{CHECK_BATCHES} steps: largest relative difference "
        f"{differences[worst]:.1e} ({worst})"
    )
    if wrong:
        for name, values in losses.items():
            print(f"    {name:46s} {' '.join(f'{v:.6f}' for v in values)}")
        sys.exit(
            f"refusing to report: {', '.join(wrong)} computed other losses than the raw loop "
            f"(relative tolerance {CHECK_RTOL})"
        )


def timed_rounds(entrants: dict[str, Contender], rounds: int, steps: int) -> dict[str, list[float]]:
    """Seconds per step of each contender in each round, the order rotated every round."""
    for entrant in entrants.values():  # warm up: compile, create files, a first save
        entrant.epoch()
        entrant.epoch()
    per_step: dict[str, list[float]] = {name: [] for name in entrants}
    names = list(entrants)
    for index in range(rounds):  # rotate the order, so that drift hits every contender alike
        for name in names[index % len(names) :] + names[: index % len(names)]:
            start = time.perf_counter()
            entrants[name].epoch()
            per_step[name].append((time.perf_counter() - start) / steps)
    return per_step


def run_workload(workload: Workload, rounds: int, keras: ModuleType | None) -> None:
    data = make_data(workload)
    print(f"\n{workload.name} ({workload.batches} steps/epoch, {rounds} rounds)")
    with tempfile.TemporaryDirectory(prefix="bench_peers_") as tmp:
        folder = Path(tmp)
        check = workload.for_check()  # twins of the timed contenders, built the same way
        check_losses(contenders(check, make_data(check), keras, folder / "check"))
        entrants = contenders(workload, data, keras, folder / "timed")
        per_step = timed_rounds(entrants, rounds, workload.batches)
    base = per_step[RAW]
    print(f"  {'contender':46s} {'min':>6s} {'median':>6s} {'max':>6s}  us/step (median)")
    for name, times in per_step.items():
        ratios = sorted(b / t for b, t in zip(base, times, strict=True))
        low, mid, high = ratios[0], statistics.median(ratios), ratios[-1]
        us = statistics.median(times) * 1e6
        print(f"  {name:46s} {low:6.2f} {mid:6.2f} {high:6.2f}  {us:10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter epochs")
    parser.add_argument("--rounds", type=int, default=None, help="override the round count")
    parser.add_argument("--workload", choices=["tiny", "medium", "cnn", "all"], default="all")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 15)
    if rounds < 1:
        parser.error(f"--rounds must be at least 1, got {rounds}")
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.device_count()} device(s)")
    keras = import_keras()
    print("steps/s relative to the raw jax.jit loop in the same round (higher is faster)")
    for workload in workloads(args.quick):
        if args.workload in ("all", workload.key):
            run_workload(workload, rounds, keras)


if __name__ == "__main__":
    main()
