"""The fixed scenarios, and every scenario's runner (``RUNNERS``).

Each fixed scenario runs chosen ``fit`` calls and reports what broke the contract. Each
is a ``Runner``:
it returns ``(violations, detail)`` (the detail is empty here) or raises
``NotApplicable``. ``plain_run`` also records how many batch pairs an epoch
holds, which the later scenarios use to place their stops and failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final, Literal

from flax import nnx

from artifex.generative_models.training.callbacks.base import (
    BaseCallback,
    HookName,
    TrainerLike,
    TrainingCallback,
)
from artifex.generative_models.training.callbacks.protocols import TrainerState
from artifex.generative_models.training.conformance._execute import (
    Context,
    ErrorKind,
    Found,
    NotApplicable,
    Runner,
    describe_exception,
    execute,
    fault,
    has_stop_flag,
    is_real_interrupt,
    validating,
)
from artifex.generative_models.training.conformance._harness import FailingHarness
from artifex.generative_models.training.conformance._model_probe import ModelProbe
from artifex.generative_models.training.conformance._property_scenario import property_scenario
from artifex.generative_models.training.conformance._stream_scenario import steps_per_epoch
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
)

__all__ = [
    "callback_raises",
    "data_raises",
    "fit_after_failure",
    "fit_twice",
    "plain_run",
    "protocol",
    "stop_at_batch_end",
    "stop_at_epoch_end",
    "stop_at_last_batch",
    "stop_training_flag",
    "validation",
    "zero_epochs",
]


def _needs_batches(ctx: Context) -> None:
    if ctx.batches < 1:
        raise NotApplicable("the plain run dispatched no batch pair (see plain_run)")


def _protocol_violations(ctx: Context) -> list[Violation]:
    name = "protocol"
    try:
        trainer: object = ctx.harness.build([EventRecorder()])
    except BaseException as error:
        if is_real_interrupt(error):
            raise
        return [fault(name, (), f"harness.build raised {describe_exception(error)}")]
    if not isinstance(trainer, TrainerLike):
        return [
            fault(
                name,
                (),
                f"build() returned a {type(trainer).__qualname__}, which is not a TrainerLike: "
                "the contract expects a `model` attribute or property",
            )
        ]
    try:
        model: object = trainer.model
    except BaseException as error:
        if is_real_interrupt(error):
            raise
        return [fault(name, (), f"reading trainer.model raised {describe_exception(error)}")]
    if not isinstance(model, nnx.Module):
        return [
            fault(
                name,
                (),
                f"trainer.model is a {type(model).__module__}.{type(model).__qualname__}; the "
                "contract (TrainerLike) expects an nnx.Module",
            )
        ]
    if isinstance(trainer, TrainerState):
        before = (trainer.status, trainer.stopped_by, trainer.error)
        if before != ("completed", None, None):
            return [
                fault(
                    name,
                    (),
                    f"before its first fit, the trainer had status {before[0]!r}, stopped_by "
                    f"{before[1]!r} and error {before[2]!r}; the contract expects 'completed', "
                    "None and None (no run is going on, none stopped or failed)",
                )
            ]
    return []


def protocol(ctx: Context) -> Found:
    """``build()`` returns a ``TrainerLike`` whose ``model`` is an ``nnx.Module``."""
    return _protocol_violations(ctx), ""


def plain_run(ctx: Context) -> Found:
    """``fit(epochs=2)``; sets ``ctx.batches`` to the batch pairs of its first epoch."""
    findings, events = execute(ctx, "plain_run", [FitPlan(epochs=2)])
    per_epoch: list[int] = []
    for index, event in enumerate(events):
        if event.hook == "on_epoch_begin":
            per_epoch.append(0)
        elif event.hook == "on_batch_begin" and per_epoch:
            per_epoch[-1] += 1
        elif event.hook == "on_epoch_end" and per_epoch and per_epoch[-1] == 0:
            expected = (
                "every epoch of the plain run must hold at least one batch pair: "
                "the harness's data must not be empty, and the trainer must dispatch "
                "on_batch_begin/on_batch_end around every step"
            )
            if per_epoch[0]:
                expected = (
                    f"epoch {len(per_epoch) - 1} of the plain run held no batch pair, although "
                    f"epoch 0 held {per_epoch[0]}: the trainer (or the harness) iterates one "
                    "iterator for every epoch, which is exhausted after the first; the "
                    "contract starts a fresh pass over the data each epoch (call iter() on "
                    "a re-iterable, or a factory, per epoch)"
                )
            findings.append(
                Violation(
                    scenario="plain_run",
                    index=index,
                    context=event_context(events, index),
                    expected=expected,
                )
            )
    ctx.batches = per_epoch[0] if per_epoch else 0
    return findings, ""


def zero_epochs(ctx: Context) -> Found:
    """``fit(epochs=0)`` dispatches ``on_train_begin`` then ``on_train_end`` only."""
    return execute(ctx, "zero_epochs", [FitPlan(epochs=0)])[0], ""


def validation(ctx: Context) -> Found:
    """Two epochs with validation data (needs a ``ValidatingHarness``)."""
    if not validating(ctx):
        raise NotApplicable("the harness has no fit_validated (ValidatingHarness)")
    return execute(ctx, "validation", [FitPlan(epochs=2, validation=True)])[0], ""


def stop_at_epoch_end(ctx: Context) -> Found:
    """A ``StopRequester`` asks to stop at ``on_epoch_end`` #1 of three epochs."""
    stop = Trigger(hook="on_epoch_end", occurrence=1)
    plan = FitPlan(epochs=3, validation=validating(ctx), stop=stop)
    return execute(ctx, "stop_at_epoch_end", [plan])[0], ""


