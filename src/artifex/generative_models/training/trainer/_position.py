"""Where a run is: its counters, its place inside an epoch, and its data's position.

[`RunPosition`][] holds the trainer's counters and writes their part of
``Trainer.state_dict()``. A mid-epoch state has ``"epoch_progress"``: ``{"batches": int,
"sums": {metric: array}}``, how many batches of the epoch in progress have run and
their running metric sums, so that the resumed epoch's logs equal the uninterrupted
ones; its ``"data"`` (a ``StatefulData``'s ``state_dict()``) resumes the data there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from artifex.generative_models.training._spmd import DataParallel
from artifex.generative_models.training.data import StatefulData
from artifex.generative_models.training.trainer._means import MetricSums

__all__ = ["MidEpoch", "RunPosition", "python_values"]

MidEpoch: TypeAlias = tuple[int, MetricSums]
"""``(batches, sums)``: where a resumed fit continues inside its first epoch."""


@dataclass(slots=True)
class RunPosition:
    """The trainer's counters and its data's position, shared with the epoch loop."""

    step: int = 0
    """The global step: how many training steps have run, across ``fit`` calls."""
    epoch: int = 0
    """The current epoch (during ``fit``) or the next one to run."""
    closing: bool = False
    """Whether ``on_epoch_end`` is running (the epoch's steps are all done)."""
    batches: int = 0
    """How many batches of the current epoch have run (those of a resumed part included)."""
    sums: MetricSums | None = None
    """The epoch's running metric sums as of ``batches``, where they describe a position a
    fit can resume from (after a single step, or a chunk's last step); ``None`` inside a
    chunk and outside an epoch's batches."""
    last_batch: bool = False
    """Whether the batch that just ran is known to be its epoch's last (sized data)."""
    examples: int = 0
    """Examples trained on: each step's (global) batch rows, from its first leaf."""
    data: object = None
    """The training data of the current (or last) fit."""
    pending_data: dict[str, Any] | None = None
    """A loaded data position waiting for the next fit's data (the current has no state)."""
    resume_at: MidEpoch | None = None
    """Where the next fit continues inside its first epoch, after a mid-epoch load."""
    planned_epochs: int | None = None
    """The epoch the current (or last) fit ends at if nothing stops it."""
    steps_per_epoch: int | None = None
    """The current (or last) fit's ``len(train_data)``, or ``None`` (no length)."""
    held_data: Callable[[], dict[str, Any] | None] | None = None
    """The data's position before a batch prefetched but not yet taken by the epoch loop
    (``EpochChunks.held_state``), or ``None`` where none is: ``state_dict()`` reports
    that one, so that a prefetch is invisible to positions."""

    def leave_batches(self) -> None:
        """The epoch's batches are over (or were never begun): no resumable position."""
        self.sums, self.last_batch = None, False

    def state_entries(self) -> dict[str, Any]:
        """This position's part of ``Trainer.state_dict()`` (the sums copied: they are donated)."""
        entries: dict[str, Any] = {
            "step": self.step,
            "epoch": self.epoch + 1 if self.closing else self.epoch,
        }
        if self.sums is not None:
            entries["epoch_progress"] = {
                "batches": self.batches,
                "sums": {key: jnp.copy(value) for key, value in self.sums.items()},
            }
        if isinstance(self.data, StatefulData):
            held = None if self.held_data is None else self.held_data()
            entries["data"] = self.data.state_dict() if held is None else held
        elif self.pending_data is not None:
            entries["data"] = dict(self.pending_data)
        return entries

    def load(self, state: dict[str, Any], spmd: DataParallel | None) -> None:
        """Load the counters, mid-epoch position and data position of a trainer state."""
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.resume_at = _mid_epoch(state, spmd)
        if "data" in state:
            data_state = python_values(state["data"])
            if isinstance(self.data, StatefulData):
                self.data.load_state_dict(data_state)
            else:
                self.pending_data = data_state
        else:  # the loaded state has no data position: none from before is kept
            self.pending_data = None

    def replays_resumed_epoch(self, data_resume: str) -> bool:
        """Whether the next fit replays its first epoch's start (data without a position).

        Args:
            data_resume: ``"replay"`` or ``"refuse"`` (``Trainer.fit``'s option).

        Raises:
            ValueError: If a mid-epoch position is loaded, the data is not a
                ``StatefulData`` and ``data_resume`` is ``"refuse"``.
        """
        if self.resume_at is None or isinstance(self.data, StatefulData):
            return False
        if data_resume == "refuse":
            raise ValueError(
                f"the restored state is inside epoch {self.epoch} (after {self.resume_at[0]} "
                f"of its batches), but train_data ({type(self.data).__qualname__}) has no "
                "saved position (it is not a StatefulData) and data_resume='refuse'; pass "
                "data_resume='replay' to replay the epoch from its start and skip the "
                "batches already trained, pass an ArrayBatcher or another StatefulData, or "
                "resume from an epoch-end checkpoint"
            )
        return True

    def apply_pending_data(self) -> None:
        """Load a pending data position into this fit's data, if it has state."""
        if self.pending_data is not None and isinstance(self.data, StatefulData):
            self.data.load_state_dict(self.pending_data)
            self.pending_data = None


def _mid_epoch(state: dict[str, Any], spmd: DataParallel | None) -> MidEpoch | None:
    """The position a restored state's ``"epoch_progress"`` describes, or ``None``."""
    if "epoch_progress" not in state:
        return None
    saved = state["epoch_progress"]
    if spmd is None:
        sums = {str(key): jnp.asarray(value) for key, value in saved["sums"].items()}
    else:  # each process holds the restored scalars locally: build the replicated arrays
        sums = {
            str(key): _replicated(np.asarray(value), spmd) for key, value in saved["sums"].items()
        }
    return int(saved["batches"]), sums


def _replicated(value: np.ndarray, spmd: DataParallel) -> jax.Array:
    """A global array replicated over the mesh, from the same value on every process."""
    return jax.make_array_from_callback(value.shape, spmd.replicated, lambda _: value)


def python_values(tree: Any) -> Any:
    """``tree`` with its 0-d arrays as Python scalars (a format-4 ``"data"`` entry).

    A ``StatefulData``'s ``load_state_dict`` receives Python values only.
    """
    if isinstance(tree, dict):
        return {key: python_values(value) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return [python_values(value) for value in tree]
    if isinstance(tree, np.ndarray | jax.Array | np.generic) and np.ndim(tree) == 0:
        return np.asarray(tree).item()
    return tree
