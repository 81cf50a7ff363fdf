"""Training and evaluation modes: dropout and batch norm against hand-written references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from artifex.generative_models.training import Trainer
from artifex.generative_models.training.callbacks import (
    BaseCallback,
    CheckpointConfig,
    LambdaCallback,
    ModelCheckpoint,
    TrainerLike,
)
from tests.training._models import (
    DropoutBatchNorm,
    batch_stats,
    batches,
    eval_mode_mean,
    host_state,
    mean_loss,
    mse,
    new_model,
    params,
    reference_losses,
)

TRAIN = batches(8)
VAL = batches(3, seed=1)


def adam() -> optax.GradientTransformation:
    return optax.adam(1e-2)


class Recorder(BaseCallback):
    """Keeps every batch loss, and what the model looked like around each validation."""

    def __init__(self) -> None:
        self.losses: list[jax.Array] = []
        self.before_validation: list[DropoutBatchNorm] = []
        self.validation_logs: list[dict[str, Any]] = []
        self.modes: list[tuple[bool | None, bool | None]] = []

    def _mode(self, trainer: TrainerLike) -> None:
        model = trainer.model
        assert isinstance(model, DropoutBatchNorm)
        self.modes.append((model.dropout.deterministic, model.norm.use_running_average))

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        self.losses.append(logs["loss"])

    def on_validation_begin(self, trainer: TrainerLike, /) -> None:
        self._mode(trainer)
        model = trainer.model
        assert isinstance(model, DropoutBatchNorm)
        self.before_validation.append(nnx.clone(model))

    def on_validation_end(self, trainer: TrainerLike, logs: dict[str, Any], /) -> None:
        self._mode(trainer)
        self.validation_logs.append(dict(logs))


@pytest.mark.parametrize("chunk", [1, 4])
def test_training_matches_a_hand_written_loop_with_the_same_rng_streams(chunk: int) -> None:
    recorder = Recorder()
    trainer = Trainer(new_model(), adam(), mse, callbacks=[recorder], steps_per_execution=chunk)
    trainer.fit(TRAIN, epochs=2)
    reference = new_model()
    expected = reference_losses(reference, adam(), TRAIN, epochs=2)
    got = [float(loss) for loss in recorder.losses]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert len(set(got[:8])) == 8  # fresh dropout masks every step
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        (params(trainer.model), batch_stats(trainer.model)),
        (params(reference), batch_stats(reference)),
    )


@pytest.mark.parametrize("chunk", [1, 4])
def test_validation_and_evaluate_run_in_eval_mode_on_their_own_graph(chunk: int) -> None:
    recorder = Recorder()
    trainer = Trainer(new_model(), adam(), mse, callbacks=[recorder], steps_per_execution=chunk)
    history = trainer.fit(TRAIN, epochs=2, val_data=VAL)
    for epoch, model in enumerate(recorder.before_validation):
        expected = eval_mode_mean(model, VAL)
        assert recorder.validation_logs[epoch] == {"loss": expected}
        assert history[epoch]["val_loss"] == expected
    # Callbacks see the user's module, in training mode, in every hook.
    assert recorder.modes == [(False, False)] * 4
    assert trainer.model.dropout.deterministic is False
    assert trainer.model.norm.use_running_average is False
    # evaluate: the same eval-mode pass, repeatable, and it changes no statistic.
    stats = batch_stats(trainer.model)
    first, second = trainer.evaluate(VAL), trainer.evaluate(VAL)
    assert first == second == {"loss": eval_mode_mean(trainer.model, VAL)}
    jax.tree.map(np.testing.assert_array_equal, batch_stats(trainer.model), stats)


def test_validation_never_updates_the_running_statistics() -> None:
    validated = Trainer(new_model(), adam(), mse)
    validated.fit(TRAIN, epochs=2, val_data=VAL)
    plain = Trainer(new_model(), adam(), mse)
    plain.fit(TRAIN, epochs=2)
    jax.tree.map(
        np.testing.assert_array_equal,
        (batch_stats(validated.model), params(validated.model)),
        (batch_stats(plain.model), params(plain.model)),
    )


def test_eval_mode_false_evaluates_the_module_as_it_is() -> None:
    trainer = Trainer(new_model(), adam(), mse, eval_mode=False)
    stats = batch_stats(trainer.model)
    training_mode = trainer.evaluate(VAL)
    assert training_mode != {"loss": eval_mode_mean(trainer.model, VAL)}
    jax.tree.map(np.testing.assert_array_equal, batch_stats(trainer.model), stats)


def test_eval_mode_mapping_sets_the_named_attributes_only() -> None:
    # Only dropout is switched off: batch norm still normalises with the batch's stats.
    trainer = Trainer(new_model(), adam(), mse, eval_mode={"deterministic": True})
    copy: DropoutBatchNorm = nnx.clone(trainer.model)
    copy.set_attributes(deterministic=True)
    assert trainer.evaluate(VAL) == {"loss": mean_loss(copy, VAL)}


def test_eval_fn_receives_the_eval_mode_model() -> None:
    seen: list[tuple[bool | None, bool | None]] = []

    def eval_fn(model: DropoutBatchNorm, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
        seen.append((model.dropout.deterministic, model.norm.use_running_average))
        return mse(model, batch)

    trainer = Trainer(new_model(), adam(), mse, eval_fn=eval_fn)
    trainer.fit(TRAIN, epochs=1, val_data=VAL)
    assert seen
    assert set(seen) == {(True, True)}


def test_a_model_without_mode_flags_needs_no_second_graph() -> None:
    model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    trainer = Trainer(model, adam(), lambda m, b: jnp.mean((m(b[0]) - b[1]) ** 2))
    trainer.fit(TRAIN, epochs=1, val_data=VAL)
    steps = trainer._steps  # the compiled steps share the one graph definition
    assert steps.eval_graphdef is steps.layout.graphdef


@pytest.mark.parametrize(
    ("eval_mode", "error", "match"),
    [
        ({"no_such_flag": True}, ValueError, r"eval_mode .*no_such_flag"),
        ("eval", TypeError, r"eval_mode must be a bool or a mapping.*'eval'"),
        ({1: True}, TypeError, r"eval_mode must be a bool or a mapping"),
    ],
)
def test_bad_eval_mode_is_refused_naming_it(
    eval_mode: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        Trainer(new_model(), adam(), mse, eval_mode=eval_mode)


def test_dropout_runs_are_reproducible_across_a_resume(tmp_path: Path) -> None:
    def checkpointing(directory: Path) -> list[Any]:
        return [ModelCheckpoint(CheckpointConfig(dirpath=directory, async_save=False))]

    straight = Trainer(new_model(), adam(), mse)
    straight.fit(TRAIN, epochs=4, val_data=VAL)
    first = Trainer(new_model(), adam(), mse, callbacks=checkpointing(tmp_path / "ckpt"))
    first.fit(TRAIN, epochs=2, val_data=VAL)
    resumed = Trainer(new_model(seed=5), adam(), mse, callbacks=checkpointing(tmp_path / "ckpt"))
    history = resumed.fit(TRAIN, epochs=2, val_data=VAL, resume_from=tmp_path / "ckpt")
    assert len(history) == 2
    assert resumed.step == straight.step == 32
    jax.tree.map(
        np.testing.assert_array_equal, host_state(resumed.model), host_state(straight.model)
    )


def test_losses_seen_by_a_callback_are_device_scalars() -> None:
    seen: list[object] = []
    callback = LambdaCallback(on_batch_end=lambda trainer, batch, logs: seen.append(logs["loss"]))
    Trainer(new_model(), adam(), mse, callbacks=[callback]).fit(TRAIN, epochs=1)
    assert all(isinstance(loss, jax.Array) and loss.shape == () for loss in seen)


def call_eval(model: nnx.Module) -> None:
    """``model.eval()``, as the user writes it."""
    model.eval()  # type: ignore[no-untyped-call]  # Flax leaves eval() unannotated


class ForgetsTrainMode(BaseCallback):
    """The eval-mode trap: evaluates with model.eval() and never calls model.train()."""

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any]) -> None:
        model = trainer.model
        assert isinstance(model, nnx.Module)
        call_eval(model)


@pytest.mark.parametrize("chunk", [1, 2])
def test_a_callback_forgetting_train_mode_is_restored_and_named_once(chunk: int) -> None:
    model = new_model()
    trainer = Trainer(model, adam(), mse, callbacks=[ForgetsTrainMode()], steps_per_execution=chunk)
    with pytest.warns(RuntimeWarning) as caught:
        trainer.fit(TRAIN, epochs=3)
    assert len(caught) == 1  # once, though every epoch end changes the flags
    message = str(caught[0].message)
    assert "dropout.deterministic (False -> True)" in message
    assert "norm.use_running_average (False -> True)" in message
    assert "on_epoch_end" in message
    assert "ForgetsTrainMode (on_epoch_end)" in message
    assert "model.train()" in message
    assert "(loss, {'accuracy': ...})" in message
    # every step trained in training mode: the same parameters as a run without it
    reference = new_model()
    Trainer(reference, adam(), mse, steps_per_execution=chunk).fit(TRAIN, epochs=3)
    assert trainer.step == 3 * len(TRAIN)
    jax.tree.map(np.testing.assert_allclose, params(model), params(reference))
    assert model.dropout.deterministic is True  # the last epoch end's eval() stands


def test_a_changed_structure_and_mode_names_both_and_the_hooks() -> None:
    class AddsAVariable(BaseCallback):
        def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any]) -> None:
            model = trainer.model
            assert isinstance(model, DropoutBatchNorm)
            call_eval(model)
            setattr(model, "extra", nnx.Param(jnp.zeros(())))  # noqa: B010  # not a declared field

    trainer = Trainer(new_model(), adam(), mse, callbacks=[AddsAVariable()])
    with pytest.raises(RuntimeError, match="structure changed during training") as info:
        trainer.fit(TRAIN, epochs=2)
    assert "its mode flags changed too: dropout.deterministic (False -> True)" in str(info.value)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "AddsAVariable (on_epoch_end)" in notes


def test_evaluate_after_model_eval_restores_train_mode_with_a_warning() -> None:
    model = new_model()
    trainer = Trainer(model, adam(), mse)
    trainer.fit(TRAIN[:2], epochs=1)
    call_eval(trainer.model)
    with pytest.warns(RuntimeWarning, match=r"before Trainer.evaluate"):
        trainer.evaluate(VAL)
    assert model.dropout.deterministic is False
