"""Shared helpers of the built-in callbacks: validation and monitored-metric lookup.

Private: the public names here are re-exported from the package.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

__all__ = [
    "MissingMetricWarning",
    "Mode",
    "MonitorLookup",
    "check_int",
    "check_mode",
    "check_real",
    "to_float",
    "worst",
]

Mode: TypeAlias = Literal["min", "max"]
"""Whether a monitored metric improves downwards (``"min"``) or upwards (``"max"``)."""


class MissingMetricWarning(UserWarning):
    """A callback's monitored metric is missing from the logs it received."""


def check_mode(field: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is ``"min"`` or ``"max"``.

    Args:
        field: The config field, named in the message.
        value: The value to check.

    Raises:
        ValueError: If ``value`` is neither ``"min"`` nor ``"max"``.
    """
    if value not in ("min", "max"):
        raise ValueError(f"{field} must be 'min' or 'max', got {value!r}")


def check_int(field: str, value: object, *, minimum: int) -> None:
    """Raise unless ``value`` is an ``int`` (not a ``bool``) at least ``minimum``.

    Args:
        field: The config field, named in the message.
        value: The value to check.
        minimum: The smallest value allowed.

    Raises:
        TypeError: If ``value`` is not an ``int``.
        ValueError: If ``value`` is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field} must be an int, got {type(value).__qualname__} {value!r}")
    if value < minimum:
        raise ValueError(f"{field} must be >= {minimum}, got {value!r}")


def check_real(
    field: str, value: object, *, minimum: float | None = None, finite: bool = True
) -> None:
    """Raise unless ``value`` is a real number (not a ``bool``) within bounds.

    Args:
        field: The config field, named in the message.
        value: The value to check.
        minimum: The smallest value allowed, if any.
        finite: Whether NaN and infinities are rejected.

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


def to_float(value: object) -> float | None:
    """Convert a metric (Python number, NumPy or JAX scalar) to ``float``, else ``None``.

    Converting a device array waits for it: callers use this on epoch logs (already
    Python floats under the lifecycle contract) or where syncing is the point.
    """
    if isinstance(value, bool):
        return None
    try:
        return float(value)  # type: ignore[arg-type]  # any scalar-like; failures handled
    except (TypeError, ValueError):
        return None


def worst(mode: Mode) -> float:
    """The score every real score improves on: ``+inf`` for ``"min"``, ``-inf`` for ``"max"``."""
    return math.inf if mode == "min" else -math.inf


class MonitorLookup:
    """Looks a monitored key up in logs; warns once (or raises) when it is missing.

    Args:
        owner: The callback's name, used in messages.
        monitor: The key to look up.
        strict: Raise ``KeyError`` instead of warning when the key is missing.
    """

    __slots__ = ("_warned", "monitor", "owner", "strict")

    def __init__(self, owner: str, monitor: str, *, strict: bool) -> None:
        self.owner = owner
        self.monitor = monitor
        self.strict = strict
        self._warned = False

    def reset(self) -> None:
        """Allow the missing-key warning again (called at ``on_train_begin``)."""
        self._warned = False

    def __call__(self, logs: Mapping[str, Any], where: str) -> object | None:
        """Return ``logs[monitor]``, or ``None`` after warning once if it is missing.

        Args:
            logs: The logs a hook received.
            where: The hook, named in the message (e.g. ``"on_epoch_end"``).

        Returns:
            The logged value, or ``None`` when the key is missing.

        Raises:
            KeyError: If the key is missing and ``strict`` is set.
        """
        return self._get(logs, where)

    def _get(self, logs: Mapping[str, Any], where: str) -> object | None:
        """The lookup of ``__call__`` and :meth:`number`, one frame below either.

        Both reach it through one frame, so the warning's ``stacklevel`` (this frame,
        ``__call__`` or ``number``, the hook, the dispatch, its caller) is the same.
        """
        if self.monitor in logs:
            value: object = logs[self.monitor]
            return value
        available = ", ".join(repr(key) for key in logs) or "none"
        message = (
            f"{self.owner} monitors {self.monitor!r}, which is not in the logs of {where} "
            f"(available keys: {available})"
        )
        if self.strict:
            raise KeyError(message)
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{message}; it does nothing until the key appears. Pass strict=True to "
                "raise instead.",
                MissingMetricWarning,
                stacklevel=5,
            )
        return None

    def number(self, logs: Mapping[str, Any], where: str) -> float | None:
        """Return ``logs[monitor]`` as a ``float``, or ``None`` if missing (see ``__call__``).

        Args:
            logs: The logs a hook received.
            where: The hook, named in the message (e.g. ``"on_epoch_end"``).

        Returns:
            The logged value as a float, or ``None`` when the key is missing.

        Raises:
            KeyError: If the key is missing and ``strict`` is set.
            TypeError: If the logged value is not a number.
        """
        raw = self._get(logs, where)
        if raw is None:
            return None
        value = to_float(raw)
        if value is None:
            raise TypeError(
                f"{self.owner} monitors {self.monitor!r}, whose value {raw!r} in the logs of "
                f"{where} is not a number"
            )
        return value
