"""Train a small VAE on scikit-learn's 8x8 digits with the reference Trainer.

Nothing downloads: the digits ship inside scikit-learn. The run directory receives the
Orbax checkpoints, a CSV log, a PNG of generated samples beside real digits, and a PNG of
the loss curves. ``--resume`` continues from the latest checkpoint.

Exit status: 0 when the run completed or stopped early, 2 for refused arguments, and
[`EXIT_PREEMPTED`][] (75, ``EX_TEMPFAIL``: try again later) when a preemption notice
(SIGTERM) stopped it after saving a checkpoint; one line then says where the checkpoint
is and how to resume.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
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
from artifex.generative_models.training.trainer import Preempted

__all__ = ["EXIT_PREEMPTED", "DemoResult", "main", "run"]

EXIT_PREEMPTED = 75
"""The exit status after a preemption (``EX_TEMPFAIL`` of ``sysexits.h``: try again later)."""

_DESCRIPTION = """\
Train a small VAE on scikit-learn's bundled 8x8 digits (nothing downloads) with the
reference Trainer, early stopping on val_loss, checkpoints, a CSV log and a progress
display. The run directory receives the checkpoints, training_log.csv, samples.png
(generated digits beside real ones) and loss_curves.png (the best epoch marked)."""

_EPILOG = f"""\
exit status: 0 when the run completed or stopped early; 2 when the arguments are
refused (an existing run without --resume, say); {EXIT_PREEMPTED} when a preemption notice
(SIGTERM) stopped the run after saving a checkpoint: rerun with --resume to continue."""


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
        curves_png: Training and validation loss per epoch, the best epoch marked.
        status: How the run ended (``"completed"`` or ``"stopped"``).
        stop_reason: Why early stopping ended the run, or ``None`` if it did not.
        best_epoch: The epoch of the lowest ``val_loss`` over the whole run (resumed
            runs included), or ``None`` before a validated epoch.
    """

    epochs_run: int
    final_epoch_logs: dict[str, float]
    best_checkpoint_step: int | None
    checkpoint_dir: Path
    csv_path: Path
    samples_png: Path
    curves_png: Path
    status: str
    stop_reason: str | None
    best_epoch: int | None


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
        Preempted: If a preemption notice (SIGTERM) stopped the run; a checkpoint was
            saved, and ``resume=True`` continues from it. No picture is written.
    """
    checkpoint_dir = _checked_run(run_dir, epochs=epochs, batch_size=batch_size, resume=resume)
    train_x, val_x = _digits(seed)
    csv_path = run_dir / "training_log.csv"
    checkpoint = ModelCheckpoint(
        CheckpointConfig(dirpath=checkpoint_dir, monitor="val_loss", save_top_k=2)
    )
    early_stopping = EarlyStopping(EarlyStoppingConfig(monitor="val_loss", patience=patience))
    callbacks: list[TrainingCallback] = [
        early_stopping,
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
    curves = _read_curves(csv_path)
    best = _best_epoch(curves)
    curves_png = save_loss_curves(run_dir / "loss_curves.png", curves, best_epoch=best)
    return DemoResult(
        epochs_run=len(history),
        final_epoch_logs=dict(history[-1]) if history else {},
        best_checkpoint_step=checkpoint.best_checkpoint_step,
        checkpoint_dir=checkpoint_dir,
        csv_path=csv_path,
        samples_png=samples_png,
        curves_png=curves_png,
        status=trainer.status,
        stop_reason=early_stopping.stop_reason,
        best_epoch=best,
    )


def _checked_run(run_dir: Path, *, epochs: int, batch_size: int, resume: bool) -> Path:
    """``run``'s refusals, before anything is written; the run's checkpoint directory."""
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
    return checkpoint_dir


def _best_epoch(curves: Sequence[dict[str, float]]) -> int | None:
    """The index of the row with the lowest ``val_loss`` (the first of ties), or ``None``."""
    scored = [(row["val_loss"], epoch) for epoch, row in enumerate(curves) if "val_loss" in row]
    return min(scored)[1] if scored else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="artifex-demo",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=Path("runs/vae-digits"),
        help="where the checkpoints, the CSV log and the pictures go (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=40,
        help="epochs to train in this invocation; early stopping may end sooner "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="training batch size (default: %(default)s)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the data split, shuffling, initialisation and sampling "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=5,
        help="early stopping: epochs without a better val_loss before stopping "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir from its latest checkpoint, for --epochs more",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress display (for logs and CI)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the demo and print a short summary.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The process exit status: 0, or [`EXIT_PREEMPTED`][] after a preemption.
    """
    parser = _parser()
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
    except Preempted as stop:
        where = ", ".join(map(str, stop.checkpoints)) or str(args.run_dir / "checkpoints")
        print(
            f"artifex-demo: preempted at step {stop.step}; checkpoint saved in {where}; "
            f"resume with: artifex-demo --run-dir {args.run_dir} --resume",
            file=sys.stderr,
        )
        return EXIT_PREEMPTED
    print(f"\n{_summary(result, time.perf_counter() - start)}")
    return 0


def _summary(result: DemoResult, seconds: float) -> str:
    """The lines ``main`` prints after a run: how it ended and where its outputs are."""
    logs = result.final_epoch_logs
    loss, val_loss = logs.get("loss", math.nan), logs.get("val_loss", math.nan)
    epochs = f"{result.epochs_run} epoch{'' if result.epochs_run == 1 else 's'}"
    if result.stop_reason is not None:
        ended = f"stopped early: {result.stop_reason}"
    else:
        ended = result.status
    return (
        f"VAE on 8x8 digits: {epochs} in {seconds:.1f} s ({ended}); last epoch loss "
        f"{loss:.3f}, val_loss {val_loss:.3f} (negative ELBO per image)\n"
        f"  best epoch:      {result.best_epoch} (marked on the loss curves)\n"
        f"  best checkpoint: step {result.best_checkpoint_step} in {result.checkpoint_dir}\n"
        f"  CSV log:         {result.csv_path}\n"
        f"  samples:         {result.samples_png}\n"
        f"  loss curves:     {result.curves_png}"
    )
