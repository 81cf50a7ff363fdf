"""Stateful property test: CallbackList against a naive reference model.

Random ``append``/``add``/``extend``/``remove``/dispatch sequences run on real
``CallbackList``s (nested ones too) and on a plain-Python model of them. The scripted
callbacks override random hooks, raise, and mutate the lists mid-dispatch. The model
dispatches naively (every leaf, depth-first, over a snapshot taken at the start of the
event), so the test also shows that skipping ``BaseCallback`` no-ops calls exactly the
same methods in the same order. Callbacks declare random process scopes and the root
list is put on random processes: off process 0, the ``"main"`` ones receive nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from artifex.generative_models.training.callbacks import (
    BaseCallback,
    CallbackList,
    HookName,
    ProcessScope,
    TrainingCallback,
)
from tests.strategies import Behaviour, callback_scripts, hook_names, process_scopes
from tests.typing.cases import AttributeTrainer

TRAINER = AttributeTrainer()


class Boom(Exception):
    """Raised by scripted callbacks; each raise is a fresh object."""


class Interrupt(KeyboardInterrupt):
    """A scripted Ctrl-C (``"interrupt"``)."""


class Exit(SystemExit):
    """A scripted ``sys.exit`` (``"exit"``)."""


_RAISED: dict[Behaviour, type[BaseException]] = {
    "raise": Boom,
    "interrupt": Interrupt,
    "exit": Exit,
}


@dataclass(eq=False)
class Node:
    """The model of one held item: a scripted callback or a nested list."""

    real: TrainingCallback
    script: dict[HookName, Behaviour] = field(default_factory=dict)
    owner: CallbackList | None = None  # the list a scripted callback was added to
    scope: ProcessScope = "all"
    spent: set[HookName] = field(default_factory=set)  # one-shot mutations already done


class Scripted(BaseCallback):
    """Base of the dynamically made scripted callback classes."""

    def __init__(
        self,
        machine: CallbackListMachine,
        script: dict[HookName, Behaviour],
        scope: ProcessScope,
    ) -> None:
        self.machine = machine
        self.script = script
        self.process_scope = scope
        self.raised: list[BaseException] = []


def _make_hook(hook: HookName) -> Any:
    def hook_impl(self: Scripted, *args: Any) -> None:
        self.machine.on_call(self, hook, args)

    return hook_impl


_classes: dict[frozenset[HookName], type[Scripted]] = {}


def scripted_class(hooks: frozenset[HookName]) -> type[Scripted]:
    """A ``Scripted`` subclass overriding exactly ``hooks`` (others stay no-ops)."""
    if hooks not in _classes:
        _classes[hooks] = type("Scripted", (Scripted,), {h: _make_hook(h) for h in hooks})  # ty: ignore[invalid-argument-type]
    return _classes[hooks]


class CallbackListMachine(RuleBasedStateMachine):
    lists = Bundle("lists")

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[int, list[Node]] = {}  # id(real list) -> its items
        self.nodes: dict[int, Node] = {}  # id(real callback) -> node
        self.real_lists: dict[int, CallbackList] = {}
        self.calls: list[tuple[int, HookName]] = []
        self.event_args: tuple[Any, ...] = ()
        self.counter = itertools.count()
        self.process_index: int | None = None  # the root list's

    # --------------------------------------------------------------- helpers

    def _new_list(self) -> CallbackList:
        real = CallbackList()
        self.model[id(real)] = []
        self.real_lists[id(real)] = real
        return real

    def _scripted(
        self, script: dict[HookName, Behaviour], owner: CallbackList, scope: ProcessScope
    ) -> Node:
        cb = scripted_class(frozenset(script))(self, script, scope)
        node = Node(cb, script, owner, scope)
        self.nodes[id(cb)] = node
        return node

    def _leaves(self, items: list[Node], prefix: tuple[int, ...]) -> list[tuple[str, Node]]:
        out: list[tuple[str, Node]] = []
        for index, node in enumerate(items):
            path = (*prefix, index)
            if isinstance(node.real, CallbackList):
                out += self._leaves(self.model[id(node.real)], path)
            else:
                out.append((".".join(map(str, path)), node))
        return out

    def on_call(self, cb: Scripted, hook: HookName, args: tuple[Any, ...]) -> None:
        """What a scripted hook does: record, then maybe raise or mutate."""
        assert len(args) == len(self.event_args)
        assert all(a is b for a, b in zip(args, self.event_args, strict=True))
        self.calls.append((id(cb), hook))
        node = self.nodes[id(cb)]
        behaviour = cb.script[hook]
        if behaviour in _RAISED:
            exc = _RAISED[behaviour](f"{id(cb)}:{hook}")
            cb.raised.append(exc)
            raise exc
        if hook in node.spent or behaviour == "record":
            return
        node.spent.add(hook)
        assert node.owner is not None
        if behaviour == "append":
            fresh = self._scripted(dict.fromkeys(cb.script, "record"), node.owner, node.scope)
            node.owner.append(fresh.real)
            self.model[id(node.owner)].append(fresh)
        elif cb in node.owner:  # "remove_self", unless already removed
            node.owner.remove(cb)
            self.model[id(node.owner)].remove(node)

    # ----------------------------------------------------------------- rules

    @initialize(target=lists)
    def root(self) -> CallbackList:
        self.root_list = self._new_list()
        return self.root_list

    @rule(target=lists, parent=lists)
    def nest(self, parent: CallbackList) -> CallbackList:
        child = self._new_list()
        parent.append(child)
        self.model[id(parent)].append(Node(child))
        return child

    @rule(
        target=lists,
        scripts=st.lists(st.tuples(callback_scripts(), process_scopes), min_size=1, max_size=3),
        how=st.sampled_from(["append", "add", "extend", "init"]),
        parent=lists,
    )
    def add_callbacks(
        self,
        scripts: list[tuple[dict[HookName, Behaviour], ProcessScope]],
        how: str,
        parent: CallbackList,
    ) -> CallbackList:
        nodes = [self._scripted(script, parent, scope) for script, scope in scripts]
        reals = [n.real for n in nodes]
        if how == "extend":
            parent.extend(reals)
        elif how == "init":  # a list built from an iterable, nested into the parent
            child = CallbackList(iter(reals))
            self.model[id(child)] = nodes
            self.real_lists[id(child)] = child
            for n in nodes:
                n.owner = child
            parent.append(child)
            self.model[id(parent)].append(Node(child))
            return child
        else:
            for real in reals:
                getattr(parent, how)(real)
        self.model[id(parent)].extend(nodes)
        return parent

    @rule(parent=lists, data=st.data())
    def remove(self, parent: CallbackList, data: st.DataObject) -> None:
        items = self.model[id(parent)]
        if not items:
            return
        node = data.draw(st.sampled_from(items))
        parent.remove(node.real)
        items.remove(node)

    @rule(index=st.sampled_from([0, 1, 3]))
    def move_to_process(self, index: int) -> None:
        self.root_list.process_index = index
        self.process_index = index

    @rule(hook=hook_names)
    def dispatch(self, hook: HookName) -> None:
        args: tuple[Any, ...] = {
            "on_epoch_begin": (TRAINER, next(self.counter)),
            "on_batch_begin": (TRAINER, next(self.counter)),
            "on_epoch_end": (TRAINER, next(self.counter), {"loss": 1.0}),
            "on_batch_end": (TRAINER, next(self.counter), {"loss": 2.0}),
            "on_validation_end": (TRAINER, {"loss": 3.0}),
        }.get(hook, (TRAINER,))
        snapshot = self._leaves(self.model[id(self.root_list)], ())
        self.event_args = args
        self.calls.clear()
        if hook == "on_train_begin" and self.process_index is None:
            self.process_index = 0  # learnt from JAX: this test is process 0 of 1
        error: BaseException | None = None
        try:
            getattr(self.root_list, hook)(*args)
        except (Exception, Interrupt, Exit) as exc:
            error = exc

        # The reference: every leaf of the snapshot that overrides the hook, in order.
        expected: list[tuple[int, HookName]] = []
        raised: list[tuple[str, Node]] = []
        for path, node in snapshot:
            if hook not in node.script or (self.process_index and node.scope == "main"):
                continue
            expected.append((id(node.real), hook))
            if node.script[hook] in _RAISED:
                raised.append((path, node))
                if hook != "on_train_end":  # fail fast; teardown always runs
                    break
        assert self.calls == expected

        if not raised:
            assert error is None
            return
        assert error is not None
        exceptions: list[BaseException] = [node.real.raised[-1] for _, node in raised]  # type: ignore[attr-defined]  # leaves are Scripted  # ty: ignore[missing-attribute]
        notes = [f"raised by callback #{path} (Scripted) in {hook}" for path, _ in raised]
        interrupts = [e for e in exceptions if not isinstance(e, Exception)]
        if hook != "on_train_end":
            assert error is exceptions[0]
            assert getattr(error, "__notes__", [None])[-1] == (notes[0] if not interrupts else None)
        elif interrupts:  # the first one wins; the others are its notes, in order
            assert error is interrupts[0]
            others = [
                f"teardown went on; also {note}: {type(e).__qualname__}: {e}"
                for e, note in zip(exceptions, notes, strict=True)
                if e is not error
            ]
            own = notes[exceptions.index(error)]
            assert error.__notes__[-len(others) - 1 :] == [own, *others]
        elif len(exceptions) == 1:
            assert error is exceptions[0]
            assert error.__notes__[-1] == notes[0]
        else:
            assert isinstance(error, ExceptionGroup)
            assert list(error.exceptions) == exceptions
            assert [e.__notes__[-1] for e in exceptions] == notes

    # ------------------------------------------------------------ invariants

    @invariant()
    def structure_matches_the_model(self) -> None:
        for key, real in self.real_lists.items():
            assert [id(cb) for cb in real] == [id(n.real) for n in self.model[key]]
            assert len(real) == len(self.model[key])


CallbackListMachine.TestCase.settings = settings(
    max_examples=80, stateful_step_count=30, deadline=None
)
TestCallbackList = CallbackListMachine.TestCase
