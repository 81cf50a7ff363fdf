"""Argument checks shared by the trainer, the batcher and the built-in callbacks' configs.

Each check raises ``TypeError`` (wrong type) or ``ValueError`` (bad value) with a
message naming the field and the offending value, and returns the value narrowed.
``callbacks/base.py`` keeps its own ``process_index`` check: the callback core imports
nothing of ours.
"""

from __future__ import annotations

import math
import os

import numpy as np
from flax import nnx

__all__ = [
    "check_bool",
    "check_checkpoint_location",
    "check_filter",
    "check_int",
    "check_name",
    "check_path",
    "check_real",
    "describe",
    "python_scalars",
    "set_int",
]

_SHORT_REPR = 60
"""The longest repr an error message shows; a longer one (a model, an optimizer) is left out."""


def describe(value: object) -> str:
    """A bad value for an error message: its type, and its repr when that is one short line.

    ``"int 3"``, ``"NoneType None"``; for a value whose repr is long or spans lines
    (a module, an optimizer, a big array), the type name alone, so that a message stays a
    few lines and never prints a whole object.
    """
    name = type(value).__qualname__
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        return name
    return f"{name} {text}" if len(text) <= _SHORT_REPR and "\n" not in text else name


def check_int(field: str, value: object, *, minimum: int) -> int:
    """Return ``value`` as an ``int`` if it is an integer (not a ``bool``) at least ``minimum``.

    The one rule for integer arguments everywhere (configs, the trainer, the batcher): a
    Python ``int`` or a NumPy integer scalar (``np.int64(2)``), used as a Python ``int``.
    ``bool``, ``np.bool_``, floats (``2.0``) and strings are refused.

    Args:
        field: The field or argument, named in the message.
        value: The value to check.
        minimum: The smallest value allowed.

    Returns:
        ``value`` as a Python ``int``.

    Raises:
        TypeError: If ``value`` is not an integer.
        ValueError: If ``value`` is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{field} must be an int, got {describe(value)}")
    if value < minimum:
        raise ValueError(f"{field} must be >= {minimum}, got {value!r}")
    return int(value)


def set_int(config: object, field: str, *, minimum: int) -> None:
    """Check a frozen config's integer ``field`` with ``check_int``, storing it as an ``int``.

    Raises:
        TypeError: If the field is not an integer.
        ValueError: If it is below ``minimum``.
    """
    value = check_int(field, getattr(config, field), minimum=minimum)
    object.__setattr__(config, field, value)  # frozen: a NumPy integer is stored as an int


def python_scalars(value: object) -> object:
    """``value`` with every NumPy scalar in it as the Python scalar it stands for.

    The integer rule for what is saved (checkpoint metadata, callback states, JSON
    items): ``np.int64(3)`` is saved as ``3``, as a config stores it (``set_int``), and
    likewise a NumPy float or bool. Dicts, lists and tuples are copied with their
    values converted (a tuple becomes a list, as JSON saves it); anything else is
    returned as it is.
    """
    if isinstance(value, np.integer | np.floating | np.bool_):
        return value.item()
    if isinstance(value, dict):
        return {key: python_scalars(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [python_scalars(item) for item in value]
    return value


def check_real(
    field: str, value: object, *, minimum: float | None = None, finite: bool = True
) -> float:
    """Return ``value`` if it is a real number (not a ``bool``) within bounds.

    Args:
        field: The field, named in the message.
        value: The value to check.
        minimum: The smallest value allowed, if any.
        finite: Whether NaN and infinities are rejected.

    Returns:
        ``value`` as a ``float``.

    Raises:
        TypeError: If ``value`` is not an ``int`` or ``float``.
        ValueError: If ``value`` is out of bounds or not finite.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{field} must be a number, got {describe(value)}")
    if finite and not math.isfinite(value):
        raise ValueError(f"{field} must be finite, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{field} must be >= {minimum}, got {value!r}")
    return float(value)


def check_bool(field: str, value: object) -> bool:
    """Return ``value`` if it is a ``bool``.

    Raises:
        TypeError: If ``value`` is not a ``bool`` (``0`` and ``1`` are not).
    """
    if not isinstance(value, bool):
        raise TypeError(f"{field} must be a bool, got {describe(value)}")
    return value


def check_filter(field: str, value: object) -> None:
    """Raise ``TypeError`` unless ``value`` is an NNX filter (as ``nnx.filterlib`` reads it).

    Raises:
        TypeError: If NNX cannot read ``value`` as a filter.
    """
    try:
        nnx.filterlib.to_predicate(value)  # type: ignore[arg-type]  # the run-time check itself  # ty: ignore[invalid-argument-type]
    except Exception as error:  # Flax's own message is a broken f-string: replace it
        raise TypeError(
            f"{field} must be an NNX filter (a Variable type such as nnx.Param, a string, "
            f"..., None, a bool, a predicate, or a tuple of filters), got "
            f"{describe(value)}"
        ) from error


def check_name(field: str, value: object, *, optional: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a non-empty ``str`` (or ``None``, if optional).

    Raises:
        ValueError: If ``value`` is not a non-empty string.
    """
    if optional and value is None:
        return
    if not isinstance(value, str) or not value:
        expected = "None or a non-empty str" if optional else "a non-empty str"
        raise ValueError(f"{field} must be {expected}, got {value!r}")


def check_path(field: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is a non-empty ``str`` or ``os.PathLike``.

    Raises:
        ValueError: If ``value`` is not a path, an empty one, or holds a null byte.
    """
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise ValueError(f"{field} must be a non-empty path, got {value!r}")
    if "\0" in os.fsdecode(os.fspath(value)):
        raise ValueError(f"{field} must not contain a null byte, got {value!r}")


def check_checkpoint_location(field: str, value: object, step: object = None) -> None:
    """Check where a checkpoint is read from: a directory path, and a step (or ``None``).

    Args:
        field: The argument naming the directory (``directory``, ``resume_from``).
        value: Its value.
        step: The ``step`` argument, ``None`` for the latest.

    Raises:
        TypeError: If ``value`` is not a ``str`` or ``os.PathLike``, or ``step`` is not
            an integer (``6.0`` and ``"6"`` are not).
        ValueError: If ``value`` is empty (``""`` is not the working directory) or holds
            a null byte, or ``step`` is negative.
        NotADirectoryError: If ``value`` is a file, such as the directory's marker.
    """
    if not isinstance(value, str | os.PathLike):
        raise TypeError(
            f"{field} must be a checkpoint directory (a str or os.PathLike), got {describe(value)}"
        )
    check_path(field, value)
    if os.path.isfile(value):
        raise NotADirectoryError(
            f"{field} must be a checkpoint directory, got the file {os.fsdecode(value)!r}; "
            "pass the directory that holds it"
        )
    if step is not None:
        check_int("step", step, minimum=0)
