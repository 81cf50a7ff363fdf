"""Which checkpoints Orbax keeps: a ``PreservationPolicy`` ranking by the monitored score.

Orbax gets no ``best_fn`` and stores no metrics: a checkpoint's score is the monitored
value in its own ``meta``, which ``Ranking`` reads back for earlier runs' checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from orbax.checkpoint import checkpoint_managers as ocm

from artifex.generative_models.training._checkpointing._identity import checked_meta

if TYPE_CHECKING:  # types only: this package imports nothing of callbacks/ at run time
    from artifex.generative_models.training.callbacks._checkpoint_config import CheckpointConfig
    from artifex.generative_models.training.callbacks._monitor import Mode

__all__ = ["Ranking", "preservation_policy", "rank"]


def rank(score: float, mode: Mode) -> float:
    """Lower is better: the score (``"min"``) or its negation (``"max"``); NaN ranks worst."""
    if math.isnan(score):
        return math.inf
    return score if mode == "min" else -score


class Ranking(ocm.PreservationPolicy):
    """The best ``k`` checkpoints by score (all if ``k`` is ``None``), plus the last if asked."""

    # Checkpoints without a score are kept only as the last one; ties keep the earlier.

    def __init__(self, mode: Mode, k: int | None, *, keep_last: bool) -> None:
        self.mode: Mode = mode
        self.k = k
        self.keep_last = keep_last
        self.scores: dict[int, float] = {}

    def read(self, directory: Path, steps: Iterable[int], monitor: str) -> None:
        """Take the scores of the checkpoints ``steps`` of ``directory`` from their ``meta``."""
        for step in steps:
            try:
                meta = checked_meta(directory, step)
            except ValueError:  # unreadable or untrusted: unranked, as restore will say
                continue
            metrics = meta.get("metrics")
            if isinstance(metrics, dict) and isinstance(metrics.get(monitor), int | float):
                self.scores[step] = float(metrics[monitor])

    def best(self, steps: Iterable[int]) -> int | None:
        """The best of ``steps`` that has a score, or ``None``."""
        ranked = [(rank(self.scores[s], self.mode), s) for s in steps if s in self.scores]
        return min(ranked)[1] if ranked else None

    def should_preserve(
        self, checkpoints: Sequence[ocm.PolicyCheckpointInfo], *, context: object
    ) -> Sequence[bool]:
        """Whether to keep each of ``checkpoints`` (Orbax's policy interface)."""
        ranked = sorted(
            (rank(self.scores[info.step], self.mode), info.step, index)
            for index, info in enumerate(checkpoints)
            if info.step in self.scores
        )
        kept = {index for _, _, index in (ranked if self.k is None else ranked[: self.k])}
        if self.keep_last and checkpoints:
            kept.add(max(range(len(checkpoints)), key=lambda i: checkpoints[i].step))
        return [index in kept for index in range(len(checkpoints))]


def preservation_policy(settings: CheckpointConfig) -> ocm.PreservationPolicy | None:
    """The Orbax preservation policy of ``settings`` (a ``Ranking`` with ``monitor``)."""
    k = None if settings.save_top_k == -1 else settings.save_top_k
    if settings.monitor is None:
        if k == 0:
            return ocm.LatestN(n=1) if settings.save_last else None
        return ocm.LatestN(n=k)
    if k == 0 and not settings.save_last:
        return None
    return Ranking(settings.mode, k, keep_last=settings.save_last)
