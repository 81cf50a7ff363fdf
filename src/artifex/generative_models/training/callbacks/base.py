"""Base classes and protocols for the training callback system.

A lightweight, Protocol-based callback system for training loops. Callbacks know a
trainer only through the [`TrainerLike`][] protocol, so this module (and every
callback built on it) never imports a trainer module, which avoids circular imports.

This module imports nothing else from this package.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, Final, Literal, TypeAlias, get_args

import jax
from flax import nnx
from typing_extensions import Protocol, runtime_checkable

__all__ = [
    "HOOK_NAMES",
    "BaseCallback",
    "CallbackList",
    "HookName",
    "Logs",
    "ProcessScope",
    "TrainerLike",
    "TrainingCallback",
]

Logs: TypeAlias = dict[str, Any]
"""The metrics dictionary passed to ``on_*_end`` hooks."""

HookName: TypeAlias = Literal[
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_batch_begin",
    "on_batch_end",
    "on_validation_begin",
    "on_validation_end",
]
"""The name of one of the eight lifecycle hooks."""

HOOK_NAMES: Final[tuple[HookName, ...]] = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_batch_begin",
    "on_batch_end",
    "on_validation_begin",
    "on_validation_end",
)
"""All eight hook names, in the order the specification lists them."""

ProcessScope: TypeAlias = Literal["all", "main"]
"""Where a callback runs in a multi-process job: on every process, or on process 0 only."""

_SCOPES: Final[tuple[str, ...]] = get_args(ProcessScope)


@runtime_checkable
class TrainerLike(Protocol):
    """Protocol for trainer-like objects that callbacks can interact with.

    This protocol defines the minimal interface that a trainer must implement
    to work with callbacks. Using a protocol avoids circular imports between
    callbacks and trainer modules.

    ``isinstance(obj, TrainerLike)`` looks ``model`` up statically: it never runs
    a ``model`` property getter.
    """

    @property
    def model(self) -> nnx.Module:
        """The NNX model being trained."""
        ...


@runtime_checkable
class TrainingCallback(Protocol):
    """Protocol defining the callback interface: eight lifecycle hooks.

    Every parameter is positional-only, so implementations may name them freely
    (the specification's own example calls ``logs`` ``metrics``), and callers must
    pass them positionally.
    """

    # pylint: disable=duplicate-code  # one method per hook, written out on purpose

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Called once at the start of ``fit``, before the first epoch."""
        ...

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """Called once at the end of ``fit``: after the last epoch, a stop, or a failure."""
        ...

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, /) -> None:
        """Called at the start of epoch ``epoch`` (0-based)."""
        ...

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Called at the end of epoch ``epoch`` with the epoch's metrics."""
        ...

    def on_batch_begin(self, trainer: TrainerLike, batch: int, /) -> None:
        """Called before training step ``batch`` (the 0-based global step)."""
        ...

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        """Called after training step ``batch`` with that step's metrics."""
        ...

    def on_validation_begin(self, trainer: TrainerLike, /) -> None:
        """Called before a validation pass."""
        ...

    def on_validation_end(self, trainer: TrainerLike, logs: dict[str, Any], /) -> None:
        """Called after a validation pass with its metrics."""
        ...


class BaseCallback:
    """Base callback class with no-op implementations of all hooks.

    Extend this class and override only the hooks you need. A [`CallbackList`][]
    never calls a hook that a subclass inherits unchanged from here, so unused hooks
    cost nothing.

    ``process_scope`` declares where the callback runs in a multi-process job:
    ``"all"`` (the default) on every process, ``"main"`` on process 0 only (for
    callbacks that write logs, files or a progress bar). Any callback may declare it;
    one without the attribute runs on every process.
    """

    # pylint: disable=duplicate-code  # one method per hook, written out on purpose

    __slots__ = ()

    process_scope: ProcessScope = "all"
    """``"all"``: run on every process; ``"main"``: on process 0 only."""

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Called once at the start of ``fit``, before the first epoch."""

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """Called once at the end of ``fit``: after the last epoch, a stop, or a failure."""

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, /) -> None:
        """Called at the start of epoch ``epoch`` (0-based)."""

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Called at the end of epoch ``epoch`` with the epoch's metrics."""

    def on_batch_begin(self, trainer: TrainerLike, batch: int, /) -> None:
        """Called before training step ``batch`` (the 0-based global step)."""

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        """Called after training step ``batch`` with that step's metrics."""

    def on_validation_begin(self, trainer: TrainerLike, /) -> None:
        """Called before a validation pass."""

    def on_validation_end(self, trainer: TrainerLike, logs: dict[str, Any], /) -> None:
        """Called after a validation pass with its metrics."""


