from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings

from artifex.generative_models.training.callbacks import (
    ArrayStatefulCallback,
    CallbackList,
    EarlyStopping,
    EarlyStoppingConfig,
    MissingMetricWarning,
    StatefulCallback,
    StopRequester,
)
from artifex.generative_models.training.callbacks._monitor import Mode
from tests.strategies import early_stopping_scores
from tests.training.callbacks._stubs import FullTrainer, ModelOnlyTrainer, drive, params


def _feed(es: EarlyStopping, scores: list[float], key: str = "val_loss") -> int | None:
    """Send epoch ends until a stop; return the stopping epoch."""
    trainer = ModelOnlyTrainer()
    es.on_train_begin(trainer)
    for epoch, score in enumerate(scores):
        es.on_epoch_end(trainer, epoch, {key: score})
        if es.should_stop:
            return epoch
    return None


def test_protocols_and_defaults() -> None:
    es = EarlyStopping()
    assert isinstance(es, StopRequester)
    assert isinstance(es, StatefulCallback)
    assert es.config == EarlyStoppingConfig()
    assert es.config.patience == 10
    assert es.config.monitor == "val_loss"
    assert not es.should_stop
    assert es.best_score is None


def test_best_score_is_none_until_a_first_score() -> None:
    es = EarlyStopping(EarlyStoppingConfig(patience=5, check_finite=False))
    assert _feed(es, [math.nan]) is None
    assert (es.best_score, es.best_epoch) == (None, None)  # NaN is never a score to beat
    _feed(es, [math.nan, math.inf, 3.0])
    assert (es.best_score, es.best_epoch) == (3.0, 2)  # inf was a real first score
    baseline = EarlyStopping(EarlyStoppingConfig(baseline=2.0))
    assert baseline.best_score == 2.0
    _feed(baseline, [3.0])
    assert (baseline.best_score, baseline.best_epoch, baseline.wait_count) == (2.0, None, 1)


@pytest.mark.parametrize("mode", ["min", "max"])
def test_an_old_infinite_initial_best_score_loads_as_none(mode: Mode) -> None:
    old = {  # the state of checkpoints written before best_score could be None
        "best_score": math.inf if mode == "min" else -math.inf,
        "wait_count": 1,
        "best_epoch": None,
        "stopped_epoch": None,
        "stop_reason": None,
    }
    es = EarlyStopping(EarlyStoppingConfig(mode=mode))
    es.load_state_dict(old)
    assert (es.best_score, es.wait_count) == (None, 1)
    es.load_state_dict({**old, "best_epoch": 3, "best_score": 0.5})
    assert (es.best_score, es.best_epoch) == (0.5, 3)


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({"patience": -1}, "patience"),
        ({"min_delta": -0.1}, "min_delta"),
        ({"min_delta": math.nan}, "min_delta"),
        ({"mode": "up"}, "mode"),
        ({"monitor": ""}, "monitor"),
        ({"start_from_epoch": -2}, "start_from_epoch"),
        ({"baseline": math.inf}, "baseline"),
        ({"stopping_threshold": math.nan}, "stopping_threshold"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any], culprit: str) -> None:
    with pytest.raises(ValueError, match=culprit) as info:
        EarlyStoppingConfig(**kwargs)
    assert repr(next(iter(kwargs.values())))[:3] in str(info.value)


def test_config_rejects_bad_types() -> None:
    with pytest.raises(TypeError, match="patience"):
        EarlyStoppingConfig(patience=2.5)  # type: ignore[arg-type]  # the point of the test  # ty: ignore[invalid-argument-type]
    with pytest.raises(TypeError, match="EarlyStoppingConfig"):
        EarlyStopping({"patience": 3})  # type: ignore[call-overload]  # the point of the test  # ty: ignore[invalid-argument-type]
    with pytest.raises(AttributeError):
        EarlyStoppingConfig().patience = 3  # type: ignore[misc]  # frozen: the point  # ty: ignore[invalid-assignment]


