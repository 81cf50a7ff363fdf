"""Typing checks (typeshed style): type-checked by mypy, never run.

``assert_type`` and plain assignments pin what must pass; each ``# type: ignore[code]``
pins an error that must occur (``warn_unused_ignores`` fails the check if it does not).
"""

from __future__ import annotations

from typing import Any, assert_type

from artifex.generative_models.training.callbacks import (
    ArrayStatefulCallback,
    BaseCallback,
    CallbackList,
    CSVLogger,
    EarlyStopping,
    History,
    HyperparameterTrainer,
    LambdaCallback,
    ProcessScope,
    ReduceLROnPlateau,
    StatefulCallback,
    TrainerLike,
    TrainingCallback,
)
from tests.typing.cases import (
    AttributeTrainer,
    MissingHookCallback,
    NonNoneReturnCallback,
    PropertyTrainer,
    RenamingCallback,
    StructuralCallback,
    WrongArityCallback,
    WrongModelTrainer,
    WrongParamTypeCallback,
)


def positives(trainer: TrainerLike, logs: dict[str, Any]) -> None:
    cb1: TrainingCallback = BaseCallback()
    cb2: TrainingCallback = RenamingCallback()
    cb3: TrainingCallback = StructuralCallback()
    cb4: TrainingCallback = CallbackList([cb1, cb2, cb3])
    nested: TrainingCallback = CallbackList([CallbackList([RenamingCallback()]), cb4])
    t1: TrainerLike = AttributeTrainer()
    t2: TrainerLike = PropertyTrainer()
    cb4.on_epoch_end(t1, 0, logs)
    nested.on_batch_end(t2, 3, logs)
    # CallbackList's own signature also takes keywords, as the specification calls it.
    callbacks = CallbackList([RenamingCallback(), StructuralCallback()])
    assert_type(callbacks.on_epoch_end(trainer, epoch=5, metrics={"loss": 0.5}), None)
    assert_type(callbacks.on_batch_end(trainer, batch=5, logs=logs), None)
    callbacks.on_batch_end(trainer, 5, metrics=logs)  # type: ignore[call-arg]  # no alias here
    assert_type(callbacks.callbacks, tuple[TrainingCallback, ...])
    assert_type(len(callbacks), int)
    assert_type(cb2 in callbacks, bool)


def negatives(trainer: TrainerLike, logs: dict[str, Any]) -> None:
    a: TrainingCallback = MissingHookCallback()  # type: ignore[assignment]  # missing hook
    b: TrainingCallback = WrongArityCallback()  # type: ignore[assignment]  # wrong arity
    c: TrainingCallback = WrongParamTypeCallback()  # type: ignore[assignment]  # wrong param type
    d: TrainingCallback = NonNoneReturnCallback()  # type: ignore[assignment]  # non-None return
    t: TrainerLike = WrongModelTrainer()  # type: ignore[assignment]  # model of the wrong type
    CallbackList([MissingHookCallback()])  # type: ignore[list-item]  # not a callback
    CallbackList().append(WrongArityCallback())  # type: ignore[arg-type]  # not a callback
    # Keyword calls through the Protocol type are rejected: parameters are positional-only.
    cb: TrainingCallback = BaseCallback()
    cb.on_epoch_end(trainer, epoch=1, logs=logs)  # type: ignore[call-arg]  # positional-only
    cb.on_batch_end(trainer, 1, logs=logs)  # type: ignore[call-arg]  # positional-only
    # BaseCallback's overrides must keep the hook's arity.
    del a, b, c, d, t


class NarrowingOverride(BaseCallback):
    def on_epoch_end(self, trainer: TrainerLike, epoch: int) -> None:  # type: ignore[override]  # drops logs
        ...


def process_scopes() -> None:
    assert_type(BaseCallback().process_scope, ProcessScope)
    assert_type(CSVLogger().process_scope, ProcessScope)
    assert_type(CallbackList(process_index=1).process_index, int | None)
    LambdaCallback(process_scope="main")
    LambdaCallback(process_scope="rank0")  # type: ignore[arg-type]  # not a scope
    CallbackList(process_index="0")  # type: ignore[arg-type]  # not an int

    class Everywhere(BaseCallback):
        process_scope = "everywhere"  # type: ignore[assignment]  # not a scope


def array_states(tree: dict[str, Any]) -> None:
    early: ArrayStatefulCallback = EarlyStopping()
    stateful: StatefulCallback = early  # an array part is an addition to the JSON part
    assert_type(stateful.state_dict(), dict[str, Any])
    early.load_array_state(tree)
    early.load_array_state(state=tree)  # type: ignore[call-arg]  # positional-only
    early.load_array_state()  # type: ignore[call-arg]  # the state is required
    history: ArrayStatefulCallback = History()  # type: ignore[assignment]  # JSON state only
    del history


def learning_rate_control(trainer: AttributeTrainer) -> None:
    assert_type(EarlyStopping().best_score, float | None)  # None until a first score
    reducer: StatefulCallback = ReduceLROnPlateau()
    del reducer
    tunable: HyperparameterTrainer = trainer  # type: ignore[assignment]  # no hyperparameters
    del tunable
