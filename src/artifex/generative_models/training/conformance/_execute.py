"""Running a scenario's ``fit`` calls through the harness, and checking what happened.

``execute`` builds a trainer with injected callbacks (an [`EventRecorder`][]
first, then raisers, a stopper and a [`TeardownWitness`][] last), runs one ``fit``
call per plan, and checks the record with [`check_events`][], the exceptions that
reached the caller (any ``BaseException``: only a real Ctrl-C, one the suite did not
inject, stops the check), the order in which events reached the first and the last
callback, and what the last callback saw during ``on_train_end``. Every scenario is a
``Runner`` over a shared ``Context``.
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
    "is_real_interrupt",
    "validating",
]


class NotApplicable(Exception):
    """Internal: the harness cannot run this scenario (the message says why)."""


@dataclass(slots=True)
class Context:
    """What the scenarios of one [`check_trainer`][] call share.

    Attributes:
        harness: The harness under test.
        batches: Batch pairs per epoch, as the plain run found (0 until it ran).
        max_examples: How many runs the property scenario draws.
        example_database: The directory of Hypothesis's example database for the
            property scenario, or ``None`` (the default) for none.
    """

    harness: TrainerHarness[Any]
    batches: int = 0
    max_examples: int = 20
    example_database: str | None = None


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


def _derives_from(error: BaseException, injected: Sequence[BaseException]) -> bool:
    """Whether ``error`` is, wraps, or was raised while handling an injected exception."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if any(current is target or _contains(current, target) for target in injected):
            return True
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
    return False


def is_real_interrupt(error: BaseException, injected: Sequence[BaseException] = ()) -> bool:
    """Whether ``error`` is a Ctrl-C from the person running the check.

    A ``KeyboardInterrupt`` is one unless it is the suite's own [`ProbeInterrupt`][]
    (or a copy of one), or it derives from an exception the suite injected; those, and
    every other ``BaseException`` (``SystemExit`` included), are the trainer's doing.

    Args:
        error: What escaped.
        injected: The exception objects the suite injected in this run.

    Returns:
        ``True`` if the check must stop and let ``error`` propagate.
    """
    return (
        isinstance(error, KeyboardInterrupt)
        and not isinstance(error, ProbeInterrupt)
        and not _derives_from(error, injected)
    )


def _wrong_exception(caught: BaseException, expected: BaseException) -> str:
    """How ``caught`` differs from ``expected``, for a finding."""
    if _contains(caught, expected):
        return f"{describe_exception(caught)}, wrapped in an exception group"
    if type(caught) is type(expected) and str(caught) == str(expected):
        return (
            f"a different object of the same type and message ({describe_exception(caught)}), "
            "a copy"
        )
    return describe_exception(caught)


def _run_call(ctx: Context, trainer: Any, plan: FitPlan, data_error: BaseException | None) -> None:
    """Run one ``fit`` call through the harness."""
    harness = ctx.harness
    if plan.data_failure is not None:
        assert isinstance(harness, FailingHarness)
        assert data_error is not None
        harness.fit_failing(trainer, plan.epochs, data_error, plan.data_failure)
    elif plan.validation:
        assert isinstance(harness, ValidatingHarness)
        harness.fit_validated(trainer, plan.epochs)
    else:
        harness.fit(trainer, plan.epochs)


def _outcome_findings(
    scenario: str,
    events: Sequence[Event],
    call: int,
    plan: FitPlan,
    caught: BaseException | None,
    expected: BaseException | None,
    what: str,
) -> list[Violation]:
    """Compare what reached the caller of ``fit`` with what should have."""
    where = f"fit call #{call} ({plan})"
    same = "the contract expects that very exception object to propagate to the caller"
    if expected is not None and caught is None and what.startswith("the exception the data"):
        message = (
            f"{where} returned normally, although the data raises at batch "
            f"{plan.data_failure}, within the batches this call requests: the trainer "
            f"swallowed the exception (or did not iterate the data anew each epoch); {same} "
            "after on_train_end"
        )
    elif expected is not None and caught is None:
        message = f"{where} returned normally, swallowing {what}; {same} after on_train_end"
    elif expected is not None and caught is not None and caught is not expected:
        message = (
            f"{where} raised {_wrong_exception(caught, expected)} instead of {what}; {same} "
            "(a failing on_train_end never masks it)"
        )
    elif expected is None and caught is not None:
        message = (
            f"{where} raised {describe_exception(caught)}, although the suite injected no "
            "failure; a conforming trainer runs it to the end"
        )
    else:
        return []
    return [fault(scenario, events, message)]


