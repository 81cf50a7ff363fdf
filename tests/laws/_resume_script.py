"""A small, fully seeded training run for the exact-resume and crash-safety tests.

Imported by ``tests/laws/test_resume.py`` (in-process runs) and run as a script by
``tests/laws/test_crash_safety.py`` (subprocesses killed with SIGKILL)::

    python -m tests.laws._resume_script WORKDIR --epochs N [--resume | --same-command |
        --supersede-from STEP] [--batch-sleep S] [--every-n-steps K] [--stop-early]

The model has dropout, so its RNG stream must round-trip; the training data is a
shuffling ``ArrayBatcher``; ``EarlyStopping``, ``History``, ``CSVLogger`` and
``ModelCheckpoint`` (last, so it saves the others' state of the same epoch) are
registered. As a script it touches ``WORKDIR/epoch-<e>`` after every epoch end and
``WORKDIR/stepped-<pid>`` after its first step, and writes the final model state to
``WORKDIR/final.npz``. On a preemption notice (SIGTERM) it writes the step it saved to
``WORKDIR/preempted-<pid>`` and exits with :data:`PREEMPTED`.

``--resume`` resumes as a user did before the same-command mode (``trainer.resume``,
then ``fit`` for the epochs left); ``--same-command`` is the same call every time,
``fit(..., resume=True)`` with ``epochs`` the total; ``--supersede-from STEP``
resumes from that older step with ``supersede=True``. ``--stop-early`` uses
:func:`early_stopping` (it stops after epoch 3).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    CSVLogger,
    EarlyStopping,
    EarlyStoppingConfig,
    History,
    LambdaCallback,
    ModelCheckpoint,
)
from artifex.generative_models.training.callbacks.base import TrainingCallback
from artifex.generative_models.training.data import ArrayBatcher
from artifex.generative_models.training.trainer import Preempted, Trainer

Batch = tuple[np.ndarray, np.ndarray]
PREEMPTED = 3
"""The script's exit status after a preemption notice (the checkpoint is saved)."""


class DropoutMLP(nnx.Module):
    """A two-layer MLP with dropout (an RNG stream in the model's state)."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(4, 16, rngs=rngs)
        self.dropout = nnx.Dropout(0.25, rngs=rngs)
        self.out = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.dropout(jax.nn.relu(self.hidden(x))))


def loss_fn(model: DropoutMLP, batch: Batch) -> jax.Array:
    """Mean squared error (dropout active: the RNG stream advances every step)."""
    x, y = batch
    return jnp.mean((model(jnp.asarray(x))[:, 0] - jnp.asarray(y)) ** 2)


def make_model(seed: int = 0) -> DropoutMLP:
    """A fresh model; its parameters and RNG stream depend on ``seed``."""
    return DropoutMLP(nnx.Rngs(params=seed, dropout=seed + 1))


def make_data() -> tuple[ArrayBatcher[Batch], list[Batch]]:
    """A shuffling training batcher (6 batches per epoch) and 2 validation batches."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32)).astype(np.float32)
    train = ArrayBatcher((x[:48], y[:48]), batch_size=8, shuffle=True, seed=7)
    val = [(x[48:56], y[48:56]), (x[56:], y[56:])]
    return train, val


def early_stopping(*, restore_best_weights: bool = False) -> EarlyStopping:
    """Patience 3 with an unreachable ``min_delta``: epoch 0 improves, epoch 3 stops.

    With ``restore_best_weights`` the stop loads epoch 0's weights back: a resume
    after epoch 0 must have them from the checkpoint.
    """
    return EarlyStopping(
        EarlyStoppingConfig(
            monitor="val_loss",
            patience=3,
            min_delta=10.0,
            restore_best_weights=restore_best_weights,
        )
    )


def build(
    workdir: Path,
    *,
    seed: int = 0,
    early: EarlyStopping | None = None,
    extra: tuple[TrainingCallback, ...] = (),
    async_save: bool = False,
    every_n_epochs: int | None = 1,
    every_n_steps: int | None = None,
    steps_per_execution: int = 1,
) -> tuple[Trainer[DropoutMLP], EarlyStopping, History]:
    """A trainer with EarlyStopping, History, CSVLogger, ``extra``, then ModelCheckpoint."""
    early = early_stopping() if early is None else early
    history = History()
    checkpoint = ModelCheckpoint(
        CheckpointConfig(
            dirpath=workdir / "checkpoints",
            save_top_k=-1,
            async_save=async_save,
            every_n_epochs=every_n_epochs,
            every_n_steps=every_n_steps,
        )
    )
    callbacks: list[TrainingCallback] = [
        early,
        history,
        CSVLogger(filename=workdir / "log.csv"),
        *extra,
        checkpoint,
    ]
    trainer = Trainer(
        make_model(seed),
        optax.adam(1e-2),
        loss_fn,
        callbacks=callbacks,
        steps_per_execution=steps_per_execution,
    )
    return trainer, early, history


def flat_state(tree: Any) -> dict[str, np.ndarray]:
    """Every array leaf of ``tree`` by path, as NumPy (PRNG keys as their key data)."""
    out: dict[str, np.ndarray] = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        out[jax.tree_util.keystr(path)] = np.asarray(leaf)
    return out


def main(argv: list[str] | None = None) -> int:
    """Train (or resume) in ``WORKDIR``; see the module docstring."""
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--batch-sleep", type=float, default=0.0)
    parser.add_argument("--every-n-steps", type=int, default=None)
    parser.add_argument("--same-command", action="store_true")
    parser.add_argument("--supersede-from", type=int, default=None)
    parser.add_argument("--stop-early", action="store_true")
    args = parser.parse_args(argv)
    workdir: Path = args.workdir
    sleep: float = args.batch_sleep
    stepped = workdir / f"stepped-{os.getpid()}"

    def marker(_trainer: object, epoch: int, _logs: dict[str, Any]) -> None:
        (workdir / f"epoch-{epoch}").touch()

    def slow(_trainer: object, _batch: int, _logs: dict[str, Any]) -> None:
        if not stepped.exists():
            stepped.touch()
        time.sleep(sleep)

    patient = EarlyStopping(EarlyStoppingConfig(monitor="val_loss", patience=100))
    trainer, _, _ = build(
        workdir,
        early=early_stopping() if args.stop_early else patient,
        extra=(LambdaCallback(on_epoch_end=marker, on_batch_end=slow),),
        async_save=True,
        every_n_steps=args.every_n_steps,
    )
    train, val = make_data()
    checkpoints = workdir / "checkpoints"
    resume = args.resume and any(p.name.isdigit() for p in checkpoints.glob("*"))
    if resume:
        trainer.resume(checkpoints)
    try:
        if args.same_command:
            trainer.fit(train, epochs=args.epochs, val_data=val, resume=True)
        elif args.supersede_from is not None:
            older = checkpoints / str(args.supersede_from)
            trainer.resume(older, supersede=True)
            trainer.fit(train, epochs=args.epochs - trainer.epoch, val_data=val)
        else:
            trainer.fit(train, epochs=args.epochs - trainer.epoch, val_data=val)
    except Preempted as preempted:
        (workdir / f"preempted-{os.getpid()}").write_text(str(preempted.step))
        return PREEMPTED
    savez: Callable[..., None] = np.savez  # its stub rejects a **dict of arrays
    savez(workdir / "final.npz", **flat_state(trainer.state_dict()["model"]))  # ty: ignore[invalid-argument-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
