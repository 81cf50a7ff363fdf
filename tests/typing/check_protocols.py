"""Typing checks (typeshed style): type-checked by six checkers, never run.

``assert_type`` and plain assignments pin what must pass under mypy, pyright, basedpyright,
pyrefly, ty and zuban. Each negative case carries one ignore per kind, with the checker's
own error code: ``# type: ignore[code]`` (mypy and zuban), ``# pyright: ignore[rule]``
(pyright and basedpyright), ``# pyrefly: ignore[kind]`` and ``# ty: ignore[rule]``. Each
checker honours only its own kind and reports an unused one, so each ignore pins an error
that must occur (README.md here says how each checker is configured for this).
"""

from __future__ import annotations

from typing import Any, Final, assert_never, assert_type

from artifex.generative_models.training.callbacks import (
    HOOK_NAMES,
    ArrayStatefulCallback,
    BaseCallback,
    CallbackList,
    CSVLogger,
    EarlyStopping,
    History,
    HookName,
    HyperparameterTrainer,
    LambdaCallback,
    ModelCheckpoint,
    ProcessScope,
    ReduceLROnPlateau,
    StatefulCallback,
    TrainerLike,
    TrainingCallback,
    TrainingPlan,
)
from artifex.generative_models.training.callbacks.protocols import PreflightCallback
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

# zuban reads mypy's `# type: ignore[code]` comments, so where zuban and mypy differ the
# verdict is pinned in an `if ZUBAN:` branch: zuban runs with `--always-true ZUBAN`, mypy has
# `always_false = ZUBAN` (mypy.ini); pyright, basedpyright and pyrefly check both branches,
# ty (which sees a constant False) the `else:` branch only.
ZUBAN: Final = False


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
    # No `metrics` alias here (pyrefly reports the missing `logs` and the unknown keyword).
    callbacks.on_batch_end(trainer, 5, metrics=logs)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[missing-argument, unexpected-keyword]  # ty: ignore[missing-argument, unknown-argument]
    assert_type(callbacks.callbacks, tuple[TrainingCallback, ...])
    assert_type(len(callbacks), int)
    assert_type(cb2 in callbacks, bool)


def negatives(trainer: TrainerLike, logs: dict[str, Any]) -> None:
    # A missing hook, a wrong arity, a wrong parameter type, a non-None return, a model of
    # the wrong type; then non-callbacks given to a CallbackList.
    a: TrainingCallback = MissingHookCallback()  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]  # ty: ignore[invalid-assignment]
    b: TrainingCallback = WrongArityCallback()  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]  # ty: ignore[invalid-assignment]
    c: TrainingCallback = WrongParamTypeCallback()  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]  # ty: ignore[invalid-assignment]
    d: TrainingCallback = NonNoneReturnCallback()  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]  # ty: ignore[invalid-assignment]
    t: TrainerLike = WrongModelTrainer()  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]  # ty: ignore[invalid-assignment]
    CallbackList([MissingHookCallback()])  # type: ignore[list-item]  # pyright: ignore[reportArgumentType]  # pyrefly: ignore[bad-argument-type]  # ty: ignore[invalid-argument-type]
    CallbackList().append(WrongArityCallback())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # pyrefly: ignore[bad-argument-type]  # ty: ignore[invalid-argument-type]
    # Keyword calls through the Protocol type are rejected: parameters are positional-only.
    cb: TrainingCallback = BaseCallback()
    cb.on_epoch_end(trainer, epoch=1, logs=logs)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]  # ty: ignore[positional-only-parameter-as-kwarg]
    cb.on_batch_end(trainer, 1, logs=logs)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]  # ty: ignore[positional-only-parameter-as-kwarg]
    del a, b, c, d, t


class NarrowingOverride(BaseCallback):
    # BaseCallback's overrides must keep the hook's arity: this one drops `logs`.
    def on_epoch_end(self, trainer: TrainerLike, epoch: int) -> None:  # type: ignore[override]  # pyright: ignore[reportIncompatibleMethodOverride]  # pyrefly: ignore[bad-override]  # ty: ignore[incompatible-method-override]
        ...


def process_scopes() -> None:
    assert_type(BaseCallback().process_scope, ProcessScope)
    assert_type(CSVLogger().process_scope, ProcessScope)
    assert_type(CallbackList(process_index=1).process_index, int | None)
    LambdaCallback(process_scope="main")
    # "rank0" is not a scope; "0" is not an int.
    LambdaCallback(process_scope="rank0")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # pyrefly: ignore[bad-argument-type]  # ty: ignore[invalid-argument-type]
    CallbackList(process_index="0")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # pyrefly: ignore[bad-argument-type]  # ty: ignore[invalid-argument-type]

    class Everywhere(BaseCallback):
        # Not a scope.
        process_scope = "everywhere"  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]  # ty: ignore[invalid-assignment]


