"""The multi-process stop agreement through a coordination service (an in-memory fake here).

Each "process" is a thread with its own ``KeyValueAgreement`` on one shared fake of
JAX's ``DistributedRuntimeClient`` (the real one is exercised by the two-process jobs
of ``tests/laws/test_spmd.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import jax
import pytest
from jax._src import distributed

from artifex.generative_models.training.trainer._coordination import (
    BLOCK,
    PREFIX,
    KeyValueAgreement,
    coordination_client,
    stop_agreement,
)


class FakeCoordinator:
    """The key-value calls of JAX's coordination client, on one dict shared by threads.

    A blocking get gives up after at most ``patience`` seconds with the real client's
    ``DEADLINE_EXCEEDED`` message, so a slow peer makes the agreement wait again. A
    counter holds a 32-bit integer, as jax 0.12's service parses it.
    """

    def __init__(self, patience: float = 0.02) -> None:
        self.store: dict[str, str] = {}
        self.patience = patience
        self.fail_gets = False
        self._changed = threading.Condition()

    def key_value_increment(self, key: str, increment: int) -> int:
        with self._changed:
            value = int(self.store.get(key, "0")) + increment
            if not -(2**31) <= value < 2**31:
                raise RuntimeError(f'FAILED_PRECONDITION: Failed to parse value "{value}"')
            self.store[key] = str(value)
            self._changed.notify_all()
            return value

    def key_value_set(self, key: str, value: str, allow_overwrite: bool = False) -> None:
        with self._changed:
            if key in self.store and not allow_overwrite:
                raise RuntimeError(f"ALREADY_EXISTS: {key}")
            self.store[key] = value
            self._changed.notify_all()

    def blocking_key_value_get(self, key: str, timeout_in_ms: int) -> str:
        if self.fail_gets:
            raise RuntimeError("UNAVAILABLE: the coordination service is gone")
        with self._changed:
            wait = min(timeout_in_ms / 1000, self.patience)
            if not self._changed.wait_for(lambda: key in self.store, timeout=wait):
                raise RuntimeError(f"DEADLINE_EXCEEDED: GetKeyValue() timed out with key: {key}")
            return self.store[key]

    def key_value_dir_get(self, key: str) -> list[tuple[str, str]]:
        with self._changed:
            return sorted((k, v) for k, v in self.store.items() if k.startswith(f"{key}/"))

    def key_value_delete(self, key: str) -> None:
        with self._changed:
            for name in [k for k in self.store if k == key or k.startswith(f"{key}/")]:
                del self.store[name]


def in_processes(
    count: int, body: Callable[[int], list[tuple[int, ...]]], timeout: float = 60.0
) -> list[list[tuple[int, ...]]]:
    """Run ``body(process_index)`` on ``count`` threads; return their answers by index."""
    answers: list[list[tuple[int, ...]]] = [[] for _ in range(count)]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            answers[index] = body(index)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "the agreement hung"
    if errors:
        raise errors[0]
    return answers


def wants(fit: int, check: int, index: int) -> bool:
    """Which process asks to stop at which check: a fixed, irregular pattern."""
    return (fit * 7 + check * 3 + index) % 11 == 0


@pytest.mark.parametrize("count", [2, 3])
def test_every_process_gets_the_same_answer_and_the_store_stays_small(count: int) -> None:
    coordinator = FakeCoordinator()
    checks = 3 * BLOCK + 5
    sizes: list[int] = []

    def body(index: int) -> list[tuple[int, ...]]:
        seen: list[tuple[int, ...]] = []
        for fit in range(3):
            agree = KeyValueAgreement(coordinator, index, count)
            for check in range(checks):
                seen.append(agree(wants(fit, check, index)))
                if index == 0:
                    sizes.append(len(coordinator.store))
        return seen

    answers = in_processes(count, body)
    expected = [
        tuple(i for i in range(count) if wants(fit, check, i))
        for fit in range(3)
        for check in range(checks)
    ]
    assert all(seen == expected for seen in answers)
    assert any(expected)
    assert not all(expected)
    # The fit counter plus at most two blocks of per-check keys: it does not grow
    # with the steps (about 3 + stoppers keys per check: n, done, stop/<i>).
    assert max(sizes) <= 1 + 2 * BLOCK * (2 + count)
    assert len(coordinator.store) <= 1 + 2 * BLOCK * (2 + count)
    assert not any(key.startswith(f"{PREFIX}/0/") for key in coordinator.store)  # fit 0 gone


def test_a_slow_process_is_waited_for() -> None:
    coordinator = FakeCoordinator(patience=0.01)

    def body(index: int) -> list[tuple[int, ...]]:
        agree = KeyValueAgreement(coordinator, index, 2)
        if index == 1:
            time.sleep(0.2)  # many blocking gets of process 0 time out meanwhile
        return [agree(index == 1), agree(False)]

    assert in_processes(2, body) == [[(1,), ()], [(1,), ()]]


def test_a_failing_coordination_service_is_a_runtime_error_naming_the_check() -> None:
    coordinator = FakeCoordinator()
    coordinator.fail_gets = True
    first = KeyValueAgreement(coordinator, 0, 2)
    with pytest.raises(RuntimeError, match=r"stop check 0 of fit 0: .*UNAVAILABLE"):
        first(False)


def test_a_process_failing_a_check_makes_the_others_fail_it_too() -> None:
    coordinator = FakeCoordinator()

    class Failing(FakeCoordinator):
        """Process 0's client: its counter additions fail (the service refuses them)."""

        def key_value_increment(self, key: str, increment: int) -> int:
            if key.endswith("/n"):
                raise RuntimeError("INTERNAL: refused")
            return coordinator.key_value_increment(key, increment)

        def key_value_set(self, key: str, value: str, allow_overwrite: bool = False) -> None:
            coordinator.key_value_set(key, value, allow_overwrite)

    errors: dict[int, str] = {}

    def body(index: int) -> list[tuple[int, ...]]:
        client = Failing() if index == 0 else coordinator
        agree = KeyValueAgreement(client, index, 2)
        if index == 0:
            time.sleep(0.1)  # process 1 is waiting for the check's answer by then
        try:
            return [agree(True)]
        except RuntimeError as error:
            errors[index] = str(error)
            return []

    assert in_processes(2, body, timeout=10.0) == [[], []]  # neither waits for ever
    assert "stop check 0 of fit 0" in errors[0]
    assert "INTERNAL: refused" in errors[0]
    assert "stop check 0 of fit 0" in errors[1]
    assert "another process failed it" in errors[1]


