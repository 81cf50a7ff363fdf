"""Training throughput of ``Trainer`` beside its peers, as ratios to a raw ``jax.jit`` loop.

Run: ``nox -s bench`` (which installs Keras) or ``python benchmarks/bench_peers.py
[--quick] [--rounds N] [--workload tiny|medium|cnn|all] [--epochs-per-fit N]``. Over three
workloads (a tiny MLP 64-256-256-10 at batch 128, a medium MLP 784-1024-1024-10 at batch
256, and a small CNN with batch norm and dropout on 8x8 images at batch 128), with the same
model, data, Adam and initial weights, it interleaves in one process:

* the raw loop: a params pytree, ``optax`` and a ``jax.jit`` step donating its state
  (= 1.00); the same loop plus a bare Orbax ``CheckpointManager`` save of its state every
  epoch, waited for at the end of the round (the floor of any Orbax checkpoint);
* ``Trainer``; ``Trainer`` with the typical callbacks (``History``, ``EarlyStopping``,
  ``CSVLogger``, ``ProgressBar``, ``ModelCheckpoint`` every epoch, into a temporary
  folder), and with the same callbacks but ``ModelCheckpoint``; ``Trainer`` with
  ``steps_per_execution=10``;
* the loop the Flax NNX docs teach (``nnx.jit`` + ``nnx.Optimizer``);
* Keras 3 ``fit`` on the JAX backend: bare, with its equivalent callbacks (``History``,
  ``EarlyStopping``, ``CSVLogger``, ``ModelCheckpoint`` into a temporary folder, the
  progress bar), with the same but ``ModelCheckpoint``, and with
  ``steps_per_execution=10``. Keras is optional: without it these are skipped, with a
  printed line saying how to install it.

First it checks that every contender computes the same epoch losses as the raw loop, on
twins built the same way (dropout off, 2 epochs of 10 batches), and refuses to report if
one does not. Each round runs every contender once, in an order rotated every round: one
``fit(epochs=N)`` call (``N`` = ``--epochs-per-fit``, 1 by default), or ``N`` epochs of a
hand-written loop. Then it prints the min, median and max over rounds of each
contender's steps/s relative to the raw loop in the same round (higher is faster), the
median time per step, what the callbacks and the checkpoints cost per epoch, and the
issue's targets as PASS/FAIL lines.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from rich.console import Console

from _peers_keras import KerasContender, import_keras
from _peers_models import (
    CHECK_BATCHES,
    Batch,
    Data,
    Net,
    RawLoop,
    StepLoop,
    Workload,
    adam,
    make_data,
    net_loss,
    raw_loop,
    workloads,
)
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

# bench_trainer.py reuses the CNN workload and its raw loop through this module.
__all__ = ["Net", "make_data", "net_loss", "raw_loop", "workloads"]

CHECK_EPOCHS = 2  # the loss check's run: 2 epochs of CHECK_BATCHES
# Keras's Adam adds epsilon to sqrt(v) before the bias correction, optax's after it, so its
# losses drift from optax's: by 5.5e-4 relative in 20 steps on the medium MLP (small
# gradients), 1e-5 on the others; with an epsilon of 1e-13 the drift is under 1e-7. A learning
# rate 10% off gives 6e-3 on the tiny MLP; a wrong model or wrong weights differ by far more.
CHECK_RTOL = 2e-3
RAW = "raw jax.jit loop, donated (= 1.00)"
FLOOR = "raw loop + bare Orbax save per epoch"
TRAINER = "Trainer"
CALLBACKS = "Trainer + typical callbacks"
NO_CHECKPOINT = "Trainer + callbacks without ModelCheckpoint"
CHUNKED = "Trainer, steps_per_execution=10"
NNX_DOCS = "NNX docs loop (nnx.jit + nnx.Optimizer)"
KERAS = "Keras fit"
KERAS_CALLBACKS = "Keras fit + same callbacks"
KERAS_NO_CHECKPOINT = "Keras fit + callbacks without ModelCheckpoint"
KERAS_CHUNKED = "Keras fit, steps_per_execution=10"


class Contender(Protocol):
    def run(self, epochs: int) -> None:
        """Train ``epochs`` epochs over the data (one ``fit``), until the results are ready."""
        ...

    def losses(self, epochs: int) -> list[float]:
        """Train ``epochs`` epochs; return each one's mean loss."""
        ...


# ------------------------------------------------------------------ contenders


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


