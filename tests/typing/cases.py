"""Positive and negative protocol cases, shared by the typing checks and the runtime tests.

Every class here is a valid definition; whether it *conforms* is what
``check_protocols.py`` (statically) and ``tests/training/callbacks/test_protocols.py``
(at run time) pin down. The ignores on the negative cases below are the negative
cases themselves: each checker must report its error there (see README.md here).
"""

from __future__ import annotations

from typing import Any

from flax import nnx

from artifex.generative_models.training.callbacks import BaseCallback, TrainerLike


class TinyModel(nnx.Module):
    """An ``nnx.Module`` subclass."""

    def __init__(self) -> None:
        self.linear = nnx.Linear(2, 1, rngs=nnx.Rngs(0))


# --------------------------------------------------------------------- positive


class RenamingCallback(BaseCallback):
    """Overrides hooks with renamed parameters, as the specification's example does."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, dict[str, Any]]] = []

    def on_epoch_end(self, tr: TrainerLike, ep: int, metrics: dict[str, Any]) -> None:
        self.seen.append((ep, metrics))

    def on_batch_end(self, trainer: TrainerLike, step: int, logs: dict[Any, Any]) -> None:
        self.seen.append((step, logs))


class StructuralCallback:
    """Provides all eight hooks without inheriting from ``BaseCallback``."""

    def on_train_begin(self, trainer: TrainerLike) -> None: ...
    def on_train_end(self, trainer: TrainerLike) -> None: ...
    def on_epoch_begin(self, trainer: TrainerLike, epoch: int) -> None: ...
    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any]) -> None: ...
    def on_batch_begin(self, trainer: TrainerLike, batch: int) -> None: ...
    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any]) -> None: ...
    def on_validation_begin(self, trainer: TrainerLike) -> None: ...
    def on_validation_end(self, trainer: TrainerLike, logs: dict[str, Any]) -> None: ...


class AttributeTrainer:
    """A trainer whose ``model`` is a plain attribute of an ``nnx.Module`` subclass."""

    def __init__(self) -> None:
        self.model: TinyModel = TinyModel()


class PropertyTrainer:
    """A trainer whose ``model`` is a property; counts getter calls."""

    def __init__(self) -> None:
        self.getter_calls = 0
        self._model = TinyModel()

    @property
    def model(self) -> nnx.Module:
        self.getter_calls += 1
        return self._model


# --------------------------------------------------------------------- negative


class MissingHookCallback:
    """Lacks ``on_validation_end``."""

    def on_train_begin(self, trainer: TrainerLike) -> None: ...
    def on_train_end(self, trainer: TrainerLike) -> None: ...
    def on_epoch_begin(self, trainer: TrainerLike, epoch: int) -> None: ...
    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any]) -> None: ...
    def on_batch_begin(self, trainer: TrainerLike, batch: int) -> None: ...
    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any]) -> None: ...
    def on_validation_begin(self, trainer: TrainerLike) -> None: ...


class WrongArityCallback(StructuralCallback):
    """``on_epoch_end`` takes no ``logs``."""

    def on_epoch_end(self, trainer: TrainerLike, epoch: int) -> None:  # type: ignore[override]  # pyright: ignore[reportIncompatibleMethodOverride]  # pyrefly: ignore[bad-override]  # ty: ignore[incompatible-method-override]
        ...


class WrongParamTypeCallback(StructuralCallback):
    """``on_epoch_begin`` wants a ``str`` epoch."""

    def on_epoch_begin(self, trainer: TrainerLike, epoch: str) -> None:  # type: ignore[override]  # pyright: ignore[reportIncompatibleMethodOverride]  # pyrefly: ignore[bad-override]  # ty: ignore[incompatible-method-override]
        ...


class NonNoneReturnCallback(StructuralCallback):
    """``on_train_begin`` returns an ``int``."""

    def on_train_begin(self, trainer: TrainerLike) -> int:  # type: ignore[override]  # pyright: ignore[reportIncompatibleMethodOverride]  # pyrefly: ignore[bad-override]  # ty: ignore[incompatible-method-override]
        return 1


class WrongModelTrainer:
    """``model`` is an ``int``, not an ``nnx.Module``."""

    def __init__(self) -> None:
        self.model = 3


class NoModelTrainer:
    """Has no ``model`` at all."""
