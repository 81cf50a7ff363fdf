"""Running a scenario's ``fit`` calls through the harness, and checking what happened.

:func:`execute` builds a trainer with injected callbacks (an :class:`EventRecorder`
first, then raisers, a stopper and a :class:`TeardownWitness` last), runs one ``fit``
call per plan, and checks the record with :func:`check_events`, the exceptions that
reached the caller, and what the last callback saw during ``on_train_end``. Every
scenario is a :data:`Runner` over a shared :class:`Context`.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from artifex.generative_models.training.callbacks.base import HookName, TrainerLike
from artifex.generative_models.training.callbacks.protocols import TrainerState
from artifex.generative_models.training.conformance._harness import (
    FailingHarness,
    TrainerHarness,
    ValidatingHarness,
)
from artifex.generative_models.training.conformance.grammar import (
    FitPlan,
    Violation,
    check_events,
    event_context,
)
from artifex.generative_models.training.conformance.recorder import (
    Event,
    EventRecorder,
    ProbeError,
    ProbeInterrupt,
    RaiseAt,
    StopAt,
    Teardown,
    TeardownWitness,
)

__all__ = [
    "Context",
    "Found",
    "NotApplicable",
    "Runner",
    "describe_exception",
    "execute",
    "fault",
    "validating",
]


class NotApplicable(Exception):
    """Internal: the harness cannot run this scenario (the message says why)."""


@dataclass(slots=True)
class Context:
    """What the scenarios of one :func:`check_trainer` call share.

    Attributes:
        harness: The harness under test.
        batches: Batch pairs per epoch, as the plain run found (0 until it ran).
        max_examples: How many runs the property scenario draws.
    """

    harness: TrainerHarness[Any]
    batches: int = 0
    max_examples: int = 20


def fault(scenario: str, events: Sequence[Event], expected: str) -> Violation:
    """A violation at the end of a record (or at no event if the record is empty)."""
    index = max(len(events) - 1, 0) if events else None
    context = event_context(events, index) if index is not None else ()
    return Violation(scenario=scenario, index=index, context=context, expected=expected)


def describe_exception(error: BaseException) -> str:
    """``ValueError('bad') raised at file.py:12 in fit``: the innermost frame."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" raised at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}"
    return f"{error!r}{where if frames else ''}"


def _contains(group: BaseException, target: BaseException) -> bool:
    """Whether ``group`` is an exception group holding ``target`` at some depth."""
    if not isinstance(group, BaseExceptionGroup):
        return False
    return any(e is target or _contains(e, target) for e in group.exceptions)


