"""Running a scenario's ``fit`` calls through the harness, and checking what happened.

``execute`` builds a trainer with injected callbacks (an [`EventRecorder`][]
first, an [`OrderMark`][], raisers, a stopper, a second ``OrderMark`` and a
[`TeardownWitness`][] last), runs one ``fit`` call per plan, and checks the record
with [`check_events`][], the exceptions that reached the caller (any
``BaseException``: only a real Ctrl-C, one the suite did not inject, stops the check),
the status and error after each call, the order in which events reached every
injected callback and the logs dicts they got (``_dispatch_rules``), and the trainer's
state at each hook (``_state_rules``). Every scenario is a ``Runner`` over a shared
``Context``.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from artifex.generative_models.training.callbacks.base import HookName, TrainerLike
from artifex.generative_models.training.callbacks.protocols import TrainerState
from artifex.generative_models.training.conformance._dispatch_rules import (
    logs_problems,
    order_problem,
    slot_names,
)
from artifex.generative_models.training.conformance._harness import (
    FailingHarness,
    TrainerHarness,
    ValidatingHarness,
)
from artifex.generative_models.training.conformance._state_rules import (
    plan_outside_fit,
    state_findings,
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
    OrderLog,
    OrderMark,
    ProbeError,
    ProbeExit,
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
    "has_stop_flag",
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
    stop_flag: bool | None = None  # whether the trainers have stop_training (once known)


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
    *,
    teardown_raised: bool = False,
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
        masked = " (a failing on_train_end never masks it)" if teardown_raised else ""
        message = (
            f"{where} raised {_wrong_exception(caught, expected)} instead of {what}; {same}{masked}"
        )
    elif expected is None and caught is not None:
        message = (
            f"{where} raised {describe_exception(caught)}, although the suite injected no "
            "failure; a conforming trainer runs it to the end"
        )
    else:
        return []
    return [fault(scenario, events, message)]


def _note_findings(
    scenario: str, events: Sequence[Event], caught: BaseException, teardown: BaseException
) -> list[Violation]:
    """A failing ``on_train_end`` on top of a failure is attached to it as a note."""
    notes = [str(note) for note in getattr(caught, "__notes__", ())]
    if caught.__cause__ is teardown:
        how = "chained as its __cause__ (raise ... from)"
    elif any(str(teardown) in note for note in notes):
        return []
    else:
        how = "dropped"
    return [
        fault(
            scenario,
            events,
            f"on_train_end raised {teardown!r} during the teardown of a failed run, and that "
            f"error was {how}; the contract attaches it to the original exception as a note "
            "(error.add_note), which still propagates as the same object",
        )
    ]


ErrorKind: TypeAlias = Literal["error", "interrupt", "exit", "teardown_interrupt"]
"""What the injected raisers and the data raise: a ``ProbeError``, ``ProbeInterrupt``
or ``ProbeExit``; ``"teardown_interrupt"``: a ``ProbeError``, but a ``ProbeInterrupt``
from a raiser that raises in ``on_train_end`` only (a Ctrl-C during teardown)."""


def _injected(kind: ErrorKind, message: str) -> BaseException:
    if kind == "interrupt":
        return ProbeInterrupt(message)
    return ProbeExit(message) if kind == "exit" else ProbeError(message)


def _raisers(
    plans: Sequence[FitPlan], log: list[tuple[int, HookName, BaseException]], *, kind: ErrorKind
) -> list[RaiseAt]:
    """The injected raisers: raiser ``i`` raises the ``i``-th failure of each plan."""
    return [
        RaiseAt(
            [
                (p.raises[i].hook, p.raises[i].occurrence) if i < len(p.raises) else None
                for p in plans
            ],
            log,
            interrupt=kind == "interrupt"
            or (kind == "teardown_interrupt" and _teardown_only(plans, i)),
            system_exit=kind == "exit",
        )
        for i in range(max((len(p.raises) for p in plans), default=0))
    ]


def _teardown_only(plans: Sequence[FitPlan], i: int) -> bool:
    """Whether raiser ``i`` raises in ``on_train_end`` only."""
    hooks = {p.raises[i].hook for p in plans if i < len(p.raises)}
    return hooks == {"on_train_end"}


def _takeover_findings(
    scenario: str, events: Sequence[Event], caught: BaseException, original: BaseException
) -> list[Violation]:
    """A ``KeyboardInterrupt`` from ``on_train_end`` took over: the original is its context."""
    if caught.__context__ is original and not caught.__suppress_context__:
        return []
    return [
        fault(
            scenario,
            events,
            f"on_train_end raised {caught!r} during the teardown of a failed run and it "
            f"reached the caller without {original!r} as its __context__ (dropped, or hidden "
            "by raise ... from None); the contract lets a Ctrl-C during teardown take over "
            "only with the original as its __context__, or attaches it to the original as a note",
        )
    ]


@dataclass(slots=True)
class _Run:
    """One trainer's ``fit`` calls in a scenario, and the callbacks injected into it."""

    ctx: Context
    scenario: str
    kind: ErrorKind
    recorder: EventRecorder
    stopper: StopAt
    witness: TeardownWitness
    log: list[tuple[int, HookName, BaseException]]
    trainer: Any = None
    first: list[Violation] = field(default_factory=list)  # reported before the grammar's

    def call(self, call: int, plan: FitPlan) -> list[Violation]:
        """Run ``fit`` call ``call`` and check what reached its caller and its teardown."""
        events, witness, scenario = self.recorder.events, self.witness, self.scenario
        start, seen = len(events), len(witness.seen)
        data_error: BaseException | None = None
        if plan.data_failure is not None:
            message = (
                f"injected by the conformance suite: the data raises at batch {plan.data_failure}"
            )
            data_error = _injected(self.kind, message)
        caught: BaseException | None = None
        try:
            _run_call(self.ctx, self.trainer, plan, data_error)
        except BaseException as error:
            ours = [e for c, _, e in self.log if c == call]
            if is_real_interrupt(error, [*ours, *filter(None, [data_error])]):
                raise
            caught = error
        injected = [(hook, error) for c, hook, error in self.log if c == call]
        expected: BaseException | None = injected[0][1] if injected else None
        # An exception raised in on_train_end cannot be the trainer's error during it.
        in_teardown = bool(injected) and injected[0][0] == "on_train_end"
        what = ""
        if expected is not None:
            what = f"the exception a callback raised ({expected!r})"
        elif data_error is not None and (caught is data_error or _data_must_fire(self.ctx, plan)):
            expected, what = data_error, f"the exception the data raised ({data_error!r})"
        teardown_raised = any(hook == "on_train_end" for hook, _ in injected)
        # A Ctrl-C from on_train_end on top of a failure may take over (docs/lifecycle.md).
        took_over = self.kind == "teardown_interrupt" and len(injected) > 1
        took_over = took_over and caught is not None and caught is injected[-1][1]
        if took_over and caught is not None and expected is not None:
            found = _takeover_findings(scenario, events, caught, expected)
        else:
            found = _outcome_findings(
                scenario,
                events,
                call,
                plan,
                caught,
                expected,
                what,
                teardown_raised=teardown_raised,
            )
        if expected is None and caught is not None:
            self.first += found  # the cause of what the grammar then finds: report it first
            found = []
        if caught is not None and caught is expected and len(injected) > 1 and teardown_raised:
            found += _note_findings(scenario, events, caught, injected[-1][1])
        teardowns = witness.seen[seen:]
        # Teardown always runs, past a Ctrl-C from an on_train_end too (docs/lifecycle.md).
        if any(e.hook == "on_train_end" for e in events[start:]) and not teardowns:
            found.append(
                fault(
                    scenario,
                    events,
                    f"in fit call #{call}, on_train_end did not reach the last registered "
                    "callback; teardown must be dispatched to every callback, even when one "
                    "of them raises (a KeyboardInterrupt or SystemExit included)",
                )
            )
        if teardowns and isinstance(self.trainer, TrainerState):
            state = _TeardownExpectation(
                seen=teardowns[0],
                expected=None if in_teardown else expected,
                clean=caught is None and not injected,
                call=call,
                via=self.stopper.via,
            )
            found += _check_teardown(scenario, events, state, self.trainer, self.stopper)
            found += _after_fit(scenario, events, call, self.trainer, caught, teardowns[0])
        return found


