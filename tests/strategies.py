"""All Hypothesis strategies of the test suite, in one place."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal, TypeAlias

from hypothesis import strategies as st

from artifex.generative_models.training.callbacks import HOOK_NAMES, HookName, ProcessScope
from artifex.generative_models.training.conformance import Event, FitPlan, Trigger

# ------------------------------------------------------------------ callback core
# Used by tests/training/callbacks/test_base_stateful.py.

Behaviour: TypeAlias = Literal["record", "raise", "interrupt", "exit", "append", "remove_self"]
"""What a scripted callback does when one of its hooks is called (it always records):
``"interrupt"`` and ``"exit"`` raise a ``KeyboardInterrupt`` and a ``SystemExit``."""

hook_names: st.SearchStrategy[HookName] = st.sampled_from(HOOK_NAMES)

process_scopes: st.SearchStrategy[ProcessScope] = st.sampled_from(("all", "main"))

behaviours: st.SearchStrategy[Behaviour] = st.sampled_from(
    ("record", "record", "raise", "interrupt", "exit", "append", "remove_self")
)


@st.composite
def callback_scripts(draw: st.DrawFn) -> dict[HookName, Behaviour]:
    """Draw the hooks a scripted callback overrides, and what each does."""
    overridden = draw(st.sets(hook_names))
    return {hook: draw(behaviours) for hook in sorted(overridden)}


# --------------------------------------------------------------- built-in callbacks
# Used by tests/training/callbacks/test_early_stopping.py.


@st.composite
def early_stopping_scores(
    draw: st.DrawFn,
) -> tuple[list[float], int, float, Literal["min", "max"]]:
    """Draw (epoch scores with some NaNs, patience, min_delta, mode) for EarlyStopping."""
    score = st.one_of(
        st.floats(-10, 10, allow_nan=False), st.sampled_from([1.0, 0.0]), st.just(float("nan"))
    )
    scores = draw(st.lists(score, min_size=0, max_size=15))
    patience = draw(st.integers(0, 4))
    min_delta = draw(st.sampled_from([0.0, 0.1, 0.5]))
    mode: Literal["min", "max"] = draw(st.sampled_from(["min", "max"]))
    return scores, patience, min_delta, mode


@st.composite
def plateau_cases(
    draw: st.DrawFn,
) -> tuple[list[float], int, float, Literal["min", "max"], int]:
    """Draw EarlyStopping's cases plus a cooldown, for ReduceLROnPlateau."""
    scores, patience, min_delta, mode = draw(early_stopping_scores())
    return scores, patience, min_delta, mode, draw(st.integers(0, 3))


# ------------------------------------------------------------ conformance grammar
# Used by tests/training/conformance/test_grammar.py: records an ideal trainer would produce,
# and mutations of them that break the contract.

Mutation: TypeAlias = Literal["delete", "duplicate", "swap", "renumber"]


class _Raised(Exception):
    pass


def ideal_record(plans: list[FitPlan], batches: int) -> list[Event]:
    """The events a conforming trainer dispatches for ``plans``, ``batches`` per epoch."""
    events: list[Event] = []
    step = epoch = 0
    for plan in plans:
        counts: Counter[str] = Counter()
        stop = False

        def emit(event: Event, plan: FitPlan = plan, counts: Counter[str] = counts) -> None:
            nonlocal stop
            events.append(event)
            seen = counts[event.hook]
            counts[event.hook] += 1
            if plan.stop is not None and (plan.stop.hook, plan.stop.occurrence) == (
                event.hook,
                seen,
            ):
                stop = True
            if any((t.hook, t.occurrence) == (event.hook, seen) for t in plan.raises):
                raise _Raised

        try:
            emit(Event(hook="on_train_begin"))
            for _ in range(plan.epochs):
                emit(Event(hook="on_epoch_begin", number=epoch))
                for _ in range(batches):
                    emit(Event(hook="on_batch_begin", number=step))
                    step += 1
                    logs = (("loss", "jax.Array"),)
                    emit(Event(hook="on_batch_end", number=step - 1, logs=logs, logs_type="dict"))
                    if stop:
                        break
                epoch_logs: tuple[tuple[str, str], ...] = (("loss", "float"),)
                if plan.validation and not stop:
                    emit(Event(hook="on_validation_begin"))
                    val_logs = (("loss", "float"),)
                    emit(Event(hook="on_validation_end", logs=val_logs, logs_type="dict"))
                    epoch_logs += (("val_loss", "float"),)
                emit(Event(hook="on_epoch_end", number=epoch, logs=epoch_logs, logs_type="dict"))
                epoch += 1
                if stop:
                    break
            emit(Event(hook="on_train_end"))
        except _Raised:
            if not events or events[-1].hook != "on_train_end":
                events.append(Event(hook="on_train_end"))
    return events


