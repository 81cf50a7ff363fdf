"""The fixed scenarios, and every scenario's runner (:data:`RUNNERS`).

Each fixed scenario runs chosen ``fit`` calls and reports what broke the contract. Each
is a :data:`~artifex.generative_models.training.conformance._execute.Runner`:
it returns ``(violations, detail)`` (the detail is empty here) or raises
:class:`NotApplicable`. ``plain_run`` also records how many batch pairs an epoch
holds, which the later scenarios use to place their stops and failures.
"""

from __future__ import annotations

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
    validating,
)
from artifex.generative_models.training.conformance._harness import FailingHarness
from artifex.generative_models.training.conformance._property import property_scenario
from artifex.generative_models.training.conformance.grammar import (
    FitPlan,
    Trigger,
    Violation,
    event_context,
)
from artifex.generative_models.training.conformance.recorder import EventRecorder

__all__ = [
    "callback_raises",
    "data_raises",
    "fit_twice",
    "plain_run",
    "protocol",
    "stop_at_batch_end",
    "stop_at_epoch_end",
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
    except Exception as error:
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
    except Exception as error:
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


def stop_training_flag(ctx: Context) -> Found:
    """A callback sets ``trainer.stop_training = True`` (if the trainer has it)."""
    _needs_batches(ctx)
    try:
        trainer: object = ctx.harness.build([])
    except Exception as error:
        return [fault("stop_training_flag", (), f"harness.build raised {error!r}")], ""
    if not hasattr(trainer, "stop_training"):
        raise NotApplicable("the trainer has no stop_training attribute")
    plan = FitPlan(epochs=2, stop=Trigger(hook="on_batch_end", occurrence=0))
    return execute(ctx, "stop_training_flag", [plan], via="flag")[0], ""


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
    """The data raises mid-epoch in epoch 1 (needs a ``FailingHarness``)."""
    if not isinstance(ctx.harness, FailingHarness):
        raise NotApplicable("the harness has no fit_failing (FailingHarness)")
    _needs_batches(ctx)
    plan = FitPlan(epochs=2, data_failure=ctx.batches + (ctx.batches - 1) // 2)
    return execute(ctx, "data_raises", [plan])[0], ""


def fit_twice(ctx: Context) -> Found:
    """``fit`` twice on one trainer: one epoch, then two."""
    return execute(ctx, "fit_twice", [FitPlan(epochs=1), FitPlan(epochs=2)])[0], ""


RUNNERS: Final[dict[str, Runner]] = {
    "protocol": protocol,
    "plain_run": plain_run,
    "zero_epochs": zero_epochs,
    "validation": validation,
    "stop_at_epoch_end": stop_at_epoch_end,
    "stop_at_batch_end": stop_at_batch_end,
    "stop_training_flag": stop_training_flag,
    "callback_raises": callback_raises,
    "data_raises": data_raises,
    "fit_twice": fit_twice,
    "property": property_scenario,
}
"""Every scenario's runner, keyed and ordered as :data:`SCENARIOS` (a test checks it)."""
