"""Build a callback from plain functions, one per hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from artifex.generative_models.training.callbacks.base import (
    BaseCallback,
    ProcessScope,
    TrainerLike,
    # A helper private to the callbacks package (pyright counts only the module).
    _scope,  # pyright: ignore[reportPrivateUsage]
)

__all__ = ["LambdaCallback"]


class LambdaCallback(BaseCallback):
    """A callback whose hooks are the functions given; the others are no-ops.

    Hooks that are not given are inherited unchanged from [`BaseCallback`][], so a
    [`CallbackList`][] never calls them: an ``on_epoch_end``-only lambda costs
    nothing per batch.

    Example::

        LambdaCallback(on_epoch_end=lambda trainer, epoch, logs: print(epoch, logs))

    Args:
        on_train_begin: Called as ``fn(trainer)``.
        on_train_end: Called as ``fn(trainer)``.
        on_epoch_begin: Called as ``fn(trainer, epoch)``.
        on_epoch_end: Called as ``fn(trainer, epoch, logs)``.
        on_batch_begin: Called as ``fn(trainer, step)``.
        on_batch_end: Called as ``fn(trainer, step, logs)``.
        on_validation_begin: Called as ``fn(trainer)``.
        on_validation_end: Called as ``fn(trainer, logs)``.
        process_scope: ``"all"`` to run on every process of a multi-process job,
            ``"main"`` to run on process 0 only.

    Raises:
        TypeError: If a given hook is not callable.
        ValueError: If ``process_scope`` is not ``"all"`` or ``"main"``.
    """

    # No __slots__: the given functions are stored as instance attributes, shadowing
    # the class's no-op hooks for this instance only.

    def __init__(
        self,
        *,
        on_train_begin: Callable[[TrainerLike], object] | None = None,
        on_train_end: Callable[[TrainerLike], object] | None = None,
        on_epoch_begin: Callable[[TrainerLike, int], object] | None = None,
        on_epoch_end: Callable[[TrainerLike, int, dict[str, Any]], object] | None = None,
        on_batch_begin: Callable[[TrainerLike, int], object] | None = None,
        on_batch_end: Callable[[TrainerLike, int, dict[str, Any]], object] | None = None,
        on_validation_begin: Callable[[TrainerLike], object] | None = None,
        on_validation_end: Callable[[TrainerLike, dict[str, Any]], object] | None = None,
        process_scope: ProcessScope = "all",
    ) -> None:
        self.process_scope: ProcessScope = process_scope
        _scope(self)
        hooks: dict[str, object] = {
            "on_train_begin": on_train_begin,
            "on_train_end": on_train_end,
            "on_epoch_begin": on_epoch_begin,
            "on_epoch_end": on_epoch_end,
            "on_batch_begin": on_batch_begin,
            "on_batch_end": on_batch_end,
            "on_validation_begin": on_validation_begin,
            "on_validation_end": on_validation_end,
        }
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"LambdaCallback: {name} must be callable, got {fn!r}")
            setattr(self, name, fn)

    def __repr__(self) -> str:
        """A readable representation naming the hooks given."""
        hooks = sorted(name for name in vars(self) if name.startswith("on_"))
        scope = [] if self.process_scope == "all" else [f"process_scope={self.process_scope!r}"]
        return f"LambdaCallback({', '.join(hooks + scope)})"
