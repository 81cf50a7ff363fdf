from __future__ import annotations

import math
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from hypothesis import given, settings
from jax.sharding import Mesh

from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    LambdaCallback,
    LearningRateMonitor,
    MissingMetricWarning,
    ModelCheckpoint,
    ReduceLROnPlateau,
    ReduceLROnPlateauConfig,
    StatefulCallback,
    TrainerLike,
    TrainingCallback,
)
from artifex.generative_models.training.callbacks._monitor import Mode
from artifex.generative_models.training.trainer import Trainer
from tests.strategies import plateau_cases
from tests.training.callbacks._stubs import ModelOnlyTrainer, TunableTrainer

Batch = tuple[jax.Array, jax.Array]
_COMPILES: Counter[str] = Counter()
BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


def _listen(event: str, duration_secs: float, **kwargs: str | int) -> None:
    _COMPILES[event] += 1


jax.monitoring.register_event_duration_secs_listener(_listen)


def _feed(cb: ReduceLROnPlateau, trainer: TunableTrainer, scores: list[float]) -> list[float]:
    """Epoch ends with these scores; return the learning rate after each."""
    cb.on_train_begin(trainer)
    rates = []
    for epoch, score in enumerate(scores):
        cb.on_epoch_end(trainer, epoch, {"val_loss": score})
        rates.append(trainer.values["learning_rate"])
    return rates


@settings(max_examples=40, deadline=None)
@given(plateau_cases())
def test_matches_keras_rule(case: tuple[list[float], int, float, Mode, int]) -> None:
    scores, patience, min_delta, mode, cooldown = case
    config = ReduceLROnPlateauConfig(
        patience=patience,
        min_delta=min_delta,
        mode=mode,
        cooldown=cooldown,
        factor=0.5,
        min_lr=0.1,
    )
    rates = _feed(ReduceLROnPlateau(config), TunableTrainer({"learning_rate": 1.0}), scores)
    sign = 1.0 if mode == "min" else -1.0
    best: float | None = None
    wait, cool, lr, expected = 0, 0, 1.0, []
    for score in scores:  # Keras's ReduceLROnPlateau.on_epoch_end, best starting unset
        if cool > 0:
            cool, wait = cool - 1, 0
        if not math.isnan(score) and (best is None or sign * score < best - min_delta):
            best, wait = sign * score, 0
        elif cool == 0:
            wait += 1
            if wait >= patience and lr > float(np.float32(0.1)):
                lr, cool, wait = max(lr * 0.5, 0.1), cooldown, 0
        expected.append(lr)
    assert rates == expected


def test_nan_is_never_an_improvement_and_state_round_trips() -> None:
    cb = ReduceLROnPlateau(ReduceLROnPlateauConfig(patience=2))
    assert isinstance(cb, StatefulCallback)
    trainer = TunableTrainer()
    assert _feed(cb, trainer, [math.nan, math.nan]) == [0.1, pytest.approx(0.01)]
    assert (cb.best, cb.wait) == (None, 0)  # NaN counted against patience
    assert _feed(cb, trainer, [1.0, math.nan]) == [pytest.approx(0.01)] * 2
    assert cb.state_dict() == {"mode": "min", "best": 1.0, "wait": 1, "cooldown_counter": 0}
    resumed = ReduceLROnPlateau(ReduceLROnPlateauConfig(patience=2))
    resumed.load_state_dict(cb.state_dict())
    resumed.on_train_begin(trainer)  # a resume keeps the loaded state ...
    assert resumed.state_dict() == {"mode": "min", "best": 1.0, "wait": 1, "cooldown_counter": 0}
    resumed.on_train_begin(trainer)  # ... once
    assert resumed.state_dict() == {"mode": "min", "best": None, "wait": 0, "cooldown_counter": 0}
    assert resumed.state_key == "ReduceLROnPlateau[val_loss]"


