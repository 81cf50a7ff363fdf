"""Train a small VAE on scikit-learn's 8x8 digits with the reference Trainer.

Nothing downloads: the digits ship inside scikit-learn. The run directory receives the
Orbax checkpoints, a CSV log, a PNG of generated samples beside real digits, and a PNG of
the loss curves. ``--resume`` continues from the latest checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import optax

from artifex.generative_models.demo.plots import save_loss_curves, save_sample_grid
from artifex.generative_models.demo.vae import VAE, vae_loss
from artifex.generative_models.training import ArrayBatcher, Trainer
from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    CSVLogger,
    CSVLoggerConfig,
    EarlyStopping,
    EarlyStoppingConfig,
    ModelCheckpoint,
    ProgressBar,
    TrainingCallback,
)

__all__ = ["DemoResult", "main", "run"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoResult:
    """What a demo run produced.

    Attributes:
        epochs_run: Epochs trained by this invocation.
        final_epoch_logs: The last epoch's logs (empty if no epoch ran).
        best_checkpoint_step: The global step of the best checkpoint, if any.
        checkpoint_dir: The Orbax checkpoint directory.
        csv_path: The CSV log.
        samples_png: Generated samples beside real digits.
        curves_png: Training and validation loss per epoch.
        status: How the run ended (``"completed"`` or ``"stopped"``).
    """

    epochs_run: int
    final_epoch_logs: dict[str, float]
    best_checkpoint_step: int | None
    checkpoint_dir: Path
    csv_path: Path
    samples_png: Path
    curves_png: Path
    status: str


def _digits(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scikit-learn's 1797 digits as float32 in ``[0, 1]``, split 1500 / 297 by ``seed``."""
    from sklearn.datasets import load_digits  # a demo-only dependency

    images = (load_digits().data / 16.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(images))
    return images[order[:1500]], images[order[1500:]]


def _read_curves(csv_path: Path) -> list[dict[str, float]]:
    """The per-epoch rows of the CSV log (across resumed runs), as floats."""
    with csv_path.open(newline="", encoding="utf-8") as handle:
        return [
            {k: float(v) for k, v in row.items() if k and v not in (None, "")}
            for row in csv.DictReader(handle)
        ]


def run(
    run_dir: Path,
    *,
    epochs: int = 40,
    batch_size: int = 64,
    seed: int = 0,
    patience: int = 5,
    resume: bool = False,
    progress: bool = True,
) -> DemoResult:
    """Train the VAE and write the run directory's outputs.

    Args:
        run_dir: Where checkpoints, the CSV log and the figures go.
        epochs: Epochs to train in this invocation (early stopping may end sooner).
        batch_size: Training batch size.
        seed: Seed of the data split, shuffling, initialisation and sampling noise.
        patience: Early-stopping patience, in epochs without a better ``val_loss``.
        resume: Continue from the latest checkpoint in ``run_dir``.
        progress: Show the progress display.

    Returns:
        A [`DemoResult`][] naming the outputs.

    Raises:
        FileExistsError: If ``run_dir`` already holds checkpoints and ``resume`` is false
            (nothing is overwritten).
        FileNotFoundError: If ``resume`` is true but there is no checkpoint to resume.
        ValueError: If ``epochs`` or ``batch_size`` is out of range.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    checkpoint_dir = run_dir / "checkpoints"
    has_checkpoints = checkpoint_dir.is_dir() and any(
        p.name.isdigit() for p in checkpoint_dir.iterdir()
    )
    if has_checkpoints and not resume:
        raise FileExistsError(
            f"{run_dir} already holds checkpoints; pass --resume to continue that run, "
            "or choose another --run-dir"
        )
    if resume and not has_checkpoints:
        raise FileNotFoundError(f"--resume: no checkpoint to resume in {checkpoint_dir}")

    train_x, val_x = _digits(seed)
    csv_path = run_dir / "training_log.csv"
    checkpoint = ModelCheckpoint(
        CheckpointConfig(dirpath=checkpoint_dir, monitor="val_loss", save_top_k=2)
    )
    callbacks: list[TrainingCallback] = [
        EarlyStopping(EarlyStoppingConfig(monitor="val_loss", patience=patience)),
        CSVLogger(CSVLoggerConfig(filename=csv_path)),
        checkpoint,  # after the stateful ones: checkpoints hold their end-of-epoch state
    ]
    if progress:
        callbacks.append(ProgressBar())
    trainer = Trainer(VAE(seed=seed), optax.adam(2e-3), vae_loss, callbacks=callbacks)
    train_data = ArrayBatcher({"image": train_x}, batch_size=batch_size, seed=seed)
    if resume:
        print(f"resuming from step {trainer.resume(checkpoint_dir)} of {checkpoint_dir}")
    history = trainer.fit(
        train_data, epochs=epochs, val_data=[{"image": val_x[i : i + 100]} for i in (0, 100, 200)]
    )

    samples = np.asarray(trainer.model.sample(jax.random.key(seed), 32))
    run_dir.mkdir(parents=True, exist_ok=True)
    samples_png = save_sample_grid(run_dir / "samples.png", real=val_x[:32], generated=samples)
    curves_png = save_loss_curves(run_dir / "loss_curves.png", _read_curves(csv_path))
    return DemoResult(
        epochs_run=len(history),
        final_epoch_logs=dict(history[-1]) if history else {},
        best_checkpoint_step=checkpoint.best_checkpoint_step,
        checkpoint_dir=checkpoint_dir,
        csv_path=csv_path,
        samples_png=samples_png,
        curves_png=curves_png,
        status=trainer.status,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the demo and print a short summary.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The process exit status.
    """
    parser = argparse.ArgumentParser(prog="artifex-demo", description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/vae-digits"))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        result = run(
            args.run_dir,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            patience=args.patience,
            resume=args.resume,
            progress=not args.no_progress,
        )
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    logs = result.final_epoch_logs
    loss, val_loss = logs.get("loss", math.nan), logs.get("val_loss", math.nan)
    print(
        f"\nVAE on 8x8 digits: {result.epochs_run} epochs ({result.status}) in "
        f"{time.perf_counter() - start:.1f} s; last epoch loss {loss:.3f}, "
        f"val_loss {val_loss:.3f} (negative ELBO per image)\n"
        f"  best checkpoint: step {result.best_checkpoint_step} in {result.checkpoint_dir}\n"
        f"  CSV log:         {result.csv_path}\n"
        f"  samples:         {result.samples_png}\n"
        f"  loss curves:     {result.curves_png}"
    )
    return 0