def execute(
    ctx: Context,
    scenario: str,
    plans: Sequence[FitPlan],
    *,
    via: Literal["requester", "flag"] = "requester",
    interrupt: bool = False,
) -> tuple[list[Violation], list[Event]]:
    """Build a trainer, run one ``fit`` per plan, and check everything.

    Args:
        ctx: The shared context (its harness builds and runs the trainer).
        scenario: The scenario's name (or label), as the violations report it.
        plans: One plan per ``fit`` call, run in order on one trainer.
        via: How the stopper asks to stop: as a ``StopRequester``, or by setting
            ``trainer.stop_training``.
        interrupt: Whether the injected raisers raise a :class:`ProbeInterrupt` (a
            ``KeyboardInterrupt``) instead of a :class:`ProbeError`.

    Returns:
        The violations and the recorded events.
    """
    harness = ctx.harness
    recorder = EventRecorder()
    log: list[tuple[int, HookName, BaseException]] = []
    raisers = [
        RaiseAt(
            [
                (p.raises[i].hook, p.raises[i].occurrence) if i < len(p.raises) else None
                for p in plans
            ],
            log,
            interrupt=interrupt,
        )
        for i in range(max((len(p.raises) for p in plans), default=0))
    ]
    stopper = StopAt(
        [(p.stop.hook, p.stop.occurrence) if p.stop is not None else None for p in plans], via=via
    )
    witness = TeardownWitness()
    events = recorder.events
    try:
        trainer = harness.build([recorder, *raisers, stopper, witness])
    except Exception as error:
        return [
            fault(scenario, events, f"harness.build raised {describe_exception(error)}")
        ], events
    findings: list[Violation] = []
    for call, plan in enumerate(plans):
        start, seen = len(events), len(witness.seen)
        data_error: ProbeError | None = None
        caught: BaseException | None = None
        try:
            if plan.data_failure is not None:
                assert isinstance(harness, FailingHarness)
                data_error = ProbeError(
                    f"injected by the conformance suite: the data raises at batch "
                    f"{plan.data_failure}"
                )
                harness.fit_failing(trainer, plan.epochs, data_error, plan.data_failure)
            elif plan.validation:
                assert isinstance(harness, ValidatingHarness)
                harness.fit_validated(trainer, plan.epochs)
            else:
                harness.fit(trainer, plan.epochs)
        except (Exception, ProbeInterrupt) as error:
            caught = error
        injected = [(hook, error) for c, hook, error in log if c == call]
        expected: BaseException | None = injected[0][1] if injected else None
        # An exception raised in on_train_end cannot be the trainer's error during it.
        in_teardown = bool(injected) and injected[0][0] == "on_train_end"
        what = ""
        if expected is not None:
            what = f"the exception a callback raised ({expected!r})"
        elif data_error is not None and (caught is data_error or _data_must_fire(ctx, plan)):
            expected, what = data_error, f"the exception the data raised ({data_error!r})"
        run_events = events[start:]
        if expected is not None and caught is None and expected is data_error:
            findings.append(
                fault(
                    scenario,
                    events,
                    f"fit call #{call} ({plan}) returned normally, although the data raises at "
                    f"batch {plan.data_failure}, within the batches this call requests: the "
                    "trainer swallowed the exception (or did not iterate the data anew each "
                    "epoch); the contract expects that very exception object to propagate to "
                    "the caller after on_train_end",
                )
            )
        elif expected is not None and caught is None:
            findings.append(
                fault(
                    scenario,
                    events,
                    f"fit call #{call} ({plan}) returned normally, swallowing {what}; the "
                    "contract expects that very exception object to propagate to the caller "
                    "after on_train_end",
                )
            )
        elif expected is not None and caught is not None and caught is not expected:
            how = " wrapped in an exception group" if _contains(caught, expected) else ""
            findings.append(
                fault(
                    scenario,
                    events,
                    f"fit call #{call} ({plan}) raised {describe_exception(caught)}{how} "
                    f"instead of {what}; the contract expects that very exception object to "
                    "propagate (a failing on_train_end never masks it)",
                )
            )
        elif expected is None and caught is not None:
            findings.append(
                fault(
                    scenario,
                    events,
                    f"fit call #{call} ({plan}) raised {describe_exception(caught)}, although "
                    "the suite injected no failure; a conforming trainer runs it to the end",
                )
            )
        teardowns = witness.seen[seen:]
        recorded_ends = sum(event.hook == "on_train_end" for event in run_events)
        if recorded_ends and not teardowns:
            findings.append(
                fault(
                    scenario,
                    events,
                    f"in fit call #{call}, on_train_end did not reach the last registered "
                    "callback; teardown must be dispatched to every callback, even when one "
                    "of them raises",
                )
            )
        if teardowns and isinstance(trainer, TrainerState):
            findings += _check_teardown(
                scenario,
                events,
                teardowns[0],
                trainer,
                None if in_teardown else expected,
                stopper,
                call,
                via,
            )
    findings[:0] = check_events(events, plans, scenario=scenario)
    return findings, events


def _check_teardown(
    scenario: str,
    events: Sequence[Event],
    seen: Teardown,
    trainer: TrainerLike,
    expected: BaseException | None,
    stopper: StopAt,
    call: int,
    via: str,
) -> list[Violation]:
    """Check ``error`` and ``stopped_by`` of a ``TrainerState`` during ``on_train_end``."""
    findings: list[Violation] = []
    if expected is not None and seen.error is not expected:
        findings.append(
            fault(
                scenario,
                events,
                f"during on_train_end of fit call #{call}, trainer.error was {seen.error!r}; "
                f"the contract expects the exception that ended the run ({expected!r})",
            )
        )
    if expected is None and seen.status == "stopped" and call in stopper.fired:
        want = stopper if via == "requester" else trainer
        if seen.stopped_by is not want:
            findings.append(
                fault(
                    scenario,
                    events,
                    f"during on_train_end of fit call #{call}, trainer.stopped_by was "
                    f"{seen.stopped_by!r}; the contract expects what requested the stop "
                    f"({'the StopRequester callback' if via == 'requester' else 'the trainer'})",
                )
            )
    return findings


def _data_must_fire(ctx: Context, plan: FitPlan) -> bool:
    """Whether the data failure of ``plan`` lies within the batches the run asks for."""
    return (
        plan.data_failure is not None
        and plan.stop is None
        and not plan.raises
        and plan.data_failure < plan.epochs * ctx.batches
    )


def validating(ctx: Context) -> bool:
    """Whether the harness can run with validation data (a :class:`ValidatingHarness`)."""
    return isinstance(ctx.harness, ValidatingHarness)


Found: TypeAlias = tuple[list[Violation], str]
"""What a scenario found: its violations, and a detail for the report (may be empty)."""

Runner: TypeAlias = Callable[[Context], Found]
"""A scenario: runs against the context; raises :class:`NotApplicable` if it cannot."""
