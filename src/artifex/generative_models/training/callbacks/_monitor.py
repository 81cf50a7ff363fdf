"""Shared helpers of the built-in callbacks: monitored-metric lookup and conversion.

Argument checks live in ``training/_checks.py``.

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
    "to_float",
    "worst",
]

Mode: TypeAlias = Literal["min", "max"]
"""Whether a monitored metric improves downwards (``"min"``) or upwards (``"max"``)."""


class MissingMetricWarning(UserWarning):
    """A callback's monitored metric is missing from the logs it received."""


def to_float(value: object) -> float | None:
    """Convert a metric (Python number, NumPy or JAX scalar) to ``float``, else ``None``.

    Converting a device array waits for it: callers use this on epoch logs (already
    Python floats under the lifecycle contract) or where syncing is the point.
    """
    if isinstance(value, bool):
        return None
    try:
        return float(value)  # type: ignore[arg-type]  # any scalar-like; failures handled  # ty: ignore[invalid-argument-type]
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
        """The lookup of ``__call__`` and ``number``, one frame below either.

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
