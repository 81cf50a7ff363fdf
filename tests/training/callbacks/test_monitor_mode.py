"""``mode="auto"``: the direction read from the monitor's name, and kept with saved states."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from artifex.generative_models.training import ArrayBatcher, Trainer
from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    EarlyStopping,
    EarlyStoppingConfig,
    ModelCheckpoint,
    ReduceLROnPlateau,
    ReduceLROnPlateauConfig,
)
from artifex.generative_models.training.callbacks._monitor import Mode
from tests.training.callbacks._stubs import ModelOnlyTrainer, TunableTrainer

CONFIGS: list[Any] = [EarlyStoppingConfig, ReduceLROnPlateauConfig, CheckpointConfig]

MAX_NAMES = [
    "acc",
    "val_acc",
    "accuracy",
    "val_accuracy",
    "auc",
    "val_f1",
    "precision",
    "recall",
    "val_iou",
    "mAP",
    "psnr",
    "val_ssim",
    "top5_acc",
    "val_top1-accuracy",
]
MIN_NAMES = [
    "loss",
    "val_loss",
    "error",
    "val_err",
    "mse",
    "val_mae",
    "rmse",
    "nll",
    "kl",
    "val_bpd",
    "fid",
    "perplexity",
    "recon_loss",
    "val_kl_loss",
    "Val_MSE",
]
REFUSED_NAMES = ["elbo", "val_elbo", "score", "lr", "val_", "accloss", "acc_loss", "val_f1_error"]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", MAX_NAMES)
def test_auto_is_max_for_an_accuracy_like_name(config: Any, name: str) -> None:
    assert config(monitor=name).mode == "max"


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", MIN_NAMES)
def test_auto_is_min_for_a_loss_or_an_error(config: Any, name: str) -> None:
    assert config(monitor=name).mode == "min"


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_auto_refuses_a_name_it_cannot_place(config: Any, name: str) -> None:
    with pytest.raises(ValueError, match=r"pass mode='min' \(lower is better\) or mode='max'"):
        config(monitor=name)
    with pytest.raises(ValueError, match="cannot tell whether") as info:
        config(monitor=name, mode="auto")
    message = str(info.value)
    assert "\n" not in message
    assert repr(name) in message
    assert config.__name__ in message
    # An explicit mode is taken as given, whatever the name.
    assert config(monitor=name, mode="max").mode == "max"
    assert config(monitor=name, mode="min").mode == "min"


@pytest.mark.parametrize("config", CONFIGS)
def test_auto_is_the_default_and_explicit_modes_stay(config: Any) -> None:
    assert config.__dataclass_fields__["mode"].default == "auto"
    assert config(monitor="val_accuracy", mode="min").mode == "min"
    assert config(monitor="val_loss", mode="max").mode == "max"
    with pytest.raises(ValueError, match="mode must be 'auto', 'min' or 'max', got 'up'"):
        config(monitor="val_loss", mode="up")


def test_defaults_resolve_to_min() -> None:
    assert EarlyStoppingConfig().mode == "min"  # val_loss
    assert ReduceLROnPlateauConfig().mode == "min"
    assert CheckpointConfig().mode == "min"  # no monitor: nothing to rank, as before
    assert CheckpointConfig(monitor=None, mode="auto").mode == "min"
    assert CheckpointConfig(monitor=None, mode="max").mode == "max"


def test_early_stopping_on_accuracy_goes_upwards() -> None:
    es = EarlyStopping(EarlyStoppingConfig(monitor="val_accuracy", patience=1))
    trainer = ModelOnlyTrainer()
    es.on_train_begin(trainer)
    for epoch, accuracy in enumerate([0.5, 0.6, 0.7]):
        es.on_epoch_end(trainer, epoch, {"val_accuracy": accuracy})
    assert not es.should_stop
    assert (es.best_score, es.best_epoch) == (0.7, 2)


def _saved(callback: EarlyStopping | ReduceLROnPlateau) -> dict[str, Any]:
    trainer = TunableTrainer()
    callback.on_train_begin(trainer)
    callback.on_epoch_end(trainer, 0, {"val_acc": 0.5})
    state = callback.state_dict()
    assert state["mode"] == "max"
    return state


def test_early_stopping_refuses_a_resume_with_another_mode() -> None:
    state = _saved(EarlyStopping(EarlyStoppingConfig(monitor="val_acc")))
    resumed = EarlyStopping(EarlyStoppingConfig(monitor="val_acc", mode="min"))
    resumed.load_state_dict(state)
    trainer = ModelOnlyTrainer()
    both = r"mode='max' for 'val_acc'.*mode='min'"
    with pytest.raises(ValueError, match=both):
        resumed.preflight(trainer)
    with pytest.raises(ValueError, match=both):
        resumed.on_train_begin(trainer)  # for trainers that do not call preflight
    same = EarlyStopping(EarlyStoppingConfig(monitor="val_acc"))
    same.load_state_dict(state)
    same.preflight(trainer)
    same.on_train_begin(trainer)
    assert same.best_score == 0.5  # the loaded state was kept


def test_reduce_lr_refuses_a_resume_with_another_mode() -> None:
    state = _saved(ReduceLROnPlateau(ReduceLROnPlateauConfig(monitor="val_acc")))
    resumed = ReduceLROnPlateau(ReduceLROnPlateauConfig(monitor="val_acc", mode="min"))
    resumed.load_state_dict(state)
    both = r"mode='max' for 'val_acc'.*mode='min'"
    with pytest.raises(ValueError, match=both):
        resumed.preflight(TunableTrainer())
    with pytest.raises(ValueError, match=both):
        resumed.on_train_begin(TunableTrainer())
    same = ReduceLROnPlateau(ReduceLROnPlateauConfig(monitor="val_acc"))
    same.load_state_dict(state)
    same.preflight(TunableTrainer())
    same.on_train_begin(TunableTrainer())
    assert same.best == 0.5


@pytest.mark.parametrize(
    ("callback", "config"),
    [(EarlyStopping, EarlyStoppingConfig), (ReduceLROnPlateau, ReduceLROnPlateauConfig)],
)
def test_a_state_saved_before_modes_were_recorded_is_accepted(callback: Any, config: Any) -> None:
    state = _saved(callback(config(monitor="val_acc")))
    del state["mode"]
    resumed = callback(config(monitor="val_acc", mode="min"))
    resumed.load_state_dict(state)
    resumed.preflight(TunableTrainer())


def _loss(model: nnx.Linear, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def test_fit_refuses_to_resume_early_stopping_with_another_mode(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    data = ArrayBatcher((x, x[:, :1]), batch_size=8)

    def fit(mode: Mode, *, resume: bool) -> None:
        callbacks = [
            EarlyStopping(EarlyStoppingConfig(monitor="loss", mode=mode)),
            ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "ck", async_save=False)),
        ]
        model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
        trainer = Trainer(model, optax.sgd(0.1), _loss, callbacks=callbacks)
        trainer.fit(data, epochs=1, resume_from=tmp_path / "ck" if resume else None)

    fit("auto", resume=False)
    before = sorted(path.name for path in (tmp_path / "ck").iterdir())
    with pytest.raises(ValueError, match=r"saved with mode='min' for 'loss'.*mode='max'") as info:
        fit("max", resume=True)
    assert any("EarlyStopping) in preflight" in note for note in info.value.__notes__)
    assert sorted(path.name for path in (tmp_path / "ck").iterdir()) == before


def test_model_checkpoint_refuses_to_rank_a_directory_saved_with_another_mode(
    tmp_path: Path,
) -> None:
    x = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    data = ArrayBatcher((x, x[:, :1]), batch_size=8)
    directory = tmp_path / "ck"

    def fit(mode: Mode, *, resume: bool) -> None:
        config = CheckpointConfig(
            dirpath=directory, monitor="loss", mode=mode, save_top_k=1, async_save=False
        )
        model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
        trainer = Trainer(model, optax.sgd(0.1), _loss, callbacks=[ModelCheckpoint(config)])
        trainer.fit(data, epochs=1, resume_from=directory if resume else None)

    fit("max", resume=False)
    before = sorted(path.name for path in directory.iterdir())
    both = r"saved with mode='max' for 'loss' \(step \d+\); this run's mode is 'min'"
    with pytest.raises(ValueError, match=both):
        fit("min", resume=True)
    assert sorted(path.name for path in directory.iterdir()) == before
    fit("max", resume=True)  # the same mode continues the directory
