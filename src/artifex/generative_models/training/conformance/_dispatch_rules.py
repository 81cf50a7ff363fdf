"""How events are dispatched: every callback gets each one in order, with one logs dict.

Each injected callback appends ``(slot, hook)`` to a shared ``OrderLog`` when a hook
reaches it (slot = its registration position). ``order_problem`` splits the log into
dispatches (each starts at slot 0, the recorder) and checks that every dispatch reaches
the slots in order, none skipped (two callbacks of the same class included), ending
early only at a callback that may have raised.
"""

from __future__ import annotations

from collections.abc import Sequence

from artifex.generative_models.training.conformance.recorder import OrderLog

__all__ = ["logs_problems", "order_problem", "slot_names"]


def slot_names(callbacks: Sequence[object]) -> list[str]:
    """Name each injected callback by its class, numbering repeats ("the second OrderMark")."""
    names: list[str] = []
    counts: dict[str, int] = {}
    ordinals = ("first", "second", "third", "fourth")
    for callback in callbacks:
        kind = type(callback).__qualname__
        counts[kind] = counts.get(kind, 0) + 1
        count = counts[kind]
        names.append(kind if count == 1 else f"the {ordinals[min(count, 4) - 1]} {kind}")
    return names


def _dispatches(entries: OrderLog) -> list[list[tuple[int, str]]]:
    groups: list[list[tuple[int, str]]] = []
    for slot, hook in entries:
        if slot == 0 or not groups:
            groups.append([])
        groups[-1].append((slot, hook))
    return groups


def order_problem(entries: OrderLog, names: Sequence[str], cut: set[int]) -> str | None:
    """Describe the first dispatch that broke the registration order, or ``None``.

    Args:
        entries: The shared log, in call order.
        names: The injected callbacks' names, by slot.
        cut: The slots at which a dispatch may end early (the raisers).

    Returns:
        A sentence for the report, or ``None`` if every dispatch kept the order.
    """
    last = len(names) - 1
    for group in _dispatches(entries):
        hook = group[0][1]
        slots = [slot for slot, _ in group]
        expected = list(range(len(slots)))
        early = slots[-1] != last and slots[-1] not in cut and hook != "on_train_end"
        if slots == expected and not early and all(h == hook for _, h in group):
            continue
        if slots == expected and early:
            skipped = names[slots[-1] + 1]
            return (
                f"{hook} reached the injected callbacks up to {names[slots[-1]]}, then no "
                f"further: {skipped} never got it (a callback dropped, or one of the same "
                "class as an earlier one); the contract dispatches every event to every "
                "registered callback, in registration order"
            )
        got = ", ".join(names[slot] for slot in slots)
        return (
            f"{hook} reached the injected callbacks in the order {got}; registered: "
            f"{', '.join(names)}. The contract dispatches every event to every callback in "
            "the order registered (callbacks that can stop the run, and two of the same "
            "class, included)"
        )
    return None


def _same_value(now: object, then: object) -> bool:
    if now is then:
        return True
    numbers = (int, float)
    return isinstance(now, numbers) and isinstance(then, numbers) and now == then


def logs_problems(
    dispatched: Sequence[tuple[int, object, tuple[tuple[str, object], ...]]],
    last_got: Sequence[tuple[int, object]],
    events: Sequence[object],
) -> list[tuple[int, str]]:
    """Each logs argument is one dict handed on, and left alone once dispatched.

    Args:
        dispatched: ``(event index, logs, its items then)`` as the first callback got them.
        last_got: ``(event index, logs)`` as the last callback got them.
        events: The record, to name the events.

    Returns:
        ``(event index, sentence)`` for the first logs handed on as another object and
        the first logs changed after dispatch (at most one of each).
    """
    problems: list[tuple[int, str]] = []
    first = {index: logs for index, logs, _ in dispatched}
    for index, logs in last_got:
        if index in first and logs is not first[index]:
            problems.append(
                (
                    index,
                    f"the logs of {events[index]} reached the last callback as another object "
                    "than the first callback got (a copy per callback?); the contract hands "
                    "one dict from callback to callback, so a key one adds reaches the next",
                )
            )
            break
    for index, logs, items in dispatched:
        if not isinstance(logs, dict):
            continue
        changed = [key for key, value in items if not _same_value(logs.get(key), value)]
        if changed:
            problems.append(
                (
                    index,
                    f"the logs dict of {events[index]} was changed after its dispatch: "
                    f"{changed[0]!r} now holds another value; the contract leaves a dispatched "
                    "logs dict to the callbacks (History keeps them): build a new one for each "
                    "event",
                )
            )
            break
    return problems
