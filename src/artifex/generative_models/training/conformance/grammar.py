"""The lifecycle contract as a grammar: a pure checker over a recorded event list.

[`check_events`][] takes the events a recorder saw during one or more ``fit`` calls
and a [`FitPlan`][] per call (what was asked: epochs, validation, where a stop was
requested, where an exception was injected), and returns every [`Violation`][]:

* structure: optionally one ``preflight`` (a trainer's preflight pass, which the
  contract does not require), ``on_train_begin``, epochs, ``on_train_end``; an epoch is
  ``on_epoch_begin(e)``, batch pairs, then validation pairs, then ``on_epoch_end(e)``;
* numbering: epochs from 0 (or where the previous ``fit`` left off), contiguous; the
  global step 0-based and contiguous across epochs and ``fit`` calls, the same for the
  two hooks of a batch pair; a resumed fit may begin inside epoch ``e`` at step ``s``
  (``FitPlan.resumed_at``): ``on_epoch_begin(e)``, then batch pairs from ``s``;
* stop requests honoured after the ``on_batch_end`` or ``on_epoch_end`` that made them;
* teardown: after an injected exception the next event is ``on_train_end``;
* one validation pair per epoch, when validation data was given and no stop came first;
* logs (the rules of ``_logs_rules``): a ``dict``; batch logs device scalars (a scalar
  ``loss``; host numbers are a warning), epoch and validation logs Python floats (or
  ints that are not bools); the epoch ``loss`` within the range of that epoch's batch
  losses; ``val_*`` keys equal to that epoch's validation logs, and none without one.

The first structural violation ends the parse of a record (what follows it would only
repeat it); log findings are collected throughout, each kind once, also on the events
after a structural violation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal, TypeAlias

from artifex.generative_models.training.callbacks.base import HOOK_NAMES, HookName
from artifex.generative_models.training.conformance._logs_rules import (
    epoch_findings,
    event_findings,
)
from artifex.generative_models.training.conformance.recorder import Event

__all__ = [
    "FitPlan",
    "Severity",
    "Trigger",
    "Violation",
    "check_events",
    "event_context",
]

Severity: TypeAlias = Literal["error", "warning"]
"""``"error"`` breaks the contract; ``"warning"`` is allowed but costly."""

_CONTEXT_BEFORE: Final = 4
_CONTEXT_AFTER: Final = 2
_STOP_HOOKS: Final[frozenset[str]] = frozenset({"on_batch_end", "on_epoch_end"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Trigger:
    """The ``occurrence``-th call (0-based) of ``hook`` within one ``fit`` call.

    Raises:
        ValueError: If ``hook`` is not a hook name or ``occurrence`` is negative.
    """

    hook: HookName
    occurrence: int

    def __post_init__(self) -> None:
        if self.hook not in HOOK_NAMES:
            raise ValueError(f"Trigger.hook must be one of {HOOK_NAMES}, got {self.hook!r}")
        if self.occurrence < 0:
            raise ValueError(f"Trigger.occurrence must be >= 0, got {self.occurrence!r}")

    def __str__(self) -> str:
        """E.g. ``on_batch_end #2``."""
        return f"{self.hook} #{self.occurrence}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FitPlan:
    """What one ``fit`` call was asked to do, as the grammar needs to know it.

    Attributes:
        epochs: The ``epochs`` argument.
        validation: Whether validation data was given (one validation pass per epoch).
        stop: Where a stop was requested: at any hook but ``on_train_end``. It is
            honoured at the first ``on_batch_end`` or ``on_epoch_end`` from there on
            (the one that requested it included).
        raises: Where injected callbacks raise, in dispatch order.
        data_failure: The batch (0-based within this call) at which the data or the
            step raises; the run may then end at any point, with ``on_train_end``.
        stop_via: How the stop is requested: by a ``StopRequester`` callback, or by
            setting ``trainer.stop_training = True`` (``"flag"``).
        preempt: Where a preemption notice arrives (``on_batch_end`` or
            ``on_epoch_end``); from then on the run may end, at a later batch end (a
            chunk's end) or epoch end, with ``on_train_end`` and status
            ``"preempted"``, and only so.
        resumed_at: ``(e, s)`` when the fit resumes from a mid-epoch checkpoint: it
            begins inside epoch ``e`` at global step ``s``. Its first epoch is then
            ``on_epoch_begin(e)`` again, with batch pairs from step ``s`` (and fewer
            of them than a whole epoch); counting goes on from there.
        epochs_total: Whether ``epochs`` is the run's total (a same-command mode, as
            the reference ``Trainer``'s ``fit(..., resume=True)``): the fit runs
            ``epochs - e`` epochs (none if that is not positive), ``e`` the epoch it
            starts at, and ``planned_epochs`` is ``max(epochs, e)``.

    Raises:
        ValueError: On a negative ``epochs`` or ``data_failure``, or a stop requested
            in ``on_train_end``.
    """

    epochs: int
    validation: bool = False
    stop: Trigger | None = None
    raises: tuple[Trigger, ...] = ()
    data_failure: int | None = None
    stop_via: Literal["requester", "flag"] = "requester"
    preempt: Trigger | None = None
    resumed_at: tuple[int, int] | None = None
    epochs_total: bool = False

    def __post_init__(self) -> None:
        if self.preempt is not None and self.preempt.hook not in _STOP_HOOKS:
            raise ValueError(
                "FitPlan.preempt must be at on_batch_end or on_epoch_end, got "
                f"{self.preempt.hook!r}"
            )
        if self.resumed_at is not None and min(self.resumed_at) < 0:
            raise ValueError(
                f"FitPlan.resumed_at must be (epoch, step) >= 0, got {self.resumed_at}"
            )
        if self.epochs < 0:
            raise ValueError(f"FitPlan.epochs must be >= 0, got {self.epochs!r}")
        if self.stop is not None and self.stop.hook == "on_train_end":
            raise ValueError("FitPlan.stop cannot be at on_train_end: the run has ended there")
        if self.data_failure is not None and self.data_failure < 0:
            raise ValueError(f"FitPlan.data_failure must be >= 0, got {self.data_failure!r}")

    def __str__(self) -> str:
        """A compact description, e.g. ``fit(epochs=2, validation, stop at on_epoch_end #0)``."""
        parts = [f"epochs={self.epochs}" + (" in all" if self.epochs_total else "")]
        if self.validation:
            parts.append("validation")
        if self.stop is not None:
            via = " via stop_training" if self.stop_via == "flag" else ""
            parts.append(f"stop at {self.stop}{via}")
        parts.extend(f"raise at {trigger}" for trigger in self.raises)
        if self.data_failure is not None:
            parts.append(f"data raises at batch {self.data_failure}")
        return f"fit({', '.join(parts)})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    """One finding: where the trainer departed from the contract, and what was expected.

    Attributes:
        scenario: The scenario that found it.
        index: The index of the offending event in the record; ``len(events)`` for
            "the record ended too early"; ``None`` for findings about no event.
        context: The events around ``index``, one per line, the offending one marked.
        expected: A sentence saying what the contract expected.
        severity: ``"error"`` or ``"warning"``.
    """

    scenario: str
    index: int | None
    context: tuple[str, ...]
    expected: str
    severity: Severity = "error"

    def __str__(self) -> str:
        """The finding as a few readable lines."""
        where = "" if self.index is None else f" at event #{self.index}"
        head = f"[{self.severity}] {self.scenario}{where}: {self.expected}"
        return "\n".join([head, *(f"    {line}" for line in self.context)])


def event_context(events: Sequence[Event], index: int) -> tuple[str, ...]:
    """Format the events around ``index``, marking the one at ``index``.

    Args:
        events: The record.
        index: The offending position; ``len(events)`` marks the end of the record.

    Returns:
        One line per event (``"  12 on_batch_begin(3)"``, ``"> 13 ..."`` for the
        offending one), plus ``"> <end of record>"`` when ``index`` is past the end.
    """
    lines: list[str] = []
    start = max(0, index - _CONTEXT_BEFORE)
    for position in range(start, min(len(events), index + _CONTEXT_AFTER + 1)):
        mark = ">" if position == index else " "
        lines.append(f"{mark}{position:4d} {events[position]}")
    if index >= len(events):
        lines.append(">     <end of record>")
    return tuple(lines)


class _Broken(Exception):
    """Internal: a structural violation ends the parse."""

    def __init__(self, index: int, expected: str) -> None:
        super().__init__(expected)
        self.index = index
        self.expected = expected


@dataclass(slots=True)
class _Run:
    """Parser state for one ``fit`` call."""

    plan: FitPlan
    counts: dict[str, int] = field(default_factory=dict)
    epochs_done: int = 0
    stop: Literal["batch", "epoch"] | None = None
    stop_event: str = ""
    stop_pending: str = ""  # a stop requested at a hook where it is not yet honoured
    failed_at: str | None = None
    batches_in_epoch: int = 0
    batch_ends: int = 0
    validations_in_epoch: int = 0
    last_val: Event | None = None
    last_begun: int | None = None
    last_epoch: int | None = None
    preempted: bool = False


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Parser:
    """Checks one record against its plans; see [`check_events`][]."""

    def __init__(
        self, events: Sequence[Event], scenario: str, first_epoch: int, first_step: int
    ) -> None:
        self.events = events
        self.scenario = scenario
        self.pos = 0
        self.epochs: set[int] = {first_epoch}
        self.steps: set[int] = {first_step}
        self.epoch = first_epoch
        self.step = first_step
        self.findings: list[Violation] = []
        self.plan: FitPlan | None = None
        self.call = 0
        self._seen: set[tuple[str, ...]] = set()

    # ------------------------------------------------------------------ helpers

    def peek(self) -> Event | None:
        return self.events[self.pos] if self.pos < len(self.events) else None

    def got(self) -> str:
        event = self.peek()
        return "the end of the record" if event is None else str(event)

    def fail(self, expected: str) -> _Broken:
        event = self.peek()
        if event is not None and event.hook == "preflight":
            expected += "; a trainer's preflight pass comes once per fit, before on_train_begin"
        if self.peek() is None and self.plan is not None and self.plan.data_failure is not None:
            expected = (
                f"the data raised at batch {self.plan.data_failure}, so the contract expects "
                "on_train_end (teardown) before fit lets the exception out; got the end of "
                "the record"
            )
        return _Broken(self.pos, expected)

    def note(self, key: tuple[str, ...], expected: str, severity: Severity = "error") -> None:
        """Record a non-structural finding at the current event, once per ``key``."""
        if key in self._seen:
            return
        self._seen.add(key)
        self.findings.append(
            Violation(
                scenario=self.scenario,
                index=self.pos,
                context=event_context(self.events, self.pos),
                expected=expected,
                severity=severity,
            )
        )

    def take(self, run: _Run) -> Event:
        """Consume the current event, counting it and applying the plan's triggers."""
        event = self.events[self.pos]
        count = run.counts.get(event.hook, 0)
        run.counts[event.hook] = count + 1
        for trigger in run.plan.raises:
            if trigger.hook == event.hook and trigger.occurrence == count and run.failed_at is None:
                run.failed_at = f"the callback that raised in {event}"
        notice = run.plan.preempt
        if notice is not None and (notice.hook, notice.occurrence) == (event.hook, count):
            run.preempted = True
        stop = run.plan.stop
        if stop is not None and (stop.hook, stop.occurrence) == (event.hook, count):
            who = (
                "by setting trainer.stop_training = True"
                if run.plan.stop_via == "flag"
                else "by a StopRequester callback (should_stop turned True)"
            )
            run.stop_pending = f"{event} {who}"
        if run.stop_pending and run.stop is None and event.hook in _STOP_HOOKS:
            run.stop = "batch" if event.hook == "on_batch_end" else "epoch"
            run.stop_event = run.stop_pending
            if not run.stop_pending.startswith(str(event)):
                run.stop_event += f", honoured at {event}"
        self.pos += 1
        return event

    # ------------------------------------------------------------------ checks

    def check_number(self, event: Event, allowed: set[int], what: str, rule: str) -> int:
        number = event.number
        if not _is_int(number):
            raise self.fail(
                f"{event.hook} got {what} {number!r} of type {type(number).__qualname__}; "
                f"the contract passes a Python int"
            )
        assert isinstance(number, int)
        if number not in allowed:
            want = " or ".join(str(value) for value in sorted(allowed))
            raise self.fail(f"{event.hook} got {what} {number}; {rule}: expected {want}")
        return number

    def check_logs(self, event: Event, run: _Run) -> None:
        """Check the logs of an ``*_end`` event (non-structural findings)."""
        found = list(event_findings(event))
        if event.hook == "on_epoch_end":
            observed = len(event.batch_losses or ()) == run.batches_in_epoch
            found += epoch_findings(event, run.last_val, run.batches_in_epoch, observed=observed)
        elif event.logs is not None and "loss" not in {key for key, _ in event.logs}:
            keys = sorted(key for key, _ in event.logs)
            message = f"{event.hook} logs must hold at least 'loss'; got keys {keys}"
            found.append(((event.hook, "loss"), message, "error"))
        for key, expected, severity in found:
            self.note(key, expected, severity)

    # ------------------------------------------------------------------ grammar

    def expect(self, hook: HookName, why: str) -> Event:
        event = self.peek()
        if event is None or event.hook != hook:
            raise self.fail(f"{why}; got {self.got()}")
        return event

    def parse(self, plans: Sequence[FitPlan]) -> None:
        for call, plan in enumerate(plans):
            self.call = call
            if plan.resumed_at is not None:  # a resumed fit begins inside epoch e at step s
                epoch, step = plan.resumed_at
                self.epochs, self.steps, self.epoch, self.step = {epoch}, {step}, epoch, step
            if plan.epochs_total:  # the run's total: the epochs left from where it starts
                plan = replace(plan, epochs=max(0, plan.epochs - self.epoch), epochs_total=False)
            run = _Run(plan=plan)
            self.plan = plan
            event = self.peek()
            if event is not None and event.hook == "preflight":
                self.pos += 1  # optional, once, before on_train_begin: no hook to count
            self.expect(
                "on_train_begin", f"fit call #{call} ({plan}) must begin with on_train_begin"
            )
            self.take(run)
            self.parse_run(run)
        if self.pos < len(self.events):
            raise self.fail(
                f"nothing may follow the on_train_end of the last fit call; got {self.got()}"
            )

    def end_run(self, run: _Run, *, early: bool) -> None:
        """Consume ``on_train_end`` and set up the counters for the next ``fit``."""
        plan = run.plan
        failed = run.failed_at is not None or (early and plan.data_failure is not None)
        if failed:
            wanted = {"failed"}
        elif early and run.preempted:
            wanted = {"preempted"}
        elif run.stop is not None and run.epochs_done >= plan.epochs:
            wanted = {"stopped", "completed"}  # the stop coincided with the natural end
        elif run.stop is not None:
            wanted = {"stopped"}
        else:
            wanted = {"completed"}
        event = self.peek()
        if event is not None and event.status is not None and event.status not in wanted:
            self.note(
                ("status", str(self.pos)),
                f"during on_train_end trainer.status must be "
                f"{' or '.join(map(repr, sorted(wanted)))}; got {event.status!r}",
            )
        self.take(run)
        # A failed step or epoch may or may not have been counted; a run that began
        # none leaves the expectations as they were.
        if failed and run.last_begun is not None:
            self.steps = {run.last_begun, run.last_begun + 1}
        elif run.last_begun is not None:
            self.steps = {self.step}
        if failed and run.last_epoch is not None:
            self.epochs = {run.last_epoch, run.last_epoch + 1}
        elif run.last_epoch is not None:
            self.epochs = {self.epoch}

    def failure_check(self, run: _Run) -> bool:
        """After an injected failure, the next event must be ``on_train_end``."""
        if run.failed_at is None:
            return False
        event = self.peek()
        if event is None or event.hook != "on_train_end":
            raise self.fail(
                f"after {run.failed_at}, the contract expects on_train_end (teardown, "
                f"dispatched to every callback) as the next event; got {self.got()}"
            )
        self.end_run(run, early=True)
        return True

    def data_failure_end(self, run: _Run) -> bool:
        """``on_train_end`` may come at any point after a preemption notice or a data failure."""
        event = self.peek()
        if run.preempted and event is not None and event.hook == "on_train_end":
            self.end_run(run, early=True)
            return True
        if run.plan.data_failure is None or event is None or event.hook != "on_train_end":
            return False
        if run.batch_ends > run.plan.data_failure:
            raise self.fail(
                f"the data raised at batch {run.plan.data_failure} of this fit call, yet "
                f"{run.batch_ends} batch pairs completed"
            )
        self.end_run(run, early=True)
        return True

    def parse_run(self, run: _Run) -> None:
        plan = run.plan
        while True:
            if self.failure_check(run):
                return
            if run.stop is not None:
                self.expect(
                    "on_train_end",
                    f"a stop requested at {run.stop_event} makes on_train_end the next event "
                    "after that epoch's on_epoch_end",
                )
                self.end_run(run, early=False)
                return
            if run.epochs_done >= plan.epochs:
                self.expect(
                    "on_train_end",
                    f"after {run.epochs_done} epoch(s) of {plan} the contract expects on_train_end",
                )
                self.end_run(run, early=False)
                return
            if self.data_failure_end(run):
                return
            event = self.peek()
            if event is not None and event.hook == "on_train_end":
                raise self.fail(
                    f"on_train_end after {run.epochs_done} of {plan.epochs} epoch(s), without "
                    "a stop request or a failure; the contract expects on_epoch_begin"
                    f"({' or '.join(map(str, sorted(self.epochs)))})"
                )
            if event is None and plan.data_failure is not None:
                raise self.fail(
                    "the data raised, so the contract expects on_train_end (teardown) "
                    "before fit returns; got the end of the record"
                )
            begin = self.expect("on_epoch_begin", "each epoch must begin with on_epoch_begin")
            rule = "epochs are numbered from 0 (or the resumed epoch), contiguously"
            if self.call and not run.epochs_done:
                rule += f"; fit call #{self.call} continues where the previous call left off"
            self.epoch = self.check_number(begin, self.epochs, "epoch", rule)
            run.last_epoch = self.epoch
            self.take(run)
            if self.parse_epoch(run):
                return
            run.epochs_done += 1
            self.epoch += 1
            self.epochs = {self.epoch}

    def parse_epoch(self, run: _Run) -> bool:
        """Parse the body and end of one epoch; ``True`` if the run ended inside it."""
        plan = run.plan
        run.batches_in_epoch = 0
        run.validations_in_epoch = 0
        run.last_val = None
        while True:
            if self.failure_check(run) or self.data_failure_end(run):
                return True
            event = self.peek()
            if run.stop == "batch":
                self.expect(
                    "on_epoch_end",
                    f"a stop requested at {run.stop_event} means no further batch pair and "
                    f"no validation: the contract expects on_epoch_end({self.epoch}) to "
                    "close the epoch, then on_train_end",
                )
            if event is not None and event.hook == "on_batch_begin":
                if run.validations_in_epoch:
                    raise self.fail(
                        "validation runs after the epoch's last batch pair, so no batch pair "
                        f"may follow on_validation_end; got {event}"
                    )
                if self.parse_batch(run, event):
                    return True
                continue
            if event is not None and event.hook == "on_validation_begin":
                if not plan.validation:
                    raise self.fail(
                        f"{plan} gave no validation data, so no validation pass is expected; "
                        f"got {event}"
                    )
                if run.validations_in_epoch:
                    raise self.fail(
                        "the contract runs exactly one validation pair per epoch, after its "
                        f"last batch pair; got a second {event} in epoch {self.epoch}"
                    )
                self.take(run)
                if self.failure_check(run) or self.data_failure_end(run):
                    return True
                end = self.peek()
                if end is None or end.hook != "on_validation_end":
                    raise self.fail(
                        "on_validation_begin must be followed by on_validation_end (a "
                        f"validation pair); got {self.got()}"
                    )
                self.check_logs(end, run)
                run.last_val = end
                run.validations_in_epoch += 1
                self.take(run)
                continue
            if event is not None and event.hook == "on_epoch_end":
                if plan.validation and not run.validations_in_epoch and run.stop is None:
                    raise self.fail(
                        f"{plan} gave validation data, so the contract expects a validation "
                        "pair (on_validation_begin, on_validation_end) after the epoch's last "
                        f"batch pair, before on_epoch_end; got {event}"
                    )
                self.check_number(
                    event, {self.epoch}, "epoch", "on_epoch_end gets the epoch that began"
                )
                self.check_logs(event, run)
                self.take(run)
                return False
            options = "on_batch_begin, on_epoch_end"
            if plan.validation:
                options = "on_batch_begin, on_validation_begin, on_epoch_end"
            raise self.fail(
                f"inside epoch {self.epoch} the contract expects one of {options}; got {self.got()}"
            )

    def parse_batch(self, run: _Run, event: Event) -> bool:
        """Parse one batch pair; ``True`` if the run ended inside it."""
        rule = "the global step is 0-based and contiguous across epochs and fit calls"
        if self.call and not run.batch_ends:
            rule += f"; fit call #{self.call} continues where the previous call left off"
        step = self.check_number(event, self.steps, "step", rule)
        run.last_begun = step
        self.take(run)
        if self.failure_check(run) or self.data_failure_end(run):
            return True
        end = self.peek()
        if end is None or end.hook != "on_batch_end":
            raise self.fail(
                f"on_batch_begin({step}) must be followed by on_batch_end({step}) (a batch "
                f"pair); got {self.got()}"
            )
        number = end.number
        if _is_int(number) and number != step:
            raise self.fail(
                f"on_batch_end got step {number} but its on_batch_begin got {step}; a batch "
                "pair passes the same global step to both hooks"
            )
        self.check_number(end, {step}, "step", "a batch pair passes the same step to both hooks")
        run.batches_in_epoch += 1
        run.batch_ends += 1
        self.check_logs(end, run)
        self.take(run)
        self.step = step + 1
        self.steps = {self.step}
        return False


