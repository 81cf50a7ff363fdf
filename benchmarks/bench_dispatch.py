"""Callback dispatch overhead of ``CallbackList``, as ratios to baselines in the same run.

Run: ``nox -s bench`` (or ``python benchmarks/bench_dispatch.py``). Prints:

* a hook no callback overrides, with 10 ``BaseCallback``s, vs an empty list
  (target <= 1.2x);
* a hook all 10 callbacks override vs a hand-written ``for`` loop over them
  (target <= 1.1x);
* registration: 10,000 ``append``s one by one, then one dispatch, vs appending the same
  callbacks to a plain ``list`` (target: under 1 s in all, on a 2-core machine; the ratio
  shows the cost per registration).

Variants run interleaved, each timed over many calls, and medians over rounds are
compared, because this machine is noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit
from collections.abc import Callable
from typing import Any

from flax import nnx

from artifex.generative_models.training.callbacks import BaseCallback, CallbackList


class _Trainer:
    def __init__(self) -> None:
        self.model = nnx.Linear(1, 1, rngs=nnx.Rngs(0))


class _Counting(BaseCallback):
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def on_batch_end(self, trainer: Any, batch: int, logs: dict[str, Any]) -> None:
        self.n += 1


def _median_ratio(
    variant: Callable[[], object], baseline: Callable[[], object], *, number: int, rounds: int
) -> tuple[float, float, float]:
    """Return (variant ns/call, baseline ns/call, median of per-round ratios)."""
    ratios, var_t, base_t = [], [], []
    for _ in range(rounds):
        b = timeit.timeit(baseline, number=number)
        v = timeit.timeit(variant, number=number)
        ratios.append(v / b)
        var_t.append(v)
        base_t.append(b)
    ns = 1e9 / number
    return statistics.median(var_t) * ns, statistics.median(base_t) * ns, statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 15; 5 quick)")
    args = parser.parse_args()
    number, rounds = (20_000, 5) if args.quick else (200_000, 15)
    rounds = rounds if args.rounds is None else args.rounds

    trainer = _Trainer()
    logs: dict[str, Any] = {"loss": 0.5}

    empty = CallbackList()
    idle = CallbackList([BaseCallback() for _ in range(10)])
    var, base, ratio = _median_ratio(
        lambda: idle.on_batch_end(trainer, 1, logs),
        lambda: empty.on_batch_end(trainer, 1, logs),
        number=number,
        rounds=rounds,
    )
    print(
        f"unused hook, 10 BaseCallbacks vs empty list: {var:7.1f} ns vs {base:7.1f} ns"
        f" -> ratio {ratio:.3f} (target <= 1.2)"
    )

    counting = [_Counting() for _ in range(10)]
    busy = CallbackList(counting)

    def hand_written() -> None:
        for cb in counting:
            cb.on_batch_end(trainer, 1, logs)

    def dispatched() -> None:
        busy.on_batch_end(trainer, 1, logs)

    var, base, ratio = _median_ratio(dispatched, hand_written, number=number, rounds=rounds)
    print(
        f"used hook, 10 overriding callbacks vs for loop: {var:7.1f} ns vs {base:7.1f} ns"
        f" -> ratio {ratio:.3f} (target <= 1.1)"
    )

    _registration(trainer, logs, count=2_000 if args.quick else 10_000)


def _registration(trainer: _Trainer, logs: dict[str, Any], *, count: int) -> None:
    """Time ``count`` appends one by one, then one dispatch, against a plain list."""
    callbacks = [_Counting() for _ in range(count)]
    start = time.perf_counter()
    plain: list[_Counting] = []
    for cb in callbacks:
        plain.append(cb)
    for cb in plain:
        cb.on_batch_end(trainer, 1, logs)
    base = time.perf_counter() - start
    start = time.perf_counter()
    registered = CallbackList()
    for cb in callbacks:
        registered.append(cb)
    registered.on_batch_end(trainer, 1, logs)
    var = time.perf_counter() - start
    assert all(cb.n == 2 for cb in callbacks)
    print(
        f"registration, {count} appends then one dispatch vs a plain list: {var:.3f} s vs "
        f"{base:.4f} s -> ratio {var / base:.1f} (target: under 1 s)"
    )


if __name__ == "__main__":
    main()
