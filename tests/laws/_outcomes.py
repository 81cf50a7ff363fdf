"""What the resume and fault laws compare: a run's outcome, and every checkpoint restoring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from artifex.generative_models.training.callbacks import EarlyStopping, History, restore_checkpoint
from artifex.generative_models.training.trainer import Trainer
from tests.laws._resume_script import flat_state


def outcome(
    trainer: Trainer[Any], early: EarlyStopping, history: History, workdir: Path
) -> dict[str, Any]:
    """Everything a resumed run must reproduce: state, step, status, callbacks, the CSV."""
    state = trainer.state_dict()
    return {
        "model": flat_state(state["model"]),
        "opt_state": flat_state(state["opt_state"]),
        "step": trainer.step,
        "epoch": trainer.epoch,
        "status": trainer.status,
        "early": early.state_dict(),
        "history": history.state_dict(),
        "csv": (workdir / "log.csv").read_text(),
    }


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Bit-identical arrays (dtypes included) and equal everything else."""
    for part in ("model", "opt_state"):
        assert got[part].keys() == want[part].keys()
        for key, value in want[part].items():
            assert got[part][key].dtype == value.dtype, key
            np.testing.assert_array_equal(got[part][key], value, err_msg=f"{part}{key}")
    for part in ("step", "epoch", "status", "early", "history", "csv"):
        assert repr(got[part]) == repr(want[part]), part


def checkpoint_steps(directory: Path) -> list[int]:
    """The step directories in ``directory``, in order."""
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def assert_all_restore(directory: Path) -> list[int]:
    """Restore every checkpoint in ``directory`` and check it; return their steps.

    An epoch-end checkpoint's state holds the next epoch; a mid-epoch one the epoch in
    progress and its position.
    """
    steps = checkpoint_steps(directory)
    for step in steps:
        restored = restore_checkpoint(directory, step=step)
        assert restored.step == step
        keys = {"EarlyStopping[val_loss]", "History", "CSVLogger[log.csv]"}
        assert set(restored.extra["callbacks"]) == keys
        if restored.position is None:
            assert restored.state["epoch"] == restored.epoch + 1
        else:
            assert restored.state["epoch"] == restored.epoch
            assert restored.state["epoch_progress"]["batches"] == restored.position
    return steps


def assert_best_weights_restored(trainer: Trainer[Any], best: Any) -> None:
    """``trainer``'s model holds exactly the weights ``best`` (a saved array state)."""
    saved = flat_state(best)
    final = flat_state(nnx.to_pure_dict(trainer.state_dict()["model"]))
    assert saved.keys() == final.keys()
    for key, value in saved.items():
        np.testing.assert_array_equal(final[key], value, err_msg=key)