class OrbaxFloor(RawLoop):
    """The raw loop plus a bare Orbax save of its whole state per epoch: no ModelCheckpoint.

    What any checkpoint written with Orbax pays: an asynchronous ``CheckpointManager``
    save (keeping 1) after every epoch, and a wait for it at the end of the round, as
    ``ModelCheckpoint`` waits at ``on_train_end``.
    """

    def __init__(self, workload: Workload, data: Data, directory: Path) -> None:
        super().__init__(workload, data)
        options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=True)
        self.manager = ocp.CheckpointManager(directory, options=options)
        self.saves = 0

    def run(self, epochs: int) -> None:
        for _ in range(epochs):
            self.epoch()
            params, stats, opt_state, key = self.state
            tree: dict[str, Any] = {"params": params, "stats": stats, "opt_state": opt_state}
            if key is not None:  # a typed key is saved as its raw bits
                tree["key"] = jax.random.key_data(key)
            self.saves += 1
            self.manager.save(self.saves, args=ocp.args.StandardSave(tree))
        self.manager.wait_until_finished()


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

    def run(self, epochs: int) -> None:
        self.trainer.fit(self.batches, epochs=epochs)

    def losses(self, epochs: int) -> list[float]:
        return [float(logs["loss"]) for logs in self.trainer.fit(self.batches, epochs=epochs)]


def trainer_callbacks(folder: Path, *, checkpoint: bool = True) -> list[TrainingCallback]:
    """The typical set; the progress bar draws on a console that is not a terminal."""
    callbacks: list[TrainingCallback] = [
        History(),
        EarlyStopping(EarlyStoppingConfig(monitor="loss", patience=10**6)),
        CSVLogger(CSVLoggerConfig(filename=folder / "log.csv")),
        ProgressBar(ProgressBarConfig(console=Console(file=io.StringIO()))),
    ]
    if checkpoint:
        callbacks.append(
            ModelCheckpoint(CheckpointConfig(dirpath=folder / "checkpoints", save_top_k=1))
        )
    return callbacks


def contenders(
    workload: Workload, data: Data, keras: ModuleType | None, folder: Path, stack: ExitStack
) -> dict[str, Contender]:
    """Every contender, built afresh, the raw loop first; ``stack`` closes the floor's manager."""
    floor = OrbaxFloor(workload, data, folder / "floor")
    stack.callback(floor.manager.close)
    found: dict[str, Contender] = {
        RAW: RawLoop(workload, data),
        FLOOR: floor,
        TRAINER: TrainerContender(workload, data),
        CALLBACKS: TrainerContender(
            workload, data, callbacks=trainer_callbacks(folder / "trainer")
        ),
        NO_CHECKPOINT: TrainerContender(
            workload, data, callbacks=trainer_callbacks(folder / "plain", checkpoint=False)
        ),
        CHUNKED: TrainerContender(workload, data, steps_per_execution=10),
        NNX_DOCS: nnx_docs_loop(workload, data),
    }
    if keras is not None:
        found[KERAS] = KerasContender(keras, workload, data)
        found[KERAS_CALLBACKS] = KerasContender(keras, workload, data, folder=folder / "keras")
        found[KERAS_NO_CHECKPOINT] = KerasContender(
            keras, workload, data, folder=folder / "keras_plain", checkpoint=False
        )
        found[KERAS_CHUNKED] = KerasContender(keras, workload, data, steps_per_execution=10)
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


def timed_rounds(
    entrants: dict[str, Contender], rounds: int, epochs: int
) -> dict[str, list[float]]:
    """Seconds per epoch of each contender in each round, the order rotated every round."""
    for entrant in entrants.values():  # warm up: compile, create files, a first save
        entrant.run(1)
        entrant.run(1)
    per_epoch: dict[str, list[float]] = {name: [] for name in entrants}
    names = list(entrants)
    for index in range(rounds):  # rotate the order, so that drift hits every contender alike
        for name in names[index % len(names) :] + names[: index % len(names)]:
            start = time.perf_counter()
            entrants[name].run(epochs)
            per_epoch[name].append((time.perf_counter() - start) / epochs)
    return per_epoch


