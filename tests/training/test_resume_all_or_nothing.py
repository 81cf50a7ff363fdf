"""A failed resume leaves the trainer as it was (issue 30, point 6).

A resume loads the trainer's state, every stateful callback's and the data position,
then checks the run (``preflight``). Whatever fails on the way, the trainer (weights,
optimizer state, step, epoch), its callbacks and its data are as they were before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from artifex.generative_models.training.callbacks._state import stateful_callbacks
from artifex.generative_models.training.callbacks.base import BaseCallback
from artifex.generative_models.training.trainer import Trainer
from tests.laws._resume_script import DropoutMLP, build, flat_state, make_data


class Flaky(BaseCallback):
    """A stateful callback whose ``load_state_dict`` raises when told to."""

    def __init__(self, *, fail: bool) -> None:
        self.fail = fail
        self.seen = 0

    @property
    def state_key(self) -> str:
        return "Flaky"

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any], /) -> None:
        self.seen += 1

    def state_dict(self) -> dict[str, Any]:
        return {"seen": self.seen}

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        self.seen = int(state["seen"])  # changed, then refused: must be put back
        if self.fail:
            raise ValueError("Flaky refuses this state")


def _everything(trainer: Trainer[DropoutMLP], data: Any) -> dict[str, Any]:
    """What a failed resume must not change, comparable with ``==`` (arrays on the host)."""
    state = trainer.state_dict()
    callbacks = {key: cb.state_dict() for key, cb in stateful_callbacks(trainer.callbacks).items()}
    return {
        "model": {k: v.tolist() for k, v in flat_state(state["model"]).items()},
        "opt": {k: v.tolist() for k, v in flat_state(state["opt_state"]).items()},
        "step": trainer.step,
        "epoch": trainer.epoch,
        "callbacks": callbacks,
        "data": data.state_dict(),
    }


def _ran_elsewhere(tmp_path: Path) -> Path:
    """A run of three epochs (with a Flaky) whose checkpoints the tests resume from."""
    trainer, _, _ = build(tmp_path / "a", extra=(Flaky(fail=False),))
    train, val = make_data()
    trainer.fit(train, epochs=3, val_data=val)
    return tmp_path / "a" / "checkpoints"


@pytest.mark.parametrize("how", ["fit", "resume"])
def test_a_callback_state_that_does_not_load_changes_nothing(tmp_path: Path, how: str) -> None:
    checkpoints = _ran_elsewhere(tmp_path)
    trainer, _, _ = build(tmp_path / "b", seed=1, extra=(Flaky(fail=True),))
    train, val = make_data()
    trainer.fit(train, epochs=1, val_data=val)  # the user's own, newer state
    before = _everything(trainer, train)
    assert before["step"] == 6
    resume: Callable[[], object] = (
        (lambda: trainer.fit(train, epochs=1, val_data=val, resume_from=checkpoints))
        if how == "fit"
        else (lambda: trainer.resume(checkpoints))
    )
    with pytest.raises(ValueError, match="Flaky refuses"):
        resume()
    assert _everything(trainer, train) == before
    trainer.fit(train, epochs=1, val_data=val)  # and it trains on from there
    assert trainer.step == 12


def test_a_resume_refused_in_preflight_changes_nothing(tmp_path: Path) -> None:
    trainer, _, _ = build(tmp_path, extra=(Flaky(fail=False),))
    train, val = make_data()
    trainer.fit(train, epochs=3, val_data=val)  # checkpoints at steps 6, 12 and 18
    before = _everything(trainer, train)
    with pytest.raises(FileExistsError, match="beyond this run's step 6"):
        trainer.fit(train, epochs=1, val_data=val, resume_from=tmp_path / "checkpoints" / "6")
    assert _everything(trainer, train) == before
    trainer.fit(train, epochs=1, val_data=val)  # it trains on from step 18
    assert trainer.step == 24
