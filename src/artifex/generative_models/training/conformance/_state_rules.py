"""The contract's rules for the trainer's optional attributes, hook by hook.

A trainer that implements ``TrainerState``, ``ExampleCounter``,
``StepCheckpointableTrainer`` or ``TrainingPlan`` states ``step``, ``epoch``, ``status``,
``stopped_by``, ``error``, ``stop_training``, ``examples_seen``, ``last_batch_of_epoch``,
``planned_epochs`` and ``steps_per_epoch``. The
[`EventRecorder`][] reads them at every hook (``Event.state``); ``state_findings``
checks them against the rules of ``docs/lifecycle.md`` ("The trainer's state at each
hook" and "The plan"), a pure function of the record and the fit plans, like the
grammar. Each rule is reported once per
record, at the first event that breaks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from artifex.generative_models.training.callbacks.protocols import TrainingPlan
from artifex.generative_models.training.conformance.grammar import (
    FitPlan,
    Violation,
    event_context,
)
from artifex.generative_models.training.conformance.recorder import Event

__all__ = ["plan_outside_fit", "state_findings"]

_PLAN = ("planned_epochs", "steps_per_epoch")

_IN_RUN = frozenset(
    {
        "on_epoch_begin",
        "on_epoch_end",
        "on_batch_begin",
        "on_batch_end",
        "on_validation_begin",
        "on_validation_end",
    }
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(slots=True)
class _Walk:
    """What the rules track while walking a record."""

    events: Sequence[Event]
    scenario: str
    findings: list[Violation] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    fits: int = 0
    step: int | None = None  # steps done, as the events number them
    epoch: int | None = None  # the epoch in progress (or next to run)
    ended: bool = True  # whether the last epoch begun was ended
    previous: dict[str, object] | None = None  # the state at the last event
    at_end: dict[str, object] | None = None  # the state at the last on_train_end

    def note(self, index: int, key: str, expected: str) -> None:
        if key in self.seen:
            return
        self.seen.add(key)
        self.findings.append(
            Violation(
                scenario=self.scenario,
                index=index,
                context=event_context(self.events, index),
                expected=expected,
            )
        )

    def want(
        self, index: int, state: dict[str, object], name: str, value: object, why: str
    ) -> None:
        """Note a finding unless ``state[name]`` (if the trainer has it) is ``value``."""
        if name not in state:
            return
        got = state[name]
        same = got is value if value is None or isinstance(value, bool) else got == value
        if not same or (isinstance(got, bool) and not isinstance(value, bool)):
            hook = self.events[index].hook
            self.note(
                index,
                name,
                f"during {hook}, trainer.{name} was {got!r}; the contract expects {value!r} "
                f"({why})",
            )


def _train_begin(walk: _Walk, index: int, state: dict[str, object]) -> None:
    walk.want(index, state, "status", "running", "status is 'running' from on_train_begin on")
    walk.want(index, state, "error", None, "each fit starts with error None")
    walk.want(index, state, "stopped_by", None, "each fit starts with stopped_by None")
    walk.want(
        index,
        state,
        "stop_training",
        False,
        "fit resets stop_training to False when it starts, so a flag set before it is dropped",
    )
    if walk.fits == 0:
        fresh = "build() returns a fresh trainer: its counters start at 0, not restored"
        for name in ("step", "epoch", "examples_seen"):
            walk.want(index, state, name, 0, fresh)
        walk.step, walk.epoch = 0, 0
    elif walk.at_end is not None:
        kept = "nothing changes the counters between two fit calls: they continue"
        for name in ("step", "epoch", "examples_seen"):
            if name in walk.at_end:
                walk.want(index, state, name, walk.at_end[name], kept)
        step, epoch = walk.at_end.get("step"), walk.at_end.get("epoch")
        walk.step = step if isinstance(step, int) and _is_int(step) else walk.step
        walk.epoch = epoch if isinstance(epoch, int) and _is_int(epoch) else walk.epoch
    walk.fits += 1
    walk.ended = True


def _in_run(walk: _Walk, index: int, event: Event, state: dict[str, object]) -> None:
    hook = event.hook
    number = event.number if isinstance(event.number, int) and _is_int(event.number) else None
    walk.want(index, state, "status", "running", "status is 'running' until on_train_end")
    walk.want(index, state, "error", None, "error is None until the run fails")
    if hook == "on_epoch_begin" and number is not None:
        walk.epoch, walk.ended = number, False
    current = "epoch is the epoch in progress, from its on_epoch_begin to its on_epoch_end"
    if walk.epoch is not None:
        walk.want(index, state, "epoch", walk.epoch, current)
    if hook == "on_batch_begin" and number is not None:
        walk.step = number
        walk.want(index, state, "step", number, "step counts the steps done: s before step s")
    elif hook == "on_batch_end" and number is not None:
        walk.step = number + 1
        done = "step counts the steps done: s + 1 once step s ran, inside a chunk too"
        walk.want(index, state, "step", walk.step, done)
    elif walk.step is not None:
        walk.want(index, state, "step", walk.step, "step counts the steps done")
    if hook == "on_epoch_end":
        walk.ended = True


def _train_end(walk: _Walk, index: int, state: dict[str, object]) -> None:
    status = state.get("status")
    if status == "completed":
        walk.want(index, state, "stopped_by", None, "a run that was not stopped has none")
    if status != "failed" and walk.step is not None:
        walk.want(index, state, "step", walk.step, "step counts the steps done")
    if status != "failed" and walk.ended and walk.epoch is not None and walk.fits:
        after = walk.epoch + 1 if "on_epoch_end" in _hooks_since_begin(walk, index) else walk.epoch
        walk.want(
            index, state, "epoch", after, "after on_epoch_end(e), epoch is e + 1: next to run"
        )
    walk.at_end = state


def _hooks_since_begin(walk: _Walk, index: int) -> set[str]:
    hooks: set[str] = set()
    for event in reversed(walk.events[:index]):
        if event.hook == "on_train_begin":
            break
        hooks.add(event.hook)
    return hooks


def _examples(walk: _Walk, index: int, event: Event, state: dict[str, object]) -> None:
    """``examples_seen`` grows at each ``on_batch_end`` and nowhere else."""
    previous = walk.previous
    now = state.get("examples_seen")
    if previous is None or "examples_seen" not in state or event.hook == "on_train_begin":
        return
    before = previous.get("examples_seen")
    if not (isinstance(now, int) and _is_int(now) and isinstance(before, int) and _is_int(before)):
        return
    if event.hook == "on_batch_end" and now <= before:
        walk.note(
            index,
            "examples_seen grows",
            f"during {event}, trainer.examples_seen was {now}, not more than the {before} "
            "before that step; the contract counts each step's examples by its on_batch_end",
        )
    elif event.hook == "on_train_end" and now < before:
        walk.note(index, "examples_seen", f"trainer.examples_seen fell from {before} to {now}")
    elif event.hook not in {"on_batch_end", "on_train_end"} and now != before:
        walk.note(
            index,
            "examples_seen",
            f"during {event}, trainer.examples_seen was {now}, but {before} at the event "
            "before; the contract counts a step's examples by its on_batch_end, nowhere else",
        )


def _last_batch(walk: _Walk, index: int, event: Event, state: dict[str, object]) -> None:
    if event.hook != "on_batch_end" or state.get("last_batch_of_epoch") is not True:
        return
    following = walk.events[index + 1] if index + 1 < len(walk.events) else None
    if following is not None and following.hook == "on_batch_begin":
        walk.note(
            index,
            "last_batch_of_epoch",
            f"during {event}, trainer.last_batch_of_epoch was True, yet a batch pair of the "
            "same epoch followed; the contract sets it only at the epoch's last on_batch_end",
        )


def _fits(events: Sequence[Event]) -> list[list[int]]:
    """The indices of each ``fit`` call's events, its ``preflight`` included."""
    fits: list[list[int]] = []
    pending: list[int] = []  # a preflight belongs to the on_train_begin after it
    for index, event in enumerate(events):
        if event.hook == "on_train_begin":
            fits.append([*pending, index])
            pending = []
        elif event.hook == "preflight":
            pending.append(index)
        elif fits:
            fits[-1].append(index)
    return fits


