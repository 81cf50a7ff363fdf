"""The scenarios: drive a trainer through a harness and check what it dispatches.

A scenario builds a trainer with injected callbacks (an :class:`EventRecorder` first,
then raisers, a stopper and a :class:`TeardownWitness` last), runs one or more ``fit``
calls, and checks the record with :func:`check_events`, the exceptions that reached
the caller, and what the last callback saw during ``on_train_end``.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, TypeVar

from flax import nnx
from typing_extensions import Protocol, runtime_checkable

from artifex.generative_models.training.callbacks.base import (
    HOOK_NAMES,
    HookName,
    TrainerLike,
    TrainingCallback,
)
from artifex.generative_models.training.callbacks.protocols import TrainerState
from artifex.generative_models.training.conformance._names import SCENARIOS
from artifex.generative_models.training.conformance.grammar import (
    FitPlan,
    Trigger,
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
    "SCENARIOS",
    "ConformanceReport",
    "FailingHarness",
    "Outcome",
    "ScenarioResult",
    "TrainerHarness",
    "ValidatingHarness",
    "check_trainer",
]

T = TypeVar("T", bound=TrainerLike)

Outcome: TypeAlias = Literal["passed", "failed", "not applicable"]
"""How a scenario ended: ``"passed"`` may still carry warnings."""


@runtime_checkable
class TrainerHarness(Protocol[T]):
    """How the conformance suite builds and runs your trainer.

    Implement these two methods (any parameter names will do: the suite passes the
    arguments positionally).
    """

    def build(self, callbacks: Sequence[TrainingCallback], /) -> T:
        """Construct a fresh trainer (and model) that dispatches to ``callbacks``.

        Args:
            callbacks: The suite's injected callbacks, in dispatch order. Register
                them all, in this order, and no others that stop or fail the run.

        Returns:
            The trainer: a :class:`TrainerLike` whose ``model`` is an ``nnx.Module``.
        """
        ...

    def fit(self, trainer: T, epochs: int, /) -> None:
        """Run ``trainer`` for ``epochs`` epochs on a small data set of your choosing.

        The data must give the same number (at least one) of batches every epoch.
        Exceptions must propagate.

        Args:
            trainer: A trainer that :meth:`build` returned.
            epochs: How many epochs to run (may be 0).
        """
        ...


@runtime_checkable
class ValidatingHarness(TrainerHarness[T], Protocol[T]):
    """A harness that can also run with validation data (enables the validation checks)."""

    def fit_validated(self, trainer: T, epochs: int, /) -> None:
        """Like :meth:`TrainerHarness.fit`, with validation data: one pass per epoch.

        Args:
            trainer: A trainer that ``build`` returned.
            epochs: How many epochs to run (may be 0).
        """
        ...


@runtime_checkable
class FailingHarness(TrainerHarness[T], Protocol[T]):
    """A harness that can make the data (or the step) fail (enables ``data_raises``)."""

    def fit_failing(self, trainer: T, epochs: int, error: BaseException, at_batch: int, /) -> None:
        """Like :meth:`TrainerHarness.fit`, but batch ``at_batch`` raises ``error``.

        Wrap the training data in :class:`FailingData` (or make the step raise) so
        that requesting batch ``at_batch`` (0-based, counted across the epochs of this
        call) raises the very object ``error``. Let it propagate.

        Args:
            trainer: A trainer that ``build`` returned.
            epochs: How many epochs to run.
            error: The exception to raise.
            at_batch: Which batch raises.
        """
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioResult:
    """The outcome of one scenario.

    Attributes:
        name: The scenario's name (a key of :data:`SCENARIOS`).
        outcome: ``"passed"``, ``"failed"`` or ``"not applicable"``.
        violations: Its findings, errors and warnings.
        detail: Why it was not applicable, or what the property scenario drew.
    """

    name: str
    outcome: Outcome
    violations: tuple[Violation, ...] = ()
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConformanceReport:
    """What :func:`check_trainer` found.

    Attributes:
        harness: A description of the harness checked.
        results: One entry per scenario, in the order of :data:`SCENARIOS`.
    """

    harness: str
    results: tuple[ScenarioResult, ...]

    @property
    def violations(self) -> tuple[Violation, ...]:
        """Every finding, errors and warnings, scenario by scenario."""
        return tuple(violation for result in self.results for violation in result.violations)

    @property
    def errors(self) -> tuple[Violation, ...]:
        """The findings of severity ``"error"``."""
        return tuple(v for v in self.violations if v.severity == "error")

    @property
    def warnings(self) -> tuple[Violation, ...]:
        """The findings of severity ``"warning"``."""
        return tuple(v for v in self.violations if v.severity == "warning")

    @property
    def ok(self) -> bool:
        """``True`` if no scenario found an error (warnings allowed)."""
        return not self.errors

    def result(self, name: str) -> ScenarioResult:
        """The result of scenario ``name``.

        Args:
            name: A scenario name.

        Returns:
            Its result.

        Raises:
            KeyError: If the scenario was not run.
        """
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"scenario {name!r} was not run; ran {[r.name for r in self.results]}")

    def format(self) -> str:
        """The report as readable text: a table of scenarios, then every finding."""
        width = max((len(name) for name in SCENARIOS), default=0)
        lines = [f"Trainer conformance report for {self.harness}", ""]
        for result in self.results:
            label = {"passed": "passed", "failed": "FAILED", "not applicable": "n/a"}
            notes = f"{len(result.violations)} warning(s)" if result.violations else ""
            if result.outcome == "failed":
                notes = f"{sum(v.severity == 'error' for v in result.violations)} error(s)"
            detail = result.detail or SCENARIOS.get(result.name, "")
            lines.append(
                f"  {label[result.outcome]:<7} {result.name:<{width}}  {detail}"
                + (f"  [{notes}]" if notes else "")
            )
        if self.violations:
            lines += ["", "Findings:"]
            first_seen: dict[str, str] = {}
            for violation in self.violations:
                where = "" if violation.index is None else f" at event #{violation.index}"
                if violation.expected in first_seen:
                    lines.append(
                        f"[{violation.severity}] {violation.scenario}{where}: the same finding "
                        f"as in {first_seen[violation.expected]}"
                    )
                    continue
                first_seen[violation.expected] = violation.scenario
                lines += ["", str(violation)]
        verdict = "OK" if self.ok else "NOT CONFORMING"
        lines += [
            "",
            f"{verdict}: {len(self.errors)} error(s), {len(self.warnings)} warning(s).",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        """Same as :meth:`format`."""
        return self.format()


class _NotApplicable(Exception):
    """Internal: the harness cannot run this scenario."""


@dataclass(slots=True)
class _Context:
    harness: TrainerHarness[Any]
    batches: int = 0
    max_examples: int = 20


def _fault(scenario: str, events: Sequence[Event], expected: str) -> Violation:
    """A violation at the end of a record (or at no event if the record is empty)."""
    index = max(len(events) - 1, 0) if events else None
    context = event_context(events, index) if index is not None else ()
    return Violation(scenario=scenario, index=index, context=context, expected=expected)


def _describe_exception(error: BaseException) -> str:
    """``ValueError('bad') raised at file.py:12 in fit``: the innermost frame."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" raised at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}"
    return f"{error!r}{where if frames else ''}"


