"""Callbacks and trainers written as users write them, type-checked as users run checkers.

Type-checked, never run, from this folder by six checkers with a user's settings (the
configuration files here; README.md one folder up): mypy --strict and zuban without stubs
for optax, pyright and basedpyright in standard mode, pyrefly's default preset, ty's
default rules. Every plain assignment and call must pass under all six; each negative
case carries one ignore per checker that rejects it, in that checker's own words:
``# type: ignore[code]`` (mypy, and zuban, which reads the same comments),
``# pyright: ignore[rule]`` (pyright and basedpyright), ``# pyrefly: ignore[kind]`` and
``# ty: ignore[rule]``. An unneeded ignore is an error under each of them.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import Any, Final

import optax
from flax import nnx

from artifex.generative_models.training import Trainer
from artifex.generative_models.training.callbacks import (
    BaseCallback,
    CallbackList,
    EarlyStopping,
    History,
    TrainerLike,
    TrainingCallback,
)
from artifex.generative_models.training.callbacks.protocols import RunStatus, TrainerState

# zuban reads mypy's `# type: ignore[code]` comments, so a verdict where zuban and mypy
# differ is pinned in an `if ZUBAN:` branch: zuban runs with `--always-true ZUBAN`, mypy
# has `always_false = ZUBAN`; pyright, basedpyright and pyrefly check both branches, ty
# (which sees a constant False) the `else:` branch only.
ZUBAN: Final = False

MODEL = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
LOGS: dict[str, Any] = {"loss": 0.5}


def loss_fn(model: nnx.Linear, batch: Any) -> Any:
    return ((model(batch["x"]) - batch["y"]) ** 2).mean()


# ---------------------------------------------------------- trainers: how `model` is held


class AttributeModel:
    def __init__(self) -> None:
        self.model = MODEL


class PropertyModel:
    @property
    def model(self) -> nnx.Linear:
        return MODEL


@dataclasses.dataclass
class DataclassModel:
    model: nnx.Module


class FinalModel:
    def __init__(self) -> None:
        self.model: Final = MODEL


class CachedPropertyModel:
    @cached_property
    def model(self) -> nnx.Module:
        return MODEL


class MissingModel:
    pass


def models() -> None:
    a: TrainerLike = AttributeModel()
    b: TrainerLike = PropertyModel()
    c: TrainerLike = DataclassModel(MODEL)
    # pyright and basedpyright reject a cached_property as a read-only protocol member
    # (README.md: a pinned split); the other four accept it, as the run-time check does.
    d: TrainerLike = CachedPropertyModel()  # pyright: ignore[reportAssignmentType]
    e: TrainerLike = MissingModel()  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]  # ty: ignore[invalid-assignment]
    del a, b, c, d, e
    if ZUBAN:
        # zuban rejects a Final attribute as a read-only protocol member (README.md).
        f: TrainerLike = FinalModel()  # type: ignore[assignment]
        del f
    else:
        g: TrainerLike = FinalModel()
        del g


# ------------------------------------------------------ trainers: how `stop_training` is held


class _State:
    model: nnx.Module = MODEL
    step: int = 0
    epoch: int = 0
    status: RunStatus = "completed"
    stopped_by: object | None = None
    error: BaseException | None = None


class PlainFlag(_State):
    def __init__(self) -> None:
        self.stop_training = False


@dataclasses.dataclass
class DataclassFlag(_State):
    stop_training: bool = False


class SettableFlag(_State):
    _stop = False

    @property
    def stop_training(self) -> bool:
        return self._stop

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self._stop = value


class ReadOnlyFlag(_State):
    @property
    def stop_training(self) -> bool:
        return False


class FinalFlag(_State):
    stop_training: Final = False


def stop_flags() -> None:
    a: TrainerState = PlainFlag()
    b: TrainerState = DataclassFlag()
    c: TrainerState = SettableFlag()
    c.stop_training = True
    d: TrainerState = ReadOnlyFlag()  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]  # ty: ignore[invalid-assignment]
    e: TrainerState = FinalFlag()  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-assignment]  # ty: ignore[invalid-assignment]
    del a, b, c, d, e


# ------------------------------------------------------------------------------ optimizers


def optimizers() -> None:
    trainer = Trainer(MODEL, optax.adam(1e-3), loss_fn)
    # What the user passed comes back as it was: an optax transformation, for optax.
    optax.chain(optax.clip(1.0), trainer.optimizer)
    optax.apply_if_finite(trainer.optimizer, max_consecutive_errors=3)
    Trainer(MODEL, optax.MultiSteps(optax.sgd(0.1), every_k_schedule=2), loss_fn)
    # A string is not an optimizer, with or without optax's types.
    Trainer(MODEL, "adam", loss_fn)  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]  # pyrefly: ignore[bad-specialization]  # ty: ignore[invalid-argument-type]
    typed: Trainer[nnx.Linear] = trainer  # a Trainer of any optimizer is a Trainer[Model]
    del typed


# ---------------------------------------------------------------------- callback lists


class Printer(BaseCallback):
    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        print(epoch, logs)


class Structural:
    def on_train_begin(self, trainer: TrainerLike) -> None: ...
    def on_train_end(self, trainer: TrainerLike) -> None: ...
    def on_epoch_begin(self, trainer: TrainerLike, epoch: int) -> None: ...
    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any]) -> None: ...
    def on_batch_begin(self, trainer: TrainerLike, batch: int) -> None: ...
    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any]) -> None: ...
    def on_validation_begin(self, trainer: TrainerLike) -> None: ...
    def on_validation_end(self, trainer: TrainerLike, logs: dict[str, Any]) -> None: ...


def callback_lists(trainer: TrainerLike) -> None:
    # Mixed lists: library callbacks, a BaseCallback subclass, a structural one, a list.
    callbacks = CallbackList([EarlyStopping(), Printer(), Structural(), CallbackList([History()])])
    as_callback: TrainingCallback = callbacks  # CallbackList is itself a TrainingCallback
    as_callback.on_epoch_end(trainer, 5, LOGS)
    # The specification's keyword call, and the other spellings CallbackList takes.
    callbacks.on_epoch_end(trainer, epoch=5, metrics={"loss": 0.5})
    callbacks.on_epoch_end(trainer, 5, LOGS)
    callbacks.on_epoch_end(trainer, epoch=5, logs=LOGS)
    callbacks.on_validation_end(trainer, metrics=LOGS)
    callbacks.on_validation_end(trainer, logs=LOGS)
    # Both `logs` and `metrics`, or neither: no overload matches.
    callbacks.on_epoch_end(trainer, epoch=5, logs=LOGS, metrics=LOGS)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[no-matching-overload]  # ty: ignore[no-matching-overload]
    callbacks.on_epoch_end(trainer, epoch=5)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[no-matching-overload]  # ty: ignore[no-matching-overload]
    callbacks.on_validation_end(trainer, logs=LOGS, metrics=LOGS)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[no-matching-overload]  # ty: ignore[no-matching-overload]
    callbacks.on_validation_end(trainer)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[no-matching-overload]  # ty: ignore[no-matching-overload]


# ------------------------------------------------------------------ narrowing, run time


def narrowing(obj: object, cb: TrainingCallback) -> None:
    if isinstance(obj, TrainerLike):
        module: nnx.Module = obj.model
        del module
    if isinstance(obj, TrainerState):
        obj.stop_training = True
    if isinstance(cb, EarlyStopping):
        best: float | None = cb.best_score
        del best


def protocol_classes(cls: type[object]) -> None:
    # issubclass() raises TypeError at run time for a protocol with a data member (here a
    # property). mypy, pyrefly and ty say so; pyright, basedpyright and zuban do not
    # (README.md: a pinned split).
    if ZUBAN:  # ty skips this branch (ZUBAN is False); pyrefly checks it
        issubclass(cls, TrainerLike)  # pyrefly: ignore[invalid-argument]
    else:
        issubclass(cls, TrainerLike)  # type: ignore[misc]  # pyrefly: ignore[invalid-argument]  # ty: ignore[isinstance-against-protocol]