def stop_at_batch_end(ctx: Context) -> Found:
    """A ``StopRequester`` asks to stop at an ``on_batch_end`` in epoch 1."""
    _needs_batches(ctx)
    # Mid-epoch in epoch 1 when an epoch has two batches or more.
    stop = Trigger(hook="on_batch_end", occurrence=ctx.batches + (ctx.batches - 1) // 2)
    plan = FitPlan(epochs=3, validation=validating(ctx), stop=stop)
    return execute(ctx, "stop_at_batch_end", [plan])[0], ""


def stop_at_last_batch(ctx: Context) -> Found:
    """A ``StopRequester`` asks to stop at the last ``on_batch_end`` of epoch 0, with validation."""
    if not validating(ctx):
        raise NotApplicable("the harness has no fit_validated (ValidatingHarness)")
    _needs_batches(ctx)
    stop = Trigger(hook="on_batch_end", occurrence=ctx.batches - 1)
    plan = FitPlan(epochs=2, validation=True, stop=stop)
    return execute(ctx, "stop_at_last_batch", [plan])[0], ""


def stop_training_flag(ctx: Context) -> Found:
    """A callback sets ``trainer.stop_training = True``; a second ``fit`` must then train."""
    _needs_batches(ctx)
    if not has_stop_flag(ctx):
        raise NotApplicable("the trainer has no stop_training attribute")
    stop = Trigger(hook="on_batch_end", occurrence=0)
    plans = [FitPlan(epochs=2, stop=stop, stop_via="flag"), FitPlan(epochs=2)]
    found = execute(ctx, "stop_training_flag", plans)
    return _hint(found, "fit resets stop_training to False, so it trains"), ""


def _hint(found: tuple[list[Violation], list[Event]], rule: str) -> list[Violation]:
    """Add ``rule`` to the errors found in the second ``fit`` call of a record."""
    findings, events = found
    begins = [i for i, event in enumerate(events) if event.hook == "on_train_begin"]
    second = begins[1] if len(begins) > 1 else len(events)
    return [
        replace(v, expected=f"{v.expected} [in the second fit call: {rule}]")
        if v.severity == "error" and v.index is not None and v.index >= second
        else v
        for v in findings
    ]


def _raise_cases(ctx: Context) -> list[tuple[FitPlan, ErrorKind]]:
    """The plans of ``callback_raises``: each hook, then failures in combination."""
    hooks: list[HookName] = ["on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_end"]
    if ctx.batches:
        hooks[2:2] = ["on_batch_begin", "on_batch_end"]
    with_validation = validating(ctx)
    if with_validation:
        hooks[-1:-1] = ["on_validation_begin", "on_validation_end"]
    cases: list[tuple[FitPlan, ErrorKind]] = []
    for hook in hooks:
        occurrence = 1 if hook in {"on_batch_begin", "on_batch_end"} and ctx.batches > 1 else 0
        trigger = Trigger(hook=hook, occurrence=occurrence)
        cases.append((FitPlan(epochs=2, validation=with_validation, raises=(trigger,)), "error"))
    if ctx.batches:
        first = Trigger(hook="on_batch_end", occurrence=0)
        teardown = Trigger(hook="on_train_end", occurrence=0)
        combined: list[tuple[FitPlan, ErrorKind]] = [
            (FitPlan(epochs=2, validation=with_validation, raises=(first, teardown)), "error"),
            # ... and a KeyboardInterrupt from on_train_end on top of it: a note or a takeover,
            # and teardown still reaches every callback; then one after a clean run.
            (
                FitPlan(epochs=2, validation=with_validation, raises=(first, teardown)),
                "teardown_interrupt",
            ),
            (
                FitPlan(epochs=2, validation=with_validation, raises=(teardown,)),
                "teardown_interrupt",
            ),
            (FitPlan(epochs=2, validation=with_validation, raises=(first,)), "interrupt"),
            (FitPlan(epochs=2, validation=with_validation, raises=(first,)), "exit"),
            # A stop, then a failure in the same fit: the failure decides the outcome.
            (
                FitPlan(
                    epochs=2,
                    validation=with_validation,
                    stop=first,
                    raises=(Trigger(hook="on_epoch_end", occurrence=0),),
                ),
                "error",
            ),
        ]
        cases += combined
    if with_validation:
        in_validation: list[tuple[HookName, ErrorKind]] = [
            ("on_validation_begin", "interrupt"),
            ("on_validation_end", "exit"),
        ]
        for hook, kind in in_validation:
            trigger = Trigger(hook=hook, occurrence=0)
            cases.append((FitPlan(epochs=2, validation=True, raises=(trigger,)), kind))
    return cases


_KIND_LABELS: Final[dict[ErrorKind, str]] = {
    "error": "",
    "interrupt": ", KeyboardInterrupt",
    "exit": ", SystemExit",
    "teardown_interrupt": ", KeyboardInterrupt in on_train_end",
}


def callback_raises(ctx: Context) -> Found:
    """A callback raises in each hook, then in combination (teardown, interrupts, exits, stops)."""
    findings: list[Violation] = []
    for plan, kind in _raise_cases(ctx):
        label = " + ".join(map(str, plan.raises)) + _KIND_LABELS[kind]
        if plan.stop is not None:
            label = f"stop at {plan.stop}, then {label}"
        findings += execute(ctx, f"callback_raises[{label}]", [plan], kind=kind)[0]
    return findings, ""


def data_raises(ctx: Context) -> Found:
    """The data raises mid-epoch in epoch 1, then interrupts, then exits (``FailingHarness``)."""
    if not isinstance(ctx.harness, FailingHarness):
        raise NotApplicable("the harness has no fit_failing (FailingHarness)")
    _needs_batches(ctx)
    plan = FitPlan(epochs=2, data_failure=ctx.batches + (ctx.batches - 1) // 2)
    findings: list[Violation] = []
    for kind in ("error", "interrupt", "exit"):
        label = f"data_raises[{_KIND_LABELS[kind][2:]}]" if kind != "error" else "data_raises"
        findings += execute(ctx, label, [plan], kind=kind)[0]
    return findings, ""


def stop_at_any_hook(ctx: Context) -> Found:
    """A stop asked for at each hook where no fixed scenario asks, by either source.

    Each hook once, the two sources alternating (a flag set in ``on_train_begin``
    catches a trainer that resets it too late); the property scenario draws the rest
    of the combinations, with and without validation.
    """
    _needs_batches(ctx)
    with_validation = validating(ctx)
    flag: Literal["requester", "flag"] = "flag" if has_stop_flag(ctx) else "requester"
    cases: list[tuple[HookName, Literal["requester", "flag"]]] = [
        ("on_train_begin", flag),
        ("on_epoch_begin", "requester"),
        ("on_batch_begin", "requester"),
        ("on_epoch_end", flag),
    ]
    if with_validation:
        cases.append(("on_validation_begin", flag))
        cases.append(("on_validation_end", "requester"))
    findings: list[Violation] = []
    for hook, via in cases:
        occurrence = ctx.batches if hook == "on_batch_begin" else 0  # epoch 1's first batch
        stop = Trigger(hook=hook, occurrence=occurrence)
        plan = FitPlan(epochs=2, validation=with_validation, stop=stop, stop_via=via)
        findings += execute(ctx, f"stop_at_any_hook[{stop} via {via}]", [plan])[0]
    return findings, ""


def _raise_flag(trainer: Any) -> None:
    trainer.stop_training = True


def stop_then_fit(ctx: Context) -> Found:
    """Stops do not outlive their ``fit``: a later ``fit`` trains, a flag set between is dropped."""
    _needs_batches(ctx)
    with_validation = validating(ctx)
    stop = Trigger(hook="on_batch_end", occurrence=0)
    plans = [FitPlan(epochs=2, stop=stop), FitPlan(epochs=2, validation=with_validation)]
    found = execute(ctx, "stop_then_fit[requester]", plans)
    findings = _hint(found, "a stop request ends its own fit only; the next fit trains")
    if has_stop_flag(ctx):
        at_end = Trigger(hook="on_epoch_end", occurrence=0)
        plans = [
            FitPlan(epochs=2, validation=with_validation, stop=at_end, stop_via="flag"),
            FitPlan(epochs=2, validation=with_validation),
        ]
        found = execute(ctx, "stop_then_fit[flag at on_epoch_end]", plans)
        findings += _hint(found, "fit resets stop_training to False, so it trains")
        plans = [FitPlan(epochs=1), FitPlan(epochs=2)]
        found = execute(ctx, "stop_then_fit[flag set between]", plans, between=_raise_flag)
        findings += _hint(
            found, "fit resets stop_training when it starts: a flag set before is dropped"
        )
    return findings, ""


class _Refuser(BaseCallback):
    """A ``PreflightCallback`` that refuses once armed.

    It refuses in ``on_train_begin`` too, for trainers that make no preflight pass, as
    the library's own callbacks do.
    """

    __slots__ = ("armed", "error")

    def __init__(self) -> None:
        self.armed = False
        self.error: ProbeError | None = None

    def _refuse(self) -> None:
        if self.armed and self.error is None:
            self.error = ProbeError("refused in preflight by the conformance suite")
            raise self.error

    def preflight(self, trainer: TrainerLike, /) -> None:
        """Refuse the run, once armed."""
        self._refuse()

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Refuse here if the trainer made no preflight pass."""
        self._refuse()


def _refusal_findings(events: Sequence[Event], start: int, begun: bool) -> list[str]:
    """What a trainer that calls ``preflight`` did wrong after a refusal."""
    hooks = [event.hook for event in events[start:]]
    problems: list[str] = []
    if "on_train_begin" in hooks:
        problems.append(
            "a callback got on_train_begin although a PreflightCallback refused in preflight: "
            "the contract calls every callback's preflight before any on_train_begin (a loop "
            "of its own), so a refusal comes before anything began"
        )
    if "on_train_end" in hooks and not begun:
        problems.append(
            "on_train_end was dispatched after a preflight refusal; nothing began, so the "
            "contract tears nothing down"
        )
    return problems


def preflight_refusal(ctx: Context) -> Found:
    """A ``PreflightCallback`` refuses the second ``fit``: nothing begins, nothing is torn down."""
    name, refuser, recorder = "preflight_refusal", _Refuser(), EventRecorder()
    try:
        trainer: Any = ctx.harness.build([recorder, refuser])
    except BaseException as error:
        if is_real_interrupt(error):
            raise
        return [fault(name, (), f"harness.build raised {describe_exception(error)}")], ""
    events = recorder.events
    try:
        ctx.harness.fit(trainer, 1)
    except BaseException as error:
        if is_real_interrupt(error):
            raise
        return [fault(name, events, f"fit raised {describe_exception(error)}")], ""
    refuser.armed, start = True, len(events)
    before = (trainer.status, trainer.error) if isinstance(trainer, TrainerState) else None
    try:
        ctx.harness.fit(trainer, 1)
    except BaseException as error:
        if is_real_interrupt(error):
            raise
        if error is not refuser.error:
            message = f"fit raised {describe_exception(error)} instead of the refusal"
            return [fault(name, events, message)], ""
    else:
        return [fault(name, events, "fit returned normally although a callback refused it")], ""
    calls_preflight = any(event.hook == "preflight" for event in events)
    if not calls_preflight:  # the refusal came from on_train_begin: a failure like any other
        plans = [
            FitPlan(epochs=1),
            FitPlan(epochs=1, raises=(Trigger(hook="on_train_begin", occurrence=0),)),
        ]
        return check_events(events, plans, scenario=name), ""
    problems = _refusal_findings(events, start, begun=False)
    if before is not None and (trainer.status, trainer.error) != before:
        problems.append(
            f"after a preflight refusal, status and error were {trainer.status!r} and "
            f"{trainer.error!r}; the contract leaves them as the previous run left them "
            f"({before[0]!r}, {before[1]!r})"
        )
    findings = check_events(events[:start], [FitPlan(epochs=1)], scenario=name)
    return findings + [fault(name, events, problem) for problem in problems], ""


def model(ctx: Context) -> Found:
    """``trainer.model``: one live module, trained in place; a callback's edits stay."""
    name, recorder, probe = "model", EventRecorder(), ModelProbe()
    callbacks: list[TrainingCallback] = [recorder, probe]
    try:
        trainer: Any = ctx.harness.build(callbacks)
        ctx.harness.fit(trainer, 2)
        probe.after_fit(trainer)
    except BaseException as error:
        if is_real_interrupt(error):
            raise
        message = f"the model scenario's build or fit raised {describe_exception(error)}"
        return [fault(name, recorder.events, message)], ""
    findings = check_events(recorder.events, [FitPlan(epochs=2)], scenario=name)
    return findings + [fault(name, recorder.events, problem) for _, problem in probe.problems], ""


def fit_twice(ctx: Context) -> Found:
    """``fit`` twice on one trainer: one epoch, then two."""
    return execute(ctx, "fit_twice", [FitPlan(epochs=1), FitPlan(epochs=2)])[0], ""


def fit_after_failure(ctx: Context) -> Found:
    """A failed ``fit``, then a clean one: it trains, counters continue, ``error`` is None."""
    _needs_batches(ctx)
    plans = [
        FitPlan(epochs=1, raises=(Trigger(hook="on_batch_end", occurrence=0),)),
        FitPlan(epochs=2),
    ]
    found = execute(ctx, "fit_after_failure", plans)
    return _hint(found, "each fit starts afresh: status, stopped_by and error describe it"), ""


RUNNERS: Final[dict[str, Runner]] = {
    "protocol": protocol,
    "plain_run": plain_run,
    "zero_epochs": zero_epochs,
    "validation": validation,
    "model": model,
    "stop_at_epoch_end": stop_at_epoch_end,
    "stop_at_batch_end": stop_at_batch_end,
    "stop_at_last_batch": stop_at_last_batch,
    "stop_training_flag": stop_training_flag,
    "stop_at_any_hook": stop_at_any_hook,
    "stop_then_fit": stop_then_fit,
    "callback_raises": callback_raises,
    "data_raises": data_raises,
    "fit_twice": fit_twice,
    "fit_after_failure": fit_after_failure,
    "preflight_refusal": preflight_refusal,
    "steps_per_epoch": steps_per_epoch,
    "property": property_scenario,
}
"""Every scenario's runner, keyed and ordered as [`SCENARIOS`][] (a test checks it)."""
