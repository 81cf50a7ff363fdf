"""Recording what a trainer dispatches: events, and the callbacks a scenario injects.

The conformance suite knows a trainer only through the callbacks it hands to the
harness. [`EventRecorder`][] writes every hook call down as an [`Event`][];
[`StopAt`][] and [`RaiseAt`][] act on the trainer at a chosen hook and
occurrence. None of them imports a trainer module.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, Literal, TypeAlias, TypeVar

import jax

from artifex.generative_models.training.callbacks.base import (
    BaseCallback,
    HookName,
    TrainerLike,
)
from artifex.generative_models.training.callbacks.protocols import (
    ExampleCounter,
    StepCheckpointableTrainer,
    TrainerState,
    TrainingPlan,
)

__all__ = [
    "Event",
    "EventRecorder",
    "FailingData",
    "LogEntries",
    "OrderLog",
    "OrderMark",
    "StateEntries",
    "ProbeError",
    "ProbeExit",
    "ProbeInterrupt",
    "RaiseAt",
    "StopAt",
    "Teardown",
    "TeardownWitness",
    "describe_value",
]

LogEntries: TypeAlias = tuple[tuple[str, str], ...]
"""A logs dictionary as recorded: ``(key, type name)`` pairs, in the dictionary's order."""

StateEntries: TypeAlias = tuple[tuple[str, object], ...]
"""The trainer's optional attributes as a callback read them: ``(name, value)`` pairs."""

_T = TypeVar("_T")

# The attributes each optional protocol states, read at every hook for a trainer that
# implements it (properties only: reading them never syncs the device).
_STATE_ATTRIBUTES: tuple[tuple[type, tuple[str, ...]], ...] = (
    (TrainerState, ("step", "epoch", "status", "stopped_by", "error", "stop_training")),
    (ExampleCounter, ("examples_seen",)),
    (StepCheckpointableTrainer, ("last_batch_of_epoch",)),
    (TrainingPlan, ("planned_epochs", "steps_per_epoch")),
)


class _Unreadable:
    """A trainer attribute whose reading raised: the ``repr`` of what it raised."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why

    def __repr__(self) -> str:
        """E.g. ``<reading it raised AttributeError('x')>``."""
        return f"<reading it raised {self.why}>"


def _state_attributes(trainer: object) -> tuple[str, ...]:
    """The attributes of the optional protocols ``trainer`` implements."""
    return tuple(
        name
        for protocol, names in _STATE_ATTRIBUTES
        if isinstance(trainer, protocol)
        for name in names
    )


def _read_state(trainer: object, names: tuple[str, ...]) -> StateEntries:
    """Read ``names`` of ``trainer``; an attribute that raises is an ``_Unreadable``."""
    entries: list[tuple[str, object]] = []
    for name in names:
        try:
            entries.append((name, getattr(trainer, name)))
        except Exception as error:  # a broken property is reported, not raised
            entries.append((name, _Unreadable(repr(error))))
    return tuple(entries)


def describe_value(value: object) -> str:
    """Name the type of a logs value the way reports print it.

    Args:
        value: A value from a logs dictionary.

    Returns:
        ``"jax.Array"`` for a JAX scalar (``"jax.Array[shape (4,)]"`` for any other
        JAX array), ``"float"``,
        ``"int"`` and ``"bool"`` for Python scalars (subclasses such as
        ``numpy.float64`` count as ``float``), else ``module.QualifiedName``.
    """
    if isinstance(value, jax.Array):
        shape = value.shape  # metadata only: reading it never syncs the device
        return "jax.Array" if shape == () else f"jax.Array[shape {shape}]"
    for kind in (bool, float, int):
        if isinstance(value, kind):
            return kind.__name__
    kind_of = type(value)
    return f"{kind_of.__module__}.{kind_of.__qualname__}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One hook call, as a callback saw it.

    Attributes:
        hook: The hook that was called; ``"preflight"`` for a trainer's preflight pass
            (see ``PreflightCallback``), which is no hook and optional.
        number: The epoch (``on_epoch_*``) or step (``on_batch_*``) argument; ``None``
            for the other hooks. Kept as given, so a non-``int`` shows up in reports.
        logs: For the ``*_end`` hooks that take logs, the logs' keys and value types;
            ``None`` if the hook takes none or the trainer passed a non-dictionary.
        logs_type: The type name of the logs argument, for hooks that take logs.
        status: For ``on_train_end`` on a trainer that satisfies ``TrainerState``, its
            ``status`` at that moment; else ``None``.
        logs_dict: Whether the logs argument was a ``dict`` (``False`` for any other
            mapping, whose entries are still recorded).
        values: Host copies of the logs' Python numbers (not bools), ``(key, value)``.
        batch_losses: For ``on_epoch_end``: host copies of the ``"loss"`` of every batch
            log of that epoch, read at ``on_epoch_end`` (``None`` if there were none,
            or one was no scalar).
        unreadable: For ``on_epoch_end``: why a batch-log value of that epoch could no
            longer be read at ``on_epoch_end`` (deleted or donated), else ``None``.
        state: What the callback read of the trainer's optional attributes
            (``TrainerState``, ``ExampleCounter``, ``last_batch_of_epoch``,
            ``TrainingPlan``) at that hook, ``(name, value)``; empty for a trainer
            without them.
    """

    hook: HookName | Literal["preflight"]
    number: object = None
    logs: LogEntries | None = None
    logs_type: str | None = None
    status: str | None = None
    logs_dict: bool = True
    values: tuple[tuple[str, float], ...] = ()
    batch_losses: tuple[float, ...] | None = None
    unreadable: str | None = None
    state: StateEntries = ()

    def __str__(self) -> str:
        """The event as a short call, e.g. ``on_batch_end(3, {loss: jax.Array})``."""
        args: list[str] = []
        if self.number is not None:
            args.append(repr(self.number))
        if self.logs is not None:
            args.append("{" + ", ".join(f"{key}: {kind}" for key, kind in self.logs) + "}")
        elif self.logs_type is not None:
            args.append(f"<{self.logs_type}>")
        text = f"{self.hook}({', '.join(args)})"
        return text if self.status is None else f"{text} [status={self.status}]"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _logs_event(hook: HookName, number: object, logs: object) -> Event:
    """Record a logs argument: entries (if a mapping), type name, host numbers."""
    if not isinstance(logs, Mapping):
        return Event(hook=hook, number=number, logs_type=describe_value(logs))
    items = [(str(key), value) for key, value in logs.items()]
    return Event(
        hook=hook,
        number=number,
        logs=tuple((key, describe_value(value)) for key, value in items),
        logs_type=describe_value(logs),
        logs_dict=isinstance(logs, dict),
        values=tuple((key, float(value)) for key, value in items if _is_number(value)),
    )


