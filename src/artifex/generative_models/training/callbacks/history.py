"""Record the epoch logs of training runs."""

from __future__ import annotations

import math
from typing import Any

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
        """Restore what [`state_dict`][] returned.

        Args:
            state: A mapping with ``"epochs"`` and ``"history"``.
        """
        self.epochs = [int(epoch) for epoch in state["epochs"]]
        self.history = {
            str(key): [float(value) for value in values] for key, values in state["history"].items()
        }