def _full_epoch_batches(events: Sequence[Event], indices: list[int], plan: FitPlan) -> int | None:
    """The batch pairs of this fit's first epoch to end, if nothing may cut one short."""
    if plan.stop is not None or plan.preempt is not None or plan.data_failure is not None:
        return None
    if plan.resumed_at is not None:  # its first epoch is shorter
        return None
    count: int | None = None
    for index in indices:
        hook = events[index].hook
        if hook == "on_epoch_begin":
            count = 0
        elif hook == "on_batch_begin" and count is not None:
            count += 1
        elif hook == "on_epoch_end" and count is not None:
            return count
    return None


def _start_epoch(events: Sequence[Event], indices: list[int]) -> int | None:
    """The epoch a fit starts at: its first ``on_epoch_begin``, else ``trainer.epoch``."""
    for index in indices:
        event = events[index]
        if event.hook == "on_epoch_begin" and _is_int(event.number):
            return cast("int", event.number)
    for index in indices:
        epoch = dict(events[index].state).get("epoch")
        if events[index].hook == "on_train_begin" and _is_int(epoch):
            return cast("int", epoch)
    return None


def _plan_fit(walk: _Walk, indices: list[int], plan: FitPlan) -> None:
    """``planned_epochs`` and ``steps_per_epoch`` hold one value through a fit: the plan's."""
    events = walk.events
    start = _start_epoch(events, indices)
    batches = _full_epoch_batches(events, indices, plan)
    first: dict[str, tuple[int, object]] = {}
    for index in indices:
        state, hook = dict(events[index].state), events[index].hook
        for name in (n for n in _PLAN if n in state):
            got = state[name]
            since = first.setdefault(name, (index, got))
            if got != since[1] or type(got) is not type(since[1]):
                walk.note(
                    index,
                    f"plan:{name} holds",
                    f"during {hook}, trainer.{name} was {got!r}, but {since[1]!r} at "
                    f"{events[since[0]]} of the same fit; the contract sets the plan before "
                    "preflight and on_train_begin and keeps it through the fit, a stop included",
                )
        planned = state.get("planned_epochs")
        if start is not None and "planned_epochs" in state:
            want = max(start, plan.epochs) if plan.epochs_total else start + plan.epochs
            if not (_is_int(planned) and planned == want):
                why = (
                    f"its epochs={plan.epochs} in all (the run's total)"
                    if plan.epochs_total
                    else f"the epoch this fit starts at ({start}) plus its epochs={plan.epochs}"
                )
                walk.note(
                    index,
                    "plan:planned_epochs",
                    f"during {hook}, trainer.planned_epochs was {planned!r}; the contract "
                    f"expects {want}: {why}",
                )
        steps = state.get("steps_per_epoch")
        if batches is not None and steps is not None and not (_is_int(steps) and steps == batches):
            walk.note(
                index,
                "plan:steps_per_epoch",
                f"during {hook}, trainer.steps_per_epoch was {steps!r}; the contract expects "
                f"len(train_data), the {batches} batch pairs each full epoch of this fit ran "
                "(or None for data without a length)",
            )