def _host_losses(
    pending: Sequence[tuple[object, tuple[str, object]]],
) -> tuple[tuple[float, ...] | None, str]:
    """At an epoch end: check that every batch-log array is alive, copy the losses to the host.

    Liveness is asked with ``jax.Array.is_deleted()``, which reads no value; only the
    ``"loss"`` values are copied (one transfer per epoch). Returns the losses (``None``
    if there were none or one was no scalar) and why a value could not be read.
    """
    for step, (key, value) in pending:
        if isinstance(value, jax.Array) and value.is_deleted():
            return None, (
                f"on_batch_end({step!r}) logs[{key!r}] could no longer be read at "
                "on_epoch_end (jax.Array.is_deleted() is True): the trainer deleted or "
                "donated it"
            )
    losses: list[float] = []
    for step, (key, value) in pending:
        if key != "loss":
            continue
        if isinstance(value, jax.Array):
            try:
                host = jax.device_get(value)
            except Exception as error:  # any failure to read it is the finding
                return None, (
                    f"on_batch_end({step!r}) logs['loss'] could no longer be read at "
                    f"on_epoch_end ({error!r}): the trainer deleted or donated it"
                )
            if value.shape != ():
                return None, ""
            losses.append(float(host))
        elif _is_number(value) or type(value).__module__ == "numpy":
            try:
                losses.append(float(value))  # type: ignore[arg-type]  # numpy scalars convert  # ty: ignore[invalid-argument-type]
            except (TypeError, ValueError):
                return None, ""
        else:
            return None, ""
    return (tuple(losses) if losses else None), ""


