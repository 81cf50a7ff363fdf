"""Run-time conformance of the protocols, over the cases the typing checks use."""

from __future__ import annotations

from pathlib import Path

import pytest

from artifex.generative_models.training.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointConfig,
    CSVLogger,
    ModelCheckpoint,
    TrainerLike,
    TrainingCallback,
)
from artifex.generative_models.training.callbacks._preflight import preflight
from artifex.generative_models.training.callbacks.base import ProcessScope
from artifex.generative_models.training.callbacks.protocols import PreflightCallback
from tests.training.callbacks._stubs import ModelOnlyTrainer
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
        TrainingCallback()  # type: ignore[misc]  # instantiating a Protocol is the error under test  # ty: ignore[abstract-class-instantiation]


class _Checks(BaseCallback):
    def __init__(
        self, name: str, log: list[str], *, scope: ProcessScope = "all", refuse: bool = False
    ) -> None:
        self.name, self.log, self.refuse = name, log, refuse
        self.process_scope: ProcessScope = scope

    def preflight(self, trainer: TrainerLike, /) -> None:
        self.log.append(self.name)
        if self.refuse:
            raise ValueError(f"{self.name} refuses")


def test_preflight_callbacks_are_recognised_and_checking_creates_nothing(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "a" / "ck"))
    logger = CSVLogger(filename=tmp_path / "b" / "log.csv")
    assert isinstance(checkpoint, PreflightCallback)
    assert isinstance(logger, PreflightCallback)
    assert isinstance(_Checks("x", []), PreflightCallback)
    assert not isinstance(BaseCallback(), PreflightCallback)
    assert not isinstance(CallbackList(), PreflightCallback)  # a list is walked into
    preflight(ModelOnlyTrainer(), CallbackList([checkpoint, logger]))
    assert list(tmp_path.iterdir()) == []


def test_preflight_walks_nested_lists_in_dispatch_order_and_stops_at_a_refusal() -> None:
    log: list[str] = []
    inner = CallbackList([_Checks("c", log, refuse=True), _Checks("d", log)])
    cbs = CallbackList(
        [_Checks("a", log), BaseCallback(), CallbackList([_Checks("b", log), inner])]
    )
    with pytest.raises(ValueError, match="c refuses") as caught:
        preflight(ModelOnlyTrainer(), cbs)
    assert caught.value.__notes__ == ["raised by callback #2.1.0 (_Checks) in preflight"]
    assert log == ["a", "b", "c"]


def test_preflight_skips_main_process_callbacks_on_other_processes() -> None:
    log: list[str] = []
    callbacks = [_Checks("main", log, scope="main"), _Checks("all", log)]
    preflight(ModelOnlyTrainer(), CallbackList(callbacks, process_index=1))
    assert log == ["all"]
    preflight(ModelOnlyTrainer(), CallbackList(callbacks, process_index=0))
    assert log == ["all", "main", "all"]
