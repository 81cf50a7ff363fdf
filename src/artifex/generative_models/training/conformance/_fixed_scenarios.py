"""The fixed scenarios, and every scenario's runner (``RUNNERS``).

Each fixed scenario runs chosen ``fit`` calls and reports what broke the contract. Each
is a ``Runner``:
it returns ``(violations, detail)`` (the detail is empty here) or raises
``NotApplicable``. ``plain_run`` also records how many batch pairs an epoch
holds, which the later scenarios use to place their stops and failures.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from flax import nnx

from artifex.generative_models.training.callbacks.base import HookName, TrainerLike
from artifex.generative_models.training.conformance._execute import (
    Context,
    Found,
    NotApplicable,
    Runner,
    describe_exception,
    execute,
    fault,
    is_real_interrupt,
    validating,
)
from artifex.generative_models.training.conformance._harness import FailingHarness
from artifex.generative_models.training.conformance._property_scenario import property_scenario
from artifex.generative_models.training.conformance.grammar import (
    FitPlan,
    Trigger,
    Violation,
    event_context,
)
from artifex.generative_models.training.conformance.recorder import Event, EventRecorder

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
    try:
        trainer: object = ctx.harness.build([])
    except BaseException as error:
        if is_real_interrupt(error):
            raise
        return [fault("stop_training_flag", (), f"harness.build raised {error!r}")], ""
    if not hasattr(trainer, "stop_training"):
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


def callback_raises(ctx: Context) -> Found:
    """A callback raises in each hook, then on top of an earlier failure, then interrupts."""
    cases: list[tuple[tuple[Trigger, ...], bool]] = []
    hooks: list[HookName] = [
        "on_train_begin",
        "on_epoch_begin",
        "on_epoch_end",
        "on_train_end",
    ]
    if ctx.batches:
        hooks[2:2] = ["on_batch_begin", "on_batch_end"]
    if validating(ctx):
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
        plan = FitPlan(epochs=2, validation=validating(ctx), raises=triggers)
        findings += execute(ctx, f"callback_raises[{label}]", [plan], interrupt=interrupt)[0]
    return findings, ""


def data_raises(ctx: Context) -> Found:
    """The data raises mid-epoch in epoch 1, then interrupts (needs a ``FailingHarness``)."""
    if not isinstance(ctx.harness, FailingHarness):
        raise NotApplicable("the harness has no fit_failing (FailingHarness)")
    _needs_batches(ctx)
    plan = FitPlan(epochs=2, data_failure=ctx.batches + (ctx.batches - 1) // 2)
    findings = execute(ctx, "data_raises", [plan])[0]
    return findings + execute(ctx, "data_raises[KeyboardInterrupt]", [plan], interrupt=True)[0], ""


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
    "stop_at_epoch_end": stop_at_epoch_end,
    "stop_at_batch_end": stop_at_batch_end,
    "stop_at_last_batch": stop_at_last_batch,
    "stop_training_flag": stop_training_flag,
    "callback_raises": callback_raises,
    "data_raises": data_raises,
    "fit_twice": fit_twice,
    "fit_after_failure": fit_after_failure,
    "property": property_scenario,
}
"""Every scenario's runner, keyed and ordered as [`SCENARIOS`][] (a test checks it)."""