def test_patience_counts_epochs_without_improvement() -> None:
    es = EarlyStopping(EarlyStoppingConfig(patience=2))
    assert _feed(es, [5.0, 4.0, 4.5, 4.2, 1.0]) == 3
    assert es.best_score == 4.0
    assert es.best_epoch == 1
    assert es.wait_count == 2
    assert es.stopped_epoch == 3
    assert "did not improve" in str(es.stop_reason)


def test_min_delta_and_max_mode() -> None:
    es = EarlyStopping(EarlyStoppingConfig(monitor="acc", mode="max", patience=1, min_delta=0.1))
    assert _feed(es, [0.5, 0.55, 0.9], key="acc") == 1  # +0.05 is not enough
    es = EarlyStopping(EarlyStoppingConfig(monitor="acc", mode="max", patience=1, min_delta=0.1))
    assert _feed(es, [0.5, 0.7, 0.9, 0.9], key="acc") == 3


def test_patience_zero_stops_at_first_non_improvement() -> None:
    es = EarlyStopping(EarlyStoppingConfig(patience=0))
    assert _feed(es, [3.0, 2.0, 2.0]) == 2


def test_nan_is_never_an_improvement() -> None:
    es = EarlyStopping(EarlyStoppingConfig(patience=2, check_finite=False))
    assert _feed(es, [1.0, math.nan, math.nan, 0.5]) == 2
    assert es.best_score == 1.0


def test_check_finite_stops_at_once() -> None:
    es = EarlyStopping(EarlyStoppingConfig(patience=5))
    assert _feed(es, [1.0, math.inf, 0.1]) == 1
    assert "not finite" in str(es.stop_reason)


@pytest.mark.parametrize("mode", ["min", "max"])
def test_thresholds_in_both_modes(mode: str) -> None:
    sign = 1.0 if mode == "min" else -1.0
    good = EarlyStoppingConfig(mode=mode, stopping_threshold=sign * 1.0, patience=99)  # type: ignore[arg-type]  # parametrised literal  # ty: ignore[invalid-argument-type]
    assert _feed(EarlyStopping(good), [sign * 3.0, sign * 2.0, sign * 0.5, sign * 0.1]) == 2
    bad = EarlyStoppingConfig(mode=mode, divergence_threshold=sign * 10.0, patience=99)  # type: ignore[arg-type]  # parametrised literal  # ty: ignore[invalid-argument-type]
    assert _feed(EarlyStopping(bad), [sign * 3.0, sign * 11.0, sign * 0.1]) == 1


def test_baseline_must_be_beaten() -> None:
    es = EarlyStopping(EarlyStoppingConfig(baseline=1.0, patience=2))
    assert es.best_score == 1.0
    assert _feed(es, [1.5, 1.2, 0.9]) == 1
    assert es.best_epoch is None


def test_start_from_epoch_ignores_warm_up() -> None:
    es = EarlyStopping(EarlyStoppingConfig(patience=0, start_from_epoch=2))
    assert _feed(es, [1.0, 5.0, 6.0, 7.0]) == 3
    assert es.best_epoch == 2


def test_reuse_resets_at_train_begin() -> None:
    es = EarlyStopping(EarlyStoppingConfig(patience=1))
    assert _feed(es, [1.0, 2.0]) == 1
    assert _feed(es, [9.0, 8.0, 7.0]) is None
    assert es.best_score == 7.0
    assert es.stopped_epoch is None


def test_missing_key_warns_once_listing_keys() -> None:
    es = EarlyStopping(EarlyStoppingConfig(patience=0))
    trainer = ModelOnlyTrainer()
    es.on_train_begin(trainer)
    with pytest.warns(MissingMetricWarning, match=r"'val_loss'.*'loss', 'acc'") as record:
        es.on_epoch_end(trainer, 0, {"loss": 1.0, "acc": 0.5})
    es.on_epoch_end(trainer, 1, {"loss": 1.0, "acc": 0.5})  # no second warning (would error)
    assert len(record) == 1
    assert not es.should_stop


