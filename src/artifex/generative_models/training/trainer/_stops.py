"""What stops a run early, as one typed union: stop requests and preemption notices.

A stop request comes from a callback (a ``StopRequester``), the trainer (its
``stop_training`` flag) or, in a multi-process job, other processes ([`RemoteStop`][]);
[`StopArbiter`][] says after each hook who asked, agreed across processes. A
preemption notice (``_preemption``) stops the epoch loop too, at a resumable point.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

from artifex.generative_models.training._spmd import DataParallel
from artifex.generative_models.training.callbacks.base import (
    TrainingCallback,
    flatten_callbacks,
)
from artifex.generative_models.training.callbacks.protocols import StopRequester, TrainerState
from artifex.generative_models.training.trainer._coordination import Agreement, stop_agreement
from artifex.generative_models.training.trainer._preemption import PreemptionNotice

__all__ = ["RemoteStop", "StopArbiter", "StopRequest", "Stopper"]


@dataclass(frozen=True, slots=True)
class RemoteStop:
    """``Trainer.stopped_by`` on a process that stopped because other processes asked to.

    In a multi-process job every stop request is agreed across processes, so all of
    them stop after the same step; the processes that asked see their own callback
    (or trainer) in ``stopped_by``, the others see this.
    """

    processes: tuple[int, ...]
    """The indices of the processes that asked to stop."""


StopRequest: TypeAlias = StopRequester | TrainerState | RemoteStop
"""Who asked to stop (``Trainer.stopped_by``): a callback, the trainer, or other processes."""

Stopper: TypeAlias = StopRequest | PreemptionNotice
"""What ends the epoch loop early: a stop request or a preemption notice."""


class StopArbiter:
    """Decides, after a hook, whether the run stops and who stopped it.

    The first callback (in dispatch order) whose ``should_stop`` is ``True`` wins,
    otherwise the trainer if its ``stop_training`` flag is set. In a multi-process job
    every check is agreed across processes (a collective: every process checks at the
    same points), and a process that did not ask itself gets a [`RemoteStop`][]. The
    agreement goes through JAX's coordination service, not the devices (see
    ``_coordination``); it falls back to a ``process_allgather`` without it.

    Args:
        trainer: The trainer whose ``stop_training`` flag is honoured.
        callbacks: The callbacks; every ``StopRequester`` among them (nested lists
            flattened) is asked.
        spmd: The mesh placement, or ``None``; only a multi-process one agrees.
    """

    __slots__ = ("_agree", "_requesters", "_trainer")

    def __init__(
        self,
        trainer: TrainerState,
        callbacks: Iterable[TrainingCallback],
        spmd: DataParallel | None,
    ) -> None:
        self._trainer = trainer
        self._requesters = tuple(
            callback
            for _, callback in flatten_callbacks(callbacks)
            if isinstance(callback, StopRequester)
        )
        self._agree: Agreement | None = (
            stop_agreement(spmd.anyone) if spmd is not None and spmd.multiprocess else None
        )

    def check(self) -> StopRequest | None:
        """What asks to stop now: a callback, the trainer, a ``RemoteStop``, or ``None``."""
        found: StopRequest | None = None
        for requester in self._requesters:
            if requester.should_stop:
                found = requester
                break
        else:
            if self._trainer.stop_training:
                found = self._trainer
        if self._agree is not None:
            asking = self._agree(found is not None)
            if found is None and asking:
                return RemoteStop(asking)
        return found
