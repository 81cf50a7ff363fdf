"""Mid-epoch positions: what a trainer's state holds inside an epoch, and resuming there.

A mid-epoch ``state_dict()`` has ``"epoch_progress"``: ``{"batches": int, "sums":
{metric: array}}``, how many batches of the epoch in progress have run and their
running metric sums, so that the resumed epoch's logs equal the uninterrupted ones.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from artifex.generative_models.training._epoch import Progress
from artifex.generative_models.training._means import Sums
from artifex.generative_models.training._spmd import DataParallel
from artifex.generative_models.training.data import StatefulData

__all__ = ["Position", "check_resumable", "epoch_progress", "load_position"]

Position = tuple[int, Sums]
"""``(batches, sums)``: where a resumed fit continues inside its first epoch."""


def epoch_progress(progress: Progress) -> dict[str, Any] | None:
    """The ``"epoch_progress"`` entry of a state taken now, or ``None`` between positions.

    The sums are copied (their buffers are donated by the next step).
    """
    if progress.sums is None:
        return None
    return {
        "batches": progress.batches,
        "sums": {key: jnp.copy(value) for key, value in progress.sums.items()},
    }


def load_position(state: dict[str, Any], spmd: DataParallel | None) -> Position | None:
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


def check_resumable(position: Position | None, data: object, epoch: int) -> None:
    """Refuse to continue inside an epoch with data that cannot resume at its position.

    Raises:
        ValueError: If ``position`` is set and ``data`` is not a ``StatefulData``.
    """
    if position is not None and not isinstance(data, StatefulData):
        raise ValueError(
            f"the restored state is inside epoch {epoch} (after {position[0]} of its "
            f"batches), but train_data ({type(data).__qualname__}) has no saved position "
            "(it is not a StatefulData), so it would replay the epoch from its start; pass "
            "an ArrayBatcher or another StatefulData, or resume from an epoch-end checkpoint"
        )