class EventRecorder(BaseCallback):
    """A callback that records every hook call (and ``preflight`` call) into ``events``.

    Put it first among the injected callbacks, so that it sees an event before any
    other injected callback can stop or fail the run. It keeps a reference to each
    batch log's values and copies the ``"loss"`` values to the host only at
    ``on_epoch_end``, so it adds no per-batch sync. At every hook it also reads the
    attributes of the optional protocols the trainer implements (``Event.state``).
    """

    __slots__ = ("_attributes", "_pending", "events", "logs_seen", "order", "other", "target")

    order: tuple[OrderLog, int] | None
    """``(log, slot)`` to log every hook call into (see [`OrderMark`][]), if set."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._pending: list[tuple[object, tuple[str, object]]] = []
        self._attributes: tuple[str, ...] | None = None
        self.logs_seen: list[tuple[int, object, tuple[tuple[str, object], ...]]] = []
        """``(event index, logs object, its items at dispatch)`` for every logs argument."""
        self.target: object = None
        """The trainer ``build()`` returned, once known: every hook must get that object."""
        self.other: tuple[int, str] | None = None
        """``(event index, type name)`` of the first hook that got another trainer."""

    def _record(self, trainer: TrainerLike, event: Event, logs: object = None) -> None:
        """Append ``event``, with the trainer's state (and keep ``logs`` as dispatched)."""
        order: tuple[OrderLog, int] | None = getattr(self, "order", None)
        if order is not None and event.hook != "preflight":
            order[0].append((order[1], event.hook))
        if self.target is not None and trainer is not self.target and self.other is None:
            self.other = (len(self.events), type(trainer).__qualname__)
        if self._attributes is None:
            self._attributes = _state_attributes(trainer)
        if self._attributes:
            event = replace(event, state=_read_state(trainer, self._attributes))
        if isinstance(logs, Mapping):
            self.logs_seen.append((len(self.events), logs, tuple(logs.items())))
        self.events.append(event)

    def preflight(self, trainer: TrainerLike, /) -> None:
        """Record a trainer's preflight pass (a ``PreflightCallback``), if it makes one."""
        self._record(trainer, Event(hook="preflight"))

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Record ``on_train_begin``."""
        self._pending = []
        self._record(trainer, Event(hook="on_train_begin"))

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """Record ``on_train_end``, with the trainer's status if it exposes one."""
        status: str | None = None
        if isinstance(trainer, TrainerState):
            status = str(trainer.status)
        self._record(trainer, Event(hook="on_train_end", status=status))

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, /) -> None:
        """Record ``on_epoch_begin``."""
        self._pending = []
        self._record(trainer, Event(hook="on_epoch_begin", number=epoch))

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Record ``on_epoch_end``, its logs, and the epoch's batch losses (host copies)."""
        event = _logs_event("on_epoch_end", epoch, logs)
        losses, unreadable = _host_losses(self._pending)
        self._pending = []
        event = replace(event, batch_losses=losses, unreadable=unreadable or None)
        self._record(trainer, event, logs)

    def on_batch_begin(self, trainer: TrainerLike, batch: int, /) -> None:
        """Record ``on_batch_begin``."""
        self._record(trainer, Event(hook="on_batch_begin", number=batch))

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        """Record ``on_batch_end`` and the types of its logs (nothing is synced)."""
        untrusted: object = logs  # typed dict, but any object may arrive
        if isinstance(untrusted, Mapping):
            self._pending += [(batch, (str(k), v)) for k, v in untrusted.items()]
        self._record(trainer, _logs_event("on_batch_end", batch, logs), logs)

    def on_validation_begin(self, trainer: TrainerLike, /) -> None:
        """Record ``on_validation_begin``."""
        self._record(trainer, Event(hook="on_validation_begin"))

    def on_validation_end(self, trainer: TrainerLike, logs: dict[str, Any], /) -> None:
        """Record ``on_validation_end`` and its logs."""
        self._record(trainer, _logs_event("on_validation_end", None, logs), logs)


class ProbeError(RuntimeError):
    """The exception the suite injects (from a callback, or from the data)."""


class ProbeInterrupt(KeyboardInterrupt):
    """The ``KeyboardInterrupt`` the suite injects, distinct from a real Ctrl-C."""


class ProbeExit(SystemExit):
    """The ``SystemExit`` the suite injects (a ``BaseException`` that is no interrupt)."""


OrderLog: TypeAlias = list[tuple[int, HookName]]
"""``(slot, hook)`` for every hook call an injected callback received, in call order."""


