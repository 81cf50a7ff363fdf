"""Record the epoch logs of training runs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

from artifex.generative_models.training._checks import check_int, check_real, describe
from artifex.generative_models.training.callbacks._monitor import to_float
from artifex.generative_models.training.callbacks.base import BaseCallback, TrainerLike

__all__ = ["History"]


class History(BaseCallback):
    """Keep every epoch's logs, as Keras' ``History`` does.

    ``history[key][i]`` is the value of ``key`` in the ``i``-th recorded epoch, whose
    number is ``epochs[i]``; epochs without ``key`` hold NaN there, so every list is
    as long as ``epochs``. Only numeric values are kept, as Python floats. Epochs
    accumulate across ``fit`` calls (``clear()`` forgets them), which suits resumed
    runs. Reads epoch logs only: no per-batch work, no device sync.
    """

    __slots__ = ("epochs", "history")

    def __init__(self) -> None:
        self.epochs: list[int] = []
        self.history: dict[str, list[float]] = {}

    def __repr__(self) -> str:
        """A readable representation."""
        return f"History(epochs={self.epochs!r}, keys={sorted(self.history)!r})"

    def clear(self) -> None:
        """Forget all recorded epochs."""
        self.epochs.clear()
        self.history.clear()

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Append this epoch's numeric logs."""
        done = len(self.epochs)
        self.epochs.append(epoch)
        for key, raw in logs.items():
            value = to_float(raw)
            if value is None:
                continue
            column = self.history.get(key)
            if column is None:
                column = self.history[key] = [math.nan] * done
            column.append(value)
        for column in self.history.values():
            if len(column) == done:
                column.append(math.nan)

    @property
    def state_key(self) -> str:
        """The key of this callback's state in checkpoints."""
        return "History"

    def state_dict(self) -> dict[str, Any]:
        """Return copies of ``epochs`` and ``history``."""
        return {
            "epochs": list(self.epochs),
            "history": {key: list(values) for key, values in self.history.items()},
        }

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        """Restore what [`state_dict`][] returned; a bad state changes nothing.

        Args:
            state: A mapping with ``"epochs"`` and ``"history"``.

        Raises:
            KeyError: If one of them is missing.
            TypeError: If ``epochs`` is not a list of ints, ``history`` not a mapping
                of lists of numbers (the message names the field and the value).
            ValueError: If an epoch is negative, or a column is not as long as ``epochs``.
        """
        for field in ("epochs", "history"):
            if field not in state:
                raise KeyError(f"History state has no {field!r}; expected 'epochs' and 'history'")
        raw_epochs, raw_history = _sequence("'epochs'", state["epochs"]), state["history"]
        epochs = [
            check_int(f"History state 'epochs'[{i}]", epoch, minimum=0)
            for i, epoch in enumerate(raw_epochs)
        ]
        if not isinstance(raw_history, Mapping):
            raise TypeError(
                f"History state 'history' must be a mapping, got {describe(raw_history)}"
            )
        history: dict[str, list[float]] = {}
        for key, raw in cast("Mapping[object, object]", raw_history).items():
            field = f"'history'[{key!r}]"
            values = _sequence(field, raw)
            if len(values) != len(epochs):
                raise ValueError(
                    f"History state {field} has {len(values)} values for {len(epochs)} epochs"
                )
            history[str(key)] = [
                check_real(f"History state {field}[{i}]", value, finite=False)
                for i, value in enumerate(values)
            ]
        self.epochs, self.history = epochs, history


def _sequence(field: str, value: object) -> list[object] | tuple[object, ...]:
    """``value`` if it is a list or tuple, else a ``TypeError`` naming ``field``."""
    if not isinstance(value, list | tuple):
        raise TypeError(f"History state {field} must be a list, got {describe(value)}")
    return cast("list[object] | tuple[object, ...]", value)
