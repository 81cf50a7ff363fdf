"""Argument checks shared by the trainer, the batcher and the built-in callbacks' configs.

Each check raises ``TypeError`` (wrong type) or ``ValueError`` (bad value) with a
message naming the field and the offending value, and returns the value narrowed.
``callbacks/base.py`` keeps its own ``process_index`` check: the callback core imports
nothing of ours.
"""

from __future__ import annotations

import math
import os
from typing import TypeVar

import numpy as np

__all__ = [
    "check_bool",
    "check_int",
    "check_mode",
    "check_name",
    "check_path",
    "check_real",
    "resolve_config",
]

C = TypeVar("C")


def check_int(field: str, value: object, *, minimum: int, numpy: bool = False) -> int:
    """Return ``value`` as an ``int`` if it is one (not a ``bool``) at least ``minimum``.

    Args:
        field: The field or argument, named in the message.
        value: The value to check.
        minimum: The smallest value allowed.
        numpy: Also accept NumPy integer scalars.

    Returns:
        ``value`` as a Python ``int``.

    Raises:
        TypeError: If ``value`` is not an ``int``.
        ValueError: If ``value`` is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{field} must be an int, got {type(value).__qualname__} {value!r}")
    if not numpy and not isinstance(value, int):
        raise TypeError(f"{field} must be an int, got {type(value).__qualname__} {value!r}")
    if value < minimum:
        raise ValueError(f"{field} must be >= {minimum}, got {value!r}")
    return int(value)


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
        raise TypeError(f"{field} must be a number, got {type(value).__qualname__} {value!r}")
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
        raise TypeError(f"{field} must be a bool, got {type(value).__qualname__} {value!r}")
    return value


def check_mode(field: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is ``"min"`` or ``"max"``.

    Raises:
        ValueError: If ``value`` is neither ``"min"`` nor ``"max"``.
    """
    if value not in ("min", "max"):
        raise ValueError(f"{field} must be 'min' or 'max', got {value!r}")


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
        ValueError: If ``value`` is not a path, or an empty one.
    """
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise ValueError(f"{field} must be a non-empty path, got {value!r}")


def resolve_config(config: C | None, cls: type[C], owner: str) -> C:
    """A callback's config: ``config`` itself, or ``cls()`` (the defaults) if omitted.

    Args:
        config: What the caller passed.
        cls: The config class.
        owner: The callback's name, used in the message.

    Returns:
        The config to use.

    Raises:
        TypeError: If ``config`` is neither ``None`` nor a ``cls``.
    """
    if config is None:
        return cls()
    untrusted: object = config
    if not isinstance(untrusted, cls):
        article = "an" if cls.__qualname__[:1] in "AEIOU" else "a"
        raise TypeError(
            f"{owner} expects {article} {cls.__qualname__}, "
            f"got {type(config).__qualname__} {config!r}"
        )
    return config
