"""The registration-order rules of the built-in callbacks, in one place.

Callbacks see the hooks in registration order, and ``on_epoch_end`` logs are one
dict handed from callback to callback. Two rules follow:

* Callbacks that add keys to the epoch logs (``LearningRateMonitor``,
  ``ThroughputMonitor``) run before those that read them (loggers, checkpoints,
  early stopping, any callback with an ``on_epoch_end``); otherwise the readers
  never see the keys. A reader of those keys registered first gets a
  [`LogOrderWarning`][], attributed to the user's line that called ``fit`` (the
  first frame outside this package).
* ``ModelCheckpoint`` runs after the stateful callbacks, whose state it saves
  (``CheckpointOrderWarning``, in ``model_checkpoint``).

What a callback reads and adds is declared with two attributes:

* ``reads_epoch_logs``: ``True`` (the default: every key, if it has an
  ``on_epoch_end`` of its own), ``False`` (none), or the keys it reads
  (``("val_loss",)``);
* ``adds_epoch_logs``: the keys it adds (``("val_acc",)``). A callback that declares
  the keys it adds and not what it reads reads nothing: one that only adds keys is
  never warned.

Private: [`LogOrderWarning`][] is re-exported from the package.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Collection, Iterable
from pathlib import Path

from artifex.generative_models.training.callbacks.base import (
    BaseCallback,
    TrainerLike,
    TrainingCallback,
    flatten_callbacks,
)
from artifex.generative_models.training.callbacks.protocols import CallbackHost

__all__ = ["LogOrderWarning", "around", "epoch_log_reads", "user_stacklevel", "warn_if_read_before"]

_PACKAGE = str(Path(__file__).resolve().parents[1])  # the training package's directory


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


def epoch_log_reads(callback: object) -> frozenset[str] | None:
    """The epoch-log keys ``callback`` may read: ``None`` for any key, empty for none.

    A callback without an ``on_epoch_end`` of its own (a [`BaseCallback`][] with the
    no-op, a ``LambdaCallback`` without one) reads none; so does one that declares
    ``reads_epoch_logs = False``, or declares ``adds_epoch_logs`` and not
    ``reads_epoch_logs``. A collection of str declared as ``reads_epoch_logs`` is
    what it reads.
    """
    declared: object = getattr(callback, "reads_epoch_logs", None)
    if declared is None and getattr(callback, "adds_epoch_logs", None):
        return frozenset()  # it only adds keys
    if declared is False:
        return frozenset()
    if isinstance(declared, Collection) and not isinstance(declared, str):
        return frozenset(str(key) for key in declared)
    hook = getattr(callback, "on_epoch_end", None)
    if hook is None or getattr(hook, "__func__", None) is BaseCallback.on_epoch_end:
        return frozenset()
    return None


def user_stacklevel() -> int:
    """The ``stacklevel`` that attributes a warning to the first caller outside this package.

    For a ``warnings.warn`` in the function that calls this one: the user's line that
    called ``fit`` (or a hook), however deep in the package the warning is raised.
    ``warnings.warn``'s ``skip_file_prefixes`` does this from Python 3.12; this walks
    the frames itself, for 3.11.
    """
    frame = inspect.currentframe()
    frame = frame.f_back if frame is not None else None  # the warning function's frame
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def warn_if_read_before(trainer: TrainerLike, producer: object, keys: Iterable[str]) -> None:
    """Warn if a callback that reads any of ``keys`` is registered before ``producer``.

    The warning is attributed to the user's line that called ``fit``.

    Args:
        trainer: The trainer (its callbacks are looked at if it exposes them).
        producer: The callback that adds ``keys`` to the epoch logs.
        keys: The keys it adds.
    """
    found = around(trainer, producer)
    if found is None:
        return
    added = sorted(keys)
    early: list[str] = []
    for callback in found[0]:
        reads = epoch_log_reads(callback)
        if reads is None or reads.intersection(added):
            early.append(type(callback).__qualname__)
    if early:
        name = type(producer).__qualname__
        shown = " and ".join(map(repr, added))
        warnings.warn(
            f"{early} run before {name}, so they never see the {shown} it adds to the epoch "
            f"logs; register {name} before them, or declare on a callback that does not read "
            "them reads_epoch_logs = False (or the keys it reads)",
            LogOrderWarning,
            stacklevel=user_stacklevel(),
        )
