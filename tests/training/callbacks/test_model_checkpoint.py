from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jax
import pytest
from flax import nnx

from artifex.generative_models.training._checkpointing._format import MARKER_FILE
from artifex.generative_models.training.callbacks import (
    CallbackList,
    CheckpointConfig,
    EarlyStopping,
    EarlyStoppingConfig,
    History,
    LambdaCallback,
    MissingMetricWarning,
    ModelCheckpoint,
    restore_checkpoint,
)
from artifex.generative_models.training.callbacks.model_checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointOrderWarning,
)
from artifex.generative_models.training.callbacks.protocols import CallbackHost
from tests.training.callbacks._stubs import FullTrainer, ModelOnlyTrainer, TinyModel, drive, params


def _same(a: nnx.Module, b: nnx.Module) -> bool:
    return all(bool((x == y).all()) for x, y in zip(params(a), params(b), strict=True))


def _step_dirs(path: Path) -> list[int]:
    return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit())


def _train(trainer: FullTrainer, cb: ModelCheckpoint, val: list[float], batches: int = 2) -> None:
    """A real loop: real optimiser steps, checkpoint at each epoch end."""
    cbs = CallbackList([cb])
    cbs.on_train_begin(trainer)
    for epoch, v in enumerate(val):
        trainer.epoch = epoch
        for _ in range(batches):
            s = trainer.step
            cbs.on_batch_begin(trainer, s)
            loss = trainer.train_step()
            trainer.step += 1
            cbs.on_batch_end(trainer, s, {"loss": loss})
        cbs.on_epoch_end(trainer, epoch, {"loss": 1.0, "val_loss": v})
    cbs.on_train_end(trainer)


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({"save_top_k": -2}, "save_top_k"),
        ({"every_n_epochs": 0}, "every_n_epochs"),
        ({"mode": "best"}, "mode"),
        ({"dirpath": ""}, "dirpath"),
        ({"monitor": ""}, "monitor"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any], culprit: str) -> None:
    with pytest.raises(ValueError, match=culprit):
        CheckpointConfig(**kwargs)


def test_defaults_and_no_directory_at_construction(tmp_path: Path) -> None:
    config = CheckpointConfig(dirpath=tmp_path / "ck")
    assert (config.save_top_k, config.every_n_epochs, config.monitor) == (3, 1, None)
    cb = ModelCheckpoint(config)
    assert not (tmp_path / "ck").exists()
    assert cb.saved_checkpoint_steps == ()
    assert cb.best_checkpoint_step is None
    cb.on_train_begin(ModelOnlyTrainer())
    assert (tmp_path / "ck" / MARKER_FILE).is_file()
    cb.on_train_end(ModelOnlyTrainer())


def test_best_k_by_monitor_plus_last_and_full_restore(tmp_path: Path) -> None:
    trainer = FullTrainer()
    cb = ModelCheckpoint(
        CheckpointConfig(dirpath=tmp_path / "ck", monitor="val_loss", save_top_k=2)
    )
    _train(trainer, cb, [3.0, 1.0, 2.0, 0.5, 4.0])
    # steps are global steps after each epoch (2 batches each); kept: best two + last
    assert cb.saved_checkpoint_steps == (4, 8, 10)
    assert _step_dirs(tmp_path / "ck") == [4, 8, 10]
    assert cb.best_checkpoint_step == 8

    fresh = FullTrainer(seed=1)
    assert not _same(fresh.model, trainer.model)
    restored = restore_checkpoint(tmp_path / "ck", target=fresh)  # latest
    assert (restored.step, restored.epoch) == (10, 4)
    assert restored.metrics == {"loss": 1.0, "val_loss": 4.0}
    assert (fresh.step, fresh.epoch) == (10, 4)
    assert _same(fresh.model, trainer.model)
    # the optimiser state came back too: the next step matches bit for bit
    assert bool(fresh.train_step() == trainer.train_step())
    assert _same(fresh.model, trainer.model)

    best = restore_checkpoint(tmp_path / "ck", step=cb.best_checkpoint_step, target=FullTrainer())
    assert (best.step, best.metrics["val_loss"]) == (8, 0.5)


