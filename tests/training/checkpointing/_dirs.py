"""Shared set-up of the checkpoint-directory rule tests (marker, ownership, lock)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optax

from artifex.generative_models.training._checkpointing._format import MARKER_FILE
from artifex.generative_models.training.callbacks import CheckpointConfig, ModelCheckpoint
from artifex.generative_models.training.trainer import Trainer
from tests.laws._resume_script import DropoutMLP, loss_fn, make_model
from tests.training.callbacks._stubs import FullTrainer, drive


def config(path: Path, **kwargs: Any) -> CheckpointConfig:
    return CheckpointConfig(dirpath=path, save_top_k=3, async_save=False, **kwargs)


def run_a(path: Path) -> FullTrainer:
    """Run A: steps 2, 4 and 6 in ``path``."""
    trainer = FullTrainer()
    drive(trainer, [ModelCheckpoint(config(path))], [[1.0, 1.0]] * 3)
    return trainer


def marker(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((path / MARKER_FILE).read_text())
    return found


def meta_run(path: Path, step: int) -> object:
    meta: dict[str, Any] = json.loads((path / str(step) / "meta" / "metadata").read_text())
    return meta.get("run")


def listing(path: Path) -> dict[str, float]:
    return {str(p.relative_to(path)): p.stat().st_mtime for p in sorted(path.rglob("*"))}


def steps(path: Path) -> list[int]:
    return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit())


def fit_trainer(ck: Path, *callbacks: Any) -> Trainer[DropoutMLP]:
    return Trainer(
        make_model(),
        optax.adam(1e-2),
        loss_fn,
        callbacks=[*callbacks, ModelCheckpoint(config(ck))],
    )
