"""The same-command clause of docs/lifecycle.md, checked through ``check_events``.

The suite's harness drives ``fit(trainer, epochs)`` only, so it cannot ask a trainer
for its same-command mode; the grammar takes it as ``FitPlan(epochs_total=True)``
(``epochs`` the run's total), and here the reference trainer's record is checked
against it: the epochs run are those left, ``planned_epochs`` is the total, and a
rerun of a finished run dispatches nothing.
"""

from __future__ import annotations

from pathlib import Path

import optax

from artifex.generative_models.training.callbacks import ModelCheckpoint
from artifex.generative_models.training.conformance import EventRecorder, FitPlan, check_events
from artifex.generative_models.training.trainer import Trainer
from tests.laws._resume_script import loss_fn, make_data, make_model


def test_a_same_command_record_conforms_with_epochs_in_all(tmp_path: Path) -> None:
    recorder = EventRecorder()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "checkpoints")
    trainer = Trainer(make_model(), optax.adam(1e-2), loss_fn, callbacks=[recorder, checkpoint])
    train, val = make_data()
    trainer.fit(train, epochs=2, val_data=val, resume=True)
    trainer.fit(train, epochs=3, val_data=val, resume=True)  # one more: 3 in all
    events = len(recorder.events)
    assert trainer.fit(train, epochs=3, val_data=val, resume=True) == []  # finished
    assert len(recorder.events) == events  # nothing dispatched, not even preflight
    plans = [FitPlan(epochs=n, validation=True, epochs_total=True) for n in (2, 3)]
    assert check_events(recorder.events, plans) == []
    as_more = [FitPlan(epochs=n, validation=True) for n in (2, 3)]  # read as "this many more"
    found = {v.expected for v in check_events(recorder.events, as_more)}
    assert any("on_train_end after 1 of 3 epoch(s)" in why for why in found), found


def test_the_plan_says_epochs_in_all() -> None:
    assert str(FitPlan(epochs=4, epochs_total=True)) == "fit(epochs=4 in all)"
