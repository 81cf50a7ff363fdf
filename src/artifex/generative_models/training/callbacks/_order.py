"""The registration-order rules of the built-in callbacks, in one place.

Callbacks see the hooks in registration order, and ``on_epoch_end`` logs are one
dict handed from callback to callback. Two rules follow:

* Callbacks that add keys to the epoch logs (``LearningRateMonitor``,
  ``ThroughputMonitor``) run before those that read them (loggers, checkpoints,
  early stopping, any callback with an ``on_epoch_end``); otherwise the readers
  never see the keys. A reader registered first gets a [`LogOrderWarning`][].
* ``ModelCheckpoint`` runs after the stateful callbacks, whose state it saves
  (``CheckpointOrderWarning``, in ``model_checkpoint``).

A callback with an ``on_epoch_end`` that does not read the logs declares
``reads_epoch_logs = False``.

Private: [`LogOrderWarning`][] is re-exported from the package.
"""

from __future__ import annotations

import warnings

from artifex.generative_models.training.callbacks.base import (
    BaseCallback,
    TrainerLike,
    TrainingCallback,
    flatten_callbacks,
)
from artifex.generative_models.training.callbacks.protocols import CallbackHost

__all__ = ["LogOrderWarning", "around", "reads_epoch_logs", "warn_if_read_before"]


class LogOrderWarning(UserWarning):
    """A callback that reads the epoch logs runs before one that adds keys to them."""


def around(
    trainer: TrainerLike, callback: object
) -> tuple[list[TrainingCallback], list[TrainingCallback]] | None:
    """The trainer's callbacks registered before and after ``callback`` (nested lists flattened).

    Args:
        trainer: The trainer whose callbacks to look at.
        callback: The callback to look for.

    Returns:
        ``(before, after)``, or ``None`` when the trainer does not expose its callbacks
        ([`CallbackHost`][]) or ``callback`` is not among them.
    """
    if not isinstance(trainer, CallbackHost):
        return None
    order = [cb for _, cb in flatten_callbacks(trainer.callbacks)]
    for index, cb in enumerate(order):
        if cb is callback:
            return order[:index], order[index + 1 :]
    return None


def reads_epoch_logs(callback: object) -> bool:
    """Whether ``callback`` may read the epoch logs: it has an ``on_epoch_end`` of its own.

    A [`BaseCallback`][] whose ``on_epoch_end`` is the no-op (a ``LambdaCallback``
    without one, too) does not; nor does one that declares ``reads_epoch_logs = False``.
    """
    if not getattr(callback, "reads_epoch_logs", True):
        return False
    hook = getattr(callback, "on_epoch_end", None)
    return hook is not None and getattr(hook, "__func__", None) is not BaseCallback.on_epoch_end


def warn_if_read_before(trainer: TrainerLike, producer: object, keys: str) -> None:
    """Warn if a callback that reads the epoch logs is registered before ``producer``.

    Args:
        trainer: The trainer (its callbacks are looked at if it exposes them).
        producer: The callback that adds keys to the epoch logs.
        keys: The keys it adds, for the message.
    """
    found = around(trainer, producer)
    if found is None:
        return
    early = [type(cb).__qualname__ for cb in found[0] if reads_epoch_logs(cb)]
    if early:
        name = type(producer).__qualname__
        warnings.warn(
            f"{early} run before {name}, so they never see the {keys} it adds to the epoch "
            f"logs; register {name} before them",
            LogOrderWarning,
            stacklevel=3,
        )
