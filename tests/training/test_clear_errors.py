"""Clear errors (issue 18): each bad input gets a TypeError/ValueError naming the argument.

Each case asserts the exception type and that the message names the argument and the
offending value. The NumPy rule: an integer argument takes a Python ``int`` or a NumPy
integer scalar, used as an ``int``, everywhere (configs, the trainer, the batcher).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    EarlyStoppingConfig,
    MemoryProfilerConfig,
    restore_checkpoint,
)
from artifex.generative_models.training.data import ArrayBatcher
from artifex.generative_models.training.trainer import Trainer
from tests.training._models import DropoutBatchNorm, batches, mse, new_model


@pytest.mark.parametrize("devices", [5, object(), "cpu"])
def test_memory_profiler_devices_must_be_a_sequence(devices: object) -> None:
    with pytest.raises(TypeError, match=r"devices must be a sequence.*got"):
        MemoryProfilerConfig(devices=devices)  # type: ignore[arg-type]  # the bad input under test  # ty: ignore[invalid-argument-type]


def test_memory_profiler_devices_are_copied_and_iterators_refused() -> None:
    class Device:
        def memory_stats(self) -> dict[str, int]:
            return {}

    given = [Device()]
    with pytest.raises(TypeError, match=r"devices must be a sequence.*list_iterator"):
        MemoryProfilerConfig(devices=iter(given))  # type: ignore[arg-type]  # the bad input under test  # ty: ignore[invalid-argument-type]
    config = MemoryProfilerConfig(devices=given)
    given.append(Device())
    assert config.devices is not None
    assert len(config.devices) == 1


def test_checkpoint_dirpath_with_a_null_byte() -> None:
    with pytest.raises(ValueError, match=r"dirpath must not contain a null byte, got 'a\\x00b'"):
        CheckpointConfig(dirpath="a\0b")


def test_trainer_needs_a_loss_fn() -> None:
    with pytest.raises(TypeError, match="loss_fn must be callable, got NoneType None"):
        Trainer(new_model(), optax.sgd(0.1), None)  # type: ignore[arg-type]  # the bad input under test  # ty: ignore[invalid-argument-type]


@pytest.mark.parametrize("wrt", [5, 2.5, object()])
def test_trainer_wrt_must_be_a_filter(wrt: object) -> None:
    with pytest.raises(TypeError, match=r"wrt must be an NNX filter .*got"):
        Trainer(new_model(), optax.sgd(0.1), mse, wrt=wrt)  # type: ignore[arg-type]  # the bad input under test  # ty: ignore[invalid-argument-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"directory": None}, TypeError, "directory must be a checkpoint directory.*NoneType None"),
        ({"directory": 5}, TypeError, "directory must be a checkpoint directory.*int 5"),
        ({"directory": ""}, ValueError, "directory must be a non-empty path, got ''"),
        ({"directory": "a\0b"}, ValueError, "directory must not contain a null byte"),
        ({"step": 6.0}, TypeError, "step must be an int, got float 6.0"),
        ({"step": "6"}, TypeError, "step must be an int, got str '6'"),
        ({"step": -1}, ValueError, "step must be >= 0, got -1"),
        ({"target": "model"}, TypeError, "target must be None, an nnx.Module .*str 'model'"),
        ({"target": 5}, TypeError, "target must be None, an nnx.Module .*int 5"),
    ],
)
def test_restore_checkpoint_arguments(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    arguments: dict[str, Any] = {"directory": tmp_path, **kwargs}
    with pytest.raises(error, match=message):
        restore_checkpoint(**arguments)


def test_restore_checkpoint_given_a_file_says_so(tmp_path: Path) -> None:
    marker = tmp_path / "artifex_checkpoints.json"
    marker.write_text("{}")
    with pytest.raises(
        NotADirectoryError, match=r"directory must be a checkpoint directory, got the file"
    ):
        restore_checkpoint(marker)


@pytest.mark.parametrize(
    ("resume_from", "error", "message"),
    [
        (5, TypeError, "resume_from must be a checkpoint directory.*int 5"),
        ("", ValueError, "resume_from must be a non-empty path, got ''"),
        ("file", NotADirectoryError, "resume_from must be a checkpoint directory, got the file"),
    ],
)
def test_resume_from_arguments(
    tmp_path: Path, resume_from: object, error: type[Exception], message: str
) -> None:
    (tmp_path / "file").write_text("")
    trainer = Trainer(new_model(), optax.sgd(0.1), mse)
    bad = tmp_path / "file" if resume_from == "file" else resume_from
    with pytest.raises(error, match=message):
        trainer.fit([], epochs=0, resume_from=bad)  # type: ignore[arg-type]  # the bad input under test  # ty: ignore[invalid-argument-type]


# ------------------------------------------------ one rule for NumPy integer scalars


def test_numpy_integer_scalars_are_ints_everywhere() -> None:
    config = EarlyStoppingConfig(patience=np.int64(3))  # type: ignore[arg-type]  # NumPy ints are accepted  # ty: ignore[invalid-argument-type]
    assert type(config.patience) is int
    assert config.patience == 3
    assert ArrayBatcher({"x": np.zeros((4, 1))}, batch_size=np.int32(2)).batch_size == 2  # type: ignore[arg-type]  # likewise  # ty: ignore[invalid-argument-type]
    trainer = Trainer(new_model(), optax.sgd(0.1), mse, steps_per_execution=np.int64(1))  # type: ignore[arg-type]  # likewise  # ty: ignore[invalid-argument-type]
    assert type(trainer.steps_per_execution) is int


@pytest.mark.parametrize("bad", [True, np.bool_(True), 2.0, "2"])
def test_non_integers_are_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(TypeError, match=f"patience must be an int, got {type(bad).__qualname__}"):
        EarlyStoppingConfig(patience=bad)  # type: ignore[arg-type]  # the bad input under test  # ty: ignore[invalid-argument-type]


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_, jnp.complex64])
def test_loss_fn_must_return_a_real_float(dtype: Any) -> None:
    def loss(model: DropoutBatchNorm, batch: Any) -> jax.Array:
        return mse(model, batch).astype(dtype)

    trainer = Trainer(new_model(), optax.sgd(0.1), loss)
    with pytest.raises(
        TypeError, match=r"loss_fn must return a real floating-point loss, got dtype"
    ):
        trainer.fit(batches(1), epochs=1)


# ------------------------------------------------ batches JAX cannot take (issue 18)

X, Y = batches(1)[0]


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (("abc", Y), r"batch 0 of epoch 0 holds a leaf of type str at \[0\] \('abc'\)"),
        ((X, object()), r"batch 0 of epoch 0 holds a leaf of type object at \[1\]"),
        (
            {"x": X, "y": np.array(["a"])},
            r"batch 0 of epoch 0 holds a leaf of type ndarray of dtype <U1 at \['y'\]",
        ),
        ("abc", r"batch 0 of epoch 0 is a str \('abc'\)"),
        (None, r"batch 0 of epoch 0 is None"),
    ],
)
def test_a_batch_jax_cannot_take_is_named(batch: object, message: str) -> None:
    trainer = Trainer(new_model(), optax.sgd(0.1), mse)
    with pytest.raises(TypeError, match=f"^train_data {message}.*a batch must be a pytree"):
        trainer.fit([batch], epochs=1)


@pytest.mark.parametrize("steps_per_execution", [1, 2])
def test_a_later_bad_batch_is_named_with_its_index(steps_per_execution: int) -> None:
    # With two steps per execution the bad batches 2 and 3 share a chunk.
    good = batches(2)
    data = [*good, (X, object()), (X, object())]
    trainer = Trainer(new_model(), optax.sgd(0.1), mse, steps_per_execution=steps_per_execution)
    with pytest.raises(
        TypeError, match=r"^train_data batch 2 of epoch 0 holds a leaf of type object"
    ):
        trainer.fit(data, epochs=1)
    assert trainer.step == 2


def test_a_bad_validation_or_evaluation_batch_is_named() -> None:
    trainer = Trainer(new_model(), optax.sgd(0.1), mse)
    with pytest.raises(TypeError, match=r"^val_data batch 1 holds a leaf of type str at \[1\]"):
        trainer.fit(batches(1), epochs=1, val_data=[(X, Y), (X, "abc")])
    with pytest.raises(TypeError, match=r"^data batch 0 is None"):
        trainer.evaluate([None])


def test_python_lists_in_a_batch_are_pytrees_and_a_failure_says_so() -> None:
    # JAX takes nested lists of numbers as pytrees of scalars: nothing is refused, but
    # when loss_fn fails on them a note names the batch and the list.
    listed = (np.asarray(X).tolist(), np.asarray(Y).tolist())
    trainer = Trainer(new_model(), optax.sgd(0.1), mse)
    with pytest.raises(TypeError) as caught:
        trainer.fit([listed], epochs=1)
    assert any(
        "train_data batch 0 of epoch 0 holds a Python list at [0]" in note
        for note in getattr(caught.value, "__notes__", [])
    )


def test_an_nnx_optimizer_is_refused_in_one_line() -> None:
    model = new_model()
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    assert "\n" in repr(optimizer)  # what the message must not print
    with pytest.raises(TypeError, match="pass the optax transformation you built it with") as info:
        Trainer(model, optimizer, mse)  # type: ignore[type-var]  # the bad input under test  # ty: ignore[invalid-argument-type]
    assert "\n" not in str(info.value)
    assert "nnx.Optimizer" in str(info.value)


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("optimizer", new_model, r"optimizer must be an optax .*, got DropoutBatchNorm$"),
        ("loss_fn", lambda: np.zeros((50, 50)), r"loss_fn must be callable, got ndarray$"),
        ("model", lambda: np.zeros((50, 50)), r"model must be an nnx\.Module, got ndarray$"),
        ("eval_mode", lambda: [True] * 40, r"eval_mode must be a bool or a mapping.*, got list$"),
    ],
)
def test_errors_name_a_big_value_by_its_type_never_its_repr(
    field: str, bad: Callable[[], object], message: str
) -> None:
    given: dict[str, Any] = {"model": new_model(), "optimizer": optax.sgd(0.1), "loss_fn": mse}
    given[field] = bad()
    assert len(repr(given[field])) > 60
    with pytest.raises(TypeError, match=message) as info:
        Trainer(**given)
    assert "\n" not in str(info.value)


def test_a_short_value_is_still_shown() -> None:
    with pytest.raises(TypeError, match=r"loss_fn must be callable, got int 3$"):
        Trainer(new_model(), optax.sgd(0.1), 3)  # type: ignore[arg-type]  # the bad input under test  # ty: ignore[invalid-argument-type]


def test_a_wrong_input_shape_keeps_its_error_and_names_loss_fn_and_the_batch() -> None:
    raised: list[BaseException] = []

    def loss_fn(model: DropoutBatchNorm, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
        try:
            return mse(model, batch)
        except Exception as error:  # the very object fit must propagate
            raised.append(error)
            raise

    wrong = [(jnp.ones((4, 5)), jnp.ones((4, 1)))]  # the model takes 3 features
    trainer = Trainer(new_model(), optax.sgd(0.1), loss_fn)
    with pytest.raises(Exception, match=r"broadcast|shape|dot_general") as info:  # Flax's type
        trainer.fit(wrong, epochs=1)
    assert len(raised) == 1
    assert info.value is raised[0]
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "raised in loss_fn, which the trainer calls as loss_fn(model, batch)" in notes
    assert "batch = (float32[4,5], float32[4,1])" in notes


def test_a_wrong_loss_fn_signature_names_how_the_trainer_calls_it() -> None:
    def loss_fn(model: DropoutBatchNorm, x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.mean((model(x) - y) ** 2)

    trainer = Trainer(new_model(), optax.sgd(0.1), loss_fn)  # type: ignore[arg-type]  # the bad input under test  # ty: ignore[invalid-argument-type]
    with pytest.raises(TypeError, match="missing 1 required positional argument") as info:
        trainer.fit(batches(1), epochs=1)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "loss_fn(model, batch)" in notes
    assert "batch = (float32[4,3], float32[4,1])" in notes


def test_an_eval_fn_failure_is_noted_with_its_name_and_a_dict_batch() -> None:
    def eval_fn(model: DropoutBatchNorm, batch: dict[str, jax.Array]) -> jax.Array:
        raise ValueError("bad eval")

    trainer = Trainer(new_model(), optax.sgd(0.1), mse, eval_fn=eval_fn)
    with pytest.raises(ValueError, match="bad eval") as info:
        trainer.evaluate([{"x": jnp.ones((2, 3), jnp.int32)}])
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "eval_fn(model, batch)" in notes
    assert "batch = {'x': int32[2,3]}" in notes
