"""A seeded training run on grain data or a generator function, killed and resumed by the laws.

Run by ``tests/laws/test_data_kinds_laws.py`` (and in-process for its reference and
final runs)::

    python -m tests.laws._data_kinds_script WORKDIR --data {grain,generator} --epochs N
        [--resume] [--batch-sleep S]

The trainer is ``_resume_script.build``'s (dropout model, EarlyStopping that never
stops, History, CSVLogger, ModelCheckpoint every 2 steps, synchronous saves). Before
each step it touches ``WORKDIR/saved-<step>`` for the latest checkpoint on disk (a
marker written after a save). With ``--resume`` it continues with
``fit(resume_from=WORKDIR/checkpoints)`` for the epochs left; a resume inside an epoch
writes ``WORKDIR/resumed-<pid>`` (the checkpoint's position) and, for each
``ReplayedDataWarning``, ``WORKDIR/skipped-<pid>`` (its message). A finished run writes
the final model to ``WORKDIR/final.npz``; after a preemption notice (SIGTERM) it exits
with ``_resume_script.PREEMPTED``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import grain
import numpy as np

from artifex.generative_models.training.callbacks import (
    EarlyStopping,
    EarlyStoppingConfig,
    LambdaCallback,
    ModelCheckpoint,
    restore_checkpoint,
)
from artifex.generative_models.training.trainer import Preempted, ReplayedDataWarning
from tests.laws._resume_script import PREEMPTED, Batch, build, flat_state, make_data


def grain_data() -> Any:
    """A shuffled grain pipeline: 48 records in batches of 8 (6 steps per epoch)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32)).astype(np.float32)
    return grain.MapDataset.source([(x[i], y[i]) for i in range(48)]).shuffle(seed=3).batch(8)


def generator_data() -> Callable[[], Iterator[Batch]]:
    """A deterministic generator function: the same 6 batches every epoch."""
    batches = list(make_data()[0])

    def generate() -> Iterator[Batch]:
        yield from batches

    return generate


def main(argv: list[str] | None = None) -> int:
    """Train (or resume) in ``WORKDIR``; see the module docstring."""
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--data", choices=["grain", "generator"], required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--batch-sleep", type=float, default=0.0)
    args = parser.parse_args(argv)
    workdir: Path = args.workdir
    checkpoints = workdir / "checkpoints"
    sleep: float = args.batch_sleep
    found: list[ModelCheckpoint] = []
    caught: list[list[warnings.WarningMessage]] = []  # the list catch_warnings fills

    def record_skips() -> None:
        # Written before each step, so that a SIGKILL later in the run keeps it.
        skips = [str(w.message) for r in caught for w in r if w.category is ReplayedDataWarning]
        if skips:
            (workdir / f"skipped-{os.getpid()}").write_text("\n".join(skips))

    def mark(_trainer: object, _step: int) -> None:
        record_skips()
        steps = found[0].saved_checkpoint_steps if found else ()
        if steps:
            (workdir / f"saved-{steps[-1]}").touch()

    def slow(_trainer: object, _step: int, _logs: object) -> None:
        time.sleep(sleep)

    patient = EarlyStopping(EarlyStoppingConfig(monitor="val_loss", patience=100))
    trainer, _, _ = build(
        workdir,
        early=patient,
        extra=(LambdaCallback(on_batch_begin=mark, on_batch_end=slow),),
        every_n_steps=2,
    )
    found.extend(cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint))
    data = grain_data() if args.data == "grain" else generator_data()
    val = make_data()[1]
    epochs, resume_from = args.epochs, None
    if args.resume and any(p.name.isdigit() for p in checkpoints.glob("*")):
        saved = restore_checkpoint(checkpoints)
        # state["epoch"] is the next epoch to run (meta's epoch, saved.epoch, is the one
        # that ended, for an epoch-end checkpoint); a mid-epoch one resumes inside it.
        epochs, resume_from = args.epochs - int(saved.state["epoch"]), checkpoints
        if saved.position is not None:
            (workdir / f"resumed-{os.getpid()}").write_text(str(saved.position))
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always", ReplayedDataWarning)
        caught.append(recorded)
        try:
            trainer.fit(data, epochs=epochs, val_data=val, resume_from=resume_from)
        except Preempted:
            return PREEMPTED
        finally:
            record_skips()
    savez: Callable[..., None] = np.savez  # its stub rejects a **dict of arrays
    savez(workdir / "final.npz", **flat_state(trainer.state_dict()["model"]))  # ty: ignore[invalid-argument-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
