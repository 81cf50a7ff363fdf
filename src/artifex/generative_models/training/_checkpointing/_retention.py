"""Which checkpoints Orbax keeps: the best ``save_top_k`` by the monitored score, plus the last.

Retention is Orbax's own (a ``PreservationPolicy`` and a ``best_fn``); this module
builds them from a config's ``monitor``, ``mode``, ``save_top_k`` and ``save_last``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as ocm

if TYPE_CHECKING:
    from artifex.generative_models.training.callbacks._monitor import Mode

__all__ = [
    "BestKAndLast",
    "RetentionSettings",
    "best_fn",
    "preservation_policy",
    "rank",
    "saved_scores",
]


class RetentionSettings(Protocol):
    """The fields of a checkpoint config that decide retention (``CheckpointConfig`` has them)."""

    @property
    def monitor(self) -> str | None:
        """The log key that ranks checkpoints, or ``None`` to keep the most recent."""
        ...

    @property
    def mode(self) -> Mode:
        """``"min"`` if lower scores are better, ``"max"`` otherwise."""
        ...

    @property
    def save_top_k(self) -> int:
        """How many checkpoints to keep; ``-1`` keeps all, ``0`` none (but see ``save_last``)."""
        ...

    @property
    def save_last(self) -> bool:
        """Whether the most recent checkpoint is also kept, whatever its score."""
        ...


def rank(score: float, mode: Mode) -> float:
    """Lower is better: the score (``"min"``) or its negation (``"max"``); NaN ranks worst.

    Args:
        score: A monitored score.
        mode: Whether lower (``"min"``) or higher (``"max"``) scores are better.

    Returns:
        A number that is lower for better scores (``inf`` for NaN).
    """
    if math.isnan(score):
        return math.inf
    return score if mode == "min" else -score


class BestKAndLast(ocm.PreservationPolicy):
    """Orbax preservation policy: the best ``k`` by ``monitor`` (all if ``None``), plus the last.

    Checkpoints without the metric are kept only as the last one. Ties keep the earlier
    checkpoint.

    Args:
        monitor: The metric that ranks checkpoints.
        mode: Whether lower (``"min"``) or higher (``"max"``) values are better.
        k: How many of the best to keep; ``None`` keeps all.
        keep_last: Also keep the most recent checkpoint.
    """

    def __init__(self, monitor: str, mode: Mode, k: int | None, *, keep_last: bool) -> None:
        self.monitor = monitor
        self.mode: Mode = mode
        self.k = k
        self.keep_last = keep_last

    def should_preserve(
        self, checkpoints: Sequence[ocm.PolicyCheckpointInfo], *, context: object
    ) -> Sequence[bool]:
        """Whether to keep each of ``checkpoints``.

        Args:
            checkpoints: The checkpoints of the directory, with their metrics.
            context: Orbax's policy context (unused).

        Returns:
            One flag per checkpoint, in order.
        """
        keep = [False] * len(checkpoints)
        ranked: list[tuple[float, int, int]] = []
        for index, info in enumerate(checkpoints):
            metrics = info.metrics
            if isinstance(metrics, Mapping) and self.monitor in metrics:
                score = float(metrics[self.monitor])
                ranked.append((rank(score, self.mode), info.step, index))
        ranked.sort()
        for _, _, index in ranked if self.k is None else ranked[: self.k]:
            keep[index] = True
        if self.keep_last and checkpoints:
            last = max(range(len(checkpoints)), key=lambda i: checkpoints[i].step)
            keep[last] = True
        return keep


def preservation_policy(settings: RetentionSettings) -> ocm.PreservationPolicy | None:
    """The Orbax preservation policy of ``settings``.

    Args:
        settings: The retention fields of a checkpoint config.

    Returns:
        The policy, or ``None`` if nothing would ever be kept (so nothing is saved).
    """
    k = None if settings.save_top_k == -1 else settings.save_top_k
    if settings.monitor is None:
        if k == 0:
            return ocm.LatestN(n=1) if settings.save_last else None
        return ocm.LatestN(n=k)
    if k == 0 and not settings.save_last:
        return None
    return BestKAndLast(settings.monitor, settings.mode, k, keep_last=settings.save_last)


def best_fn(settings: RetentionSettings) -> Callable[[Any], float] | None:
    """Orbax's ``best_fn`` (higher is better, ``best_mode="max"``), or ``None`` without monitor.

    Setting ``best_fn`` makes Orbax write each checkpoint's metrics to disk (and read
    them back), so retention and the best checkpoint also rank the checkpoints of
    earlier runs in the same directory.

    Args:
        settings: The retention fields of a checkpoint config.

    Returns:
        A function of a checkpoint's metrics, or ``None`` if ``monitor`` is ``None``.
    """
    monitor, mode = settings.monitor, settings.mode
    if monitor is None:
        return None

    def score(metrics: Any) -> float:
        return -rank(float(metrics[monitor]), mode)

    return score


def saved_scores(manager: ocp.CheckpointManager, monitor: str | None) -> dict[int, float]:
    """The monitored scores Orbax recorded for the checkpoints in ``manager``'s directory.

    Args:
        manager: The directory's Orbax manager.
        monitor: The monitored metric, or ``None``.

    Returns:
        The score of every checkpoint that has one, by step (empty without ``monitor``).
    """
    scores: dict[int, float] = {}
    if monitor is None:
        return scores
    for step in manager.all_steps():
        saved = manager.metrics(step)
        if isinstance(saved, Mapping) and monitor in saved:
            scores[step] = float(saved[monitor])
    return scores