def test_without_a_client_the_allgather_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def allgather(flag: bool) -> tuple[int, ...]:
        return (0,) if flag else ()

    jax.devices()  # the backend starts before the fake client is in place
    assert coordination_client() is None  # this test process never joined a job
    assert stop_agreement(allgather) is allgather
    # A client whose API lacks a method the agreement needs: the fallback too.
    lacking = SimpleNamespace(client=SimpleNamespace(key_value_set=print))
    monkeypatch.setattr(distributed, "global_state", lacking)
    assert coordination_client() is None
    assert stop_agreement(allgather) is allgather


def test_a_client_with_other_signatures_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    class Changed(FakeCoordinator):
        def key_value_increment(self, key: str) -> int:  # type: ignore[override]  # the point  # ty: ignore[incompatible-method-override]
            return 1

    def allgather(flag: bool) -> tuple[int, ...]:
        return ()

    jax.devices()  # the backend starts before the fake client is in place
    changed: Any = Changed()
    monkeypatch.setattr(distributed, "global_state", SimpleNamespace(client=changed))
    assert coordination_client() is changed
    assert stop_agreement(allgather) is allgather
    monkeypatch.setattr(distributed, "global_state", SimpleNamespace(client=FakeCoordinator()))
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    assert isinstance(stop_agreement(allgather), KeyValueAgreement)
