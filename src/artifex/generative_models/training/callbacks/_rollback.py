"""All or nothing: a resume that fails leaves the trainer and its callbacks as they were.

A resume loads the trainer's state, each stateful callback's and the data position,
and then checks (the data can resume there, every ``preflight`` accepts the run).
[`all_or_nothing`][] snapshots what a resume may change first, through the public
protocols alone (``state_dict``, ``array_state``), and on any exception loads the
snapshot back (and forgets the run the trainer was said to continue), so the user's
newer state in memory is never lost to a refused resume.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Generator, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifex.generative_models.training._checkpointing._runs import (
    RunClaim,
    claims_of,
    reset_claims,
)
from artifex.generative_models.training.callbacks._state import stateful_callbacks
from artifex.generative_models.training.callbacks.base import TrainingCallback
from artifex.generative_models.training.callbacks.protocols import (
    ArrayStatefulCallback,
    CheckpointableTrainer,
    StatefulCallback,
)

__all__ = ["all_or_nothing"]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What a resume may change, as it was before."""

    trainer: CheckpointableTrainer
    state: dict[str, Any]
    claims: dict[Path, RunClaim]
    callbacks: tuple[tuple[StatefulCallback, dict[str, Any]], ...]
    arrays: tuple[tuple[ArrayStatefulCallback, Any], ...]

    @classmethod
    def take(
        cls, trainer: CheckpointableTrainer, callbacks: Iterable[TrainingCallback]
    ) -> _Snapshot:
        found = tuple(stateful_callbacks(callbacks).values())
        arrays = tuple(
            (callback, callback.array_state())
            for callback in found
            if isinstance(callback, ArrayStatefulCallback)
        )
        return cls(
            trainer,
            trainer.state_dict(),  # arrays never donated later (its contract)
            claims_of(trainer),
            # Deep copies: a callback may hand out (and load into) its own lists.
            tuple((callback, copy.deepcopy(callback.state_dict())) for callback in found),
            tuple((callback, tree) for callback, tree in arrays if tree is not None),
        )

    def restore(self, error: BaseException) -> None:
        """Load everything back; what fails is a note on ``error``, never raised."""
        steps: list[tuple[str, Callable[[], None]]] = [
            ("the trainer's state", lambda: self.trainer.load_state_dict(self.state))
        ]
        steps += [
            (f"callback {cb.state_key!r}'s state", _loader(cb.load_state_dict, state))
            for cb, state in self.callbacks
        ]
        steps += [
            (f"callback {cb.state_key!r}'s arrays", _loader(cb.load_array_state, tree))
            for cb, tree in self.arrays
        ]
        for what, load in steps:
            try:
                load()
            except Exception as failure:  # a note: the original error propagates
                error.add_note(
                    f"putting back {what} as it was before the resume failed: {failure!r}"
                )
        reset_claims(self.trainer, self.claims)


def _loader(load: Callable[[Any], None], value: Any) -> Callable[[], None]:
    """``load(value)`` for later (a JSON state copied again: a load may keep it)."""
    return lambda: load(copy.deepcopy(value) if isinstance(value, dict) else value)


@contextmanager
def all_or_nothing(
    trainer: CheckpointableTrainer, callbacks: Iterable[TrainingCallback]
) -> Generator[None]:
    """Run the block; if it raises, put the trainer and its callbacks back as they were.

    Args:
        trainer: The trainer a resume loads into.
        callbacks: Its callbacks (or a ``CallbackList``).

    Raises:
        ValueError: If two callbacks share a ``state_key`` (before the block runs).
    """
    saved = _Snapshot.take(trainer, callbacks)
    try:
        yield
    except BaseException as error:
        saved.restore(error)
        raise
