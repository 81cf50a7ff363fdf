"""Preemption notices: SIGTERM in a single process, JAX's sync point in a multi-process job.

While a ``fit`` with preemption handling runs, a ``PreemptionWatch`` is asked
after every step (or chunk) whether to stop for a preemption:

* in a single-process job, a SIGTERM handler installed for the duration of ``fit``
  (on the main thread only; the previous handler is restored afterwards) sets a
  flag, read without touching the device;
* in a multi-process job (after ``jax.distributed.initialize``), no Python handler is
  installed (it would replace JAX's own SIGTERM notice); the watch polls
  ``multihost_utils.reached_preemption_sync_point(step)``, which is ``True`` on every
  process at the same step once any of them was told to stop.

The handler stays installed until teardown (``on_train_end``) ends, so that a SIGTERM
arriving then does not kill the process with the last asynchronous save in flight. A
notice the run did not act on (it came during teardown, or the run failed first) is
delivered again, to the handler that was there before, once that one is restored:
by default, the process then ends, after teardown.
"""

from __future__ import annotations

import signal
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from artifex.generative_models.training.callbacks.base import (
    TrainerLike,
    TrainingCallback,
    flatten_callbacks,
)
from artifex.generative_models.training.callbacks.protocols import PreemptionSaver

__all__ = [
    "Preempted",
    "PreemptionNotice",
    "PreemptionWatch",
    "preemption_savers",
    "save_for_preemption",
    "saver_directories",
]


class Preempted(Exception):
    """``fit`` stopped for a preemption notice, after saving a checkpoint and teardown.

    Raised at the end of ``fit``, after ``on_train_end`` ran with
    ``trainer.status == "preempted"``, so that a script exits within the grace period
    (resume later with ``fit(..., resume_from=...)``).

    Args:
        step: The global step the run reached (and saved).
        checkpoints: The directories of the ``ModelCheckpoint`` instances that saved.
    """

    def __init__(self, step: int, checkpoints: tuple[Path, ...]) -> None:
        where = ", ".join(str(path) for path in checkpoints) or "no checkpoint directory"
        super().__init__(f"training was preempted at step {step}; saved in {where}")
        self.step = step
        self.checkpoints = checkpoints


@dataclass(frozen=True, slots=True)
class PreemptionNotice:
    """What stops the epoch loop when a preemption notice came (a ``Stopper``)."""


_warned_off_main = False


class PreemptionWatch:
    """Tells the epoch loop whether a preemption notice arrived (see the module docs).

    Args:
        enabled: Whether to watch at all (``False``: ``requested`` is always
            ``False`` and nothing is installed).
        multiprocess: Whether the job has several processes (poll JAX's sync point).
    """

    __slots__ = ("_enabled", "_flag", "_handled", "_multiprocess", "_previous")

    def __init__(self, *, enabled: bool, multiprocess: bool) -> None:
        self._enabled = enabled
        self._multiprocess = multiprocess
        self._flag = False
        self._handled = False  # whether the run stopped and saved for the notice
        self._previous: Any = None

    def __enter__(self) -> PreemptionWatch:
        """Install the SIGTERM handler (single process, main thread), else warn once."""
        global _warned_off_main
        if not self._enabled or self._multiprocess:
            return self
        if threading.current_thread() is not threading.main_thread():
            if not _warned_off_main:
                _warned_off_main = True
                warnings.warn(
                    "fit runs off the main thread, where no SIGTERM handler can be "
                    "installed: preemption handling needs the main thread (this warning "
                    "is shown once)",
                    RuntimeWarning,
                    stacklevel=3,
                )
            self._enabled = False
            return self
        self._previous = signal.signal(signal.SIGTERM, self._notice)
        return self

    def __exit__(self, *_: object) -> None:
        """Restore the SIGTERM handler that was there before; re-deliver an unheeded notice."""
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
            if self._flag and not self._handled:  # it came too late for the run to stop
                signal.raise_signal(signal.SIGTERM)

    def handled(self) -> None:
        """Record that the run stopped for the notice (it is not delivered again)."""
        self._handled = True

    def _notice(self, _signum: int, _frame: FrameType | None) -> None:
        self._flag = True

    @property
    def notified(self) -> bool:
        """Whether SIGTERM arrived (single process; between epochs, no step to sync on)."""
        return self._enabled and not self._multiprocess and self._flag

    def requested(self, step: int) -> bool:
        """Whether to stop for preemption after ``step`` steps (no device access).

        Args:
            step: The global step just reached (the same on every process).
        """
        if not self._enabled:
            return False
        if self._multiprocess:
            return _reached_sync_point(step)
        return self._flag


def _reached_sync_point(step: int) -> bool:
    """JAX's preemption sync point; ``False`` where the preemption service is off."""
    from jax.experimental import multihost_utils

    try:
        return bool(multihost_utils.reached_preemption_sync_point(step))
    except RuntimeError:  # the preemption sync manager was not initialized
        return False


def preemption_savers(callbacks: Iterable[TrainingCallback]) -> tuple[PreemptionSaver, ...]:
    """The callbacks that save on demand (``ModelCheckpoint``), in dispatch order."""
    return tuple(cb for _, cb in flatten_callbacks(callbacks) if isinstance(cb, PreemptionSaver))


def save_for_preemption(savers: Iterable[PreemptionSaver], trainer: TrainerLike) -> None:
    """Ask every saver to save now, even when one fails; then raise what failed.

    Raises:
        Exception: The one saver's failure, as the same object, with a note naming it.
        ExceptionGroup: If several failed, each with its note, in dispatch order.
    """
    errors: list[Exception] = []
    for saver in savers:
        try:
            saver.save_now(trainer)
        except Exception as error:
            where = "".join(f" in {path}" for path in saver_directories((saver,)))
            error.add_note(f"raised by {type(saver).__qualname__}{where} saving for preemption")
            errors.append(error)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ExceptionGroup(f"{len(errors)} checkpoint savers failed on preemption", errors)


def saver_directories(savers: Iterable[object]) -> tuple[Path, ...]:
    """The checkpoint directories of the savers that have one (``ModelCheckpoint``)."""
    return tuple(
        path for saver in savers if isinstance(path := getattr(saver, "directory", None), Path)
    )
