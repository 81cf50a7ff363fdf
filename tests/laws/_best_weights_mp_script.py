"""``EarlyStopping``'s best weights through a checkpoint in one process of a JAX job.

Run by ``tests/laws/test_resume.py`` through :func:`tests._distributed.run_job`, as
2 processes with 4 host CPU devices each::

    python -m tests.laws._best_weights_mp_script WORKDIR

Every process drives ``EarlyStopping(restore_best_weights=True)`` and
``ModelCheckpoint`` through three epochs of a model with one replicated and one
sharded parameter (the best is epoch 1), resumes a fresh trainer from the checkpoint,
runs one more epoch (patience runs out), and writes to ``WORKDIR/process-<index>.json``
how the restored best weights and the model after the stop are laid out.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests._distributed import initialize

if __name__ == "__main__":
    initialize()  # before anything else touches JAX

from typing import Any

import jax

from artifex.generative_models.training.callbacks import (
    CallbackList,
    CheckpointConfig,
    EarlyStopping,
    EarlyStoppingConfig,
    ModelCheckpoint,
)
from artifex.generative_models.training.callbacks._checkpoint_restore import restore_run
from tests.training.callbacks._checkpoint_mp_script import (
    MiniTrainer,
    Tiny,
    _describe,
    expected_b,
    expected_w,
    main,
)

VAL_LOSS = (0.5, 0.3, 0.4)
"""The first run's epochs: epoch 1 is the best; the resumed epoch 3 scores 0.6."""
STEPS_PER_EPOCH = 10


class HostTrainer(MiniTrainer):
    """A ``MiniTrainer`` that exposes its callbacks (a ``CallbackHost``)."""

    def __init__(self, model: Tiny, callbacks: CallbackList) -> None:
        super().__init__(model)
        self._callbacks = callbacks

    @property
    def callbacks(self) -> CallbackList:
        return self._callbacks


def _callbacks(workdir: Path) -> tuple[EarlyStopping, CallbackList]:
    early = EarlyStopping(EarlyStoppingConfig(patience=2, restore_best_weights=True))
    checkpoint = ModelCheckpoint(CheckpointConfig(dirpath=workdir / "ckpt", async_save=False))
    return early, CallbackList([early, checkpoint])


def run(workdir: Path) -> dict[str, Any]:
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    reference = Tiny(mesh)
    early, callbacks = _callbacks(workdir)
    trainer = HostTrainer(Tiny(mesh), callbacks)
    callbacks.on_train_begin(trainer)
    for epoch, val_loss in enumerate(VAL_LOSS):
        trainer.epoch = epoch
        trainer.step += STEPS_PER_EPOCH
        trainer._model.set_epoch(epoch)
        callbacks.on_epoch_end(trainer, epoch, {"val_loss": val_loss})
    callbacks.on_train_end(trainer)

    early, callbacks = _callbacks(workdir)
    trainer = HostTrainer(Tiny(mesh), callbacks)
    step = restore_run(workdir / "ckpt", trainer, callbacks)
    callbacks.on_train_begin(trainer)
    best = early.array_state()
    assert isinstance(best, dict)
    out: dict[str, Any] = {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "step": step,
        "best_w": _describe(best["w"], expected_w(1), reference.w.get_value()),
        "best_b": _describe(best["b"], expected_b(1), reference.b.get_value()),
    }
    trainer.epoch = 3
    trainer.step += STEPS_PER_EPOCH
    trainer._model.set_epoch(3)
    callbacks.on_epoch_end(trainer, 3, {"val_loss": 0.6})
    out["stopped_epoch"] = early.stopped_epoch
    callbacks.on_train_end(trainer)
    model = trainer._model
    out["final_w"] = _describe(model.w.get_value(), expected_w(1), reference.w.get_value())
    out["final_b"] = _describe(model.b.get_value(), expected_b(1), reference.b.get_value())
    return out


if __name__ == "__main__":
    main(sys.argv[1:], run)
