"""Law 1, resume equivalence: N epochs in one run == k epochs, restore, the rest.

Also the registration rule for callback state keys and the ``resume_from`` forms.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optax
import pytest

from artifex.generative_models.training.callbacks import (
    CallbackList,
    EarlyStopping,
    EarlyStoppingConfig,
    History,
    restore_checkpoint,
)
from artifex.generative_models.training.callbacks._state import stateful_callbacks
from artifex.generative_models.training.callbacks.protocols import CallbackHost
from artifex.generative_models.training.trainer import Trainer
from tests.laws._resume_script import build, flat_state, loss_fn, make_data, make_model

EPOCHS = 6  # early stopping ends the run after epoch 3 (see early_stopping())


def _outcome(
    trainer: Trainer[Any], early: EarlyStopping, history: History, workdir: Path
) -> dict[str, Any]:
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


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[Any]]:
    workdir = tmp_path_factory.mktemp("one_run")
    trainer, early, history = build(workdir)
    train, val = make_data()
    logs = trainer.fit(train, epochs=EPOCHS, val_data=val)
    return _outcome(trainer, early, history, workdir), logs


def _assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    for part in ("model", "opt_state"):
        assert got[part].keys() == want[part].keys()
        for key, value in want[part].items():
            assert got[part][key].dtype == value.dtype, key
            np.testing.assert_array_equal(got[part][key], value, err_msg=f"{part}{key}")
    for part in ("step", "epoch", "status", "early", "history", "csv"):
        assert repr(got[part]) == repr(want[part]), part


def test_reference_run_stops_early_and_uses_the_rng(
    reference: tuple[dict[str, Any], list[Any]],
) -> None:
    outcome, logs = reference
    assert outcome["status"] == "stopped"
    assert outcome["early"]["stopped_epoch"] == 3
    assert len(logs) == 4
    assert outcome["csv"].count("\n") == 5  # header + 4 epochs
    counts = [v for k, v in outcome["model"].items() if "count" in k]
    assert counts
    assert all(int(c) > 0 for c in counts)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_resume_equivalence(
    k: int, reference: tuple[dict[str, Any], list[Any]], tmp_path: Path
) -> None:
    want, want_logs = reference
    trainer, early, _ = build(tmp_path)
    train, val = make_data()
    first = trainer.fit(train, epochs=k, val_data=val)
    assert early.wait_count == k - 1  # patience carries over the split
    assert not early.should_stop
    del trainer, train

    # A fresh process's view: new model (other seed), data, callbacks; same directory.
    trainer, early, history = build(tmp_path, seed=123)
    train, val = make_data()
    rest = trainer.fit(train, epochs=EPOCHS - k, val_data=val, resume_from=tmp_path / "checkpoints")
    assert first + rest == want_logs
    assert early.should_stop
    assert trainer.stopped_by is early
    _assert_same(_outcome(trainer, early, history, tmp_path), want)
    # Resuming kept saving into the same directory, after the restored checkpoint.
    restored = restore_checkpoint(tmp_path / "checkpoints")
    assert restored.step == want["step"]
    assert restored.extra["callbacks"]["EarlyStopping[val_loss]"] == want["early"]


def test_resume_from_a_step_directory(
    reference: tuple[dict[str, Any], list[Any]], tmp_path: Path
) -> None:
    trainer, _, _ = build(tmp_path)
    train, val = make_data()
    trainer.fit(train, epochs=2, val_data=val)
    first_step = len(train)  # the checkpoint of epoch 0
    trainer, early, history = build(tmp_path / "branch", seed=5)
    train, val = make_data()
    step = trainer.resume(tmp_path / "checkpoints" / str(first_step))
    assert (step, trainer.step, trainer.epoch) == (first_step, first_step, 1)
    assert history.epochs == [0]
    assert early.wait_count == 0
    assert early.best_epoch == 0


def test_resume_warns_about_unmatched_callback_state(tmp_path: Path) -> None:
    trainer, _, _ = build(tmp_path)
    train, val = make_data()
    trainer.fit(train, epochs=1, val_data=val)
    extra = EarlyStopping(EarlyStoppingConfig(monitor="loss"))
    bare = Trainer(make_model(), optax.adam(1e-2), loss_fn, callbacks=[extra])
    with pytest.warns(UserWarning, match="state") as caught:
        bare.resume(tmp_path / "checkpoints")
    text = " ".join(str(w.message) for w in caught)
    assert "EarlyStopping[loss]" in text
    assert "History" in text
    assert bare.step == len(train)


def test_duplicate_state_keys_are_refused_at_registration() -> None:
    a = EarlyStopping(EarlyStoppingConfig(monitor="val_loss"))
    b = EarlyStopping(EarlyStoppingConfig(monitor="val_loss", patience=2))
    with pytest.raises(ValueError, match=r"EarlyStopping\[val_loss\]") as info:
        Trainer(make_model(), optax.adam(1e-2), loss_fn, callbacks=[a, CallbackList([b])])
    assert repr(a) in str(info.value)
    assert repr(b) in str(info.value)


def test_duplicate_state_keys_added_later_are_refused_at_fit(tmp_path: Path) -> None:
    callbacks = CallbackList([History()])
    trainer = Trainer(make_model(), optax.adam(1e-2), loss_fn, callbacks=callbacks)
    callbacks.append(History())
    train, _ = make_data()
    with pytest.raises(ValueError, match="two callbacks have the state_key 'History'"):
        trainer.fit(train, epochs=1)
    assert trainer.step == 0


def test_trainer_is_a_callback_host() -> None:
    trainer = Trainer(make_model(), optax.adam(1e-2), loss_fn, callbacks=[History()])
    assert isinstance(trainer, CallbackHost)
    assert list(stateful_callbacks(trainer.callbacks)) == ["History"]


def test_resume_from_nothing_is_a_clear_error(tmp_path: Path) -> None:
    trainer, _, _ = build(tmp_path)
    train, _ = make_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FileNotFoundError, match="does not exist"):
            trainer.fit(train, epochs=1, resume_from=tmp_path / "missing")
    assert trainer.step == 0
