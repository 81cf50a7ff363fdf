"""Run-time conformance of the protocols, over the cases the typing checks use."""

from __future__ import annotations

import pytest

from artifex.generative_models.training.callbacks import (
    BaseCallback,
    CallbackList,
    TrainerLike,
    TrainingCallback,
)
from tests.typing.cases import (
    AttributeTrainer,
    MissingHookCallback,
    NoModelTrainer,
    NonNoneReturnCallback,
    PropertyTrainer,
    RenamingCallback,
    StructuralCallback,
    WrongArityCallback,
    WrongModelTrainer,
    WrongParamTypeCallback,
)


@pytest.mark.parametrize(
    "factory", [BaseCallback, RenamingCallback, StructuralCallback, CallbackList]
)
def test_conforming_callbacks_are_training_callbacks(factory: type) -> None:
    assert isinstance(factory(), TrainingCallback)


def test_missing_hook_is_not_a_training_callback() -> None:
    assert not isinstance(MissingHookCallback(), TrainingCallback)


@pytest.mark.parametrize(
    "factory", [WrongArityCallback, WrongParamTypeCallback, NonNoneReturnCallback]
)
def test_signatures_are_invisible_at_run_time(factory: type) -> None:
    # isinstance checks only that the hooks exist; mypy rejects these (check_protocols.py).
    assert isinstance(factory(), TrainingCallback)


def test_base_callback_is_slotted_and_complete() -> None:
    assert BaseCallback.__slots__ == ()
    assert not hasattr(BaseCallback(), "__dict__")


@pytest.mark.parametrize("factory", [AttributeTrainer, PropertyTrainer])
def test_trainers_with_a_model_are_trainer_like(factory: type) -> None:
    assert isinstance(factory(), TrainerLike)


def test_isinstance_never_runs_the_model_getter() -> None:
    trainer = PropertyTrainer()
    assert isinstance(trainer, TrainerLike)
    assert trainer.getter_calls == 0


def test_trainer_without_model_is_not_trainer_like() -> None:
    assert not isinstance(NoModelTrainer(), TrainerLike)


def test_model_type_is_invisible_at_run_time() -> None:
    # Run time sees that ``model`` exists, not its type; mypy rejects it statically.
    assert isinstance(WrongModelTrainer(), TrainerLike)


def test_protocols_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError):
        TrainingCallback()  # type: ignore[misc]  # instantiating a Protocol is the error under test
