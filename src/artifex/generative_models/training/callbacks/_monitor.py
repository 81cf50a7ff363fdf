"""Shared helpers of the built-in callbacks: monitored-metric lookup, conversion and mode.

Argument checks live in ``training/_checks.py``.

Private: the public names here are re-exported from the package.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

__all__ = [
    "MissingMetricWarning",
    "Mode",
    "MonitorLookup",
    "check_resumed_mode",
    "resolve_mode",
    "set_mode",
    "to_float",
    "worst",
]

Mode: TypeAlias = Literal["auto", "min", "max"]
"""Whether a monitored metric improves downwards (``"min"``) or upwards (``"max"``).

A config takes ``"auto"`` too, and resolves it from the monitor's name when it is built
(``resolve_mode``): a built config's ``mode`` is ``"min"`` or ``"max"``, never ``"auto"``.
"""

_MAX_TOKENS = frozenset(
    ("acc", "accuracy", "auc", "f1", "precision", "recall", "iou", "map", "psnr", "ssim")
)
_MIN_TOKENS = frozenset(
    ("loss", "error", "err", "mse", "mae", "rmse", "nll", "kl", "bpd", "fid", "perplexity")
)


def resolve_mode(owner: str, monitor: str, mode: Mode) -> Literal["min", "max"]:
    """``mode``, or for ``"auto"`` the direction the monitor's name says (as Keras's ``auto``).

    The name, less a ``val_`` prefix, is split into lower-case tokens at every character
    that is not a letter or digit (``"val_top5_acc"``: ``top5``, ``acc``). A token of
    accuracy, AUC, F1, precision, recall, IoU, mAP, PSNR or SSIM (``acc``, ``accuracy``,
    ``auc``, ``f1``, ``precision``, ``recall``, ``iou``, ``map``, ``psnr``, ``ssim``)
    means ``"max"``; one of a loss or an error (``loss``, ``error``, ``err``, ``mse``,
    ``mae``, ``rmse``, ``nll``, ``kl``, ``bpd``, ``fid``, ``perplexity``) means
    ``"min"``. A name with neither, or with both, is refused: so is ``elbo``, whose sign
    is a convention.

    Args:
        owner: The config's name, used in the message (e.g. ``"EarlyStoppingConfig"``).
        monitor: The monitored log key.
        mode: ``"auto"``, ``"min"`` or ``"max"``.

    Returns:
        ``"min"`` or ``"max"``.

    Raises:
        ValueError: If ``mode`` is not ``"auto"``, ``"min"`` or ``"max"``, or is
            ``"auto"`` and the name says neither direction or both.
    """
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor.removeprefix("val_").lower()
    tokens = set(re.split(r"[^0-9a-z]+", name))
    upwards, downwards = bool(tokens & _MAX_TOKENS), bool(tokens & _MIN_TOKENS)
    if upwards != downwards:
        return "max" if upwards else "min"
    why = "says both" if upwards else "matches no known metric"
    raise ValueError(
        f"{owner}: mode='auto' cannot tell whether {monitor!r} improves downwards or "
        f"upwards (its name {why}); pass mode='min' (lower is better) or mode='max'"
    )


def set_mode(config: Any, owner: str, monitor: str) -> None:
    """Store a frozen config's ``mode`` resolved by [`resolve_mode`][] (never ``"auto"``).

    Args:
        config: A config with a ``mode`` field.
        owner: The config's name, used in messages.
        monitor: The monitored log key.

    Raises:
        ValueError: As [`resolve_mode`][].
    """
    object.__setattr__(config, "mode", resolve_mode(owner, monitor, config.mode))


def check_resumed_mode(owner: str, monitor: str, saved: object, mode: Mode) -> None:
    """Refuse to continue a saved decision state recorded under another mode.

    Args:
        owner: The callback's name, used in the message.
        monitor: The monitored log key.
        saved: The mode in the loaded state (``None`` for a state saved before modes
            were recorded, which is accepted).
        mode: The callback's resolved mode.

    Raises:
        ValueError: If ``saved`` is a mode other than ``mode``.
    """
    if saved is not None and saved != mode:
        raise ValueError(
            f"{owner} resumes a state saved with mode={saved!r} for {monitor!r}, but is "
            f"configured with mode={mode!r}; its best score would be compared the wrong "
            f"way. Pass mode={saved!r} to continue the run, or start a new one"
        )


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