def test_restore_into_a_fresh_model_and_raw(tmp_path: Path) -> None:
    trainer = FullTrainer()
    cb = ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "ck", async_save=False))
    _train(trainer, cb, [1.0, 1.0])
    model = TinyModel(nnx.Rngs(42))
    restored = restore_checkpoint(tmp_path / "ck", target=model)
    assert restored.step == 4
    assert _same(model, trainer.model)
    raw = restore_checkpoint(tmp_path / "ck", step=2)
    assert raw.step == 2
    assert set(raw.state) >= {"model", "opt_state", "step", "epoch"}
    with pytest.raises(FileNotFoundError, match="step 3"):
        restore_checkpoint(tmp_path / "ck", step=3)
    with pytest.raises(ValueError, match="lacks model entry model/bias"):
        restore_checkpoint(tmp_path / "ck", target=nnx.Linear(2, 4, rngs=nnx.Rngs(0)))

    class Wide(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.layers = nnx.List([nnx.Linear(2, 5, rngs=rngs), nnx.Linear(5, 1, rngs=rngs)])

    with pytest.raises(ValueError, match=r"model/layers/0/bias has shape \(4,\)"):
        restore_checkpoint(tmp_path / "ck", target=Wide(nnx.Rngs(0)))


def test_model_only_trainer_counts_steps_itself(tmp_path: Path) -> None:
    trainer = ModelOnlyTrainer()
    cb = ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "ck", save_top_k=-1))
    drive(trainer, [cb], [[1.0, 1.0, 1.0], [1.0]])
    assert cb.saved_checkpoint_steps == (3, 4)
    model = TinyModel(nnx.Rngs(3))
    restored = restore_checkpoint(tmp_path / "ck", step=3, target=model)
    assert restored.epoch == 0
    assert _same(model, trainer.model)


def test_missing_monitor_warns_and_saves_only_as_last(tmp_path: Path) -> None:
    cb = ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "ck", monitor="val_loss"))
    with pytest.warns(MissingMetricWarning, match="'loss'"):
        drive(ModelOnlyTrainer(), [cb], [[1.0]] * 3)
    assert cb.saved_checkpoint_steps == (3,)  # kept only as the latest
    assert cb.best_checkpoint_step is None
    strict = ModelCheckpoint(
        CheckpointConfig(dirpath=tmp_path / "s", monitor="x", mode="min", strict=True)
    )
    with pytest.raises(KeyError, match="'x'"):
        drive(ModelOnlyTrainer(), [strict], [[1.0]])


def test_reuses_its_own_directory_and_continues(tmp_path: Path) -> None:
    trainer = FullTrainer()
    _train(trainer, ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "ck")), [1.0])
    marker = json.loads((tmp_path / "ck" / MARKER_FILE).read_text())
    assert marker == {"format": CHECKPOINT_FORMAT, "run": marker["run"]}
    assert isinstance(marker["run"], str)
    assert len(marker["run"]) == 32
    second = ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "ck"))
    _train(trainer, second, [1.0, 1.0])  # the same trainer: steps continue
    assert second.saved_checkpoint_steps == (2, 4, 6)
    # a fresh run is another run; one continuing from step 2 must not silently skip
    # saves behind later checkpoints
    with pytest.raises(FileExistsError, match="does not continue it"):
        ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "ck")).on_train_begin(FullTrainer())
    earlier = FullTrainer()
    restore_checkpoint(tmp_path / "ck", step=2, target=earlier)
    with pytest.raises(FileExistsError, match="up to step 6"):
        ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "ck")).on_train_begin(earlier)


def test_json_items_extension_point_carries_callback_state(tmp_path: Path) -> None:
    early, history = EarlyStopping(), History()
    history.on_epoch_end(ModelOnlyTrainer(), 0, {"val_loss": 1.0})
    history.on_epoch_end(ModelOnlyTrainer(), 1, {"loss": 2.0})  # NaN-padded columns

    class WithCallbackState(ModelCheckpoint):
        def json_items(self, trainer: object, /) -> dict[str, Any]:
            return {"callbacks": {cb.state_key: cb.state_dict() for cb in (early, history)}}

    cb = WithCallbackState(CheckpointConfig(dirpath=tmp_path / "ck"))
    drive(ModelOnlyTrainer(), [cb], [[1.0]])
    saved = restore_checkpoint(tmp_path / "ck").extra["callbacks"]
    assert set(saved) == {"EarlyStopping[val_loss]", "History"}
    early2, history2 = EarlyStopping(), History()
    early2.load_state_dict(saved["EarlyStopping[val_loss]"])
    history2.load_state_dict(saved["History"])
    assert early2.state_dict() == early.state_dict()  # best_score is None: JSON round trip
    assert early2.best_score is None
    assert history2.epochs == [0, 1]
    assert math.isnan(history2.history["loss"][0])
    assert history2.history["val_loss"][0] == 1.0


def test_restore_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        restore_checkpoint(tmp_path / "nothing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="not a ModelCheckpoint directory"):
        restore_checkpoint(tmp_path / "plain")
    cb = ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "empty"))
    cb.on_train_begin(ModelOnlyTrainer())
    cb.on_train_end(ModelOnlyTrainer())
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        restore_checkpoint(tmp_path / "empty")