def test_missing_key_strict_raises() -> None:
    es = EarlyStopping(EarlyStoppingConfig(strict=True))
    with pytest.raises(KeyError, match="'loss'"):
        es.on_epoch_end(ModelOnlyTrainer(), 0, {"loss": 1.0})


def test_non_numeric_value_is_an_error() -> None:
    with pytest.raises(TypeError, match="not a number"):
        EarlyStopping().on_epoch_end(ModelOnlyTrainer(), 0, {"val_loss": "low"})


def test_state_dict_round_trip() -> None:
    es = EarlyStopping(EarlyStoppingConfig(patience=3))
    _feed(es, [2.0, 1.0, 1.5, 1.7])
    other = EarlyStopping(EarlyStoppingConfig(patience=3))
    other.load_state_dict(es.state_dict())
    assert other.state_dict() == es.state_dict()
    assert other.state_key == es.state_key == "EarlyStopping[val_loss]"
    # the restored instance continues the count: one more bad epoch stops it
    other.on_epoch_end(ModelOnlyTrainer(), 4, {"val_loss": 1.9})
    assert other.should_stop


def test_restore_best_weights_with_a_real_model() -> None:
    trainer = FullTrainer()
    es, snapshots = _best_run(trainer, patience=1)
    assert es.should_stop
    assert not all(
        bool((a == b).all()) for a, b in zip(params(trainer.model), snapshots[1], strict=True)
    )
    es.on_train_end(trainer)
    assert all(
        bool((a == b).all()) for a, b in zip(params(trainer.model), snapshots[1], strict=True)
    )


def test_stops_a_driven_loop_and_ends_training() -> None:
    es = EarlyStopping(EarlyStoppingConfig(patience=1))
    events = drive(ModelOnlyTrainer(), [es], [[1.0]] * 6, val_losses=[3, 2, 2.5, 2.6, 1, 1])
    assert events[-2:] == ["epoch_end:2", "train_end"]
    assert es.stopped_epoch == 2


@settings(max_examples=40, deadline=None)
@given(early_stopping_scores())
def test_matches_a_reference_model(
    case: tuple[list[float], int, float, Mode],
) -> None:
    scores, patience, min_delta, mode = case
    es = EarlyStopping(
        EarlyStoppingConfig(patience=patience, min_delta=min_delta, mode=mode, check_finite=False)
    )
    stopped = _feed(es, scores)
    sign = 1.0 if mode == "min" else -1.0
    best: float | None = None
    wait, expected = 0, None
    for epoch, score in enumerate(scores):
        if not math.isnan(score) and (best is None or sign * score < best - min_delta):
            best, wait = sign * score, 0
        else:
            wait += 1
            if wait >= patience:
                expected = epoch
                break
    assert stopped == expected
    assert es.wait_count == wait
    assert es.best_score == (None if best is None else sign * best)


def test_in_a_callback_list_with_spec_keyword() -> None:
    es = EarlyStopping(EarlyStoppingConfig(patience=0, monitor="loss"))
    cbs = CallbackList([es])
    cbs.on_epoch_end(ModelOnlyTrainer(), epoch=0, metrics={"loss": 0.5})
    cbs.on_epoch_end(ModelOnlyTrainer(), epoch=1, metrics={"loss": 0.6})
    assert es.should_stop


def test_model_state_unused_without_restore_option() -> None:
    es = EarlyStopping(EarlyStoppingConfig(patience=1))
    trainer = ModelOnlyTrainer(nnx.Linear(1, 1, rngs=nnx.Rngs(0)))
    es.on_train_begin(trainer)
    es.on_epoch_end(trainer, 0, {"val_loss": 1.0})
    es.on_train_end(trainer)  # nothing to restore: must not touch the model
    assert es.best_score == 1.0


