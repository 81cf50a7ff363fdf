"""Agreeing on a stop across the processes of a job without touching a device.

A multi-process ``fit`` asks, after every ``on_batch_end`` (and ``on_epoch_end``),
whether any process wants to stop, and every process must get the same answer at
the same step. A ``process_allgather`` of one flag would give it, but it is a device
collective whose result the host waits for: it drains the device's queue of
dispatched steps once per step. [`KeyValueAgreement`][] agrees through JAX's
coordination service instead (the key-value store of ``jax.distributed``, which
also carries JAX's preemption sync point), so the steps keep queueing:

* check ``c`` of fit ``f`` uses the directory ``artifex/stop/<f>/<c // 64>/<c>``;
  a process that wants to stop first sets ``.../stop/<its index>``;
* each process adds ``1`` (``1 + 2**15`` if it wants to stop) to the counter
  ``.../n``; the one whose addition completes the count publishes the total as
  ``.../done``, the others wait for that key (a blocking get: two round trips to
  the coordinator per process and check, however many processes the job has);
* if the total counts stoppers, every process lists ``.../stop`` (all its keys were
  set before their counters were added) to learn who asked.

The fit number ``f`` comes from a counter every process adds to when the fit starts
(processes run their multi-process fits in the same order, so ``f`` agrees). The
store does not grow with the steps: once a process has the answer to check ``c``,
every process has finished check ``c - 1``, so process 0 deletes the previous
64-check block when a new one starts, and the previous fit's keys at its first check.

**Private API.** The coordination service client is
``jax._src.distributed.global_state.client`` (a ``DistributedRuntimeClient``;
``key_value_increment``, ``key_value_set``, ``blocking_key_value_get``,
``key_value_dir_get``, ``key_value_delete``, the same in jax 0.10 and 0.12). It is
read in [`coordination_client`][] only. Where it is missing or lacks these methods,
[`stop_agreement`][] falls back to the ``process_allgather`` of
``DataParallel.anyone`` (correct, one device round trip per check).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Final

import jax

__all__ = ["KeyValueAgreement", "coordination_client", "stop_agreement"]

PREFIX: Final = "artifex/stop"
"""The coordination-service directory of the stop agreement."""

BLOCK: Final = 64
"""Checks per key directory (one delete per block keeps the store small)."""

_STOPPER: Final = 1 << 15
"""A stopper's addition: the counter's high part counts stoppers, its low part processes.