@dataclass(frozen=True, slots=True)
class Timings:
    """Seconds per epoch of each contender, round by round (paired across contenders)."""

    per_epoch: dict[str, list[float]]

    def speed(self, name: str, base: str) -> float | None:
        """Median over rounds of ``name``'s steps/s relative to ``base``'s (None if absent)."""
        if name not in self.per_epoch or base not in self.per_epoch:
            return None
        pairs = zip(self.per_epoch[base], self.per_epoch[name], strict=True)
        return statistics.median(b / t for b, t in pairs)

    def extra_ms(self, name: str, base: str) -> float | None:
        """Median over rounds of what ``name`` costs per epoch beyond ``base``, in ms."""
        if name not in self.per_epoch or base not in self.per_epoch:
            return None
        pairs = zip(self.per_epoch[base], self.per_epoch[name], strict=True)
        return statistics.median(t - b for b, t in pairs) * 1e3


# Issue 29's targets, as (contender, baseline, the least median speed ratio that passes);
# a least ratio of 1.00 reads "ahead of".
TARGETS = (
    (TRAINER, RAW, 0.97),
    (TRAINER, NNX_DOCS, 1.0),
    (TRAINER, KERAS, 1.0),
    (CALLBACKS, KERAS_CALLBACKS, 1.0),
    (CHUNKED, TRAINER, 0.97),
)


def report(timings: Timings, batches: int) -> None:
    """The ratio table, where the callbacks' time goes, and the targets as PASS/FAIL."""
    base = timings.per_epoch[RAW]
    print(f"  {'contender':46s} {'min':>6s} {'median':>6s} {'max':>6s}  us/step (median)")
    for name, times in timings.per_epoch.items():
        ratios = sorted(b / t for b, t in zip(base, times, strict=True))
        low, mid, high = ratios[0], statistics.median(ratios), ratios[-1]
        us = statistics.median(times) / batches * 1e6
        print(f"  {name:46s} {low:6.2f} {mid:6.2f} {high:6.2f}  {us:10.1f}")
    print("  cost per epoch, median of the per-round differences:")
    costs = (
        ("callbacks without ModelCheckpoint", NO_CHECKPOINT, TRAINER, KERAS_NO_CHECKPOINT, KERAS),
        ("ModelCheckpoint", CALLBACKS, NO_CHECKPOINT, KERAS_CALLBACKS, KERAS_NO_CHECKPOINT),
        ("a bare Orbax save, waited for", FLOOR, RAW, "", ""),
    )
    for label, ours, our_base, theirs, their_base in costs:
        keras = timings.extra_ms(theirs, their_base)
        keras_text = "" if keras is None else f"; Keras's: {keras:+.1f} ms"
        print(f"    {label}: {timings.extra_ms(ours, our_base):+.1f} ms{keras_text}")
    for name, baseline, least in TARGETS:
        ratio = timings.speed(name, baseline)
        want = "ahead of" if least == 1.0 else f">= {least:.2f}x"
        baseline = "the raw loop" if baseline == RAW else baseline
        if ratio is None:
            print(f"  SKIP  {name} {want} {baseline}: no Keras")
        else:
            verdict = "PASS" if ratio >= least else "FAIL"
            print(f"  {verdict}  {name} {want} {baseline}: {ratio:.3f}x")


def run_workload(workload: Workload, rounds: int, epochs: int, keras: ModuleType | None) -> None:
    data = make_data(workload)
    print(f"\n{workload.name} ({workload.batches} steps/epoch, {rounds} rounds of {epochs})")
    with tempfile.TemporaryDirectory(prefix="bench_peers_") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        check = workload.for_check()  # twins of the timed contenders, built the same way
        check_losses(contenders(check, make_data(check), keras, folder / "check", stack))
        entrants = contenders(workload, data, keras, folder / "timed", stack)
        timings = Timings(timed_rounds(entrants, rounds, epochs))
    report(timings, workload.batches)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter epochs")
    parser.add_argument("--rounds", type=int, default=None, help="override the round count")
    parser.add_argument("--workload", choices=["tiny", "medium", "cnn", "all"], default="all")
    parser.add_argument(
        "--epochs-per-fit",
        type=int,
        default=1,
        help="epochs per round (one fit call): above 1, a save overlaps the next epoch",
    )
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 15)
    if rounds < 1:
        parser.error(f"--rounds must be at least 1, got {rounds}")
    if args.epochs_per_fit < 1:
        parser.error(f"--epochs-per-fit must be at least 1, got {args.epochs_per_fit}")
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.device_count()} device(s)")
    keras = import_keras()
    print("steps/s relative to the raw jax.jit loop in the same round (higher is faster)")
    for workload in workloads(args.quick):
        if args.workload in ("all", workload.key):
            run_workload(workload, rounds, args.epochs_per_fit, keras)


if __name__ == "__main__":
    main()
