"""The shared part of the experiment-tracker callbacks (``WandbLogger``, ``MLflowLogger``).

What is logged, at which step, and how a run ended; the tracker itself (opening,
writing, closing a run) is the subclass's job. Private: the trackers are public.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jax

from artifex.generative_models.training.callbacks._configured import C, ConfiguredCallback
from artifex.generative_models.training.callbacks._monitor import to_float
from artifex.generative_models.training.callbacks.base import ProcessScope, TrainerLike
from artifex.generative_models.training.callbacks.protocols import TrainerState

__all__ = [
    "TrackerCallback",
    "epoch_step",
    "missing_extra",
    "read_only_mapping",
    "run_failed",
    "scalars",
]


def missing_extra(owner: str, package: str, extra: str) -> ImportError:
    """The error for a tracker package that is not installed, naming the extra.

    Args:
        owner: The callback, named in the message.
        package: The missing package (``"wandb"``, ``"mlflow"``).
        extra: The extra of this package that installs it.

    Returns:
        The ``ImportError`` to raise (``from`` the original one).
    """
    return ImportError(
        f"{owner} needs the {package!r} package: pip install 'artifex-nnx-callbacks[{extra}]'"
    )


def read_only_mapping(field_name: str, value: object) -> Mapping[str, object]:
    """A read-only copy of a mapping with non-empty ``str`` keys (a config field).

    Raises:
        TypeError: If ``value`` is not a mapping.
        ValueError: If a key is not a non-empty str.
    """
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{field_name} must be a mapping of str keys, got {type(value).__qualname__} {value!r}"
        )
    bad = [key for key in value if not isinstance(key, str) or not key]
    if bad:
        raise ValueError(f"{field_name} keys must be non-empty str, got {bad!r}")
    return MappingProxyType(dict(value))


def scalars(logs: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of ``logs`` as floats (bools, strings and non-scalars left out)."""
    found: dict[str, float] = {}
    for key, raw in logs.items():
        value = to_float(raw)
        if value is not None:
            found[key] = value
    return found


def epoch_step(trainer: TrainerLike, counted: int) -> int:
    """The global step an epoch's values are logged at, the one axis of every logger.

    The training steps done: ``trainer.step`` for a ``TrainerState`` trainer, else
    ``counted`` (the last batch's ``s + 1``). Batch ``s`` is logged at ``s + 1``, so
    an epoch and its last batch share a step.
    """
    return trainer.step if isinstance(trainer, TrainerState) else counted


def run_failed(trainer: TrainerLike) -> bool:
    """Whether the run that is ending failed (known only for a ``TrainerState`` trainer)."""
    return isinstance(trainer, TrainerState) and trainer.status == "failed"


class TrackerCallback(ConfiguredCallback[C]):
    """Logs epoch scalars, and batch scalars every ``n`` steps, at the global step.

    The step of a value is the number of training steps done when it was logged: batch
    ``s`` logs at ``s + 1``, an epoch at ``trainer.step`` (a ``TrainerState`` trainer) or
    at the last batch's ``s + 1``. So the last batch of an epoch and the epoch share a
    step. Batch logs are read only every ``n`` steps, all keys in one device fetch.

    It is a ``StatefulCallback``: its state (``state_key``: the class name) is the id
    of the run, which the subclass resumes at the next ``on_train_begin``.

    Args:
        every_n_steps: Log batch scalars (as ``batch/<key>``) every ``n`` steps; ``0``
            never (no batch log is read).
    """

    __slots__ = ("_every", "_run_id", "_steps")
    process_scope: ProcessScope = "main"  # one run, written by process 0 only

    def __init__(self, every_n_steps: int) -> None:
        self._every = every_n_steps
        self._steps = 0
        self._run_id: str | None = None

    @property
    def run_id(self) -> str | None:
        """The id of the tracker's run, once one was started (or restored)."""
        return self._run_id

    def _log(self, values: dict[str, float], step: int, /) -> None:
        """Send ``values`` to the tracker at ``step`` (the subclass's job)."""
        raise NotImplementedError

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        """Count the step; every ``n`` steps (if set), fetch and log the batch scalars."""
        self._steps = batch + 1
        if self._every and self._steps % self._every == 0:
            host = jax.device_get(dict(logs))  # one fetch for every key
            self._log({f"batch/{key}": value for key, value in scalars(host).items()}, batch + 1)

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Log the epoch scalars and ``epoch``, at the global step."""
        self._log({**scalars(logs), "epoch": float(epoch)}, epoch_step(trainer, self._steps))

    # ------------------------------------------------------------- callback state

    @property
    def state_key(self) -> str:
        """The key of this logger's state in checkpoints: its class name."""
        return type(self).__name__

    def state_dict(self) -> dict[str, Any]:
        """Return ``{"run_id": id}`` (``None`` before the first run)."""
        return {"run_id": self._run_id}

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        """Restore the run id; the next ``on_train_begin`` resumes that run.

        Args:
            state: What ``state_dict`` returned.

        Raises:
            KeyError: If ``"run_id"`` is missing.
            ValueError: If it is neither ``None`` nor a non-empty str.
        """
        run_id: object = state["run_id"]
        if run_id is not None and (not isinstance(run_id, str) or not run_id):
            raise ValueError(
                f"{type(self).__name__} state 'run_id' must be None or a non-empty str, "
                f"got {run_id!r}"
            )
        self._run_id = run_id
