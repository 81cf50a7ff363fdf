"""The processes of a job agree on each save before Orbax's collective save.

Orbax saves are collective, and retention is decided on every process from its own
scores, so the processes must agree on whether to save, the step and the score;
otherwise some would wait forever for the others.
"""

from __future__ import annotations

import struct
from typing import Final, TypeAlias

from artifex.generative_models.training._spmd import allgather_bytes

__all__ = ["SavePlan", "agree_on_save_plan"]

SavePlan: TypeAlias = tuple[int, float | None] | None
"""``(step, score)`` of the checkpoint due at an epoch end, or ``None`` if none is."""

_PLAN: Final = struct.Struct("<??q?d")
"""A process's save plan, as gathered: failed, due, step, has score, score."""


def agree_on_save_plan(where: str, plan: SavePlan, failure: Exception | None) -> SavePlan:
    """Check that every process of the job plans the same save (a collective)."""
    step, score = plan if plan is not None else (-1, None)
    payload = _PLAN.pack(
        failure is not None, plan is not None, step, score is not None, score or 0.0
    )
    rows = allgather_bytes(payload)
    if failure is not None:
        raise failure
    failed = [index for index, row in enumerate(rows) if _PLAN.unpack(row)[0]]
    if failed:
        raise RuntimeError(
            f"ModelCheckpoint failed at {where} on process(es) {failed} "
            "(see their errors); this process stops with them"
        )
    if any(row != payload for row in rows):
        seen = []
        for index, row in enumerate(rows):
            _, row_due, row_step, has_score, row_score = _PLAN.unpack(row)
            what = f"step {row_step}, score {row_score if has_score else None}"
            seen.append(f"process {index}: {what if row_due else 'no save'}")
        raise RuntimeError(
            f"ModelCheckpoint: the processes of the job disagree at {where} "
            f"({'; '.join(seen)}). Every process must pass the same step and logs."
        )
    return plan
