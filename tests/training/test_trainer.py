"""Unit tests of the reference Trainer: API, bad input, state, model sync, training."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from artifex.generative_models.training import ArrayBatcher, Trainer
from artifex.generative_models.training.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointableTrainer,
    StopRequester,
    TrainerLike,
    TrainerState,
)

Batch = tuple[jax.Array, jax.Array]


def mse(model: nnx.Linear, batch: Batch) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def mse_with_metrics(model: nnx.Linear, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    x, y = batch
    error = model(x) - y
    return jnp.mean(error**2), {"mae": jnp.mean(jnp.abs(error))}


def dataset(n: int = 32, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    x = jax.random.normal(jax.random.key(seed), (n, 2))
    return x, 3.0 * x[:, :1] - 2.0 * x[:, 1:] + 0.5


def batches(count: int = 4, seed: int = 0) -> list[Batch]:
    x, y = dataset(4 * count, seed)
    return [(x[4 * i : 4 * i + 4], y[4 * i : 4 * i + 4]) for i in range(count)]


def linear() -> nnx.Linear:
    return nnx.Linear(2, 1, rngs=nnx.Rngs(0))


def new_trainer(**options: Any) -> Trainer[nnx.Linear]:
    return Trainer(linear(), optax.sgd(0.1), mse, **options)


class Events(BaseCallback):
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        self.log.append(("train_begin", None))

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        self.log.append(("train_end", None))

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, /) -> None:
        self.log.append(("epoch_begin", epoch))

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        self.log.append(("epoch_end", epoch))

    def on_batch_begin(self, trainer: TrainerLike, batch: int, /) -> None:
        self.log.append(("batch_begin", batch))

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        self.log.append(("batch_end", batch))


# ------------------------------------------------------------------ protocols


def test_satisfies_the_trainer_protocols() -> None:
    trainer = new_trainer()
    assert isinstance(trainer, TrainerLike)
    assert isinstance(trainer, TrainerState)
    assert isinstance(trainer, CheckpointableTrainer)
    assert isinstance(trainer.model, nnx.Linear)


def test_callbacks_module_does_not_import_the_trainer() -> None:
    import subprocess
    import sys

    code = (
        "import sys, artifex.generative_models.training.callbacks as c; "
        "print('artifex.generative_models.training.trainer' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ training


def test_trains_a_small_model_well_below_its_start() -> None:
    x, y = dataset(256)
    trainer = Trainer(linear(), optax.adam(0.05), mse)
    start = trainer.evaluate([(x, y)])["loss"]
    history = trainer.fit(ArrayBatcher((x, y), batch_size=32, seed=1), epochs=20)
    end = trainer.evaluate([(x, y)])["loss"]
    assert len(history) == 20
    assert start > 1.0
    assert end < start / 100
    assert history[-1]["loss"] < history[0]["loss"] / 10
    kernel = np.asarray(trainer.model.kernel[...])
    np.testing.assert_allclose(kernel[:, 0], [3.0, -2.0], atol=0.05)


def test_the_users_module_is_trained_in_place_and_their_arrays_survive() -> None:
    model = linear()
    before = model.kernel[...]
    trainer = Trainer(model, optax.sgd(0.1), mse)
    trainer.fit(batches(), epochs=2)
    assert trainer.model is model
    assert not before.is_deleted()  # donation never consumes the user's arrays
    assert not np.allclose(np.asarray(before), np.asarray(model.kernel[...]))


def test_metrics_dict_and_epoch_means() -> None:
    data = batches()
    trainer = Trainer(linear(), optax.sgd(0.0), mse_with_metrics)  # lr 0: model fixed
    [logs] = trainer.fit(data, epochs=1, val_data=data[:2])
    per_batch = [mse_with_metrics(trainer.model, b) for b in data]
    assert logs["loss"] == pytest.approx(np.mean([float(loss) for loss, _ in per_batch]), rel=1e-5)
    assert logs["mae"] == pytest.approx(np.mean([float(m["mae"]) for _, m in per_batch]), rel=1e-5)
    assert set(logs) == {"loss", "mae", "val_loss", "val_mae"}
    assert all(type(v) is float for v in logs.values())
    val = trainer.evaluate(data[:2])
    assert logs["val_loss"] == pytest.approx(val["loss"])
    assert set(val) == {"loss", "mae"}


def test_eval_fn_is_used_for_validation_and_evaluate() -> None:
    def eval_fn(model: nnx.Linear, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
        return mse(model, batch), {"zero": jnp.zeros(())}

    trainer = Trainer(linear(), optax.sgd(0.1), mse, eval_fn=eval_fn)
    [logs] = trainer.fit(batches(), epochs=1, val_data=batches(2, seed=1))
    assert set(logs) == {"loss", "val_loss", "val_zero"}
    assert trainer.evaluate(batches(1))["zero"] == 0.0


def test_fit_twice_continues_counters_and_zero_epochs() -> None:
    events = Events()
    trainer = new_trainer(callbacks=[events])
    trainer.fit(batches(2), epochs=2)
    assert (trainer.step, trainer.epoch) == (4, 2)
    events.log.clear()
    trainer.fit(batches(2), epochs=1)
    assert events.log == [
        ("train_begin", None),
        ("epoch_begin", 2),
        ("batch_begin", 4),
        ("batch_end", 4),
        ("batch_begin", 5),
        ("batch_end", 5),
        ("epoch_end", 2),
        ("train_end", None),
    ]
    events.log.clear()
    assert trainer.fit(batches(2), epochs=0) == []
    assert events.log == [("train_begin", None), ("train_end", None)]
    assert trainer.status == "completed"


def test_callable_data_and_a_one_shot_iterator_for_one_epoch() -> None:
    data = batches(3)
    calls = []

    def factory() -> Iterator[Batch]:
        calls.append(1)
        return iter(data)

    trainer = new_trainer()
    trainer.fit(factory, epochs=2, val_data=lambda: data[:1])
    assert len(calls) == 2
    trainer.fit(iter(data), epochs=1)
    assert trainer.step == 9


def test_stop_training_flag_and_stopped_by() -> None:
    class FlagAt(BaseCallback):
        def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
            if batch == 1:
                assert isinstance(trainer, Trainer)
                trainer.stop_training = True

    trainer = new_trainer(callbacks=[FlagAt()])
    history = trainer.fit(batches(4), epochs=3, val_data=batches(1))
    status: str = trainer.status
    assert status == "stopped"
    assert trainer.stopped_by is trainer
    assert trainer.step == 2
    assert len(history) == 1
    assert "val_loss" not in history[0]  # validation skipped after a batch stop
    trainer.fit(batches(1), epochs=1)  # the flag is reset by the next fit
    assert trainer.status == "completed"
    assert trainer.step == 3


class StopAfterBatch(BaseCallback):
    def __init__(self, at: int) -> None:
        self.at = at
        self.stop = False

    @property
    def should_stop(self) -> bool:
        return self.stop

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        self.stop = batch == self.at


def test_nested_stop_requester_is_found() -> None:
    stopper = StopAfterBatch(0)
    assert isinstance(stopper, StopRequester)
    trainer = new_trainer(callbacks=CallbackList([CallbackList([stopper])]))
    trainer.fit(batches(3), epochs=2)
    assert trainer.stopped_by is stopper
    assert trainer.step == 1


def test_stop_inside_a_chunk_discards_later_steps_exactly() -> None:
    """Chunked training stopped at step 4 ends where unchunked training stopped at 4 does."""
    x, y = dataset(40)
    results = []
    for chunk in (1, 3):
        batcher = ArrayBatcher((x, y), batch_size=4, seed=2)
        stopper = StopAfterBatch(4)
        trainer = new_trainer(callbacks=[stopper], steps_per_execution=chunk)
        [logs] = trainer.fit(batcher, epochs=1)
        assert trainer.step == 5
        assert batcher.state_dict() == {"seed": 2, "epoch": 0, "position": 5}
        results.append((np.asarray(trainer.model.kernel[...]), logs["loss"]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    assert results[0][1] == pytest.approx(results[1][1], rel=1e-5)


@pytest.mark.parametrize("at", [0, 1])
def test_a_stop_among_leftovers_gives_back_the_batches_fetched_after_it(at: int) -> None:
    """A stop at a leftover step leaves the data where an unchunked run leaves it.

    14 examples in batches of 4 have shapes 4, 4, 4, 2: with chunks of 4, the ragged
    fourth batch is fetched before the first three run, one at a time, as leftovers. A
    stop at one of them gives back every batch fetched after it.
    """
    x, y = dataset(14)
    results = []
    for chunk in (1, 4):
        batcher = ArrayBatcher((x, y), batch_size=4, seed=3)
        trainer = new_trainer(callbacks=[StopAfterBatch(at)], steps_per_execution=chunk)
        [logs] = trainer.fit(batcher, epochs=1)
        assert trainer.step == at + 1
        assert batcher.state_dict() == {"seed": 3, "epoch": 0, "position": at + 1}
        results.append((np.asarray(trainer.model.kernel[...]), logs["loss"]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    assert results[0][1] == pytest.approx(results[1][1], rel=1e-5)


def test_a_chunked_run_equals_an_unchunked_run() -> None:
    x, y = dataset(44)  # 11 batches: chunks of 3, then two single steps
    kernels = []
    for chunk in (1, 3):
        trainer = new_trainer(steps_per_execution=chunk)
        trainer.fit(ArrayBatcher((x, y), batch_size=4, seed=5), epochs=2)
        assert trainer.step == 22
        kernels.append(np.asarray(trainer.model.kernel[...]))
    np.testing.assert_allclose(kernels[0], kernels[1], rtol=1e-5)


# ------------------------------------------------------------------ model sync


def test_model_is_synced_for_callbacks_and_changes_are_picked_up() -> None:
    seen: list[float] = []

    class Reader(BaseCallback):
        def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
            model = trainer.model
            assert isinstance(model, nnx.Linear)
            assert model.bias is not None
            seen.append(float(model.bias[...][0]))

    class Zeroer(BaseCallback):
        def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
            model = trainer.model
            assert isinstance(model, nnx.Linear)
            assert model.bias is not None
            model.bias[...] = jnp.full((1,), 100.0)

    trainer = new_trainer(callbacks=[Reader(), Zeroer()])
    trainer.fit(batches(2), epochs=2)
    assert len(set(seen)) == 4  # a new value after every step
    # The callback's change at the end of epoch 0 was trained on from there.
    assert abs(seen[2] - 100.0) < abs(seen[1] - 100.0)
    bias = trainer.model.bias
    assert bias is not None
    assert float(bias[...][0]) == 100.0  # and epoch 1's change stays


@pytest.mark.parametrize("steps_per_execution", [1, 2])
def test_the_model_read_or_written_at_on_batch_begin_is_the_one_the_step_trains(
    steps_per_execution: int,
) -> None:
    # Before the fix, a read at on_batch_begin handed out arrays that the step then
    # donated: the next step failed with JAX's "Buffer has been deleted or donated".
    class Reader(BaseCallback):
        def on_batch_begin(self, trainer: TrainerLike, batch: int, /) -> None:
            assert isinstance(trainer.model, nnx.Linear)

    class Setter(BaseCallback):
        def on_batch_begin(self, trainer: TrainerLike, batch: int, /) -> None:
            model = trainer.model
            assert isinstance(model, nnx.Linear)
            assert model.bias is not None
            if batch == 2:
                model.bias[...] = jnp.full((1,), 100.0)

    options = {"steps_per_execution": steps_per_execution}
    plain, reader = new_trainer(**options), new_trainer(callbacks=[Reader()], **options)
    plain.fit(batches(3), epochs=2)
    reader.fit(batches(3), epochs=2)
    np.testing.assert_array_equal(plain.model.kernel[...], reader.model.kernel[...])
    setter = new_trainer(callbacks=[Setter()])
    setter.fit(batches(3), epochs=1)
    bias = setter.model.bias
    assert bias is not None
    # Step 2 trained from the value set at its on_batch_begin: one SGD step (of about 20)
    # below it, not the value of about 0.5 that the steps alone reach.
    assert 50.0 < float(bias[...][0]) < 100.0


def test_state_dict_round_trip_and_arrays_are_not_donated_later() -> None:
    x, y = dataset(24)
    batcher = ArrayBatcher((x, y), batch_size=4, seed=7)
    trainer = Trainer(linear(), optax.adam(0.01), mse)
    trainer.fit(batcher, epochs=1)
    saved = trainer.state_dict()
    assert set(saved) == {"model", "opt_state", "step", "epoch", "data"}
    assert saved["data"] == {"seed": 7, "epoch": 1, "position": 0}
    assert (saved["step"], saved["epoch"]) == (6, 1)
    kernel = np.asarray(saved["model"]["kernel"][...])
    trainer.fit(batcher, epochs=1)
    assert not saved["model"]["kernel"][...].is_deleted()
    assert all(not leaf.is_deleted() for leaf in jax.tree.leaves(saved["opt_state"]))
    after_two = np.asarray(trainer.model.kernel[...])

    other = Trainer(linear(), optax.adam(0.01), mse)
    other_batcher = ArrayBatcher((x, y), batch_size=4, seed=0)
    other.load_state_dict(saved)
    np.testing.assert_allclose(np.asarray(other.model.kernel[...]), kernel)
    other.fit(other_batcher, epochs=1)  # the pending data position is applied
    assert other_batcher.state_dict() == {"seed": 7, "epoch": 2, "position": 0}
    assert (other.step, other.epoch) == (12, 2)
    np.testing.assert_allclose(np.asarray(other.model.kernel[...]), after_two, rtol=1e-6)


def test_load_state_dict_rejects_a_foreign_optimizer_state() -> None:
    trainer = Trainer(linear(), optax.adam(0.01), mse)
    saved = new_trainer().state_dict()  # sgd: a different optimizer state
    with pytest.raises(ValueError, match="opt_state"):
        trainer.load_state_dict(saved)
    with pytest.raises(KeyError, match="'step'"):
        trainer.load_state_dict({"model": saved["model"], "opt_state": None, "epoch": 0})


def test_dropout_rng_state_advances() -> None:
    class Net(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.linear = nnx.Linear(2, 1, rngs=rngs)
            self.dropout = nnx.Dropout(0.5, rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.linear(self.dropout(x))

    def loss(model: Net, batch: Batch) -> jax.Array:
        x, y = batch
        return jnp.mean((model(x) - y) ** 2)

    model = Net(nnx.Rngs(0))
    trainer = Trainer(model, optax.sgd(0.1), loss)
    rngs = model.dropout.rngs
    assert rngs is not None
    count = int(rngs.count[...])
    trainer.fit(batches(3), epochs=1)
    assert trainer.model.dropout.rngs is rngs
    assert int(rngs.count[...]) == count + 3


# ------------------------------------------------------------------ bad input


def test_bad_constructor_arguments_name_the_culprit() -> None:
    with pytest.raises(TypeError, match=r"model must be an nnx\.Module, got dict"):
        Trainer({"w": 1}, optax.sgd(0.1), mse)  # type: ignore[type-var, arg-type]  # deliberately wrong  # ty: ignore[invalid-argument-type]
    with pytest.raises(TypeError, match="optimizer must be an optax"):
        Trainer(linear(), "adam", mse)  # type: ignore[type-var]  # deliberately wrong  # ty: ignore[invalid-argument-type]
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        Trainer(linear(), optax.sgd(0.1), 3)  # type: ignore[arg-type]  # deliberately wrong  # ty: ignore[invalid-argument-type]
    with pytest.raises(ValueError, match="steps_per_execution must be >= 1, got 0"):
        new_trainer(steps_per_execution=0)
    with pytest.raises(TypeError, match="is not a TrainingCallback"):
        new_trainer(callbacks=[object()])


def test_bad_epochs() -> None:
    trainer = new_trainer()
    with pytest.raises(ValueError, match="epochs must be >= 0, got -1"):
        trainer.fit(batches(), epochs=-1)
    with pytest.raises(TypeError, match="epochs must be an int, got float"):
        trainer.fit(batches(), epochs=1.0)  # type: ignore[arg-type]  # deliberately wrong  # ty: ignore[invalid-argument-type]


def test_empty_training_data_fails_the_run() -> None:
    events = Events()
    trainer = new_trainer(callbacks=[events])
    with pytest.raises(ValueError, match="train_data yielded no batches in epoch 0"):
        trainer.fit([], epochs=1)
    assert trainer.status == "failed"
    assert events.log[-1] == ("train_end", None)
    with pytest.raises(ValueError, match="data yielded no batches"):
        trainer.evaluate([])


def test_one_shot_iterator_with_several_epochs_is_rejected() -> None:
    with pytest.raises(TypeError, match="train_data is a one-shot iterator"):
        new_trainer().fit(iter(batches()), epochs=2)
    with pytest.raises(TypeError, match="train_data must be an iterable"):
        new_trainer().fit(3, epochs=1)  # type: ignore[arg-type]  # deliberately wrong  # ty: ignore[invalid-argument-type]


def test_non_scalar_loss() -> None:
    def loss(model: nnx.Linear, batch: Batch) -> jax.Array:
        x, y = batch
        return (model(x) - y) ** 2

    trainer = Trainer(linear(), optax.sgd(0.1), loss)
    with pytest.raises(ValueError, match=r"loss_fn must return a scalar loss, got .* \(4, 1\)"):
        trainer.fit(batches(), epochs=1)
    assert trainer.status == "failed"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (lambda loss: (loss, loss, loss), "tuple of 3 item"),
        (lambda loss: (loss, [loss]), "tuple of 2 item"),
        (lambda loss: [loss], "it returned list"),
        (lambda loss: (loss, {"loss": loss}), "must not be named 'loss'"),
        (lambda loss: (loss, {"acc": jnp.ones(3)}), "metric 'acc' must be a scalar"),
    ],
)
def test_wrong_loss_fn_return_shape(output: Any, message: str) -> None:
    trainer = Trainer(linear(), optax.sgd(0.1), lambda m, b: output(mse(m, b)))
    with pytest.raises((TypeError, ValueError), match=message):
        trainer.fit(batches(), epochs=1)


def test_batch_with_a_different_structure() -> None:
    data: list[Any] = batches(3)
    data[2] = {"x": data[2][0], "y": data[2][1]}
    events = Events()
    trainer = new_trainer(callbacks=[events])
    with pytest.raises(ValueError, match="train_data batch 2 of epoch 0 has structure"):
        trainer.fit(data, epochs=1)
    assert trainer.step == 2
    assert events.log[-1] == ("train_end", None)


def test_failure_propagates_same_object_and_teardown_error_is_a_note() -> None:
    class Boom(Exception):
        pass

    error = Boom("step 1")

    class Raiser(BaseCallback):
        def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
            if batch == 1:
                raise error

    class BadTeardown(BaseCallback):
        def __init__(self) -> None:
            self.status: object = None

        def on_train_end(self, trainer: TrainerLike, /) -> None:
            assert isinstance(trainer, Trainer)
            self.status = (trainer.status, trainer.error)
            raise RuntimeError("teardown failed")

    teardown = BadTeardown()
    trainer = new_trainer(callbacks=[Raiser(), teardown])
    with pytest.raises(Boom) as caught:
        trainer.fit(batches(), epochs=1)
    assert caught.value is error
    assert teardown.status == ("failed", error)
    assert any("teardown failed" in note for note in caught.value.__notes__)
