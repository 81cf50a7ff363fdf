"""The contract's rules for ``logs``: types, shapes and values, one event at a time.

The grammar ([`grammar`][]) calls
these pure functions on the recorded [`Event`][] objects. Each rule yields a
``Finding``: a key (so a rule is reported once per record), a sentence, and a
severity. ``event_findings`` needs only the event, so it also runs on the events
after a structural violation; ``epoch_findings`` needs the epoch around it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal, TypeAlias

from artifex.generative_models.training.conformance.recorder import Event, LogEntries

__all__ = ["Finding", "epoch_findings", "event_findings"]

Finding: TypeAlias = tuple[tuple[str, ...], str, Literal["error", "warning"]]
"""``(key, expected, severity)``: one finding about one event."""

_HOST_NUMBERS = frozenset({"float", "int"})
_LOGS_HOOKS = frozenset({"on_batch_end", "on_epoch_end", "on_validation_end"})


def _batch_value(key: str, kind: str) -> Iterator[Finding]:
    hook = "on_batch_end"
    if kind == "jax.Array":
        return
    if kind.startswith("jax.Array["):
        yield (
            (hook, "shape", key),
            f"on_batch_end logs[{key!r}] is a {kind}; the contract passes every batch-log "
            "value as a device scalar (a jax.Array of shape ()), e.g. the mean over the batch",
            "error",
        )
        return
    if kind == "bool":
        yield (
            (hook, "bool", key),
            f"on_batch_end logs[{key!r}] is a Python bool; the contract accepts no bools in "
            "logs (a mean of flags is a number: pass it as a device scalar)",
            "error",
        )
        return
    if kind == "float" or kind.startswith("numpy."):
        yield (
            (hook, "synced", key),
            f"on_batch_end logs[{key!r}] is a {kind}, a host copy of a device value, so the "
            "trainer synced the device every step; the contract passes device scalars "
            "(jax.Array) and leaves syncing to the callbacks that need it",
            "warning",
        )
    elif kind == "int":
        yield (
            (hook, "host", key),
            f"on_batch_end logs[{key!r}] is a Python int, a host value: if it was read "
            "from the device, the trainer synced every step; the contract passes device "
            "scalars (jax.Array) in batch logs (a host counter such as the step belongs in "
            "the trainer's attributes)",
            "warning",
        )
    else:
        yield (
            (hook, "kind", key),
            f"on_batch_end logs[{key!r}] is a {kind}; the contract passes device scalars "
            "(jax.Array)",
            "error",
        )


def event_findings(event: Event) -> Iterator[Finding]:
    """The rules that need only ``event``: the logs' type and each value's kind.

    Args:
        event: A recorded event; only ``on_batch_end``, ``on_validation_end`` and
            ``on_epoch_end`` carry logs.

    Yields:
        Its findings.
    """
    hook = event.hook
    if hook not in _LOGS_HOOKS:
        return
    if event.logs is None:
        yield (
            (hook, "type"),
            f"{hook} logs must be a dict[str, Any]; got a {event.logs_type}",
            "error",
        )
        return
    if not event.logs_dict:
        yield (
            (hook, "dict"),
            f"{hook} logs must be a dict (the protocol types them dict[str, Any]); got a "
            f"{event.logs_type}, a Mapping that is not a dict",
            "error",
        )
    if event.unreadable is not None:
        yield (
            (hook, "unreadable"),
            (
                f"{event.unreadable}; the contract passes batch-log arrays that stay readable, so "
                "a callback may keep them and sync later"
            ),
            "error",
        )
    for key, kind in event.logs:
        if hook == "on_batch_end":
            yield from _batch_value(key, kind)
        elif kind not in _HOST_NUMBERS:
            what = "epoch means" if hook == "on_epoch_end" else "mean validation metrics"
            yield (
                (hook, "kind", key),
                f"{hook} logs[{key!r}] is a {kind}; the contract passes {what} as Python "
                "floats (Python ints that are not bools are accepted too)",
                "error",
            )
    if hook == "on_validation_end":
        for key, _ in event.logs:
            if key.startswith("val_"):
                yield (
                    (hook, "prefix", key),
                    f"on_validation_end logs key {key!r} has the 'val_' prefix; the contract "
                    "passes validation metrics WITHOUT it (e.g. 'loss'); only on_epoch_end "
                    "adds 'val_'",
                    "error",
                )


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def epoch_findings(
    event: Event, validation: Event | None, batches: int, *, observed: bool
) -> Iterator[Finding]:
    """The rules for ``on_epoch_end`` that need its epoch.

    Args:
        event: The ``on_epoch_end`` event.
        validation: The epoch's ``on_validation_end`` event, or ``None`` if it skipped
            validation.
        batches: How many batch pairs the epoch held.
        observed: Whether the recorder saw every batch pair of the epoch (so the
            event's ``batch_losses`` are the whole epoch's).

    Yields:
        Its findings.
    """
    hook = "on_epoch_end"
    if event.logs is None:
        return
    keys = {key for key, _ in event.logs}
    if batches and "loss" not in keys:
        yield (
            (hook, "loss"),
            f"{hook} logs must hold at least 'loss'; got keys {sorted(keys)}",
            "error",
        )
    values = dict(event.values)
    losses = event.batch_losses
    loss = values.get("loss")
    if observed and losses and loss is not None:
        yield from _mean_findings(loss, losses)
    if validation is None:
        for key in sorted(k for k in keys if k.startswith("val_")):
            yield (
                (hook, "stale", key),
                (
                    f"on_epoch_end logs hold {key!r}, although this epoch ran no validation; the "
                    "contract adds 'val_*' keys only from that epoch's validation (stale ones "
                    "from an earlier epoch included)"
                ),
                "error",
            )
        return
    yield from _val_copies(event, validation.logs or (), dict(validation.values), values, keys)


def _mean_findings(loss: float, losses: tuple[float, ...]) -> Iterator[Finding]:
    """The epoch ``loss`` is the plain mean of the epoch's batch losses (NaN if one is)."""
    hook = "on_epoch_end"
    if any(map(math.isnan, losses)):
        if not math.isnan(loss):
            yield (
                (hook, "nan"),
                f"on_epoch_end logs['loss'] is {loss!r}, although a batch loss of that epoch "
                "was NaN; the contract's epoch mean is NaN then (a mean that leaves NaNs out "
                "hides a diverged step from TerminateOnNaN and EarlyStopping)",
                "error",
            )
        return
    low, high = min(losses), max(losses)
    size = max(abs(low), abs(high), 1e-30)
    slack = 1e-5 * size + 1e-7
    if math.isnan(loss) or not low - slack <= loss <= high + slack:
        yield (
            (hook, "mean"),
            (
                f"on_epoch_end logs['loss'] is {loss!r}, outside the range [{low!r}, {high!r}] "
                f"of the {len(losses)} batch-log losses of that epoch; the contract passes the "
                "epoch mean of the training metrics (any mean, weighted or not, lies in that "
                "range; a sum, a running total or a stale value need not)"
            ),
            "error",
        )
        return
    mean = math.fsum(losses) / len(losses)
    if abs(loss - mean) > 1e-4 * size + 1e-6:
        yield (
            (hook, "mean"),
            f"on_epoch_end logs['loss'] is {loss!r}, but the mean of the {len(losses)} "
            f"batch-log losses of that epoch is {mean!r}; the harness's batches are of equal "
            "size, so any mean, weighted or not, is their plain mean (the last batch's loss or "
            "a running estimate is not)",
            "error",
        )


def _val_copies(
    event: Event,
    val_logs: LogEntries,
    val_values: dict[str, float],
    values: dict[str, float],
    keys: set[str],
) -> Iterator[Finding]:
    hook = event.hook
    for key, _ in val_logs:
        name = f"val_{key}"
        if name not in keys:
            yield (
                (hook, "val", key),
                (
                    f"on_epoch_end logs lack {name!r}, although validation ran in this epoch and "
                    f"its on_validation_end had {key!r}; the contract adds the epoch's validation "
                    "metrics as 'val_*' keys"
                ),
                "error",
            )
        elif key in val_values and name in values and not _same(values[name], val_values[key]):
            yield (
                (hook, "val value", key),
                (
                    f"on_epoch_end logs[{name!r}] is {values[name]!r}, but that epoch's "
                    f"on_validation_end logs[{key!r}] was {val_values[key]!r}; the contract copies "
                    "the validation metrics into the epoch logs unchanged"
                ),
                "error",
            )