def array_states(tree: dict[str, Any]) -> None:
    early: ArrayStatefulCallback = EarlyStopping()
    stateful: StatefulCallback = early  # an array part is an addition to the JSON part
    assert_type(stateful.state_dict(), dict[str, Any])
    early.load_array_state(tree)
    # The state is positional-only, and required.
    early.load_array_state(state=tree)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]  # ty: ignore[positional-only-parameter-as-kwarg]
    early.load_array_state()  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[bad-argument-count]  # ty: ignore[missing-argument]
    # History has a JSON state only.
    history: ArrayStatefulCallback = History()  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]  # ty: ignore[invalid-assignment]
    del history


def learning_rate_control(trainer: AttributeTrainer) -> None:
    assert_type(EarlyStopping().best_score, float | None)  # None until a first score
    reducer: StatefulCallback = ReduceLROnPlateau()
    del reducer
    tunable: HyperparameterTrainer = trainer  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]  # no hyperparameters  # ty: ignore[invalid-assignment]
    del tunable


def preflights(trainer: TrainerLike) -> None:
    checks: list[PreflightCallback] = [ModelCheckpoint(), CSVLogger(), ReduceLROnPlateau()]
    checks[0].preflight(trainer)
    checks[0].preflight(trainer=trainer)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]  # ty: ignore[positional-only-parameter-as-kwarg]
    plain: PreflightCallback = BaseCallback()  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]  # no preflight  # ty: ignore[invalid-assignment]
    del plain


def plans(trainer: TrainerLike, plain: AttributeTrainer) -> None:
    if isinstance(trainer, TrainingPlan):
        assert_type(trainer.planned_epochs, int | None)  # None before the first fit
        assert_type(trainer.steps_per_epoch, int | None)  # None for data without a length
    planless: TrainingPlan = plain  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]  # no plan  # ty: ignore[invalid-assignment]
    del planless


# ------------------------------------------------- what pyright users hit and mypy users do not


def never_narrowing(cb: TrainingCallback, hook: HookName) -> None:
    # Narrowing a Protocol-typed value to a conforming class keeps the class (pyright once
    # narrowed CallbackList's own dispatch loop to Never, and then checked no hook call).
    if type(cb) is CallbackList:
        assert_type(cb, CallbackList)
    if isinstance(cb, CallbackList):
        assert_type(cb, CallbackList)
    # HookName narrows to Never once each of its eight names is matched ...
    match hook:
        case "on_train_begin" | "on_train_end" | "on_epoch_begin" | "on_epoch_end":
            pass
        case "on_batch_begin" | "on_batch_end" | "on_validation_begin" | "on_validation_end":
            pass
        case _:
            assert_never(hook)


def unexhausted(hook: HookName) -> None:
    # ... and not before: "on_validation_end" is left.
    match hook:
        case "on_train_begin" | "on_train_end" | "on_epoch_begin" | "on_epoch_end":
            pass
        case "on_batch_begin" | "on_batch_end" | "on_validation_begin":
            pass
        case _:
            assert_never(hook)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # pyrefly: ignore[bad-argument-type]  # ty: ignore[type-assertion-failure]


def literal_widening() -> None:
    # An unannotated list of hook names is a list[str] under every checker, and a
    # comprehension over HOOK_NAMES is one under pyright: declare list[HookName].
    hooks: list[HookName] = [h for h in HOOK_NAMES if "batch" in h]
    assert_type(hooks, list[HookName])
    assert_type(HOOK_NAMES[0], HookName)
    names = ["on_train_begin", "on_epoch_end"]
    assert_type(names, list[str])
    wanted: HookName = names[0]  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]  # ty: ignore[invalid-assignment]
    del wanted


class GetattrProxy:
    """Answers every attribute through ``__getattr__``; ``CallbackList`` accepts it at run time."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args: None


def getattr_proxy() -> None:
    # The checkers legitimately differ here, so each verdict is pinned on its own: mypy finds
    # a Protocol's members through __getattr__ and accepts the proxy (an ignore for mypy would
    # be unused), pyright, basedpyright, pyrefly, ty and zuban look for declared members only
    # and reject it. At run time CallbackList accepts it (tests/training/callbacks/test_base.py).
    if ZUBAN:
        rejected: TrainingCallback = GetattrProxy()  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]
        del rejected
    else:
        proxy: TrainingCallback = GetattrProxy()  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]  # ty: ignore[invalid-assignment]
        del proxy