_NO_OPS: Final[dict[str, object]] = {name: BaseCallback.__dict__[name] for name in HOOK_NAMES}

_Path: TypeAlias = tuple[int, ...]
_Table: TypeAlias = tuple[tuple[TrainingCallback, ...], tuple[_Path, ...]]
"""Per hook: the callbacks to call, in order, and the index path of each in the tree."""

_EMPTY_TABLE: Final[_Table] = ((), ())


def _check_callback(callback: object) -> None:
    """Raise ``TypeError`` unless ``callback`` provides all eight hooks.

    Hooks are resolved dynamically (with ``getattr``), so ``unittest.mock`` mocks and
    ``__getattr__`` proxies are accepted; a class passed instead of an instance is not.

    Args:
        callback: The object to check.

    Raises:
        TypeError: If ``callback`` is a class, or lacks a callable hook. The message
            names its type and the missing hooks.
    """
    if isinstance(callback, type):
        raise TypeError(
            f"expected a callback instance, got the class {callback.__qualname__!r}; "
            f"instantiate it first, e.g. {callback.__name__}(...)"
        )
    missing = [name for name in HOOK_NAMES if not callable(getattr(callback, name, None))]
    if missing:
        raise TypeError(
            f"{type(callback).__qualname__} object {callback!r} is not a TrainingCallback: "
            f"missing or non-callable hooks: {', '.join(missing)}. "
            "Subclass BaseCallback to inherit no-op hooks."
        )
    _scope(callback)


def _scope(callback: object) -> ProcessScope:
    """The callback's declared ``process_scope`` (``"all"`` when it declares none).

    Only a string counts as a declaration, so the automatic attributes of
    ``unittest.mock`` mocks read as ``"all"``.

    Raises:
        ValueError: If it declares a string other than ``"all"`` or ``"main"``.
    """
    scope: object = getattr(callback, "process_scope", "all")
    if scope == "main":
        return "main"
    if scope == "all" or not isinstance(scope, str):
        return "all"
    raise ValueError(
        f"{type(callback).__qualname__} object {callback!r} declares process_scope="
        f"{scope!r}; expected one of {', '.join(map(repr, _SCOPES))}"
    )


def _is_no_op(callback: object, name: str) -> bool:
    """Whether ``callback``'s hook ``name`` is ``BaseCallback``'s no-op, inherited unchanged.

    The lookup is static, so it sees instance attributes that override the hook, and it
    never answers ``True`` for an object with a custom ``__getattribute__``.
    """
    if type(callback).__getattribute__ is not object.__getattribute__:
        return False
    try:
        return inspect.getattr_static(callback, name) is _NO_OPS[name]
    except AttributeError:
        return False


def _note(
    exc: BaseException,
    callbacks: tuple[TrainingCallback, ...],
    paths: tuple[_Path, ...],
    callback: TrainingCallback,
    hook: str,
) -> None:
    """Add a PEP 678 note to ``exc`` naming ``callback`` (type and index path) and the hook."""
    for held, path in zip(callbacks, paths, strict=True):
        if held is callback:
            where = ".".join(map(str, path))
            exc.add_note(f"raised by callback #{where} ({type(callback).__qualname__}) in {hook}")
            return


def _check_process_index(index: object) -> int | None:
    if index is None:
        return None
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(
            f"process_index must be an int or None, got {type(index).__qualname__} {index!r}"
        )
    if index < 0:
        raise ValueError(f"process_index must be >= 0, got {index}")
    return index


def _pick_logs(logs: Logs | None, metrics: Logs | None, hook: str) -> Logs:
    """Resolve the ``metrics=`` keyword alias of ``logs`` (the specification's spelling)."""
    if metrics is None:
        raise TypeError(f"{hook}() missing required argument 'logs' (or its alias 'metrics')")
    if logs is not None:
        raise TypeError(f"{hook}() got both 'logs' and its alias 'metrics'; pass one of them")
    return metrics


