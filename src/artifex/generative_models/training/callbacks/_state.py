r"""Collecting and loading the state of [`StatefulCallback`][]s, by ``state_key``.

The JSON part (``state_dict``) of every stateful callback, and the array part
(``array_state``) of every [`ArrayStatefulCallback`][] that has one.

Used by the reference trainer (registration checks, ``resume``) and by
``ModelCheckpoint`` (saving the states with the model). Private: the public surface is
the [`StatefulCallback`][] and ``CallbackHost`` protocols.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any, cast

import numpy as np

from artifex.generative_models.training.callbacks.base import TrainingCallback, flatten_callbacks
from artifex.generative_models.training.callbacks.protocols import (
    ArrayStatefulCallback,
    StatefulCallback,
)

__all__ = [
    "callback_array_states",
    "check_json",
    "load_callback_array_states",
    "load_callback_states",
    "stateful_callbacks",
]

# bool is an int; NumPy scalars are saved as the Python scalar they stand for
# (the integer rule, `_checks.python_scalars`, applied where items are saved).
_JSON_LEAVES = (str, int, float, type(None), np.integer, np.floating, np.bool_)


def check_json(value: object, owner: str, root: str = "state") -> None:
    """Refuse what a JSON checkpoint item cannot hold exactly, naming ``owner`` and the place.

    Dicts with ``str`` keys, lists, tuples (read back as lists), ``str``, ``int``,
    ``float``, ``bool``, ``None`` and NumPy scalars (saved as Python scalars) pass.
    Walked without recursion.

    Args:
        value: What is about to be saved as JSON.
        owner: Who returned it, for the message (a callback and its ``state_key``).
        root: The name of ``value`` in the message.

    Raises:
        TypeError: Naming ``owner``, the place (``state['seen']``) and the type found.
    """
    todo: list[tuple[str, object]] = [(root, value)]
    while todo:
        where, item = todo.pop()
        if isinstance(item, dict):
            for key, child in cast("dict[object, object]", item).items():
                if not isinstance(key, str):
                    raise TypeError(
                        f"{owner}: {where} has the key {key!r} ({type(key).__qualname__}), "
                        "but a checkpoint's JSON keys are str (it would come back as "
                        f"{str(key)!r}); use str keys"
                    )
                todo.append((f"{where}[{key!r}]", child))
        elif isinstance(item, list | tuple):
            items = cast("list[object] | tuple[object, ...]", item)
            todo += [(f"{where}[{i}]", child) for i, child in enumerate(items)]
        elif not isinstance(item, _JSON_LEAVES):
            raise TypeError(
                f"{owner}: {where} is a {type(item).__qualname__}, which a checkpoint's "
                "JSON cannot hold; use dicts with str keys, lists, str, int, float, bool "
                "and None (e.g. a sorted list for a set, a str for bytes)"
            )


def stateful_callbacks(callbacks: Iterable[TrainingCallback]) -> dict[str, StatefulCallback]:
    """Every [`StatefulCallback`][] among ``callbacks``, by ``state_key``.

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
            try:
                callback.load_state_dict(dict(states[key]))
            except Exception as error:
                error.add_note(
                    f"while loading the checkpointed state of callback "
                    f"{type(callback).__qualname__} (state_key {key!r})"
                )
                raise


def callback_array_states(callbacks: Iterable[TrainingCallback]) -> dict[str, Any]:
    r"""The array states of the [`ArrayStatefulCallback`][]s among ``callbacks``.

    Args:
        callbacks: Callbacks, or a ``CallbackList``.

    Returns:
        ``{state_key: array_state()}`` for each one whose ``array_state()`` is not
        ``None``, in dispatch order.

    Raises:
        ValueError: If two callbacks have the same ``state_key``.
    """
    arrays: dict[str, Any] = {}
    for key, callback in stateful_callbacks(callbacks).items():
        if isinstance(callback, ArrayStatefulCallback):
            tree = callback.array_state()
            if tree is not None:
                arrays[key] = tree
    return arrays


def load_callback_array_states(
    callbacks: Iterable[TrainingCallback], arrays: Mapping[str, Any], /
) -> None:
    """Load saved array states (by ``state_key``) into the array-stateful ``callbacks``.

    Call it after ``load_callback_states``. A callback without a saved array state
    keeps its own (a checkpoint saved while it had none holds none); a saved array state whose
    callback is missing or has no array part is ignored, with a ``UserWarning``.

    Args:
        callbacks: Callbacks, or a ``CallbackList``.
        arrays: ``{state_key: array_state}``, as saved in a checkpoint.

    Raises:
        ValueError: If two callbacks have the same ``state_key``.
    """
    targets = {
        key: callback
        for key, callback in stateful_callbacks(callbacks).items()
        if isinstance(callback, ArrayStatefulCallback)
    }
    unused = sorted(key for key in arrays if key not in targets)
    if unused:
        warnings.warn(
            f"the checkpoint holds array states {unused} that no callback of this trainer "
            "with an array part claims; they are ignored",
            UserWarning,
            stacklevel=2,
        )
    for key, callback in targets.items():
        if key in arrays:
            callback.load_array_state(arrays[key])
