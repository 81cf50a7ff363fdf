"""The ``steps_per_epoch`` scenario: an endless stream, cut into epochs of N batch pairs.

docs/lifecycle.md: with ``steps_per_epoch=N`` an epoch is N batch pairs drawn from one
iterator that lives across the epochs, and a ``TrainingPlan`` trainer's
``steps_per_epoch`` is N. The harness runs its trainer on an endless stream of its
choosing ([`StreamingHarness`][]); without one the scenario is not applicable.
"""

from __future__ import annotations

from typing import Any, Final

from artifex.generative_models.training.callbacks.protocols import TrainingPlan
from artifex.generative_models.training.conformance._execute import (
    Context,
    Found,
    NotApplicable,
    describe_exception,
    fault,
    is_real_interrupt,
)
from artifex.generative_models.training.conformance._harness import StreamingHarness
from artifex.generative_models.training.conformance.grammar import FitPlan, check_events
from artifex.generative_models.training.conformance.recorder import EventRecorder

__all__ = ["STREAM_EPOCHS", "STREAM_STEPS", "steps_per_epoch"]

STREAM_EPOCHS: Final = 2
STREAM_STEPS: Final = 3


def steps_per_epoch(ctx: Context) -> Found:
    """``fit_stream(trainer, 2, 3)``: two epochs of exactly three batch pairs each."""
    harness = ctx.harness
    if not isinstance(harness, StreamingHarness):
        raise NotApplicable("the harness has no fit_stream (StreamingHarness)")
    name, recorder = "steps_per_epoch", EventRecorder()
    trainer: Any = None
    try:
        trainer = harness.build([recorder])
        harness.fit_stream(trainer, STREAM_EPOCHS, STREAM_STEPS)
    except BaseException as error:
        if is_real_interrupt(error):
            raise
        message = f"fit_stream(trainer, 2, 3) raised {describe_exception(error)}"
        return [fault(name, recorder.events, message)], ""
    events = recorder.events
    findings = check_events(events, [FitPlan(epochs=STREAM_EPOCHS)], scenario=name)
    pairs: list[int] = []
    for event in events:
        if event.hook == "on_epoch_begin":
            pairs.append(0)
        elif event.hook == "on_batch_end" and pairs:
            pairs[-1] += 1
    if pairs != [STREAM_STEPS] * STREAM_EPOCHS:
        findings.append(
            fault(
                name,
                events,
                f"with steps_per_epoch={STREAM_STEPS}, {STREAM_EPOCHS} epochs of "
                f"{STREAM_STEPS} batch pairs each; the epochs had {pairs}",
            )
        )
    if isinstance(trainer, TrainingPlan) and trainer.steps_per_epoch != STREAM_STEPS:
        findings.append(
            fault(
                name,
                events,
                f"a TrainingPlan trainer's steps_per_epoch is {STREAM_STEPS} after a fit with "
                f"steps_per_epoch={STREAM_STEPS}; it was {trainer.steps_per_epoch!r}",
            )
        )
    return findings, ""