def check_events(
    events: Sequence[Event],
    plans: Sequence[FitPlan],
    *,
    scenario: str = "grammar",
    first_epoch: int = 0,
    first_step: int = 0,
) -> list[Violation]:
    """Check a recorded event list against the lifecycle contract.

    A pure function: it looks only at its arguments.

    Args:
        events: Every event the recorder saw, across all ``fit`` calls, in order.
        plans: One plan per ``fit`` call, in order.
        scenario: The scenario name the violations carry.
        first_epoch: The epoch the first ``fit`` call must start at (0 for a fresh
            trainer).
        first_step: The global step the first batch must carry (0 for a fresh trainer).

    Returns:
        The violations, structural ones last; empty if the record conforms. Findings of
        severity ``"warning"`` (batch logs synced to Python numbers) are included.
    """
    parser = _Parser(events, scenario, first_epoch, first_step)
    try:
        parser.parse(plans)
    except _Broken as broken:
        # What follows a structural break cannot be parsed without guessing, but each
        # event's own logs rules still apply.
        for parser.pos in range(broken.index + 1, len(events)):
            for key, expected, severity in event_findings(events[parser.pos]):
                parser.note(key, expected, severity)
        parser.findings.append(
            Violation(
                scenario=scenario,
                index=broken.index,
                context=event_context(events, broken.index),
                expected=broken.expected,
            )
        )
    return parser.findings
