"""Base classes and protocols for the training callback system.

A lightweight, Protocol-based callback system for training loops. Callbacks know a
trainer only through the [`TrainerLike`][] protocol, so this module (and every
callback built on it) never imports a trainer module, which avoids circular imports.

This module imports nothing else from this package.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Mapping, MappingView
from collections.abc import Set as AbstractSet
from typing import Any, Final, Literal, TypeAlias, get_args, overload

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

HOOK_NAMES: Final[tuple[HookName, ...]] = get_args(HookName)
"""All eight hook names, in the order the specification lists them."""

ProcessScope: TypeAlias = Literal["all", "main"]
"""Where a callback runs in a multi-process job: on every process, or on process 0 only."""

_SCOPES: Final[tuple[str, ...]] = get_args(ProcessScope)


@runtime_checkable
class TrainerLike(Protocol):
    """Protocol for trainer-like objects that callbacks can interact with.

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
_NOBODY: Final[TrainingCallback] = BaseCallback()  # a dispatch's culprit until one is called

_Path: TypeAlias = tuple[int, ...]
_Table: TypeAlias = tuple[tuple[TrainingCallback, ...], tuple[_Path, ...]]
"""Per hook: the callbacks to call, in order, and the index path of each in the tree."""
_EMPTY: Final[_Table] = ((), ())

_CLASS_NO_OPS: Final = weakref.WeakKeyDictionary[type[object], frozenset[str]]()
"""Per class: the hooks it inherits unchanged from ``BaseCallback`` (resolved once)."""


def _check_callback(callback: object) -> None:
    """Raise ``TypeError`` unless ``callback`` is an instance with all eight hooks callable.

    Hooks are resolved dynamically (with ``getattr``), so ``unittest.mock`` mocks and
    ``__getattr__`` proxies are accepted. The message names the type and missing hooks.
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
    """The declared ``process_scope`` (``"all"`` if none); ``ValueError`` if unknown.

    Only a string counts as a declaration, so the automatic attributes of
    ``unittest.mock`` mocks read as ``"all"``.
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


def _class_no_ops(cls: type[object]) -> frozenset[str]:
    """The hooks ``cls`` inherits unchanged from ``BaseCallback``, found statically, cached."""
    found = _CLASS_NO_OPS.get(cls)
    if found is None:
        names: list[str] = []
        if cls.__getattribute__ is object.__getattribute__:  # else no static answer
            for name in HOOK_NAMES:
                owner = next((k for k in cls.__mro__ if name in k.__dict__), None)
                if owner is not None and owner.__dict__[name] is _NO_OPS[name]:
                    names.append(name)
        found = _CLASS_NO_OPS[cls] = frozenset(names)
    return found


def _no_ops(callback: object) -> frozenset[str]:
    """Its hooks inherited unchanged from ``BaseCallback`` (an instance attribute overrides)."""
    found = _class_no_ops(type(callback))
    if found:
        try:  # the class has object's __getattribute__: no user code runs here
            own: object = object.__getattribute__(callback, "__dict__")
        except AttributeError:  # __slots__ only
            return found
        if isinstance(own, dict) and own:
            return frozenset(n for n in found if own.get(n, _NO_OPS[n]) is _NO_OPS[n])
    return found


def _note(exc: BaseException, table: _Table, callback: TrainingCallback, hook: str) -> str:
    """Add a PEP 678 note to ``exc`` naming ``callback`` (type and index path) and the hook.

    Returns:
        The note (empty if ``callback`` is not in ``table``).
    """
    for held, path in zip(*table, strict=True):
        if held is callback:
            where = ".".join(map(str, path))
            note = f"raised by callback #{where} ({type(callback).__qualname__}) in {hook}"
            exc.add_note(note)
            return note
    return ""