def _raisers(
    plans: Sequence[FitPlan], log: list[tuple[int, HookName, BaseException]], *, interrupt: bool
) -> list[RaiseAt]:
    """The injected raisers: raiser ``i`` raises the ``i``-th failure of each plan."""
    return [
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


def execute(
    ctx: Context,
    scenario: str,
    plans: Sequence[FitPlan],
    *,
    interrupt: bool = False,
) -> tuple[list[Violation], list[Event]]:
    """Build a trainer, run one ``fit`` per plan, and check everything.

    Args:
        ctx: The shared context (its harness builds and runs the trainer).
        scenario: The scenario's name (or label), as the violations report it.
        plans: One plan per ``fit`` call, run in order on one trainer. A plan's
            ``stop_via`` says how the stopper asks to stop (one way for all plans).
        interrupt: Whether the injected raisers and the data raise a
            [`ProbeInterrupt`][] (a ``KeyboardInterrupt``) instead of a
            [`ProbeError`][].

    Returns:
        The violations and the recorded events.

    Raises:
        KeyboardInterrupt: A real Ctrl-C (see ``is_real_interrupt``).
    """
    via: Literal["requester", "flag"] = (
        "flag" if any(p.stop is not None and p.stop_via == "flag" for p in plans) else "requester"
    )
    recorder = EventRecorder()
    log: list[tuple[int, HookName, BaseException]] = []
    raisers = _raisers(plans, log, interrupt=interrupt)
    stopper = StopAt(
        [(p.stop.hook, p.stop.occurrence) if p.stop is not None else None for p in plans], via=via
    )
    witness = TeardownWitness(recorder)
    events = recorder.events
    try:
        trainer = ctx.harness.build([recorder, *raisers, stopper, witness])
    except BaseException as error:
        if is_real_interrupt(error):
            raise
        return [
            fault(scenario, events, f"harness.build raised {describe_exception(error)}")
        ], events
    findings: list[Violation] = []
    for call, plan in enumerate(plans):
        start, seen = len(events), len(witness.seen)
        data_error: BaseException | None = None
        if plan.data_failure is not None:
            message = (
                f"injected by the conformance suite: the data raises at batch {plan.data_failure}"
            )
            data_error = ProbeInterrupt(message) if interrupt else ProbeError(message)
        caught: BaseException | None = None
        try:
            _run_call(ctx, trainer, plan, data_error)
        except BaseException as error:
            ours = [e for c, _, e in log if c == call]
            if is_real_interrupt(error, [*ours, *filter(None, [data_error])]):
                raise
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
        findings += _outcome_findings(scenario, events, call, plan, caught, expected, what)
        teardowns = witness.seen[seen:]
        recorded_ends = sum(event.hook == "on_train_end" for event in events[start:])
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
            state = _TeardownExpectation(
                seen=teardowns[0],
                expected=None if in_teardown else expected,
                clean=caught is None and not injected,
                call=call,
                via=via,
            )
            findings += _check_teardown(scenario, events, state, trainer, stopper)
    findings += _order_findings(scenario, events, witness)
    findings[:0] = check_events(events, plans, scenario=scenario)
    return findings, events


def _order_findings(
    scenario: str, events: Sequence[Event], witness: TeardownWitness
) -> list[Violation]:
    """One finding if any event reached the last callback before the first one."""
    if not witness.out_of_order:
        return []
    call = witness.out_of_order[0][0]
    hooks = list(dict.fromkeys(hook for _, hook in witness.out_of_order))
    how = (
        "teardown ran in reverse order"
        if hooks == ["on_train_end"]
        else "the dispatch order looks reversed"
    )
    return [
        fault(
            scenario,
            events,
            f"from fit call #{call} on, {', '.join(hooks)} reached the last registered "
            f"callback before the first one ({how}); the contract dispatches every event, "
            "on_train_end included, to the callbacks in the order they were registered",
        )
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class _TeardownExpectation:
    """What one ``fit`` call's teardown is checked against."""

    seen: Teardown
    expected: BaseException | None
    clean: bool
    call: int
    via: str


def _check_teardown(
    scenario: str,
    events: Sequence[Event],
    state: _TeardownExpectation,
    trainer: TrainerLike,
    stopper: StopAt,
) -> list[Violation]:
    """Check ``error`` and ``stopped_by`` of a ``TrainerState`` during ``on_train_end``."""
    findings: list[Violation] = []
    seen, expected, call, via = state.seen, state.expected, state.call, state.via
    during = f"during on_train_end of fit call #{call}"
    if expected is not None and seen.error is not expected:
        findings.append(
            fault(
                scenario,
                events,
                f"{during}, trainer.error was {seen.error!r}; the contract expects the "
                f"exception that ended the run ({expected!r})",
            )
        )
    if state.clean and seen.error is not None:
        findings.append(
            fault(
                scenario,
                events,
                f"{during}, trainer.error was {seen.error!r}, although that run did not fail; "
                "the contract expects None after a run that did not fail (also when an "
                "earlier fit failed: each fit starts with error None)",
            )
        )
    if expected is None and seen.status == "stopped" and call in stopper.fired:
        want = stopper if via == "requester" else trainer
        if seen.stopped_by is not want:
            what = (
                "the StopRequester callback"
                if via == "requester"
                else "the trainer, as trainer.stop_training was set"
            )
            findings.append(
                fault(
                    scenario,
                    events,
                    f"{during}, trainer.stopped_by was {seen.stopped_by!r}; the contract "
                    f"expects what requested the stop ({what})",
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
    """Whether the harness can run with validation data (a [`ValidatingHarness`][])."""
    return isinstance(ctx.harness, ValidatingHarness)


Found: TypeAlias = tuple[list[Violation], str]
"""What a scenario found: its violations, and a detail for the report (may be empty)."""

Runner: TypeAlias = Callable[[Context], Found]
"""A scenario: runs against the context; raises ``NotApplicable`` if it cannot."""