class _EveryHook(BaseCallback):
    """Overrides every hook (so a ``CallbackList`` calls them all) to call ``_hit``.

    With ``order`` set to ``(log, slot)``, every call is first appended to the shared
    log as ``(slot, hook)``, so the suite can check the whole dispatch order.
    """

    __slots__ = ("order",)

    order: tuple[OrderLog, int] | None
    """``(log, slot)`` to log every hook call into, if set."""

    def _entered(self, hook: HookName, trainer: TrainerLike) -> None:
        order: tuple[OrderLog, int] | None = getattr(self, "order", None)
        if order is not None:
            order[0].append((order[1], hook))
        self._hit(hook, trainer)

    def _hit(self, hook: HookName, trainer: TrainerLike) -> None:
        """Handle a call of ``hook``; subclasses override."""

    def _got_logs(self, logs: object) -> None:
        """Handle the logs argument of the hook just called; subclasses override."""

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Handle ``on_train_begin``."""
        self._entered("on_train_begin", trainer)

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """Handle ``on_train_end``."""
        self._entered("on_train_end", trainer)

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, /) -> None:
        """Handle ``on_epoch_begin``."""
        self._entered("on_epoch_begin", trainer)

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Handle ``on_epoch_end``."""
        self._entered("on_epoch_end", trainer)
        self._got_logs(logs)

    def on_batch_begin(self, trainer: TrainerLike, batch: int, /) -> None:
        """Handle ``on_batch_begin``."""
        self._entered("on_batch_begin", trainer)

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        """Handle ``on_batch_end``."""
        self._entered("on_batch_end", trainer)
        self._got_logs(logs)

    def on_validation_begin(self, trainer: TrainerLike, /) -> None:
        """Handle ``on_validation_begin``."""
        self._entered("on_validation_begin", trainer)

    def on_validation_end(self, trainer: TrainerLike, logs: dict[str, Any], /) -> None:
        """Handle ``on_validation_end``."""
        self._entered("on_validation_end", trainer)
        self._got_logs(logs)


class OrderMark(_EveryHook):
    """Does nothing but log its calls: the suite injects two, to see both get every event."""

    __slots__ = ()


class _Scheduled(_EveryHook):
    """Acts at one hook and occurrence, chosen per ``fit`` call.

    ``schedule[k]`` is ``(hook, occurrence)`` for the ``k``-th ``fit`` call, or
    ``None`` to do nothing in that call; calls past the end of the schedule do
    nothing. ``occurrence`` counts calls of ``hook`` from 0 within the ``fit`` call.
    ``fit`` calls are counted by ``on_train_end``, the one hook that reaches every
    callback even when another one raised in ``on_train_begin``.
    """

    __slots__ = ("_count", "_current", "call", "schedule")

    def __init__(self, schedule: Sequence[tuple[HookName, int] | None]) -> None:
        self.schedule: tuple[tuple[HookName, int] | None, ...] = tuple(schedule)
        self.call: int = 0
        self._current: tuple[HookName, int] | None = None
        self._count = 0

    def _hit(self, hook: HookName, trainer: TrainerLike) -> None:
        """Count a call of ``hook``; act on the chosen occurrence."""
        if hook == "on_train_begin":
            self._count = 0
            self._current = self.schedule[self.call] if self.call < len(self.schedule) else None
            self._reset()
        try:
            if self._current is None or hook != self._current[0]:
                return
            self._count += 1
            if self._count == self._current[1] + 1:
                self._fire(trainer)
        finally:
            if hook == "on_train_end":
                self.call += 1
                self._current = None

    def _reset(self) -> None:
        """Start a new ``fit`` call; subclasses override."""

    def _fire(self, trainer: TrainerLike) -> None:
        """Act on the trainer; subclasses override."""


class StopAt(_Scheduled):
    """Request a stop at a chosen hook and occurrence of each ``fit`` call.

    With ``via="requester"`` it satisfies ``StopRequester``: ``should_stop`` turns
    ``True`` and stays so until the next ``on_train_begin``. With ``via="flag"`` it
    sets ``trainer.stop_training = True`` instead.

    Args:
        schedule: Per ``fit`` call, ``(hook, occurrence)`` or ``None``.
        via: How to request the stop.
    """

    __slots__ = ("_stop", "fired", "via")

    def __init__(
        self,
        schedule: Sequence[tuple[HookName, int] | None],
        *,
        via: Literal["requester", "flag"] = "requester",
    ) -> None:
        super().__init__(schedule)
        self.via = via
        self._stop = False
        self.fired: list[int] = []

    @property
    def should_stop(self) -> bool:
        """Whether this callback asks training to stop."""
        return self._stop and self.via == "requester"

    def _reset(self) -> None:
        self._stop = False

    def _fire(self, trainer: TrainerLike) -> None:
        self._stop = True
        self.fired.append(self.call)
        if self.via == "flag":
            trainer.stop_training = True  # type: ignore[attr-defined]  # scenario checked it  # ty: ignore[missing-attribute]