jax 0.12's coordination service parses counters as 32-bit integers ("Failed to parse
value ... as an integer" beyond): with fewer than ``_STOPPER`` processes the total,
at most ``count * (_STOPPER + 1)``, stays below ``2**31``. Larger jobs fall back."""
_FAILED: Final = "failed"  # a check's "done" value when a process failed it
_WAIT_MS: Final = 60_000  # one blocking get; a timeout waits again (a slow process is fine)
_NEEDED: Final = (
    "key_value_increment",
    "key_value_set",
    "blocking_key_value_get",
    "key_value_dir_get",
    "key_value_delete",
)

Agreement = Callable[[bool], tuple[int, ...]]
"""``agree(flag)``: the indices of the processes whose ``flag`` is set (every process calls)."""


def coordination_client() -> Any | None:
    """JAX's coordination-service client, or ``None`` where there is none or its API differs.

    The one place that reads the private ``jax._src.distributed.global_state.client``.
    """
    try:
        from jax._src import distributed
    except ImportError:  # pragma: no cover - a JAX without the private module
        return None
    client: Any = getattr(getattr(distributed, "global_state", None), "client", None)
    if client is None or not all(callable(getattr(client, name, None)) for name in _NEEDED):
        return None
    return client


class KeyValueAgreement:
    """Stop agreement through the coordination service's key-value store (module docs).

    One instance per fit; every process of the job creates one and calls it at the
    same checks.

    Args:
        client: The coordination-service client (see [`coordination_client`][]).
        process_index: This process's index.
        process_count: How many processes the job has.

    Raises:
        RuntimeError: If the coordination service refuses the fit counter.
        TypeError: If the client's ``key_value_increment`` takes other arguments.
    """

    __slots__ = ("_checks", "_client", "_count", "_fit", "_index", "_root")

    def __init__(self, client: Any, process_index: int, process_count: int) -> None:
        self._client = client
        self._index = process_index
        self._count = process_count
        self._checks = 0
        try:
            added = client.key_value_increment(f"{PREFIX}/fits", 1)
        except TypeError:  # the private API changed: stop_agreement falls back
            raise
        except Exception as error:  # JaxRuntimeError from the coordination service
            raise _failed("the start of the fit", error) from error
        self._fit = (int(added) - 1) // process_count
        self._root = f"{PREFIX}/{self._fit}"

    def __call__(self, flag: bool) -> tuple[int, ...]:
        """The processes whose ``flag`` is set, the same on every process.

        Raises:
            RuntimeError: If the coordination service fails (the other processes
                are gone, or it was shut down).
        """
        check = self._checks
        self._checks += 1
        key = f"{self._root}/{check // BLOCK}/{check}"
        where = f"stop check {check} of fit {self._fit}"
        try:
            return self._agree(flag, check, key, where)
        except RuntimeError:
            # Tell the processes waiting for this check, rather than leave them waiting.
            with contextlib.suppress(Exception):  # best effort: the service may be gone too
                self._client.key_value_set(f"{key}/done", _FAILED)
            raise

    def _agree(self, flag: bool, check: int, key: str, where: str) -> tuple[int, ...]:
        client = self._client
        if flag:
            self._call(where, client.key_value_set, f"{key}/stop/{self._index}", "1")
        added = 1 + _STOPPER if flag else 1
        total = int(self._call(where, client.key_value_increment, f"{key}/n", added))
        if total % _STOPPER == self._count:
            self._call(where, client.key_value_set, f"{key}/done", str(total))
        else:
            done = self._wait(where, f"{key}/done")
            if done == _FAILED:
                raise RuntimeError(
                    f"agreeing on a stop across the processes of the job failed at {where}: "
                    "another process failed it (see that process's error)"
                )
            total = int(done)
        if self._index == 0 and check % BLOCK == 0 and (check or self._fit):
            # Every process has finished the checks before this one: drop their keys.
            old = f"{self._root}/{check // BLOCK - 1}" if check else f"{PREFIX}/{self._fit - 1}"
            self._call(where, client.key_value_delete, old)
        if total < _STOPPER:
            return ()
        entries = self._call(where, client.key_value_dir_get, f"{key}/stop")
        return tuple(sorted(int(name.rsplit("/", 1)[1]) for name, _ in entries))

    def _wait(self, where: str, key: str) -> str:
        while True:
            try:
                value: str = self._client.blocking_key_value_get(key, _WAIT_MS)
                return value
            except Exception as error:  # JaxRuntimeError; a timeout only means "not yet"
                if "DEADLINE_EXCEEDED" not in str(error):
                    raise _failed(where, error) from error

    @staticmethod
    def _call(where: str, method: Callable[..., Any], *args: object) -> Any:
        try:
            return method(*args)
        except Exception as error:  # JaxRuntimeError from the coordination service
            raise _failed(where, error) from error


def _failed(where: str, error: Exception) -> RuntimeError:
    return RuntimeError(
        f"agreeing on a stop across the processes of the job failed at {where}: JAX's "
        f"coordination service answered {error!r} (did another process exit?)"
    )


def stop_agreement(allgather: Agreement) -> Agreement:
    """The agreement for a multi-process fit: key-value if JAX's client allows, else ``allgather``.

    Args:
        allgather: The fallback (``DataParallel.anyone``).

    Returns:
        A [`KeyValueAgreement`][] for this fit, or ``allgather``.
    """
    client = coordination_client()
    if client is None or jax.process_count() >= _STOPPER:
        return allgather
    try:
        return KeyValueAgreement(client, jax.process_index(), jax.process_count())
    except TypeError:  # the same on every process: they all fall back
        return allgather