@st.composite
def fit_plans(draw: st.DrawFn, batches: int, *, raises: bool = True) -> FitPlan:
    """One ``fit`` call: epochs, validation, maybe a stop, maybe an injected raise."""
    epochs = draw(st.integers(0, 3))
    stop = None
    stop_hook = draw(st.sampled_from([None, "on_epoch_end", "on_batch_end"]))
    if stop_hook == "on_epoch_end" and epochs:
        stop = Trigger(hook="on_epoch_end", occurrence=draw(st.integers(0, epochs - 1)))
    elif stop_hook == "on_batch_end" and epochs:
        stop = Trigger(hook="on_batch_end", occurrence=draw(st.integers(0, epochs * batches - 1)))
    injected: tuple[Trigger, ...] = ()
    if raises and draw(st.booleans()):
        injected = (Trigger(hook=draw(hook_names), occurrence=draw(st.integers(0, 2))),)
    return FitPlan(epochs=epochs, validation=draw(st.booleans()), stop=stop, raises=injected)


@st.composite
def valid_records(draw: st.DrawFn) -> tuple[list[Event], list[FitPlan]]:
    """A record an ideal trainer produces, with its plans (1 to 3 ``fit`` calls)."""
    batches = draw(st.integers(1, 3))
    plans = draw(st.lists(fit_plans(batches), min_size=1, max_size=3))
    return ideal_record(plans, batches), plans


@st.composite
def invalid_records(draw: st.DrawFn) -> tuple[list[Event], list[FitPlan], str]:
    """A valid record with one structural mutation, which must make it invalid.

    Only the last ``fit`` call may fail, so that every counter is determined exactly.
    """
    batches = draw(st.integers(1, 3))
    plans = draw(st.lists(fit_plans(batches, raises=False), min_size=0, max_size=2))
    plans.append(draw(fit_plans(batches)))
    events = ideal_record(plans, batches)
    kind: Mutation = draw(st.sampled_from(["delete", "duplicate", "swap", "renumber"]))
    if kind == "swap":
        pairs = [i for i in range(len(events) - 1) if events[i] != events[i + 1]]
        i = draw(st.sampled_from(pairs))
        events[i], events[i + 1] = events[i + 1], events[i]
        return events, plans, f"swap #{i} and #{i + 1}"
    if kind == "renumber":
        numbered = [i for i, event in enumerate(events) if event.number is not None]
        if numbered:
            i = draw(st.sampled_from(numbered))
            number = events[i].number
            assert isinstance(number, int)
            delta = draw(st.sampled_from([-1, 1]))
            old = events[i]
            events[i] = Event(
                hook=old.hook, number=number + delta, logs=old.logs, logs_type=old.logs_type
            )
            return events, plans, f"renumber #{i} by {delta}"
    i = draw(st.integers(0, len(events) - 1))
    if kind == "duplicate":
        events.insert(i, events[i])
        return events, plans, f"duplicate #{i}"
    del events[i]
    return events, plans, f"delete #{i}"


# ------------------------------------------------------------------ reference trainer
# Used by tests/training/test_trainer_lifecycle.py: fit scenarios for the reference Trainer.

TrainerHook: TypeAlias = Literal[HookName, "data"]
"""Where a scenario injects a failure: a hook, or the training data itself."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainerFit:
    """One ``fit`` call of a lifecycle scenario.

    ``stop`` and ``fail`` are ``(hook or "data", occurrence within this fit)``;
    ``stop_by_flag`` stops through ``trainer.stop_training`` instead of ``should_stop``.
    """

    epochs: int
    validation: bool
    stop: tuple[Literal["on_batch_end", "on_epoch_end"], int] | None
    stop_by_flag: bool
    fail: tuple[TrainerHook, int] | None
    interrupt: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainerScenario:
    """Several ``fit`` calls on one trainer, ``batches`` per epoch, ``chunk`` steps per call."""

    batches: int
    chunk: int
    fits: tuple[TrainerFit, ...]


@st.composite
def trainer_fits(draw: st.DrawFn, batches: int) -> TrainerFit:
    """One fit call: epochs, validation, maybe a stop, maybe a failure."""
    epochs = draw(st.integers(0, 3))
    stop: tuple[Literal["on_batch_end", "on_epoch_end"], int] | None = None
    where = draw(st.sampled_from([None, "on_batch_end", "on_epoch_end"]))
    if where == "on_batch_end" and epochs:
        stop = ("on_batch_end", draw(st.integers(0, epochs * batches - 1)))
    elif where == "on_epoch_end" and epochs:
        stop = ("on_epoch_end", draw(st.integers(0, epochs - 1)))
    fail: tuple[TrainerHook, int] | None = None
    if draw(st.booleans()):
        hook: TrainerHook = draw(st.sampled_from([*HOOK_NAMES, "data", "data"]))
        fail = (hook, draw(st.integers(0, max(0, epochs * batches - 1) if hook == "data" else 2)))
    return TrainerFit(
        epochs=epochs,
        validation=draw(st.booleans()),
        stop=stop,
        stop_by_flag=draw(st.booleans()),
        fail=fail,
        interrupt=draw(st.integers(0, 5)) == 0,
    )


@st.composite
def trainer_scenarios(draw: st.DrawFn) -> TrainerScenario:
    """One to three fit calls on a trainer with 1-4 batches per epoch, 1-3 steps per call."""
    batches = draw(st.integers(1, 4))
    fits = draw(st.lists(trainer_fits(batches), min_size=1, max_size=3))
    return TrainerScenario(batches=batches, chunk=draw(st.integers(1, 3)), fits=tuple(fits))