def _as_saved(tree: Any) -> Any:
    """``tree`` as a checkpoint gives it back: string keys, NumPy leaves (keys as data)."""
    if isinstance(tree, dict):
        return {str(key): _as_saved(value) for key, value in tree.items()}
    return tree if jnp.issubdtype(tree.dtype, jax.dtypes.prng_key) else np.asarray(tree)


def _best_run(
    trainer: FullTrainer, *, patience: int = 2
) -> tuple[EarlyStopping, list[list[jax.Array]]]:
    """Epochs scored 3, 1, 2: epoch 1 is the best; with patience 2, no stop yet."""
    es = EarlyStopping(EarlyStoppingConfig(patience=patience, restore_best_weights=True))
    es.on_train_begin(trainer)
    snapshots = []
    for epoch, score in enumerate([3.0, 1.0, 2.0]):
        trainer.train_step()
        snapshots.append([jnp.copy(p) for p in params(trainer.model)])
        es.on_epoch_end(trainer, epoch, {"val_loss": score})
    assert es.should_stop is (patience < 2)
    return es, snapshots


def test_best_weights_are_the_array_state_and_survive_a_resume() -> None:
    es, snapshots = _best_run(FullTrainer())
    assert isinstance(es, ArrayStatefulCallback)
    saved = es.array_state()
    assert type(saved) is dict  # a pure dict, as Orbax saves it (not an nnx.State)
    # A fresh process: a callback and a model of another seed, loaded as a resume does.
    trainer = FullTrainer(seed=5)
    other = EarlyStopping(EarlyStoppingConfig(patience=2, restore_best_weights=True))
    other.load_state_dict(es.state_dict())
    other.load_array_state(_as_saved(saved))
    other.on_train_begin(trainer)
    assert other.array_state() is not None
    trainer.train_step()
    other.on_epoch_end(trainer, 3, {"val_loss": 2.5})  # no improvement: patience runs out
    assert other.should_stop
    assert (other.best_epoch, other.stopped_epoch) == (1, 3)
    other.on_train_end(trainer)
    for got, want in zip(params(trainer.model), snapshots[1], strict=True):
        np.testing.assert_array_equal(got, want)


def test_no_array_state_without_the_option_or_before_an_improvement() -> None:
    trainer = FullTrainer()
    assert EarlyStopping(EarlyStoppingConfig(restore_best_weights=True)).array_state() is None
    es = EarlyStopping(EarlyStoppingConfig(patience=2))
    es.on_train_begin(trainer)
    es.on_epoch_end(trainer, 0, {"val_loss": 1.0})
    assert es.array_state() is None
    # Loaded best weights are ignored without restore_best_weights.
    donor, _ = _best_run(FullTrainer())
    es.load_state_dict(donor.state_dict())
    es.load_array_state(donor.array_state())
    es.on_train_begin(trainer)
    assert es.array_state() is None


def test_loaded_best_weights_are_dropped_without_a_resume_and_checked() -> None:
    donor, _ = _best_run(FullTrainer())
    trainer = FullTrainer()
    es = EarlyStopping(EarlyStoppingConfig(patience=2, restore_best_weights=True))
    es.load_array_state(donor.array_state())
    es.on_train_begin(trainer)  # no load_state_dict: a fresh run resets everything
    assert es.array_state() is None
    # A load_state_dict without array state (a format-1 checkpoint) keeps none either.
    es.load_array_state(donor.array_state())
    es.load_state_dict(donor.state_dict())
    es.on_train_begin(trainer)
    assert es.array_state() is None
    # Best weights of another model are refused when they are placed.
    es.load_state_dict(donor.state_dict())
    es.load_array_state({"linear": {"kernel": np.zeros((3, 3), np.float32)}})
    with pytest.raises(ValueError, match="best weights"):
        es.on_train_begin(trainer)