def test_async_saves_are_complete_after_train_end(tmp_path: Path) -> None:
    trainer = FullTrainer()
    cb = ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "ck", async_save=True))
    _train(trainer, cb, [1.0, 1.0, 1.0])
    for step in cb.saved_checkpoint_steps:
        assert (tmp_path / "ck" / str(step) / "commit_success.txt").exists() or not any(
            p.name.endswith(".orbax-checkpoint-tmp") for p in (tmp_path / "ck").iterdir()
        )
    assert not any("tmp" in p.name for p in (tmp_path / "ck").iterdir())
    leaves = jax.tree.leaves(restore_checkpoint(tmp_path / "ck").state["model"])
    assert len(leaves) == 4


def test_interrupted_save_leftovers_are_cleaned_and_ignored(tmp_path: Path) -> None:
    trainer = FullTrainer()
    config = CheckpointConfig(dirpath=tmp_path / "ck")
    drive(trainer, [ModelCheckpoint(config)], [[1.0]])
    # what a save killed mid-way leaves: an Orbax temporary directory, never committed
    leftover = tmp_path / "ck" / "2.orbax-checkpoint-tmp-1700000000"
    (leftover / "state").mkdir(parents=True)
    assert restore_checkpoint(tmp_path / "ck").step == 1  # not a checkpoint
    resumed = ModelCheckpoint(config)
    drive(trainer, [resumed], [[1.0]], start_step=1, start_epoch=1)
    assert not leftover.exists()
    assert resumed.saved_checkpoint_steps == (1, 2)
    assert restore_checkpoint(tmp_path / "ck").step == 2


def test_leftovers_are_gone_when_train_begin_returns(tmp_path: Path) -> None:
    # Removed at once, not by Orbax's background cleanup: a run that saves nothing
    # would otherwise exit with that thread still running.
    config = CheckpointConfig(dirpath=tmp_path / "ck")
    first = ModelCheckpoint(config)  # makes the directory ModelCheckpoint's own
    first.on_train_begin(ModelOnlyTrainer())
    first.on_train_end(ModelOnlyTrainer())
    leftover = tmp_path / "ck" / "2.orbax-checkpoint-tmp-1700000000"
    (leftover / "state").mkdir(parents=True)
    callback = ModelCheckpoint(config)
    callback.on_train_begin(ModelOnlyTrainer())
    assert not leftover.exists()
    callback.on_train_end(ModelOnlyTrainer())


class HostingTrainer(ModelOnlyTrainer):
    """A ``CallbackHost``: it exposes its callbacks."""

    def __init__(self, callbacks: CallbackList) -> None:
        super().__init__()
        self.callbacks = callbacks


def test_a_stateful_callback_after_it_is_warned_about(tmp_path: Path) -> None:
    history = History()
    late = ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "late"))
    nested = CallbackList([late, CallbackList([history])])
    with pytest.warns(CheckpointOrderWarning, match=r"\['History'\] run after ModelCheckpoint"):
        late.on_train_begin(HostingTrainer(nested))
    last = ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "last"))
    last.on_train_begin(HostingTrainer(CallbackList([history, last])))  # no warning
    late.on_train_end(ModelOnlyTrainer())
    last.on_train_end(ModelOnlyTrainer())


class HostTrainer(FullTrainer):
    """A ``FullTrainer`` that exposes its callbacks (a ``CallbackHost``)."""

    def __init__(self, callbacks: list[Any], seed: int = 0) -> None:
        super().__init__(seed)
        self._callbacks = CallbackList(callbacks)

    @property
    def callbacks(self) -> CallbackList:
        return self._callbacks


def _host_run(tmp_path: Path, *, restore_best_weights: bool) -> tuple[HostTrainer, EarlyStopping]:
    """Three epochs (scores 3, 1, 2) with EarlyStopping, then ModelCheckpoint."""
    early = EarlyStopping(
        EarlyStoppingConfig(patience=5, restore_best_weights=restore_best_weights)
    )
    ckpt = ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "ck", save_top_k=-1))
    trainer = HostTrainer([early, ckpt])
    assert isinstance(trainer, CallbackHost)
    cbs = trainer.callbacks
    cbs.on_train_begin(trainer)
    for epoch, score in enumerate([3.0, 1.0, 2.0]):
        trainer.train_step()
        trainer.step += 1
        trainer.epoch = epoch + 1
        cbs.on_epoch_end(trainer, epoch, {"val_loss": score})
    cbs.on_train_end(trainer)
    return trainer, early