def _after_fit(
    scenario: str,
    events: Sequence[Event],
    call: int,
    trainer: TrainerState,
    caught: BaseException | None,
    seen: Teardown,
) -> list[Violation]:
    """After ``fit``: ``failed`` with the exception it raised, else the outcome of its teardown."""
    status, error = trainer.status, trainer.error
    if caught is not None and (status != "failed" or error is not caught):
        expected = f"status 'failed' and error {caught!r}, the exception fit raised"
    elif caught is None and (status != seen.status or error is not None):
        expected = f"status {seen.status!r} (as during on_train_end) and error None"
    else:
        return []
    return [
        fault(
            scenario,
            events,
            f"after fit call #{call}, trainer.status was {status!r} and trainer.error "
            f"{error!r}; the contract expects {expected} (a failing on_train_end after a run "
            "that did not fail makes it 'failed' too)",
        )
    ]


def execute(
    ctx: Context,
    scenario: str,
    plans: Sequence[FitPlan],
    *,
    kind: ErrorKind = "error",
    between: Callable[[Any], None] | None = None,
) -> tuple[list[Violation], list[Event]]:
    """Build a trainer, run one ``fit`` per plan, and check everything.

    Args:
        ctx: The shared context (its harness builds and runs the trainer).
        scenario: The scenario's name (or label), as the violations report it.
        plans: One plan per ``fit`` call, run in order on one trainer. A plan's
            ``stop_via`` says how the stopper asks to stop (one way for all plans).
        kind: What the injected raisers and the data raise: a [`ProbeError`][], a
            [`ProbeInterrupt`][] (a ``KeyboardInterrupt``) or a [`ProbeExit`][] (a
            ``SystemExit``).
        between: Called with the trainer between two ``fit`` calls.

    Returns:
        The violations and the recorded events.

    Raises:
        KeyboardInterrupt: A real Ctrl-C (see ``is_real_interrupt``).
    """
    run, callbacks, order = _prepare(ctx, scenario, plans, kind)
    events = run.recorder.events
    try:
        run.trainer = ctx.harness.build(callbacks)
    except BaseException as error:
        if is_real_interrupt(error):
            raise
        return [
            fault(scenario, events, f"harness.build raised {describe_exception(error)}")
        ], events
    run.recorder.target = run.trainer
    findings = _fit_calls(run, plans, between)
    findings += _dispatch_findings(run, callbacks, order)
    grammar = check_events(events, plans, scenario=scenario)
    if not any(v.severity == "error" for v in grammar):  # else the state follows the same slip
        findings += state_findings(events, scenario, plans)
    return [*run.first, *grammar, *findings], events