def plan_outside_fit(trainer: object, events: Sequence[Event], *, fits: int) -> str | None:
    """Check a ``TrainingPlan`` trainer's plan between ``fit`` calls.

    Before the first ``fit`` both values are ``None``; after one they keep the values
    its last hook saw, until the next ``fit``.

    Args:
        trainer: The trainer, between two ``fit`` calls (or before the first).
        events: The record so far.
        fits: How many ``fit`` calls ran.

    Returns:
        What the contract expects, if the trainer breaks it, else ``None``.
    """
    read = _read_plan(trainer)
    if not read:
        return None
    last = next((dict(e.state) for e in reversed(events) if e.state), None)
    for name, got in read.items():
        if fits == 0 and got is not None:
            return (
                f"before the first fit, trainer.{name} was {got!r}; the contract expects None "
                "(there is no plan yet)"
            )
        if fits and last is not None and name in last and got != last[name]:
            return (
                f"after fit call #{fits - 1}, trainer.{name} was {got!r}, but {last[name]!r} "
                "at its last hook; the contract keeps the plan after a fit, until the next"
            )
    return None


def _read_plan(trainer: object) -> dict[str, object]:
    """``TrainingPlan``'s attributes of ``trainer``; one whose reading raises is left out."""
    read: dict[str, object] = {}
    if isinstance(trainer, TrainingPlan):
        for name in _PLAN:
            try:
                read[name] = getattr(trainer, name)
            except Exception:  # the hooks' reading reports it
                continue
    return read


def state_findings(
    events: Sequence[Event], scenario: str, plans: Sequence[FitPlan]
) -> list[Violation]:
    """Check the trainer attributes the recorder read at each hook.

    Args:
        events: The record (of one trainer, every ``fit`` call); events without
            ``state`` (a trainer that implements none of the protocols) are skipped.
        scenario: The scenario name the violations carry.
        plans: One plan per ``fit`` call the record holds, in order.

    Returns:
        One violation per broken rule, at its first event.
    """
    walk = _Walk(events=events, scenario=scenario)
    for index, event in enumerate(events):
        if not event.state or event.hook == "preflight":
            continue
        state = dict(event.state)
        if event.hook == "on_train_begin":
            _train_begin(walk, index, state)
        elif event.hook in _IN_RUN:
            _in_run(walk, index, event, state)
        elif event.hook == "on_train_end":
            _train_end(walk, index, state)
        _examples(walk, index, event, state)
        _last_batch(walk, index, event, state)
        walk.previous = state
    for indices, plan in zip(_fits(events), plans, strict=False):
        _plan_fit(walk, indices, plan)
    return walk.findings