def test_a_missing_monitor_warns_once_and_changes_nothing() -> None:
    cb = ReduceLROnPlateau(ReduceLROnPlateauConfig(patience=0))
    trainer = TunableTrainer()
    cb.on_train_begin(trainer)
    with pytest.warns(MissingMetricWarning, match="ReduceLROnPlateau monitors 'val_loss'"):
        cb.on_epoch_end(trainer, 0, {"loss": 1.0})
    cb.on_epoch_end(trainer, 1, {"loss": 1.0})  # once: filterwarnings=error would fail here
    assert trainer.values["learning_rate"] == 0.1
    strict = ReduceLROnPlateau(ReduceLROnPlateauConfig(strict=True))
    strict.on_train_begin(trainer)
    with pytest.raises(KeyError, match="val_loss"):
        strict.on_epoch_end(trainer, 0, {"loss": 1.0})


def test_what_cannot_be_set_is_refused_at_train_begin() -> None:
    cb = ReduceLROnPlateau()
    with pytest.raises(TypeError, match="HyperparameterTrainer"):
        cb.on_train_begin(ModelOnlyTrainer())
    with pytest.raises(ValueError, match="'learning_rate': it is a schedule"):
        cb.on_train_begin(TunableTrainer(schedules=["learning_rate"]))


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({"factor": 1.0}, "factor"),
        ({"factor": 0.0}, "factor"),
        ({"patience": -1}, "patience"),
        ({"cooldown": -1}, "cooldown"),
        ({"min_lr": -0.1}, "min_lr"),
        ({"min_delta": math.nan}, "min_delta"),
        ({"mode": "up"}, "mode"),
        ({"monitor": ""}, "monitor"),
        ({"strict": 1}, "strict"),
    ],
)
def test_config_validation(kwargs: dict[str, Any], culprit: str) -> None:
    with pytest.raises((TypeError, ValueError), match=culprit):
        ReduceLROnPlateauConfig(**kwargs)


# ------------------------------------------------------------ with the reference Trainer


def _loss(model: nnx.Linear, batch: Batch) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def _batches() -> list[Batch]:
    x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 2)), jnp.float32)
    return [(x[:4], x[:4, :1] * 2.0), (x[4:], x[4:, :1] * 2.0)]


def _plateau() -> TrainingCallback:
    """A constant score: never an improvement after the first epoch."""
    return LambdaCallback(on_epoch_end=lambda t, e, logs: logs.update(score=1.0))


def _trainer(callbacks: list[TrainingCallback], **options: Any) -> Trainer[nnx.Linear]:
    return Trainer(
        nnx.Linear(2, 1, rngs=nnx.Rngs(0)),
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
        _loss,
        callbacks=callbacks,
        **options,
    )


def _reducer() -> ReduceLROnPlateau:
    return ReduceLROnPlateau(
        ReduceLROnPlateauConfig(monitor="score", mode="min", patience=0, factor=0.5)
    )


@pytest.mark.parametrize("mesh", [False, True], ids=["no-mesh", "mesh"])
def test_reductions_take_effect_without_recompiling(mesh: bool) -> None:
    options = {"mesh": Mesh(np.array(jax.devices()[:1]), ("data",))} if mesh else {}
    trainer = _trainer([LearningRateMonitor(), _plateau(), _reducer()], **options)
    trainer.fit(_batches(), epochs=2)  # compiles; epoch 1 halves the rate
    [before] = [leaf for leaf in jax.tree.leaves(trainer.opt_state) if leaf.shape == ()][-1:]
    trainer.fit(_batches(), epochs=1)  # the state was handed out: compiles its copy
    compiles = _COMPILES[BACKEND_COMPILE]
    logs = trainer.fit(_batches(), epochs=3)
    assert _COMPILES[BACKEND_COMPILE] == compiles  # the new rates compiled nothing
    # LearningRateMonitor runs first: it logs the rate each epoch trained with. The
    # second fit's first epoch is a first score again (state resets), then it halves.
    assert [epoch["lr"] for epoch in logs] == [pytest.approx(v) for v in (0.05, 0.05, 0.025)]
    assert trainer.hyperparameters()["learning_rate"] == pytest.approx(0.0125)
    [after] = [leaf for leaf in jax.tree.leaves(trainer.opt_state) if leaf.shape == ()][-1:]
    assert (after.dtype, after.sharding) == (before.dtype, before.sharding)