_Injected: TypeAlias = EventRecorder | OrderMark | RaiseAt | StopAt | TeardownWitness


def _prepare(
    ctx: Context, scenario: str, plans: Sequence[FitPlan], kind: ErrorKind
) -> tuple[_Run, list[_Injected], OrderLog]:
    """The run, its injected callbacks in order, and the log of the order events reach them."""
    via: Literal["requester", "flag"] = (
        "flag" if any(p.stop is not None and p.stop_via == "flag" for p in plans) else "requester"
    )
    recorder = EventRecorder()
    log: list[tuple[int, HookName, BaseException]] = []
    raisers = _raisers(plans, log, kind=kind)
    stopper = StopAt(
        [(p.stop.hook, p.stop.occurrence) if p.stop is not None else None for p in plans], via=via
    )
    witness = TeardownWitness(recorder)
    callbacks: list[_Injected] = [
        recorder,
        OrderMark(),
        *raisers,
        stopper,
        OrderMark(),
        witness,
    ]
    order: OrderLog = []
    for slot, callback in enumerate(callbacks):
        callback.order = (order, slot)
    return _Run(ctx, scenario, kind, recorder, stopper, witness, log), callbacks, order


def _fit_calls(
    run: _Run, plans: Sequence[FitPlan], between: Callable[[Any], None] | None
) -> list[Violation]:
    """Run one ``fit`` call per plan; the findings of each, and of any use outside ``fit``."""
    events = run.recorder.events
    findings: list[Violation] = []
    outside = plan_outside_fit(run.trainer, events, fits=0)
    for call, plan in enumerate(plans):
        if call and between is not None:
            between(run.trainer)
        findings += run.call(call, plan)
        outside = outside or plan_outside_fit(run.trainer, events, fits=call + 1)
    return [*findings, fault(run.scenario, events, outside)] if outside else findings


def _dispatch_findings(
    run: _Run, callbacks: Sequence[_Injected], order: OrderLog
) -> list[Violation]:
    """What the injected callbacks got: the trainer argument, the order, the logs dicts."""
    scenario, events, recorder, witness = (
        run.scenario,
        run.recorder.events,
        run.recorder,
        run.witness,
    )
    if recorder.other is not None:
        index, other = recorder.other
        run.first.append(
            _at(
                scenario,
                events,
                index,
                f"{events[index]} got a {other} as its trainer argument, not the trainer build() "
                "returned; the contract passes the trainer itself to every hook (callbacks set "
                "its stop_training and read its status, step and model)",
            )
        )
    findings = _order_findings(scenario, events, witness)
    if not witness.out_of_order:
        raisers = {slot for slot, callback in enumerate(callbacks) if isinstance(callback, RaiseAt)}
        problem = order_problem(order, slot_names(callbacks), raisers)
        findings += [fault(scenario, events, problem)] if problem else []
    for index, problem in logs_problems(recorder.logs_seen, witness.logs_got, events):
        findings.append(_at(scenario, events, index, problem))
    return findings


def _at(scenario: str, events: Sequence[Event], index: int, expected: str) -> Violation:
    context = event_context(events, index)
    return Violation(scenario=scenario, index=index, context=context, expected=expected)


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


def has_stop_flag(ctx: Context) -> bool:
    """Whether the harness's trainers have a ``stop_training`` attribute (built once)."""
    if ctx.stop_flag is None:
        try:
            trainer: object = ctx.harness.build([])
        except BaseException as error:
            if is_real_interrupt(error):
                raise
            return False  # the protocol scenario reports a build that raises
        ctx.stop_flag = hasattr(trainer, "stop_training")
    return ctx.stop_flag


def validating(ctx: Context) -> bool:
    """Whether the harness can run with validation data (a [`ValidatingHarness`][])."""
    return isinstance(ctx.harness, ValidatingHarness)


Found: TypeAlias = tuple[list[Violation], str]
"""What a scenario found: its violations, and a detail for the report (may be empty)."""

Runner: TypeAlias = Callable[[Context], Found]
"""A scenario: runs against the context; raises ``NotApplicable`` if it cannot."""