class CallbackList:
    """Container for multiple callbacks that dispatches to all.

    Contracts:

    * Every event reaches the callbacks in registration order, with the very same
      argument objects. A nested ``CallbackList`` is dispatched depth-first, in place.
    * Callbacks are validated when registered (``TypeError`` naming the culprit), never
      during dispatch. Which callbacks receive a hook is decided then too: those that
      inherit it unchanged from [`BaseCallback`][] are skipped (an instance attribute
      that overrides it counts as an override). The hook itself is looked up at each
      dispatch, as a hand-written loop would.
    * Appending or removing callbacks while an event is dispatched (from a hook, say)
      changes only later events.
    * Every hook but ``on_train_end`` fails fast: the first exception propagates as the
      same object, with a PEP 678 note naming the callback and hook, and later callbacks
      do not receive that event. ``on_train_end`` is teardown: every callback receives
      it; one failure is re-raised, several are raised as an ``ExceptionGroup``.
      ``BaseException``s that are not ``Exception``s (``KeyboardInterrupt``) propagate
      at once.
    * In a multi-process job, callbacks declaring ``process_scope = "main"`` receive
      events on process 0 only. The list learns its process from
      ``jax.process_index()`` when it dispatches ``on_train_begin`` (after
      ``jax.distributed.initialize``), unless ``process_index`` was given.

    ``CallbackList`` is itself a [`TrainingCallback`][]. Its own hooks accept every
    argument after ``trainer`` by keyword too, and ``on_epoch_end`` and
    ``on_validation_end`` also take ``logs`` under the specification's alias ``metrics``.
    """

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_on_batch_begin",
        "_on_batch_end",
        "_on_epoch_begin",
        "_on_epoch_end",
        "_on_train_begin",
        "_on_train_end",
        "_on_validation_begin",
        "_on_validation_end",
        "_parents",
        "_process_index",
    )

    def __init__(
        self,
        callbacks: Iterable[TrainingCallback] | None = None,
        *,
        process_index: int | None = None,
    ) -> None:
        """Create a list holding copies of the references in ``callbacks``.

        Args:
            callbacks: The callbacks, in dispatch order. The iterable is copied; the
                caller's own list is never aliased or mutated.
            process_index: This process's index in a multi-process job, or ``None``
                to ask ``jax.process_index()`` at the first ``on_train_begin``.

        Raises:
            TypeError: If ``callbacks`` is not iterable or holds a non-callback, or
                ``process_index`` is not an int.
            ValueError: If a callback declares an unknown ``process_scope``, or
                ``process_index`` is negative.
        """
        self._callbacks: tuple[TrainingCallback, ...] = ()
        self._parents: weakref.WeakSet[CallbackList] = weakref.WeakSet()
        self._process_index = _check_process_index(process_index)
        self._on_train_begin = self._on_train_end = _EMPTY_TABLE
        self._on_epoch_begin = self._on_epoch_end = _EMPTY_TABLE
        self._on_batch_begin = self._on_batch_end = _EMPTY_TABLE
        self._on_validation_begin = self._on_validation_end = _EMPTY_TABLE
        if callbacks is not None:
            self.extend(callbacks)

    # ----------------------------------------------------------------- container

    @property
    def callbacks(self) -> tuple[TrainingCallback, ...]:
        """The directly held callbacks, in dispatch order (a read-only snapshot)."""
        return self._callbacks

    def append(self, callback: TrainingCallback) -> None:
        """Register ``callback`` after the others.

        Args:
            callback: An object providing the eight hooks (an instance, not a class).

        Raises:
            TypeError: If ``callback`` is not a callback.
            ValueError: If ``callback`` is a ``CallbackList`` containing this one.
        """
        self.extend((callback,))

    def add(self, callback: TrainingCallback) -> None:
        """Register ``callback`` after the others (alias of [`append`][]).

        Args:
            callback: An object providing the eight hooks (an instance, not a class).

        Raises:
            TypeError: If ``callback`` is not a callback.
            ValueError: If ``callback`` is a ``CallbackList`` containing this one.
        """
        self.extend((callback,))

    def extend(self, callbacks: Iterable[TrainingCallback]) -> None:
        """Register several callbacks, all or none.

        Args:
            callbacks: The callbacks, in dispatch order.

        Raises:
            TypeError: If ``callbacks`` is not iterable or holds a non-callback; the
                list is then left unchanged.
            ValueError: If one is a ``CallbackList`` containing this one.
        """
        untrusted: object = callbacks  # a run-time check of what the types promise
        if isinstance(untrusted, (str, bytes)) or not isinstance(untrusted, Iterable):
            raise TypeError(
                f"expected an iterable of callbacks, got {type(callbacks).__qualname__} "
                f"{callbacks!r}"
            )
        new = tuple(callbacks)
        for callback in new:
            _check_callback(callback)
            if type(callback) is CallbackList and (callback is self or self in callback._lists()):
                raise ValueError(f"adding {callback!r} to {self!r} would create a cycle")
        for callback in new:
            if type(callback) is CallbackList:
                callback._parents.add(self)
        self._callbacks += new
        self._rebuild()

    def remove(self, callback: TrainingCallback) -> None:
        """Unregister the first occurrence of ``callback`` (compared by identity).

        Args:
            callback: A directly held callback.

        Raises:
            ValueError: If ``callback`` is not directly held by this list.
        """
        for index, held in enumerate(self._callbacks):
            if held is callback:
                self._callbacks = self._callbacks[:index] + self._callbacks[index + 1 :]
                if type(callback) is CallbackList and callback not in self:
                    callback._parents.discard(self)
                self._rebuild()
                return
        raise ValueError(f"{callback!r} is not in this CallbackList")

    @property
    def process_index(self) -> int | None:
        """The process this list dispatches for; ``None`` until learnt from JAX.

        On a process other than 0, callbacks with ``process_scope == "main"`` receive
        no events.
        """
        return self._process_index

    @process_index.setter
    def process_index(self, index: int | None) -> None:
        self._process_index = _check_process_index(index)
        self._rebuild()

    def __len__(self) -> int:
        """The number of directly held callbacks."""
        return len(self._callbacks)

    def __iter__(self) -> Iterator[TrainingCallback]:
        """Iterate over the directly held callbacks, in dispatch order."""
        return iter(self._callbacks)

    def __contains__(self, callback: object) -> bool:
        """Whether ``callback`` itself (by identity) is directly held."""
        return any(held is callback for held in self._callbacks)

    def __repr__(self) -> str:
        """A readable representation listing the held callbacks."""
        return f"CallbackList({list(self._callbacks)!r})"

    def _lists(self) -> Iterator[CallbackList]:
        """Yield every ``CallbackList`` nested (at any depth) inside this one."""
        for callback in self._callbacks:
            if type(callback) is CallbackList:
                yield callback
                yield from callback._lists()

    def _rebuild(self) -> None:
        """Recompute the per-hook dispatch tables here and in every enclosing list."""
        leaves = tuple(flatten_callbacks(self._callbacks))
        if self._process_index:  # not process 0: drop the main-process-only callbacks
            leaves = tuple((path, cb) for path, cb in leaves if _scope(cb) == "all")
        for name in HOOK_NAMES:
            called = tuple((path, cb) for path, cb in leaves if not _is_no_op(cb, name))
            table: _Table = (tuple(cb for _, cb in called), tuple(path for path, _ in called))
            object.__setattr__(self, f"_{name}", table)
        for parent in tuple(self._parents):
            parent._rebuild()

    # ------------------------------------------------------------------ dispatch

    # pylint: disable=duplicate-code  # one method per hook, written out on purpose

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Dispatch ``on_train_begin`` to every callback (fail-fast).

        First learns the process index from JAX, if it was not given.
        """
        if self._process_index is None:
            self.process_index = jax.process_index()
        cbs, paths = self._on_train_begin
        try:
            for cb in cbs:
                cb.on_train_begin(trainer)
        except Exception as exc:
            _note(exc, cbs, paths, cb, "on_train_begin")
            raise

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """Dispatch ``on_train_end`` to every callback, even if some raise (teardown).

        Raises:
            Exception: The one exception a callback raised, as the same object.
            ExceptionGroup: If several callbacks raised; it holds them in order.
        """
        cbs, paths = self._on_train_end
        errors: list[Exception] = []
        for cb in cbs:
            try:
                cb.on_train_end(trainer)
            except Exception as exc:
                _note(exc, cbs, paths, cb, "on_train_end")
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup(f"{len(errors)} callbacks raised in on_train_end", errors)

    def on_epoch_begin(self, trainer: TrainerLike, /, epoch: int) -> None:
        """Dispatch ``on_epoch_begin`` to every callback (fail-fast)."""
        cbs, paths = self._on_epoch_begin
        try:
            for cb in cbs:
                cb.on_epoch_begin(trainer, epoch)
        except Exception as exc:
            _note(exc, cbs, paths, cb, "on_epoch_begin")
            raise

    def on_epoch_end(
        self,
        trainer: TrainerLike,
        /,
        epoch: int,
        logs: Logs | None = None,
        *,
        metrics: Logs | None = None,
    ) -> None:
        """Dispatch ``on_epoch_end`` to every callback (fail-fast).

        Args:
            trainer: The trainer.
            epoch: The epoch that ended.
            logs: The epoch's metrics.
            metrics: Keyword alias of ``logs``, as the specification spells it.

        Raises:
            TypeError: If both or neither of ``logs`` and ``metrics`` are given.
        """
        if logs is None or metrics is not None:
            logs = _pick_logs(logs, metrics, "on_epoch_end")
        cbs, paths = self._on_epoch_end
        try:
            for cb in cbs:
                cb.on_epoch_end(trainer, epoch, logs)
        except Exception as exc:
            _note(exc, cbs, paths, cb, "on_epoch_end")
            raise

    def on_batch_begin(self, trainer: TrainerLike, /, batch: int) -> None:
        """Dispatch ``on_batch_begin`` to every callback (fail-fast)."""
        cbs, paths = self._on_batch_begin
        try:
            for cb in cbs:
                cb.on_batch_begin(trainer, batch)
        except Exception as exc:
            _note(exc, cbs, paths, cb, "on_batch_begin")
            raise

    def on_batch_end(self, trainer: TrainerLike, /, batch: int, logs: Logs) -> None:
        """Dispatch ``on_batch_end`` to every callback (fail-fast).

        This is the hot path, so unlike the per-epoch hooks it takes no ``metrics`` alias.
        """
        cbs, paths = self._on_batch_end
        try:
            for cb in cbs:
                cb.on_batch_end(trainer, batch, logs)
        except Exception as exc:
            _note(exc, cbs, paths, cb, "on_batch_end")
            raise

    def on_validation_begin(self, trainer: TrainerLike, /) -> None:
        """Dispatch ``on_validation_begin`` to every callback (fail-fast)."""
        cbs, paths = self._on_validation_begin
        try:
            for cb in cbs:
                cb.on_validation_begin(trainer)
        except Exception as exc:
            _note(exc, cbs, paths, cb, "on_validation_begin")
            raise

    def on_validation_end(
        self,
        trainer: TrainerLike,
        /,
        logs: Logs | None = None,
        *,
        metrics: Logs | None = None,
    ) -> None:
        """Dispatch ``on_validation_end`` to every callback (fail-fast).

        Args:
            trainer: The trainer.
            logs: The validation metrics.
            metrics: Keyword alias of ``logs``, as the specification spells it.

        Raises:
            TypeError: If both or neither of ``logs`` and ``metrics`` are given.
        """
        if logs is None or metrics is not None:
            logs = _pick_logs(logs, metrics, "on_validation_end")
        cbs, paths = self._on_validation_end
        try:
            for cb in cbs:
                cb.on_validation_end(trainer, logs)
        except Exception as exc:
            _note(exc, cbs, paths, cb, "on_validation_end")
            raise


def flatten_callbacks(
    callbacks: Iterable[TrainingCallback], prefix: _Path = ()
) -> Iterator[tuple[_Path, TrainingCallback]]:
    """Yield ``(index path, callback)`` for every callback, nested lists flattened.

    The one rule for walking nested callback lists, shared by dispatch, the
    trainer (stop requesters) and checkpoints (stateful callbacks): depth-first, in
    dispatch order. A plain ``CallbackList`` is walked into; any other callback, a
    ``CallbackList`` subclass included (it may dispatch its own way), is yielded.
    ``(1, 2)`` is item 2 of the list at index 1.

    Args:
        callbacks: The callbacks (or a ``CallbackList``).
        prefix: The index path of ``callbacks`` itself.

    Yields:
        ``(index path, callback)`` pairs, in dispatch order.
    """
    for index, callback in enumerate(callbacks):
        if type(callback) is CallbackList:
            yield from flatten_callbacks(callback.callbacks, (*prefix, index))
        else:
            yield (*prefix, index), callback
