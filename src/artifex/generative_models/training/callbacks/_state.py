r"""Collecting and loading the state of :class:`StatefulCallback`\ s, by ``state_key``.

Used by the reference trainer (registration checks, ``resume``) and by
``ModelCheckpoint`` (saving the states with the model). Private: the public surface is
the :class:`StatefulCallback` and :class:`CallbackHost` protocols.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from artifex.generative_models.training.callbacks.base import TrainingCallback, flatten_callbacks
from artifex.generative_models.training.callbacks.protocols import StatefulCallback

__all__ = ["load_callback_states", "stateful_callbacks"]


def stateful_callbacks(callbacks: Iterable[TrainingCallback]) -> dict[str, StatefulCallback]:
    """Every :class:`StatefulCallback` among ``callbacks``, by ``state_key``.

    Nested callback lists are flattened depth-first, in dispatch order.

    Args:
        callbacks: Callbacks, or a ``CallbackList``.

    Returns:
        A dict from ``state_key`` to the callback, in dispatch order.

    Raises:
        TypeError: If a ``state_key`` is not a non-empty str.
        ValueError: If two callbacks have the same ``state_key`` (both are named).
    """
    found: dict[str, StatefulCallback] = {}
    for _, callback in flatten_callbacks(callbacks):
        if not isinstance(callback, StatefulCallback):
            continue
        key: object = callback.state_key
        if not isinstance(key, str) or not key:
            raise TypeError(
                f"callback {callback!r} has state_key {key!r}; expected a non-empty str"
            )
        other = found.get(key)
        if other is not None:
            raise ValueError(
                f"two callbacks have the state_key {key!r}: {other!r} and {callback!r}; "
                "their checkpointed states would collide. Give one of them another key "
                "(e.g. another monitor or filename) or drop the duplicate."
            )
        found[key] = callback
    return found


def load_callback_states(
    callbacks: Iterable[TrainingCallback], states: Mapping[str, Mapping[str, Any]], /
) -> None:
    """Load saved states (by ``state_key``) into the stateful ``callbacks``.

    A callback without a saved state keeps its own, and a saved state without a
    callback is ignored; both warn (``UserWarning``), naming the keys.

    Args:
        callbacks: Callbacks, or a ``CallbackList``.
        states: ``{state_key: state_dict}``, as saved in a checkpoint.

    Raises:
        ValueError: If two callbacks have the same ``state_key``.
    """
    targets = stateful_callbacks(callbacks)
    missing = sorted(key for key in targets if key not in states)
    unused = sorted(key for key in states if key not in targets)
    if missing:
        warnings.warn(
            f"the checkpoint holds no state for the callbacks with state_key {missing}; "
            "they keep their current state",
            UserWarning,
            stacklevel=2,
        )
    if unused:
        warnings.warn(
            f"the checkpoint holds callback states {unused} that no callback of this "
            "trainer claims; they are ignored",
            UserWarning,
            stacklevel=2,
        )
    for key, callback in targets.items():
        if key in states:
            callback.load_state_dict(dict(states[key]))