def test_the_next_step_uses_the_new_rate() -> None:
    trainer = _trainer([])
    trainer.fit(_batches(), epochs=1)
    frozen = LambdaCallback(on_train_begin=lambda t: _set(t, 0.0))
    trainer.callbacks.append(frozen)
    kernel = np.asarray(trainer.model.kernel[...])
    trainer.fit(_batches(), epochs=1)
    np.testing.assert_array_equal(np.asarray(trainer.model.kernel[...]), kernel)


def _set(trainer: TrainerLike, value: float) -> None:
    assert isinstance(trainer, Trainer)
    trainer.set_hyperparameter("learning_rate", value)


def test_the_trainer_refuses_a_schedule_and_bad_values() -> None:
    schedule = optax.inject_hyperparams(optax.sgd)(learning_rate=optax.linear_schedule(0.1, 0, 9))
    trainer = Trainer(nnx.Linear(2, 1, rngs=nnx.Rngs(0)), schedule, _loss, callbacks=[_reducer()])
    with pytest.raises(ValueError, match="'learning_rate': it is a schedule"):
        trainer.fit(_batches(), epochs=1)
    plain = _trainer([])
    with pytest.raises(ValueError, match="no injected hyperparameter 'momentum'"):
        plain.set_hyperparameter("momentum", 0.9)
    with pytest.raises(ValueError, match="must be finite"):
        plain.set_hyperparameter("learning_rate", math.inf)
    with pytest.raises(TypeError, match="must be a real number"):
        plain.set_hyperparameter("learning_rate", "0.1")  # type: ignore[arg-type]  # on purpose  # ty: ignore[invalid-argument-type]


def test_the_learning_rate_callbacks_refuse_before_any_callback_begins(tmp_path: Path) -> None:
    touched = tmp_path / "touched"
    earlier = LambdaCallback(on_train_begin=lambda t: touched.write_text("begun"))
    schedule = optax.inject_hyperparams(optax.sgd)(learning_rate=optax.linear_schedule(0.1, 0, 9))
    scheduled = Trainer(nnx.Linear(2, 1, rngs=nnx.Rngs(0)), schedule, _loss, callbacks=[earlier])
    scheduled.callbacks.append(_reducer())
    with pytest.raises(ValueError, match="'learning_rate': it is a schedule"):
        scheduled.fit(_batches(), epochs=1)
    plain = Trainer(nnx.Linear(2, 1, rngs=nnx.Rngs(0)), optax.sgd(0.1), _loss, callbacks=[earlier])
    plain.callbacks.append(LearningRateMonitor())
    with pytest.raises(ValueError, match="LearningRateMonitor"):
        plain.fit(_batches(), epochs=1)
    assert not touched.exists()  # refused in preflight, before the earlier on_train_begin


def test_resume_is_exact(tmp_path: Path) -> None:
    def run(epochs: int, *, resume: bool) -> tuple[Trainer[nnx.Linear], list[dict[str, float]]]:
        reducer = ReduceLROnPlateau(ReduceLROnPlateauConfig(monitor="loss", patience=1))
        noisy = LambdaCallback(on_epoch_end=lambda t, e, logs: logs.update(loss=[3, 2, 2, 2][e]))
        checkpoint = ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "ck", async_save=False))
        trainer = _trainer([LearningRateMonitor(), noisy, reducer, checkpoint])
        logs = trainer.fit(
            _batches(), epochs=epochs, resume_from=tmp_path / "ck" if resume else None
        )
        return trainer, logs

    whole, whole_logs = run(4, resume=False)
    kernel = np.asarray(whole.model.kernel[...])
    for path in (tmp_path / "ck").iterdir():
        if path.name.isdigit() and int(path.name) > 4:  # keep the checkpoint of epoch 1
            shutil.rmtree(path)
    resumed, resumed_logs = run(2, resume=True)
    assert [e["lr"] for e in resumed_logs] == [e["lr"] for e in whole_logs[2:]]
    np.testing.assert_allclose(np.asarray(resumed.model.kernel[...]), kernel, rtol=1e-6)