def _teardown_error(errors: list[tuple[BaseException, str]]) -> BaseException:
    """What ``on_train_end`` raises after every callback received it.

    The first ``BaseException`` that is not an ``Exception`` (a ``KeyboardInterrupt``,
    a ``SystemExit``) wins, as the same object, so that ``except KeyboardInterrupt``
    still catches it; every other failure is attached to it as a note. Without one, a
    single failure is itself, several an ``ExceptionGroup`` in order.
    """
    interrupts = [exc for exc, _ in errors if not isinstance(exc, Exception)]
    if interrupts:
        first = interrupts[0]
        for exc, where in errors:
            if exc is not first:
                first.add_note(f"teardown went on; also {where}: {type(exc).__qualname__}: {exc}")
        return first
    if len(errors) == 1:
        return errors[0][0]
    exceptions = [exc for exc, _ in errors if isinstance(exc, Exception)]
    return ExceptionGroup(f"{len(errors)} callbacks raised in on_train_end", exceptions)


def _check_ordered(callbacks: object) -> None:
    """Raise ``TypeError`` unless ``callbacks`` is an ordered iterable, naming what it is."""
    if isinstance(callbacks, str | bytes) or not isinstance(callbacks, Iterable):
        raise TypeError(
            f"expected an iterable of callbacks, got {type(callbacks).__qualname__} {callbacks!r}"
        )
    if isinstance(callbacks, Mapping | MappingView | AbstractSet):  # dicts, views, sets
        raise TypeError(
            f"callbacks must be an ordered iterable such as a list or tuple, got a "
            f"{type(callbacks).__qualname__}, whose order is not a dispatch order: {callbacks!r}"
        )


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
      do not receive that event; ``BaseException``s that are not ``Exception``s
      (``KeyboardInterrupt``, ``SystemExit``) propagate there at once, without a note.
    * ``on_train_end`` is teardown, and teardown always runs: every callback receives
      it, whatever earlier ones raised, ``KeyboardInterrupt`` and ``SystemExit``
      included; each failure gets the note. Then the first ``BaseException`` that is
      not an ``Exception`` is re-raised as the same object, with the other failures
      as notes; without one, a single failure is re-raised, several are raised as an
      ``ExceptionGroup``, in order.
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
        "_parents",
        "_process_index",
        "_stale",
        "_tabled",
        *(f"_{name}" for name in HOOK_NAMES),
    )

    # The per-hook dispatch tables, one typed attribute per hook, so that type checkers
    # check every hook call. They are replaced, never mutated (a running dispatch keeps
    # its snapshot), and brought up to date at the next dispatch after a change: appends
    # extend them, other changes rebuild them. Hooks are resolved once per class.
    _on_train_begin: _Table
    _on_train_end: _Table
    _on_epoch_begin: _Table
    _on_epoch_end: _Table
    _on_batch_begin: _Table
    _on_batch_end: _Table
    _on_validation_begin: _Table
    _on_validation_end: _Table
    _stale: bool  # whether the tables lag behind the callbacks
    _tabled: int  # how many leading direct callbacks the tables hold (0: rebuild them all)

    def __init__(
        self,
        callbacks: Iterable[TrainingCallback] | None = None,
        *,
        process_index: int | None = None,
    ) -> None:
        """Create a list holding copies of the references in ``callbacks``.

        Args:
            callbacks: The callbacks, in dispatch order: any ordered iterable (not a
                dict, a dict view, a set or a frozenset). It is copied; the caller's own
                list is never aliased or mutated.
            process_index: This process's index in a multi-process job, or ``None``
                to ask ``jax.process_index()`` at the first ``on_train_begin``.

        Raises:
            TypeError: If ``callbacks`` is not an ordered iterable or holds a
                non-callback, or ``process_index`` is not an int.
            ValueError: If a callback declares an unknown ``process_scope``, or
                ``process_index`` is negative.
        """
        self._callbacks: tuple[TrainingCallback, ...] = ()
        self._parents: weakref.WeakSet[CallbackList] = weakref.WeakSet()
        self._process_index = _check_process_index(process_index)
        self._stale, self._tabled = True, 0  # the first dispatch builds the tables
        if callbacks is not None:
            self.extend(callbacks)

    @property
    def callbacks(self) -> tuple[TrainingCallback, ...]:
        """The directly held callbacks, in dispatch order (a read-only snapshot)."""
        return self._callbacks

    def append(self, callback: TrainingCallback) -> None:
        """Register ``callback`` after the others (see [`extend`][] for the errors)."""
        self.extend((callback,))

    add = append  # the same method under a second name

    def extend(self, callbacks: Iterable[TrainingCallback]) -> None:
        """Register several callbacks, all or none.

        Args:
            callbacks: The callbacks, in dispatch order: any ordered iterable.

        Raises:
            TypeError: If ``callbacks`` is not iterable, is unordered (a dict, a dict
                view, a set or a frozenset; the message says which), or holds a
                non-callback; the list is then left unchanged.
            ValueError: If one is a ``CallbackList`` containing this one.
        """
        _check_ordered(callbacks)
        new, ancestors = tuple(callbacks), (self, *self._ancestors())
        for callback in new:
            _check_callback(callback)
            if type(callback) is CallbackList and any(held is callback for held in ancestors):
                raise ValueError(f"adding {callback!r} to {self!r} would create a cycle")
        for callback in new:
            if type(callback) is CallbackList:
                callback._parents.add(self)
        self._callbacks += new
        self._invalidate(appended=True)

    def remove(self, callback: TrainingCallback) -> None:
        """Unregister the first occurrence of ``callback`` (compared by identity).

        Raises:
            ValueError: If ``callback`` is not directly held by this list.
        """
        for index, held in enumerate(self._callbacks):
            if held is callback:
                self._callbacks = self._callbacks[:index] + self._callbacks[index + 1 :]
                if type(callback) is CallbackList and callback not in self:
                    callback._parents.discard(self)
                self._invalidate()
                return
        raise ValueError(f"{callback!r} is not in this CallbackList")

    @property
    def process_index(self) -> int | None:
        """The process this list dispatches for (``None`` until learnt from JAX)."""
        return self._process_index

    @process_index.setter
    def process_index(self, index: int | None) -> None:
        self._process_index = _check_process_index(index)
        self._invalidate()

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
        """A readable representation listing the held callbacks, nested lists too."""
        out, depth = ["CallbackList(["], 0  # built without recursion: any depth works
        for path, cb in _walk(self._callbacks, (), lists=True):
            out.append("])" * (depth - len(path) + 1) + (", " if path[-1] else ""))
            nested = type(cb) is CallbackList
            out.append("CallbackList([" if nested else repr(cb))
            depth = len(path) if nested else len(path) - 1
        return "".join(out) + "])" * (depth + 1)

    def _invalidate(self, *, appended: bool = False) -> None:
        """Mark the tables stale: here (extended if ``appended``) and in enclosing lists."""
        self._stale = True
        self._tabled = self._tabled if appended else 0
        for parent in self._ancestors():  # they rebuild in full
            parent._stale, parent._tabled = True, 0

    def _ancestors(self) -> list[CallbackList]:
        """Every list enclosing this one, at any depth, each once (found without recursion)."""
        found: dict[int, CallbackList] = {}
        todo = list(self._parents)
        while todo:
            parent = todo.pop()
            if id(parent) not in found:
                found[id(parent)] = parent
                todo.extend(parent._parents)
        return list(found.values())

    def _refresh(self) -> CallbackList:
        """Bring the dispatch tables up to date (extended after appends, else rebuilt)."""
        start = self._tabled
        leaves = _walk(self._callbacks[start:], (), lists=False, offset=start)
        if self._process_index:  # not process 0: drop the main-process-only callbacks
            leaves = ((path, cb) for path, cb in leaves if _scope(cb) == "all")
        rows = {name: (list[TrainingCallback](), list[_Path]()) for name in HOOK_NAMES}
        for path, cb in leaves:
            skipped = _no_ops(cb)
            for name, (cbs, paths) in rows.items():
                if name not in skipped:
                    cbs.append(cb)
                    paths.append(path)

        def table(name: HookName, old: _Table) -> _Table:
            cbs, paths = rows[name]
            return (old[0] + tuple(cbs), old[1] + tuple(paths))

        if not start:
            self._on_train_begin = self._on_train_end = _EMPTY
            self._on_epoch_begin = self._on_epoch_end = _EMPTY
            self._on_batch_begin = self._on_batch_end = _EMPTY
            self._on_validation_begin = self._on_validation_end = _EMPTY
        self._on_train_begin = table("on_train_begin", self._on_train_begin)
        self._on_train_end = table("on_train_end", self._on_train_end)
        self._on_epoch_begin = table("on_epoch_begin", self._on_epoch_begin)
        self._on_epoch_end = table("on_epoch_end", self._on_epoch_end)
        self._on_batch_begin = table("on_batch_begin", self._on_batch_begin)
        self._on_batch_end = table("on_batch_end", self._on_batch_end)
        self._on_validation_begin = table("on_validation_begin", self._on_validation_begin)
        self._on_validation_end = table("on_validation_end", self._on_validation_end)
        self._stale, self._tabled = False, len(self._callbacks)
        return self

    # ------------------------------------------------------------------ dispatch

    # pylint: disable=duplicate-code  # one method per hook, written out on purpose

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Dispatch ``on_train_begin`` (fail-fast), learning the process index if not given."""
        if self._process_index is None:
            self.process_index = jax.process_index()
        table, cb = (self._refresh() if self._stale else self)._on_train_begin, _NOBODY
        try:
            for cb in table[0]:
                cb.on_train_begin(trainer)
        except Exception as exc:
            _note(exc, table, cb, "on_train_begin")
            raise

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """Dispatch ``on_train_end`` to every callback, even if some raise (teardown).

        Raises:
            BaseException: The first ``KeyboardInterrupt``, ``SystemExit`` (or other
                non-``Exception``) a callback raised, as the same object, the other
                failures attached as notes.
            Exception: Else the one exception a callback raised, as the same object.
            ExceptionGroup: If several callbacks raised exceptions; it holds them in order.
        """
        table = (self._refresh() if self._stale else self)._on_train_end
        errors: list[tuple[BaseException, str]] = []
        for cb in table[0]:
            try:
                cb.on_train_end(trainer)
            except BaseException as exc:  # teardown always runs: Ctrl-C included
                errors.append((exc, _note(exc, table, cb, "on_train_end")))
        if errors:
            raise _teardown_error(errors)

    def on_epoch_begin(self, trainer: TrainerLike, /, epoch: int) -> None:
        """Dispatch ``on_epoch_begin`` to every callback (fail-fast)."""
        table, cb = (self._refresh() if self._stale else self)._on_epoch_begin, _NOBODY
        try:
            for cb in table[0]:
                cb.on_epoch_begin(trainer, epoch)
        except Exception as exc:
            _note(exc, table, cb, "on_epoch_begin")
            raise

    # The overloads make passing both or neither of ``logs`` and ``metrics`` a static
    # error; the first is the signature that matches ``TrainingCallback``'s hook.
    @overload
    def on_epoch_end(self, trainer: TrainerLike, /, epoch: int, logs: Logs) -> None: ...
    @overload
    def on_epoch_end(self, trainer: TrainerLike, /, epoch: int, *, metrics: Logs) -> None: ...
    def on_epoch_end(
        self,
        trainer: TrainerLike,
        /,
        epoch: int,
        logs: Logs | None = None,
        *,
        metrics: Logs | None = None,
    ) -> None:
        """Dispatch ``on_epoch_end`` (fail-fast); ``metrics`` is an alias of ``logs``.

        Raises:
            TypeError: If both or neither of ``logs`` and ``metrics`` are given.
        """
        if logs is None or metrics is not None:
            logs = _pick_logs(logs, metrics, "on_epoch_end")
        table, cb = (self._refresh() if self._stale else self)._on_epoch_end, _NOBODY
        try:
            for cb in table[0]:
                cb.on_epoch_end(trainer, epoch, logs)
        except Exception as exc:
            _note(exc, table, cb, "on_epoch_end")
            raise

    def on_batch_begin(self, trainer: TrainerLike, /, batch: int) -> None:
        """Dispatch ``on_batch_begin`` to every callback (fail-fast)."""
        table, cb = (self._refresh() if self._stale else self)._on_batch_begin, _NOBODY
        try:
            for cb in table[0]:
                cb.on_batch_begin(trainer, batch)
        except Exception as exc:
            _note(exc, table, cb, "on_batch_begin")
            raise

    def on_batch_end(self, trainer: TrainerLike, /, batch: int, logs: Logs) -> None:
        """Dispatch ``on_batch_end`` to every callback (fail-fast).

        This is the hot path, so unlike the per-epoch hooks it takes no ``metrics`` alias.
        """
        table, cb = (self._refresh() if self._stale else self)._on_batch_end, _NOBODY
        try:
            for cb in table[0]:
                cb.on_batch_end(trainer, batch, logs)
        except Exception as exc:
            _note(exc, table, cb, "on_batch_end")
            raise

    def on_validation_begin(self, trainer: TrainerLike, /) -> None:
        """Dispatch ``on_validation_begin`` to every callback (fail-fast)."""
        table, cb = (self._refresh() if self._stale else self)._on_validation_begin, _NOBODY
        try:
            for cb in table[0]:
                cb.on_validation_begin(trainer)
        except Exception as exc:
            _note(exc, table, cb, "on_validation_begin")
            raise

    @overload
    def on_validation_end(self, trainer: TrainerLike, /, logs: Logs) -> None: ...
    @overload
    def on_validation_end(self, trainer: TrainerLike, /, *, metrics: Logs) -> None: ...
    def on_validation_end(
        self,
        trainer: TrainerLike,
        /,
        logs: Logs | None = None,
        *,
        metrics: Logs | None = None,
    ) -> None:
        """Dispatch ``on_validation_end`` (fail-fast); ``metrics`` is an alias of ``logs``.

        Raises:
            TypeError: If both or neither of ``logs`` and ``metrics`` are given.
        """
        if logs is None or metrics is not None:
            logs = _pick_logs(logs, metrics, "on_validation_end")
        table, cb = (self._refresh() if self._stale else self)._on_validation_end, _NOBODY
        try:
            for cb in table[0]:
                cb.on_validation_end(trainer, logs)
        except Exception as exc:
            _note(exc, table, cb, "on_validation_end")
            raise


def _walk(
    callbacks: Iterable[TrainingCallback], prefix: _Path, *, lists: bool, offset: int = 0
) -> Iterator[tuple[_Path, TrainingCallback]]:
    """``flatten_callbacks`` from index ``offset`` (with ``lists``, nested lists too)."""
    stack = [(prefix, enumerate(callbacks, offset))]
    while stack:
        path, items = stack[-1]
        for index, callback in items:
            if type(callback) is CallbackList:
                if lists:
                    yield (*path, index), callback
                stack.append(((*path, index), enumerate(callback.callbacks)))
                break
            yield (*path, index), callback
        else:
            stack.pop()


def flatten_callbacks(
    callbacks: Iterable[TrainingCallback], prefix: _Path = ()
) -> Iterator[tuple[_Path, TrainingCallback]]:
    """Yield ``(index path, callback)`` for every callback, nested lists flattened.

    The one rule for walking nested callback lists, shared by dispatch, the
    trainer (stop requesters) and checkpoints (stateful callbacks): depth-first, in
    dispatch order. A plain ``CallbackList`` is walked into; any other callback, a
    ``CallbackList`` subclass included (it may dispatch its own way), is yielded.
    ``(1, 2)`` is item 2 of the list at index 1, ``prefix`` the path of ``callbacks``
    (a ``CallbackList`` or any iterable of callbacks). Depth is bounded only by memory.

    Yields:
        ``(index path, callback)`` pairs, in dispatch order.
    """
    return _walk(callbacks, prefix, lists=False)