class RaiseAt(_Scheduled):
    """Raise a fresh exception at a chosen hook and occurrence of each ``fit`` call.

    Every exception raised is appended, with its ``fit`` call number and hook, to
    ``log`` (shared between several raisers), so the suite can check that the very
    same object reaches the caller.

    Args:
        schedule: Per ``fit`` call, ``(hook, occurrence)`` or ``None``.
        log: Where to append ``(call, hook, exception)`` for every exception raised.
        interrupt: Raise a [`ProbeInterrupt`][] (a ``KeyboardInterrupt``) instead
            of a [`ProbeError`][].
        system_exit: Raise a [`ProbeExit`][] (a ``SystemExit``) instead.
    """

    __slots__ = ("interrupt", "log", "system_exit")

    def __init__(
        self,
        schedule: Sequence[tuple[HookName, int] | None],
        log: list[tuple[int, HookName, BaseException]],
        *,
        interrupt: bool = False,
        system_exit: bool = False,
    ) -> None:
        super().__init__(schedule)
        self.log: list[tuple[int, HookName, BaseException]] = log
        self.interrupt: bool = interrupt
        self.system_exit: bool = system_exit

    def _fire(self, trainer: TrainerLike) -> None:
        assert self._current is not None
        hook, occurrence = self._current
        message = f"injected by the conformance suite in {hook} #{occurrence}"
        error: BaseException = ProbeError(message)
        if self.interrupt:
            error = ProbeInterrupt(message)
        elif self.system_exit:
            error = ProbeExit(message)
        self.log.append((self.call, hook, error))
        raise error


@dataclass(frozen=True, slots=True, kw_only=True)
class Teardown:
    """What the last callback saw during one ``on_train_end``.

    Attributes:
        status: ``trainer.status`` if the trainer satisfies ``TrainerState``.
        stopped_by: ``trainer.stopped_by`` likewise.
        error: ``trainer.error`` likewise.
    """

    status: object = None
    stopped_by: object = None
    error: object = None


class TeardownWitness(_EveryHook):
    """Registered last: records every ``on_train_end`` it receives, per ``fit`` call.

    ``on_train_end`` must reach every callback, even when another one raised, so this
    one seeing it proves the trainer dispatched it to all of them. Given the
    [`EventRecorder`][] registered first, it also checks that every event reached
    that one before this one (registration order): ``out_of_order`` lists
    ``(fit call, hook)`` for each event that reached the last callback first.

    Args:
        first: The recorder registered first, or ``None`` to skip the order check.
    """

    __slots__ = ("_first", "_matched", "logs_got", "out_of_order", "seen")

    def __init__(self, first: EventRecorder | None = None) -> None:
        self.seen: list[Teardown] = []
        self.out_of_order: list[tuple[int, HookName]] = []
        self.logs_got: list[tuple[int, object]] = []
        """``(index of the recorder's event, logs object)`` for every logs argument."""
        self._first = first
        self._matched = 0

    def _got_logs(self, logs: object) -> None:
        """Keep the logs object, to compare it with the one the first callback got."""
        if self._first is not None:
            self.logs_got.append((len(self._first.events) - 1, logs))

    def _hit(self, hook: HookName, trainer: TrainerLike) -> None:
        """Check the registration order; record ``on_train_end``."""
        if self._first is not None:
            events = self._first.events
            if not events or events[-1].hook != hook or len(events) == self._matched:
                self.out_of_order.append((len(self.seen), hook))
            self._matched = len(events)
        if hook != "on_train_end":
            return
        if isinstance(trainer, TrainerState):
            self.seen.append(
                Teardown(status=trainer.status, stopped_by=trainer.stopped_by, error=trainer.error)
            )
        else:
            self.seen.append(Teardown())


class FailingData(Generic[_T]):
    """Re-iterable data that raises ``error`` when batch ``at_batch`` is requested.

    Batches are counted across iterations (epochs), from 0. Use it to implement
    ``FailingHarness.fit_failing``.

    Args:
        batches: The batches of one epoch; iterated again for every epoch.
        error: The exception to raise (the very object is raised).
        at_batch: Which batch, counted from 0 across epochs, raises.

    Raises:
        ValueError: If ``at_batch`` is negative.
    """

    __slots__ = ("_batches", "_count", "at_batch", "error")

    def __init__(self, batches: Iterable[_T], error: BaseException, at_batch: int) -> None:
        if at_batch < 0:
            raise ValueError(f"at_batch must be >= 0, got {at_batch!r}")
        self._batches = batches
        self.error: BaseException = error
        self.at_batch: int = at_batch
        self._count = 0

    def __iter__(self) -> Iterator[_T]:
        """Yield the batches, raising ``error`` at batch ``at_batch``."""
        for batch in self._batches:
            if self._count == self.at_batch:
                self._count += 1
                raise self.error
            self._count += 1
            yield batch