def test_callback_arrays_are_an_orbax_item_of_the_same_checkpoint(tmp_path: Path) -> None:
    assert CHECKPOINT_FORMAT == "artifex-nnx-callbacks/checkpoint/5"
    trainer, early = _host_run(tmp_path, restore_best_weights=True)
    step_dir = tmp_path / "ck" / "3"
    assert (step_dir / "callback_arrays").is_dir()
    meta = json.loads((step_dir / "meta" / "metadata").read_text())
    assert meta["format"] == CHECKPOINT_FORMAT
    assert meta["callback_arrays"] == ["EarlyStopping[val_loss]"]
    # The JSON item keeps only the scalars.
    callbacks = json.loads((step_dir / "callbacks" / "metadata").read_text())
    assert callbacks["EarlyStopping[val_loss]"] == early.state_dict()
    restored = restore_checkpoint(tmp_path / "ck", target=TinyModel(nnx.Rngs(9)))
    saved = restored.callback_arrays["EarlyStopping[val_loss]"]
    want = early.array_state()
    assert isinstance(want, dict)
    assert set(saved) == {str(key) for key in want}
    for got, expected in zip(jax.tree.leaves(saved), jax.tree.leaves(want), strict=True):
        assert isinstance(got, jax.Array)
        assert bool((got == expected).all())
    # The best epoch (1) is step 2's model, not the last one.
    best = restore_checkpoint(tmp_path / "ck", step=2).state["model"]
    for got, expected in zip(jax.tree.leaves(saved), jax.tree.leaves(best), strict=True):
        assert bool((got == expected).all())
    last = restore_checkpoint(tmp_path / "ck", step=3).state["model"]
    assert not all(
        bool((a == b).all())
        for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(last), strict=True)
    )
    del trainer


def test_no_callback_arrays_item_without_array_state(tmp_path: Path) -> None:
    _host_run(tmp_path, restore_best_weights=False)
    step_dir = tmp_path / "ck" / "3"
    assert not (step_dir / "callback_arrays").exists()
    meta = json.loads((step_dir / "meta" / "metadata").read_text())
    assert meta["callback_arrays"] == []
    assert restore_checkpoint(tmp_path / "ck").callback_arrays == {}


def test_json_items_may_not_use_the_callback_arrays_name(tmp_path: Path) -> None:
    class Clashing(ModelCheckpoint):
        def json_items(self, trainer: object, /) -> dict[str, Any]:
            return {"callback_arrays": {}}

    cb = Clashing(CheckpointConfig(dirpath=tmp_path / "ck"))
    with pytest.raises(ValueError, match="callback_arrays"):
        drive(ModelOnlyTrainer(), [cb], [[1.0]])


def test_preflight_refuses_as_on_train_begin_would_and_creates_nothing(tmp_path: Path) -> None:
    fresh = tmp_path / "new" / "ck"
    ModelCheckpoint(CheckpointConfig(dirpath=fresh)).preflight(FullTrainer())
    assert not (tmp_path / "new").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not created by ModelCheckpoint"):
        ModelCheckpoint(CheckpointConfig(dirpath=foreign)).preflight(FullTrainer())
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "file")).preflight(FullTrainer())
    ours, first = tmp_path / "ck", FullTrainer()
    _train(first, ModelCheckpoint(CheckpointConfig(dirpath=ours)), [1.0, 1.0])
    before = sorted(str(p.relative_to(ours)) for p in ours.rglob("*"))
    with pytest.raises(FileExistsError, match="holds the checkpoints of run"):
        ModelCheckpoint(CheckpointConfig(dirpath=ours)).preflight(FullTrainer())  # another run
    first.step = 0  # the same run, gone back to an older step
    with pytest.raises(FileExistsError, match="up to step 4, beyond this run's step 0"):
        ModelCheckpoint(CheckpointConfig(dirpath=ours)).preflight(first)
    (ours / "3").mkdir()  # an emptied step directory: set-up would remove it, preflight not
    with pytest.raises(FileExistsError, match="up to step 4"):
        ModelCheckpoint(CheckpointConfig(dirpath=ours)).preflight(first)
    assert sorted(str(p.relative_to(ours)) for p in ours.rglob("*")) == sorted([*before, "3"])
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]


def test_a_trainer_that_skips_preflight_is_still_refused_at_on_train_begin(
    tmp_path: Path,
) -> None:
    ours = tmp_path / "ck"
    _train(FullTrainer(), ModelCheckpoint(CheckpointConfig(dirpath=ours)), [1.0, 1.0])
    log: list[str] = []
    earlier = LambdaCallback(on_train_begin=lambda trainer: log.append("on_train_begin"))
    cbs = CallbackList([earlier, ModelCheckpoint(CheckpointConfig(dirpath=ours))])
    with pytest.raises(FileExistsError, match="holds the checkpoints of run"):
        cbs.on_train_begin(FullTrainer())  # a custom loop that never calls preflight
    assert log == ["on_train_begin"]  # the earlier callback's begin already ran