def _contains(group: BaseException, target: BaseException) -> bool:
    """Whether ``group`` is an exception group holding ``target`` at some depth."""
    if not isinstance(group, BaseExceptionGroup):
        return False
    return any(e is target or _contains(e, target) for e in group.exceptions)


def _execute(
    ctx: _Context,
    scenario: str,
    plans: Sequence[FitPlan],
    *,
    via: Literal["requester", "flag"] = "requester",
    interrupt: bool = False,
) -> tuple[list[Violation], list[Event]]:
    """Build a trainer, run one ``fit`` per plan, and check everything.

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
            _fault(scenario, events, f"harness.build raised {_describe_exception(error)}")
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
                _fault(
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
                _fault(
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
                _fault(
                    scenario,
                    events,
                    f"fit call #{call} ({plan}) raised {_describe_exception(caught)}{how} "
                    f"instead of {what}; the contract expects that very exception object to "
                    "propagate (a failing on_train_end never masks it)",
                )
            )
        elif expected is None and caught is not None:
            findings.append(
                _fault(
                    scenario,
                    events,
                    f"fit call #{call} ({plan}) raised {_describe_exception(caught)}, although "
                    "the suite injected no failure; a conforming trainer runs it to the end",
                )
            )
        teardowns = witness.seen[seen:]
        recorded_ends = sum(event.hook == "on_train_end" for event in run_events)
        if recorded_ends and not teardowns:
            findings.append(
                _fault(
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
            _fault(
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
                _fault(
                    scenario,
                    events,
                    f"during on_train_end of fit call #{call}, trainer.stopped_by was "
                    f"{seen.stopped_by!r}; the contract expects what requested the stop "
                    f"({'the StopRequester callback' if via == 'requester' else 'the trainer'})",
                )
            )
    return findings


def _data_must_fire(ctx: _Context, plan: FitPlan) -> bool:
    """Whether the data failure of ``plan`` lies within the batches the run asks for."""
    return (
        plan.data_failure is not None
        and plan.stop is None
        and not plan.raises
        and plan.data_failure < plan.epochs * ctx.batches
    )


# --------------------------------------------------------------------------- scenarios


def _needs_batches(ctx: _Context) -> None:
    if ctx.batches < 1:
        raise _NotApplicable("the plain run dispatched no batch pair (see plain_run)")


def _validating(ctx: _Context) -> bool:
    return isinstance(ctx.harness, ValidatingHarness)


def _protocol(ctx: _Context) -> list[Violation]:
    name = "protocol"
    try:
        trainer: object = ctx.harness.build([EventRecorder()])
    except Exception as error:
        return [_fault(name, (), f"harness.build raised {_describe_exception(error)}")]
    if not isinstance(trainer, TrainerLike):
        return [
            _fault(
                name,
                (),
                f"build() returned a {type(trainer).__qualname__}, which is not a TrainerLike: "
                "the contract expects a `model` attribute or property",
            )
        ]
    try:
        model: object = trainer.model
    except Exception as error:
        return [_fault(name, (), f"reading trainer.model raised {_describe_exception(error)}")]
    if not isinstance(model, nnx.Module):
        return [
            _fault(
                name,
                (),
                f"trainer.model is a {type(model).__module__}.{type(model).__qualname__}; the "
                "contract (TrainerLike) expects an nnx.Module",
            )
        ]
    return []


def _plain_run(ctx: _Context) -> list[Violation]:
    findings, events = _execute(ctx, "plain_run", [FitPlan(epochs=2)])
    per_epoch: list[int] = []
    for index, event in enumerate(events):
        if event.hook == "on_epoch_begin":
            per_epoch.append(0)
        elif event.hook == "on_batch_begin" and per_epoch:
            per_epoch[-1] += 1
        elif event.hook == "on_epoch_end" and per_epoch and per_epoch[-1] == 0:
            findings.append(
                Violation(
                    scenario="plain_run",
                    index=index,
                    context=event_context(events, index),
                    expected="every epoch of the plain run must hold at least one batch pair: "
                    "the harness's data must not be empty, and the trainer must dispatch "
                    "on_batch_begin/on_batch_end around every step",
                )
            )
    ctx.batches = per_epoch[0] if per_epoch else 0
    return findings


def _zero_epochs(ctx: _Context) -> list[Violation]:
    return _execute(ctx, "zero_epochs", [FitPlan(epochs=0)])[0]


def _validation(ctx: _Context) -> list[Violation]:
    if not _validating(ctx):
        raise _NotApplicable("the harness has no fit_validated (ValidatingHarness)")
    return _execute(ctx, "validation", [FitPlan(epochs=2, validation=True)])[0]


def _stop_at_epoch_end(ctx: _Context) -> list[Violation]:
    stop = Trigger(hook="on_epoch_end", occurrence=1)
    plan = FitPlan(epochs=3, validation=_validating(ctx), stop=stop)
    return _execute(ctx, "stop_at_epoch_end", [plan])[0]


def _stop_at_batch_end(ctx: _Context) -> list[Violation]:
    _needs_batches(ctx)
    # Mid-epoch in epoch 1 when an epoch has two batches or more.
    stop = Trigger(hook="on_batch_end", occurrence=ctx.batches + (ctx.batches - 1) // 2)
    plan = FitPlan(epochs=3, validation=_validating(ctx), stop=stop)
    return _execute(ctx, "stop_at_batch_end", [plan])[0]


def _stop_training_flag(ctx: _Context) -> list[Violation]:
    _needs_batches(ctx)
    try:
        trainer: object = ctx.harness.build([])
    except Exception as error:
        return [_fault("stop_training_flag", (), f"harness.build raised {error!r}")]
    if not hasattr(trainer, "stop_training"):
        raise _NotApplicable("the trainer has no stop_training attribute")
    plan = FitPlan(epochs=2, stop=Trigger(hook="on_batch_end", occurrence=0))
    return _execute(ctx, "stop_training_flag", [plan], via="flag")[0]


def _callback_raises(ctx: _Context) -> list[Violation]:
    cases: list[tuple[tuple[Trigger, ...], bool]] = []
    hooks: list[HookName] = [
        "on_train_begin",
        "on_epoch_begin",
        "on_epoch_end",
        "on_train_end",
    ]
    if ctx.batches:
        hooks[2:2] = ["on_batch_begin", "on_batch_end"]
    if _validating(ctx):
        hooks[-1:-1] = ["on_validation_begin", "on_validation_end"]
    for hook in hooks:
        occurrence = 1 if hook in {"on_batch_begin", "on_batch_end"} and ctx.batches > 1 else 0
        cases.append(((Trigger(hook=hook, occurrence=occurrence),), False))
    if ctx.batches:
        first = Trigger(hook="on_batch_end", occurrence=0)
        cases.append(((first, Trigger(hook="on_train_end", occurrence=0)), False))
        cases.append(((first,), True))
    findings: list[Violation] = []
    for triggers, interrupt in cases:
        label = " + ".join(map(str, triggers)) + (", KeyboardInterrupt" if interrupt else "")
        plan = FitPlan(epochs=2, validation=_validating(ctx), raises=triggers)
        findings += _execute(ctx, f"callback_raises[{label}]", [plan], interrupt=interrupt)[0]
    return findings


def _data_raises(ctx: _Context) -> list[Violation]:
    if not isinstance(ctx.harness, FailingHarness):
        raise _NotApplicable("the harness has no fit_failing (FailingHarness)")
    _needs_batches(ctx)
    plan = FitPlan(epochs=2, data_failure=ctx.batches + (ctx.batches - 1) // 2)
    return _execute(ctx, "data_raises", [plan])[0]


def _fit_twice(ctx: _Context) -> list[Violation]:
    return _execute(ctx, "fit_twice", [FitPlan(epochs=1), FitPlan(epochs=2)])[0]


class _Budget(Exception):
    """Internal: the property scenario ran out of runs while shrinking."""


def _property(ctx: _Context) -> tuple[list[Violation], str]:
    try:
        from hypothesis import HealthCheck, Phase, find, settings
        from hypothesis import strategies as st
        from hypothesis.errors import NoSuchExample
    except ImportError as error:  # pragma: no cover - hypothesis is a test dependency
        raise _NotApplicable(
            f"needs Hypothesis ({error}); install artifex-nnx-callbacks[conformance]"
        ) from error
    batches, validating = ctx.batches, _validating(ctx)
    failing = isinstance(ctx.harness, FailingHarness)
    hooks = [h for h in HOOK_NAMES if validating or "validation" not in h]

    @st.composite
    def plan(draw: st.DrawFn) -> FitPlan:
        epochs = draw(st.integers(0, 3))
        validation = validating and draw(st.booleans())
        stop_hook = draw(st.sampled_from([None, "on_epoch_end", "on_batch_end"]))
        stop = None
        if stop_hook == "on_epoch_end" and epochs:
            stop = Trigger(hook="on_epoch_end", occurrence=draw(st.integers(0, epochs - 1)))
        elif stop_hook == "on_batch_end" and epochs * batches:
            last = epochs * batches - 1
            stop = Trigger(hook="on_batch_end", occurrence=draw(st.integers(0, last)))
        raises: tuple[Trigger, ...] = ()
        failure = draw(
            st.sampled_from([None, "callback", "data"] if failing else [None, "callback"])
        )
        if failure == "callback":
            hook = draw(st.sampled_from(hooks))
            raises = (Trigger(hook=hook, occurrence=draw(st.integers(0, 2))),)
        data_failure = None
        if failure == "data" and epochs * batches and not validation:
            data_failure = draw(st.integers(0, epochs * batches - 1))
        return FitPlan(
            epochs=epochs,
            validation=validation,
            stop=stop,
            raises=raises,
            data_failure=data_failure,
        )

    budget = [ctx.max_examples * 5]
    last_failing: list[tuple[FitPlan, ...]] = []

    def fails(plans: list[FitPlan]) -> bool:
        if budget[0] <= 0:
            raise _Budget
        budget[0] -= 1
        findings, _ = _execute(ctx, "property", plans)
        failed = any(v.severity == "error" for v in findings)
        if failed:
            last_failing.append(tuple(plans))
        return failed

    config = settings(
        max_examples=ctx.max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
    )
    try:
        minimal: tuple[FitPlan, ...] = tuple(
            find(st.lists(plan(), min_size=1, max_size=2), fails, settings=config)
        )
    except NoSuchExample:
        return [], f"{ctx.max_examples} drawn runs conform"
    except _Budget:
        minimal = last_failing[-1]
    draw_text = ", ".join(map(str, minimal))
    findings, _ = _execute(ctx, "property", minimal)
    shrunk = [
        Violation(
            scenario=v.scenario,
            index=v.index,
            context=v.context,
            expected=f"{v.expected} [minimal failing draw: {draw_text}]",
            severity=v.severity,
        )
        for v in findings
    ]
    return shrunk, f"minimal failing draw: {draw_text}"


_RUNNERS: Final[dict[str, Callable[[_Context], list[Violation]]]] = {
    "protocol": _protocol,
    "plain_run": _plain_run,
    "zero_epochs": _zero_epochs,
    "validation": _validation,
    "stop_at_epoch_end": _stop_at_epoch_end,
    "stop_at_batch_end": _stop_at_batch_end,
    "stop_training_flag": _stop_training_flag,
    "callback_raises": _callback_raises,
    "data_raises": _data_raises,
    "fit_twice": _fit_twice,
}


def _run_one(ctx: _Context, name: str) -> ScenarioResult:
    detail = ""
    try:
        if name == "property":
            found, detail = _property(ctx)
        else:
            found = _RUNNERS[name](ctx)
    except _NotApplicable as why:
        return ScenarioResult(name=name, outcome="not applicable", detail=str(why))
    except Exception as error:
        found = [_fault(name, (), f"the scenario crashed: {_describe_exception(error)}")]
    failed = any(v.severity == "error" for v in found)
    return ScenarioResult(
        name=name,
        outcome="failed" if failed else "passed",
        violations=tuple(found),
        detail=detail,
    )


def check_trainer(
    harness: TrainerHarness[T],
    *,
    scenarios: Iterable[str] | None = None,
    max_examples: int = 20,
) -> ConformanceReport:
    """Check that the trainer ``harness`` builds honours the callback contract.

    Runs the scenarios and reports; it raises nothing for a non-conforming trainer
    (only a real ``KeyboardInterrupt`` gets through).

    Args:
        harness: Builds and runs your trainer. Implementing :class:`ValidatingHarness`
            and :class:`FailingHarness` too enables the ``validation`` and
            ``data_raises`` scenarios; otherwise they are reported "not applicable".
        scenarios: The scenario names to run (keys of :data:`SCENARIOS`); all by
            default. The plain run always runs first, to learn how many batches an
            epoch holds; its findings are reported only if ``plain_run`` is selected.
        max_examples: How many runs the ``property`` scenario draws (it then shrinks a
            failing draw, within five times as many runs).

    Returns:
        The report: ``.ok``, ``.violations``, and ``.format()`` for a readable text.

    Raises:
        TypeError: If ``harness`` has no ``build`` and ``fit`` methods.
        ValueError: If a scenario name is unknown or ``max_examples`` is below 1.
    """
    untrusted: object = harness
    if not isinstance(untrusted, TrainerHarness):
        raise TypeError(
            f"harness must be a TrainerHarness (with build(callbacks) and fit(trainer, "
            f"epochs) methods); got {type(harness).__qualname__} {harness!r}"
        )
    chosen = list(SCENARIOS) if scenarios is None else list(scenarios)
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; expected names from {list(SCENARIOS)}")
    if max_examples < 1:
        raise ValueError(f"max_examples must be >= 1, got {max_examples!r}")
    ctx = _Context(harness=harness, max_examples=max_examples)
    plain = _run_one(ctx, "plain_run")
    results: list[ScenarioResult] = []
    warned: set[str] = set()
    for name in SCENARIOS:
        if name not in chosen:
            continue
        result = plain if name == "plain_run" else _run_one(ctx, name)
        kept = []
        for violation in result.violations:
            if violation.severity == "warning":
                if violation.expected in warned:
                    continue
                warned.add(violation.expected)
            kept.append(violation)
        results.append(
            ScenarioResult(
                name=result.name,
                outcome=result.outcome,
                violations=tuple(kept),
                detail=result.detail,
            )
        )
    return ConformanceReport(harness=_describe_harness(harness), results=tuple(results))


def _describe_harness(harness: object) -> str:
    kind = type(harness)
    return f"{kind.__module__}.{kind.__qualname__}"
