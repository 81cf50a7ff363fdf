"""Unit tests of CallbackList: container, validation, dispatch and exception semantics."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock, call

import pytest

from artifex.generative_models.training.callbacks import (
    HOOK_NAMES,
    BaseCallback,
    CallbackList,
    LambdaCallback,
    TrainerLike,
    TrainingCallback,
)
from artifex.generative_models.training.callbacks.base import flatten_callbacks
from tests.typing.cases import AttributeTrainer, MissingHookCallback, StructuralCallback

Log = list[tuple[str, str, tuple[Any, ...]]]


class Recorder(BaseCallback):
    """Records the hooks it overrides into a shared log."""

    def __init__(self, name: str, log: Log) -> None:
        self.name = name
        self.log = log

    def on_train_begin(self, trainer: TrainerLike) -> None:
        self.log.append((self.name, "on_train_begin", (trainer,)))

    def on_train_end(self, trainer: TrainerLike) -> None:
        self.log.append((self.name, "on_train_end", (trainer,)))

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any]) -> None:
        self.log.append((self.name, "on_epoch_end", (trainer, epoch, logs)))

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any]) -> None:
        self.log.append((self.name, "on_batch_end", (trainer, batch, logs)))


class Boom(Exception):
    """A distinguishable failure."""


class Raiser(BaseCallback):
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any]) -> None:
        raise self.exc

    def on_train_end(self, trainer: TrainerLike) -> None:
        raise self.exc


@pytest.fixture
def trainer() -> AttributeTrainer:
    return AttributeTrainer()


# ----------------------------------------------------------------- container


def test_copies_the_callers_list_and_never_mutates_it() -> None:
    log: Log = []
    mine: list[TrainingCallback] = [Recorder("a", log)]
    callbacks = CallbackList(mine)
    callbacks.append(Recorder("b", log))
    assert len(mine) == 1
    assert len(callbacks) == 2
    mine.append(Recorder("c", log))
    assert len(callbacks) == 2


def test_container_protocol() -> None:
    log: Log = []
    a, b, c = Recorder("a", log), Recorder("b", log), Recorder("c", log)
    callbacks = CallbackList([a])
    callbacks.add(b)
    callbacks.extend([c])
    assert list(callbacks) == [a, b, c]
    assert callbacks.callbacks == (a, b, c)
    assert a in callbacks
    assert Recorder("a", log) not in callbacks
    callbacks.remove(b)
    assert list(callbacks) == [a, c]
    assert repr(callbacks).startswith("CallbackList([")


def test_callbacks_view_is_read_only() -> None:
    callbacks = CallbackList([BaseCallback()])
    with pytest.raises(AttributeError):
        callbacks.callbacks = ()  # type: ignore[misc]  # read-only property under test  # ty: ignore[invalid-assignment]
    assert isinstance(callbacks.callbacks, tuple)


def test_slots_forbid_stray_attributes() -> None:
    with pytest.raises(AttributeError):
        CallbackList().stray = 1  # type: ignore[attr-defined]  # the error under test  # ty: ignore[missing-attribute]


def test_remove_absent_raises_value_error_naming_it() -> None:
    cb = BaseCallback()
    callbacks = CallbackList([BaseCallback()])
    with pytest.raises(ValueError, match="not in this CallbackList"):
        callbacks.remove(cb)


def test_remove_compares_by_identity() -> None:
    class Equal(BaseCallback):
        def __eq__(self, other: object) -> bool:
            return isinstance(other, Equal)

        __hash__ = None  # type: ignore[assignment]  # an unhashable, equal-to-all callback

    first, second = Equal(), Equal()
    callbacks = CallbackList([first, second])
    callbacks.remove(second)
    assert callbacks.callbacks[0] is first


# ---------------------------------------------------------------- validation


def test_rejects_non_callbacks_naming_type_and_missing_hooks() -> None:
    with pytest.raises(TypeError, match=r"MissingHookCallback.*on_validation_end"):
        CallbackList([MissingHookCallback()])  # type: ignore[list-item]  # the error under test  # ty: ignore[invalid-argument-type]


def test_rejects_a_class_passed_for_an_instance() -> None:
    with pytest.raises(TypeError, match=r"class 'BaseCallback'.*BaseCallback\(\.\.\.\)"):
        CallbackList([BaseCallback])  # type: ignore[list-item]  # the error under test  # ty: ignore[invalid-argument-type]


@pytest.mark.parametrize("bad", [None, 3, "callbacks", BaseCallback()])
def test_rejects_a_non_iterable_naming_it(bad: object) -> None:
    with pytest.raises(TypeError, match="iterable of callbacks"):
        CallbackList().extend(bad)  # type: ignore[arg-type]  # the error under test  # ty: ignore[invalid-argument-type]


def test_failed_extend_leaves_the_list_unchanged() -> None:
    good = BaseCallback()
    callbacks = CallbackList([good])
    with pytest.raises(TypeError):
        callbacks.extend([BaseCallback(), object()])  # type: ignore[list-item]  # under test  # ty: ignore[invalid-argument-type]
    assert callbacks.callbacks == (good,)


def test_non_callable_hook_is_rejected() -> None:
    class Broken(StructuralCallback):
        on_batch_end = 3  # type: ignore[assignment]  # a non-callable hook under test

    with pytest.raises(TypeError, match="on_batch_end"):
        CallbackList([Broken()])  # type: ignore[list-item]  # the error under test  # ty: ignore[invalid-argument-type]


def test_accepts_and_dispatches_to_magic_mock(trainer: AttributeTrainer) -> None:
    mock = MagicMock()
    callbacks = CallbackList([mock])
    logs = {"loss": 1.0}
    callbacks.on_epoch_end(trainer, 2, logs)
    callbacks.on_batch_begin(trainer, 7)
    mock.on_epoch_end.assert_called_once_with(trainer, 2, logs)
    assert mock.on_epoch_end.call_args.args[2] is logs
    mock.on_batch_begin.assert_called_once_with(trainer, 7)


def test_accepts_getattr_proxies(trainer: AttributeTrainer) -> None:
    seen: list[tuple[str, tuple[Any, ...]]] = []

    class Proxy:
        def __getattr__(self, name: str) -> Any:
            return lambda *args: seen.append((name, args))

    # mypy accepts the proxy as a TrainingCallback, pyright does not (tests/typing pins both).
    callbacks = CallbackList([Proxy()])  # pyright: ignore[reportArgumentType]  # ty: ignore[invalid-argument-type]
    callbacks.on_train_begin(trainer)
    callbacks.on_validation_end(trainer, {"loss": 0.1})
    assert seen == [("on_train_begin", (trainer,)), ("on_validation_end", (trainer, {"loss": 0.1}))]


def test_rejects_a_cycle() -> None:
    outer = CallbackList()
    inner = CallbackList([outer])
    with pytest.raises(ValueError, match="cycle"):
        outer.append(inner)
    with pytest.raises(ValueError, match="cycle"):
        outer.append(outer)


# ------------------------------------------------------------------ dispatch


def test_registration_order_and_identical_arguments(trainer: AttributeTrainer) -> None:
    log: Log = []
    callbacks = CallbackList([Recorder("a", log), Recorder("b", log)])
    logs = {"loss": 0.5}
    callbacks.on_epoch_end(trainer, 3, logs)
    assert [(n, h) for n, h, _ in log] == [("a", "on_epoch_end"), ("b", "on_epoch_end")]
    for _, _, args in log:
        assert args[0] is trainer
        assert args[2] is logs


def test_nested_lists_dispatch_depth_first(trainer: AttributeTrainer) -> None:
    log: Log = []
    inner = CallbackList([Recorder("b", log), CallbackList([Recorder("c", log)])])
    callbacks = CallbackList([Recorder("a", log), inner, Recorder("d", log)])
    callbacks.on_train_begin(trainer)
    assert [n for n, _, _ in log] == ["a", "b", "c", "d"]
    log.clear()
    inner.append(Recorder("e", log))  # a change inside reaches the enclosing list
    callbacks.on_train_begin(trainer)
    assert [n for n, _, _ in log] == ["a", "b", "c", "e", "d"]


def test_specification_keyword_call(trainer: AttributeTrainer) -> None:
    log: Log = []
    callbacks = CallbackList([Recorder("a", log)])
    metrics = {"loss": 0.5}
    callbacks.on_epoch_end(trainer, epoch=5, metrics=metrics)
    callbacks.on_epoch_end(trainer, epoch=6, logs=metrics)
    assert [args[1:] for _, _, args in log] == [(5, metrics), (6, metrics)]


@pytest.mark.parametrize("kwargs", [{}, {"logs": {}, "metrics": {}}])
def test_logs_alias_misuse_is_a_type_error(trainer: AttributeTrainer, kwargs: Any) -> None:
    with pytest.raises(TypeError, match="metrics"):
        CallbackList().on_epoch_end(trainer, 1, **kwargs)
    with pytest.raises(TypeError, match="metrics"):
        CallbackList().on_validation_end(trainer, **kwargs)


def test_unchanged_base_hooks_are_skipped() -> None:
    log: Log = []
    callbacks = CallbackList([BaseCallback(), Recorder("a", log), BaseCallback()])
    callbacks._refresh()  # the tables are built lazily, at the first dispatch
    assert callbacks._on_batch_begin == ((), ())
    assert len(callbacks._on_batch_end[0]) == 1
    assert callbacks._on_batch_end[1] == ((1,),)


def test_instance_attribute_override_is_not_skipped(trainer: AttributeTrainer) -> None:
    class Plain(BaseCallback):
        pass

    seen: list[int] = []
    cb = Plain()
    cb.on_batch_begin = lambda trainer, batch: seen.append(batch)  # type: ignore[method-assign]  # an instance-level override under test
    callbacks = CallbackList([cb])
    callbacks.on_batch_begin(trainer, 4)
    assert seen == [4]


def test_mutation_during_dispatch_changes_only_later_events(trainer: AttributeTrainer) -> None:
    log: Log = []
    late = Recorder("late", log)

    class Mutator(BaseCallback):
        def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any]) -> None:
            if epoch == 0:
                callbacks.append(late)
                callbacks.remove(self)

    first = Recorder("first", log)
    callbacks = CallbackList([first, Mutator(), Recorder("last", log)])
    callbacks.on_epoch_end(trainer, 0, {})
    assert [n for n, _, _ in log] == ["first", "last"]
    log.clear()
    callbacks.on_epoch_end(trainer, 1, {})
    assert [n for n, _, _ in log] == ["first", "last", "late"]


# ---------------------------------------------------------------- exceptions


def test_fail_fast_propagates_the_same_object_with_a_note(trainer: AttributeTrainer) -> None:
    log: Log = []
    boom = Boom("x")
    callbacks = CallbackList([Recorder("a", log), Raiser(boom), Recorder("c", log)])
    with pytest.raises(Boom) as info:
        callbacks.on_epoch_end(trainer, 1, {})
    assert info.value is boom
    assert boom.__notes__ == ["raised by callback #1 (Raiser) in on_epoch_end"]
    assert [n for n, _, _ in log] == ["a"]


def test_note_names_the_nested_index_path(trainer: AttributeTrainer) -> None:
    boom = Boom()
    callbacks = CallbackList([BaseCallback(), CallbackList([BaseCallback(), Raiser(boom)])])
    with pytest.raises(Boom):
        callbacks.on_epoch_end(trainer, 0, {})
    assert boom.__notes__ == ["raised by callback #1.1 (Raiser) in on_epoch_end"]


def test_teardown_reaches_everyone_and_reraises_a_single_failure(
    trainer: AttributeTrainer,
) -> None:
    log: Log = []
    boom = Boom()
    callbacks = CallbackList([Raiser(boom), Recorder("b", log)])
    with pytest.raises(Boom) as info:
        callbacks.on_train_end(trainer)
    assert info.value is boom
    assert boom.__notes__ == ["raised by callback #0 (Raiser) in on_train_end"]
    assert [n for n, _, _ in log] == ["b"]


def test_teardown_groups_several_failures_in_order(trainer: AttributeTrainer) -> None:
    log: Log = []
    first, second = Boom("1"), Boom("2")
    callbacks = CallbackList([Raiser(first), Recorder("b", log), Raiser(second)])
    with pytest.raises(ExceptionGroup) as info:
        callbacks.on_train_end(trainer)
    assert list(info.value.exceptions) == [first, second]
    assert [n for n, _, _ in log] == ["b"]


def test_base_exceptions_propagate_at_once_from_fail_fast_hooks(
    trainer: AttributeTrainer,
) -> None:
    log: Log = []
    interrupt = KeyboardInterrupt()
    callbacks = CallbackList([Raiser(interrupt), Recorder("b", log)])
    with pytest.raises(KeyboardInterrupt) as info:
        callbacks.on_epoch_end(trainer, 0, {})
    assert info.value is interrupt
    assert log == []
    assert not hasattr(interrupt, "__notes__")


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_teardown_always_runs_past_a_base_exception(
    trainer: AttributeTrainer, kind: type[BaseException]
) -> None:
    log: Log = []
    stop, later = kind("stop"), Boom("later")
    callbacks = CallbackList([Raiser(stop), Recorder("b", log), Raiser(later)])
    with pytest.raises(kind) as info:
        callbacks.on_train_end(trainer)
    assert info.value is stop  # the first BaseException, as the same object
    assert [n for n, _, _ in log] == ["b"]  # the teardown went on past it
    assert stop.__notes__ == [
        "raised by callback #0 (Raiser) in on_train_end",
        "teardown went on; also raised by callback #2 (Raiser) in on_train_end: Boom: later",
    ]


def test_teardown_raises_the_first_interrupt_over_earlier_exceptions(
    trainer: AttributeTrainer,
) -> None:
    first, interrupt, exit_ = Boom("1"), KeyboardInterrupt("2"), SystemExit(3)
    callbacks = CallbackList([Raiser(first), Raiser(interrupt), Raiser(exit_)])
    with pytest.raises(KeyboardInterrupt) as info:
        callbacks.on_train_end(trainer)
    assert info.value is interrupt
    assert info.value.__notes__[1:] == [
        "teardown went on; also raised by callback #0 (Raiser) in on_train_end: Boom: 1",
        "teardown went on; also raised by callback #2 (Raiser) in on_train_end: SystemExit: 3",
    ]


def test_every_hook_reaches_a_mock(trainer: AttributeTrainer) -> None:
    mock = MagicMock()
    callbacks = CallbackList([mock])
    logs: dict[str, Any] = {}
    callbacks.on_train_begin(trainer)
    callbacks.on_epoch_begin(trainer, 0)
    callbacks.on_batch_begin(trainer, 0)
    callbacks.on_batch_end(trainer, 0, logs)
    callbacks.on_validation_begin(trainer)
    callbacks.on_validation_end(trainer, logs)
    callbacks.on_epoch_end(trainer, 0, logs)
    callbacks.on_train_end(trainer)
    assert [c[0] for c in mock.method_calls] == [
        "on_train_begin",
        "on_epoch_begin",
        "on_batch_begin",
        "on_batch_end",
        "on_validation_begin",
        "on_validation_end",
        "on_epoch_end",
        "on_train_end",
    ]
    assert sorted(c[0] for c in mock.method_calls) == sorted(HOOK_NAMES)
    assert mock.method_calls[3] == call.on_batch_end(trainer, 0, logs)


# ------------------------------------------------------------- process scope


class MainOnly(Recorder):
    process_scope = "main"


def _names(log: Log) -> list[str]:
    return [name for name, _, _ in log]


@pytest.mark.parametrize(("index", "expected"), [(0, ["a", "m", "b"]), (1, ["a", "b"])])
def test_main_only_callbacks_run_on_process_zero_only(
    trainer: AttributeTrainer, index: int, expected: list[str]
) -> None:
    log: Log = []
    callbacks = CallbackList(
        [Recorder("a", log), CallbackList([MainOnly("m", log)]), Recorder("b", log)],
        process_index=index,
    )
    callbacks.on_train_begin(trainer)
    callbacks.on_epoch_end(trainer, 0, {"loss": 1.0})
    callbacks.on_train_end(trainer)
    assert _names(log) == expected * 3
    log.clear()
    callbacks.process_index = 0  # setting it rebuilds the dispatch tables
    callbacks.on_train_end(trainer)
    assert _names(log) == ["a", "m", "b"]


def test_process_index_is_learnt_from_jax_at_train_begin(trainer: AttributeTrainer) -> None:
    log: Log = []
    callbacks = CallbackList([MainOnly("m", log)])
    before = callbacks.process_index
    callbacks.on_train_begin(trainer)
    assert (before, callbacks.process_index) == (None, 0)  # a single-process job
    assert _names(log) == ["m"]


def test_lambda_callback_declares_its_scope(trainer: AttributeTrainer) -> None:
    seen: list[int] = []
    main = LambdaCallback(on_train_begin=lambda t: seen.append(0), process_scope="main")
    every = LambdaCallback(on_train_begin=lambda t: seen.append(1))
    assert "process_scope='main'" in repr(main)
    CallbackList([main, every], process_index=3).on_train_begin(trainer)
    assert seen == [1]


def test_unknown_process_scope_is_rejected_at_registration() -> None:
    class Odd(BaseCallback):
        process_scope = "rank0"  # type: ignore[assignment]  # the wrong value under test  # ty: ignore[invalid-assignment]

    with pytest.raises(ValueError, match=r"Odd object .* process_scope='rank0'; expected one of"):
        CallbackList([Odd()])
    with pytest.raises(ValueError, match="process_scope='everywhere'"):
        LambdaCallback(process_scope="everywhere")  # type: ignore[arg-type]  # under test  # ty: ignore[invalid-argument-type]


@pytest.mark.parametrize(("bad", "error"), [(-1, ValueError), (1.0, TypeError), (True, TypeError)])
def test_bad_process_index_names_the_value(bad: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=f"process_index must be .*{bad!r}"):
        CallbackList(process_index=bad)  # type: ignore[arg-type]  # bad values under test  # ty: ignore[invalid-argument-type]


# ------------------------------------------------------- unordered iterables, load


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"hist": BaseCallback()}, "dict"),
        ({BaseCallback(): 1}, "dict"),
        ({"hist": BaseCallback()}.values(), "dict_values"),
        ({"hist": BaseCallback()}.keys(), "dict_keys"),
        ({BaseCallback()}, "set"),
        (frozenset({BaseCallback()}), "frozenset"),
    ],
)
def test_rejects_unordered_iterables_naming_which(bad: Any, named: str) -> None:
    with pytest.raises(TypeError, match=rf"ordered iterable.*got a {named}\b"):
        CallbackList(bad)
    callbacks = CallbackList()
    with pytest.raises(TypeError, match=rf"got a {named}\b"):
        callbacks.extend(bad)
    assert len(callbacks) == 0


def test_deep_nesting_is_bounded_only_by_memory(trainer: AttributeTrainer) -> None:
    log: Log = []
    inner = CallbackList([Recorder("leaf", log)])
    root = inner
    for _ in range(3000):  # far past the default recursion limit
        root = CallbackList([root])
    root.on_batch_end(trainer, 0, {})
    assert [n for n, _, _ in log] == ["leaf"]
    ((path, leaf),) = flatten_callbacks(root)
    assert len(path) == 3001
    assert isinstance(leaf, Recorder)
    assert repr(root).count("CallbackList([") == 3001
    inner.append(Recorder("late", log))  # reaches the root through 3000 parents
    log.clear()
    root.on_batch_end(trainer, 1, {})
    assert [n for n, _, _ in log] == ["leaf", "late"]
    with pytest.raises(ValueError, match="cycle"):
        inner.append(root)


def test_nested_repr_matches_the_nesting() -> None:
    a, b = BaseCallback(), BaseCallback()
    callbacks = CallbackList([a, CallbackList([b, CallbackList()]), a])
    assert repr(callbacks) == (
        f"CallbackList([{a!r}, CallbackList([{b!r}, CallbackList([])]), {a!r}])"
    )


def test_many_appends_and_removes_keep_order_and_tables(trainer: AttributeTrainer) -> None:
    log: Log = []
    callbacks = CallbackList()
    recorders = [Recorder(str(i), log) for i in range(2000)]
    for i, recorder in enumerate(recorders):
        callbacks.append(recorder)
        callbacks.append(BaseCallback())
        if i % 500 == 0:  # interleave dispatches: the tables are extended, then used
            log.clear()
            callbacks.on_batch_end(trainer, i, {})
            assert [n for n, _, _ in log] == [str(j) for j in range(i + 1)]
    for recorder in recorders[::2]:
        callbacks.remove(recorder)
    log.clear()
    callbacks.on_batch_end(trainer, 0, {})
    assert [n for n, _, _ in log] == [str(j) for j in range(1, 2000, 2)]
    boom = Boom()
    callbacks.append(Raiser(boom))
    with pytest.raises(Boom):
        callbacks.on_epoch_end(trainer, 0, {})
    assert boom.__notes__ == ["raised by callback #3000 (Raiser) in on_epoch_end"]


def test_appending_from_every_dispatch_reaches_later_events(trainer: AttributeTrainer) -> None:
    log: Log = []

    class Grower(BaseCallback):
        def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any]) -> None:
            callbacks.append(Recorder(str(batch), log))

    callbacks = CallbackList([Grower()])
    for batch in range(300):
        callbacks.on_batch_end(trainer, batch, {})
    assert [n for n, _, _ in log] == [str(j) for b in range(300) for j in range(b)]


def test_hook_resolution_is_per_instance_too(trainer: AttributeTrainer) -> None:
    log: Log = []
    plain, patched = Recorder("plain", log), Recorder("patched", log)
    patched.on_epoch_begin = lambda trainer, epoch: log.append(("patched", "eb", ()))  # type: ignore[method-assign]  # an instance-level override under test
    callbacks = CallbackList([plain, patched])
    callbacks.on_epoch_begin(trainer, 0)
    assert [n for n, _, _ in log] == ["patched"]
