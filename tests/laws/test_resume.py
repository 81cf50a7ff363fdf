"""Law 1, resume equivalence: N epochs in one run == k epochs, restore, the rest.

Also with ``EarlyStopping(restore_best_weights=True)`` (its best weights are in the
checkpoint), resuming from a committed format-1 checkpoint, the registration rule for
callback state keys and the ``resume_from`` forms.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optax
import pytest
from flax import nnx

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
from tests._distributed import run_job
from tests.laws._outcomes import assert_same
from tests.laws._outcomes import outcome as run_outcome
from tests.laws._resume_script import (
    DropoutMLP,
    build,
    early_stopping,
    flat_state,
    loss_fn,
    make_data,
    make_model,
)

EPOCHS = 6  # early stopping ends the run after epoch 3 (see early_stopping())
STEPS_PER_EPOCH = 6
"""A checkpoint of format 1 (before callback arrays), written by the code of that format:
``early_stopping(restore_best_weights=True)``, ``History`` and ``ModelCheckpoint`` for two
epochs (only the last checkpoint, step 12, kept)."""


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[Any]]:
    workdir = tmp_path_factory.mktemp("one_run")
    trainer, early, history = build(workdir)
    train, val = make_data()
    logs = trainer.fit(train, epochs=EPOCHS, val_data=val)
    return run_outcome(trainer, early, history, workdir), logs


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
    assert_same(run_outcome(trainer, early, history, tmp_path), want)
    # Resuming kept saving into the same directory, after the restored checkpoint.
    restored = restore_checkpoint(tmp_path / "checkpoints")
    assert restored.step == want["step"]
    assert restored.extra["callbacks"]["EarlyStopping[val_loss]"] == want["early"]


@pytest.fixture(scope="module")
def best_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[Any]]:
    """The one-run reference with ``restore_best_weights=True`` (stops at epoch 3)."""
    workdir = tmp_path_factory.mktemp("one_run_best")
    trainer, early, history = build(workdir, early=early_stopping(restore_best_weights=True))
    train, val = make_data()
    logs = trainer.fit(train, epochs=EPOCHS, val_data=val)
    outcome = run_outcome(trainer, early, history, workdir)
    # The stop loaded the best epoch's (epoch 0's) weights: those of its checkpoint,
    # not those of the last epoch.
    final = flat_state(nnx.to_pure_dict(trainer.state_dict()["model"]))
    first = restore_checkpoint(workdir / "checkpoints", step=STEPS_PER_EPOCH)
    assert outcome["early"]["best_epoch"] == first.epoch == 0
    _assert_arrays_equal(flat_state(first.state["model"]), final)
    last = flat_state(restore_checkpoint(workdir / "checkpoints").state["model"])
    assert last.keys() == final.keys()
    assert any(not np.array_equal(value, final[key]) for key, value in last.items())
    return outcome, logs


def _assert_arrays_equal(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key].dtype == value.dtype, key
        np.testing.assert_array_equal(got[key], value, err_msg=key)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_resume_equivalence_with_restore_best_weights(
    k: int, best_reference: tuple[dict[str, Any], list[Any]], tmp_path: Path
) -> None:
    want, want_logs = best_reference
    trainer, early, _ = build(tmp_path, early=early_stopping(restore_best_weights=True))
    train, val = make_data()
    first = trainer.fit(train, epochs=k, val_data=val)
    assert early.array_state() is not None
    del trainer, train

    trainer, early, history = build(
        tmp_path, seed=123, early=early_stopping(restore_best_weights=True)
    )
    train, val = make_data()
    rest = trainer.fit(train, epochs=EPOCHS - k, val_data=val, resume_from=tmp_path / "checkpoints")
    assert first + rest == want_logs
    assert trainer.stopped_by is early
    # Bit-identical final weights: the stop restored epoch 0's, saved before the resume.
    assert_same(run_outcome(trainer, early, history, tmp_path), want)
    # The checkpoints after the resume hold the best weights: epoch 0's model state.
    latest = restore_checkpoint(tmp_path / "checkpoints")
    assert latest.step == want["step"]
    assert list(latest.callback_arrays) == ["EarlyStopping[val_loss]"]
    best = flat_state(latest.callback_arrays["EarlyStopping[val_loss]"])
    epoch_0 = restore_checkpoint(tmp_path / "checkpoints", step=STEPS_PER_EPOCH)
    _assert_arrays_equal(best, flat_state(epoch_0.state["model"]))


def test_best_weights_resume_as_global_arrays_in_a_multi_process_job(tmp_path: Path) -> None:
    """2 processes x 4 devices: the restored best weights keep the model's shardings."""
    run_job(
        "tests.laws._best_weights_mp_script",
        str(tmp_path),
        processes=2,
        devices=4,
        timeout=180.0,
    )
    for index in range(2):
        report = json.loads((tmp_path / f"process-{index}.json").read_text())
        assert (report["process_count"], report["step"], report["stopped_epoch"]) == (2, 30, 3)
        for name in ("best_w", "best_b", "final_w", "final_b"):
            seen = report[name]
            assert seen["values_match"], (index, name, seen)
            assert seen["same_sharding"], (index, name, seen)
            assert not seen["fully_addressable"], (index, name, seen)


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


class Wider(DropoutMLP):
    """The resume model with one more layer: variables its checkpoints lack."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        super().__init__(rngs)
        self.extra = nnx.Linear(1, 1, rngs=rngs)


def test_resume_into_a_model_of_another_structure_names_the_checkpoint(tmp_path: Path) -> None:
    trainer, _, _ = build(tmp_path)
    train, val = make_data()
    trainer.fit(train, epochs=1, val_data=val)
    other = Trainer(Wider(nnx.Rngs(params=0, dropout=1)), optax.adam(1e-2), loss_fn)
    with pytest.raises(ValueError, match=r"checkpoint step \d+ in '.*checkpoints' cannot be"):
        other.resume(tmp_path / "checkpoints")
    assert other.step == 0
