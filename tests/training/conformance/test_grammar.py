"""The grammar checker on its own: generated valid and invalid records, and messages."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings

from artifex.generative_models.training.conformance import (
    Event,
    FitPlan,
    Trigger,
    Violation,
    check_events,
)
from tests.strategies import ideal_record, invalid_records, valid_records


def _errors(found: list[Violation]) -> list[Violation]:
    return [v for v in found if v.severity == "error"]


@given(valid_records())
@settings(max_examples=150)
def test_ideal_records_conform(record: tuple[list[Event], list[FitPlan]]) -> None:
    events, plans = record
    assert check_events(events, plans) == []


@given(invalid_records())
@settings(max_examples=150)
def test_every_structural_mutation_is_rejected(
    record: tuple[list[Event], list[FitPlan], str],
) -> None:
    events, plans, mutation = record
    found = _errors(check_events(events, plans))
    assert found, f"{mutation} was accepted: {[str(e) for e in events]}"
    assert all(v.index is not None and 0 <= v.index <= len(events) for v in found)


def _plain(epochs: int = 1, batches: int = 2, **plan: object) -> tuple[list[Event], FitPlan]:
    fit = FitPlan(epochs=epochs, **plan)  # type: ignore[arg-type]  # test helper  # ty: ignore[invalid-argument-type]
    return ideal_record([fit], batches), fit


def _only_error(events: list[Event], plans: list[FitPlan]) -> Violation:
    found = _errors(check_events(events, plans, scenario="unit"))
    assert len(found) == 1, [str(v) for v in found]
    assert found[0].scenario == "unit"
    return found[0]


def test_violation_points_at_the_event_and_shows_its_surroundings() -> None:
    events, plan = _plain()
    events[3] = Event(hook="on_batch_end", number=1, logs=(("loss", "jax.Array"),))
    found = _only_error(events, [plan])
    assert found.index == 3
    assert "on_batch_end got step 1 but its on_batch_begin got 0" in found.expected
    assert any(line.startswith(">   3 on_batch_end(1") for line in found.context)
    assert any("on_batch_begin(0)" in line for line in found.context)
    assert "[error] unit at event #3" in str(found)


def test_ignored_stop_is_named() -> None:
    plan = FitPlan(epochs=2, stop=Trigger(hook="on_batch_end", occurrence=0))
    events = ideal_record([FitPlan(epochs=2)], 2)  # the trainer ran on regardless
    found = _only_error(events, [plan])
    assert "a stop requested at on_batch_end(0" in found.expected
    assert "expects on_epoch_end(0)" in found.expected
    assert found.index == 4


def test_stop_at_epoch_end_makes_train_end_next() -> None:
    plan = FitPlan(epochs=3, stop=Trigger(hook="on_epoch_end", occurrence=0))
    events = ideal_record([FitPlan(epochs=3)], 1)
    found = _only_error(events, [plan])
    assert "makes on_train_end the next event" in found.expected
    assert events[found.index or 0].hook == "on_epoch_begin"


def test_missing_teardown_after_a_raise() -> None:
    plan = FitPlan(epochs=1, raises=(Trigger(hook="on_batch_end", occurrence=0),))
    events = ideal_record([plan], 2)
    assert events[-1].hook == "on_train_end"
    found = _only_error(events[:-1], [plan])
    assert "on_train_end (teardown" in found.expected
    assert found.index == len(events) - 1
    assert found.context[-1].endswith("<end of record>")


def test_zero_epochs_is_begin_then_end() -> None:
    zero = FitPlan(epochs=0)
    assert check_events(ideal_record([zero], 2), [zero]) == []
    found = _only_error(ideal_record([FitPlan(epochs=1)], 1), [zero])
    assert "after 0 epoch(s)" in found.expected


def test_early_train_end_without_reason() -> None:
    events = ideal_record([FitPlan(epochs=1)], 1)
    found = _only_error(events, [FitPlan(epochs=2)])
    assert "on_train_end after 1 of 2 epoch(s)" in found.expected


def test_second_fit_continues_counters() -> None:
    plans = [FitPlan(epochs=1), FitPlan(epochs=1)]
    events = ideal_record(plans, 2)
    assert check_events(events, plans) == []
    first = ideal_record([FitPlan(epochs=1)], 2)
    restarted = first + first
    found = _only_error(restarted, plans)
    assert "numbered from 0 (or the resumed epoch)" in found.expected
    assert "fit call #1 continues where the previous call left off" in found.expected


def test_data_failure_may_end_the_run_anywhere_but_must_tear_down() -> None:
    plan = FitPlan(epochs=2, data_failure=3)
    events = ideal_record([FitPlan(epochs=1)], 2)[:-1]  # 2 batches, epoch 0 closed
    events += [Event(hook="on_epoch_begin", number=1), Event(hook="on_batch_begin", number=2)]
    assert check_events([*events, Event(hook="on_train_end")], [plan]) == []
    found = _only_error(events, [plan])
    assert "on_train_end (teardown)" in found.expected


def test_log_findings() -> None:
    events, plan = _plain(validation=True)
    floats = [
        Event(hook=e.hook, number=e.number, logs=(("loss", "float"),), logs_type="dict")
        if e.hook == "on_batch_end"
        else e
        for e in events
    ]
    found = check_events(floats, [plan])
    assert [v.severity for v in found] == ["warning"]
    assert "synced the device every step" in found[0].expected

    def replace(hook: str, logs: tuple[tuple[str, str], ...]) -> list[Event]:
        return [
            Event(hook=e.hook, number=e.number, logs=logs) if e.hook == hook else e for e in events
        ]

    cases = {
        "the contract passes epoch means as Python floats": replace(
            "on_epoch_end", (("loss", "jax.Array"), ("val_loss", "float"))
        ),
        "lack 'val_loss'": replace("on_epoch_end", (("loss", "float"),)),
        "WITHOUT it": replace("on_validation_end", (("val_loss", "float"),)),
        "must hold at least 'loss'": replace("on_batch_end", (("acc", "jax.Array"),)),
    }
    for expected, record in cases.items():
        messages = [v.expected for v in _errors(check_events(record, [plan]))]
        assert any(expected in m for m in messages), (expected, messages)


def test_status_is_checked_when_recorded() -> None:
    events, plan = _plain()
    events[-1] = Event(hook="on_train_end", status="failed")
    found = _only_error(events, [plan])
    assert "trainer.status must be 'completed'" in found.expected


def test_non_int_numbers_and_non_dict_logs() -> None:
    events, plan = _plain()
    events[1] = Event(hook="on_epoch_begin", number=0.0)
    assert "Python int" in _only_error(events, [plan]).expected
    events, plan = _plain()
    events[3] = Event(hook="on_batch_end", number=0, logs=None, logs_type="list")
    assert "must be a dict" in _only_error(events, [plan]).expected


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"epochs": -1}, "FitPlan.epochs"),
        ({"epochs": 1, "stop": Trigger(hook="on_train_end", occurrence=0)}, "FitPlan.stop"),
        ({"epochs": 1, "data_failure": -2}, "FitPlan.data_failure"),
    ],
)
def test_plan_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        FitPlan(**kwargs)  # type: ignore[arg-type]  # deliberately bad values  # ty: ignore[invalid-argument-type]


def test_trigger_validation() -> None:
    with pytest.raises(ValueError, match=r"Trigger\.occurrence"):
        Trigger(hook="on_batch_end", occurrence=-1)
    with pytest.raises(ValueError, match=r"Trigger\.hook"):
        Trigger(hook="on_step", occurrence=0)  # type: ignore[arg-type]  # deliberately bad  # ty: ignore[invalid-argument-type]


def _with(event: Event, **changes: object) -> Event:
    return dataclasses.replace(event, **changes)  # type: ignore[arg-type]  # test helper


def test_log_rules_still_apply_after_a_structural_error() -> None:
    events, plan = _plain(epochs=2)
    events[1] = Event(hook="on_epoch_begin", number=1)  # structural: epochs from 1
    later = max(i for i, e in enumerate(events) if e.hook == "on_batch_end")
    events[later] = _with(events[later], logs=(("loss", "jax.Array[shape (4,)]"),))
    found = _errors(check_events(events, [plan]))
    assert any("numbered from 0" in v.expected for v in found)
    (shape,) = [v for v in found if "shape (4,)" in v.expected]
    assert shape.index == later


def test_one_validation_pair_per_epoch() -> None:
    events, plan = _plain(validation=True)
    at = next(i for i, e in enumerate(events) if e.hook == "on_validation_begin")
    events[at:at] = events[at : at + 2]
    found = _only_error(events, [plan])
    assert "exactly one validation pair per epoch" in found.expected
    assert found.index == at + 2


def test_epoch_loss_lies_within_its_batch_losses() -> None:
    events, plan = _plain(batches=3)
    end = next(i for i, e in enumerate(events) if e.hook == "on_epoch_end")
    mean = _with(events[end], values=(("loss", 2.0),), batch_losses=(1.0, 2.0, 3.0))
    events[end] = mean
    assert check_events(events, [plan]) == []
    events[end] = _with(mean, values=(("loss", 6.0),))
    found = _only_error(events, [plan])
    assert "outside the range [1.0, 3.0] of the 3 batch-log losses" in found.expected
    events[end] = _with(mean, values=(("loss", 6.0),), batch_losses=(1.0, 2.0))
    assert check_events(events, [plan]) == [], "an epoch not fully observed is not judged"


def test_val_values_equal_the_validation_logs_and_none_go_stale() -> None:
    events, plan = _plain(validation=True)
    val = next(i for i, e in enumerate(events) if e.hook == "on_validation_end")
    end = next(i for i, e in enumerate(events) if e.hook == "on_epoch_end")
    events[val] = _with(events[val], values=(("loss", 0.5),))
    events[end] = _with(events[end], values=(("loss", 1.0), ("val_loss", 0.5)))
    assert check_events(events, [plan]) == []
    events[end] = _with(events[end], values=(("loss", 1.0), ("val_loss", 0.25)))
    assert "into the epoch logs unchanged" in _only_error(events, [plan]).expected
    plain, fit = _plain()
    end = next(i for i, e in enumerate(plain) if e.hook == "on_epoch_end")
    plain[end] = _with(plain[end], logs=(("loss", "float"), ("val_loss", "float")))
    assert "although this epoch ran no validation" in _only_error(plain, [fit]).expected


def test_logs_must_be_a_dict_and_the_batch_loss_a_scalar() -> None:
    events, plan = _plain()
    events[3] = _with(events[3], logs_dict=False, logs_type="types.MappingProxyType")
    assert "a Mapping that is not a dict" in _only_error(events, [plan]).expected
    events, plan = _plain()
    events[3] = _with(events[3], logs=(("loss", "jax.Array[shape (4,)]"),))
    assert "as a device scalar (a jax.Array of shape ())" in _only_error(events, [plan]).expected
    events[3] = _with(events[3], logs=(("loss", "jax.Array"), ("grads", "jax.Array[shape (4,)]")))
    # Issue 25 (a deliberate change): every batch-log value is a scalar, not only the loss.
    assert "logs['grads'] is a jax.Array[shape (4,)]" in _only_error(events, [plan]).expected


def test_unreadable_batch_logs_are_a_finding() -> None:
    events, plan = _plain()
    end = next(i for i, e in enumerate(events) if e.hook == "on_epoch_end")
    events[end] = _with(events[end], unreadable="on_batch_end(0) logs['loss'] could not be read")
    assert "stay readable" in _only_error(events, [plan]).expected


def test_int_epoch_logs_are_accepted_bools_are_not() -> None:
    events, plan = _plain()
    end = next(i for i, e in enumerate(events) if e.hook == "on_epoch_end")
    events[end] = _with(events[end], logs=(("loss", "float"), ("batches", "int")))
    assert check_events(events, [plan]) == []
    events[end] = _with(events[end], logs=(("loss", "float"), ("best", "bool")))
    assert "logs['best'] is a bool" in _only_error(events, [plan]).expected


def test_the_stop_request_is_named_by_how_it_was_made() -> None:
    events = ideal_record([FitPlan(epochs=2)], 2)
    stop = Trigger(hook="on_batch_end", occurrence=0)
    flag = _only_error(events, [FitPlan(epochs=2, stop=stop, stop_via="flag")])
    assert "by setting trainer.stop_training = True" in flag.expected
    requester = _only_error(events, [FitPlan(epochs=2, stop=stop)])
    assert "by a StopRequester callback" in requester.expected


def test_a_resumed_fit_may_begin_inside_an_epoch() -> None:
    """A fit resumed from a mid-epoch checkpoint: ``on_epoch_begin(1)``, then step 5 on."""
    events = [
        Event(hook="on_train_begin"),
        Event(hook="on_epoch_begin", number=1),
        Event(hook="on_batch_begin", number=5),
        Event(hook="on_batch_end", number=5, logs=(("loss", "jax.Array"),), logs_type="dict"),
        Event(hook="on_epoch_end", number=1, logs=(("loss", "float"),), logs_type="dict"),
        Event(hook="on_train_end", status="completed"),
    ]
    resumed = FitPlan(epochs=1, resumed_at=(1, 5))
    assert _errors(check_events(events, [resumed])) == []
    found = _only_error(events, [FitPlan(epochs=1)])
    assert "numbered from 0 (or the resumed epoch)" in found.expected
    with pytest.raises(ValueError, match="resumed_at"):
        FitPlan(epochs=1, resumed_at=(-1, 0))


def test_a_preempted_run_may_end_after_a_later_batch_with_status_preempted() -> None:
    events, _ = _plain(epochs=2, batches=3)
    cut = next(i for i, e in enumerate(events) if e.hook == "on_batch_end" and e.number == 2)
    preempted = [*events[: cut + 1], Event(hook="on_train_end", status="preempted")]
    plan = FitPlan(epochs=2, preempt=Trigger(hook="on_batch_end", occurrence=1))
    assert _errors(check_events(preempted, [plan])) == []
    # Only after a notice, and then only with status "preempted".
    found = _only_error(preempted, [FitPlan(epochs=2)])
    assert "inside epoch 0 the contract expects one of" in found.expected
    wrong = [*preempted[:-1], Event(hook="on_train_end", status="stopped")]
    found = _only_error(wrong, [plan])
    assert "trainer.status must be 'preempted'" in found.expected
    with pytest.raises(ValueError, match="preempt"):
        FitPlan(epochs=1, preempt=Trigger(hook="on_batch_begin", occurrence=0))


def test_a_preflight_pass_is_optional_once_per_fit_before_on_train_begin() -> None:
    plans = [FitPlan(epochs=1), FitPlan(epochs=1)]
    events = ideal_record(plans, 2)
    preflight = Event(hook="preflight")
    second = [i for i, event in enumerate(events) if event.hook == "on_train_begin"][1]
    with_preflight = [preflight, *events[:second], preflight, *events[second:]]
    assert check_events(with_preflight, plans) == []
    assert check_events([preflight, *events], plans) == []  # a trainer may call it or not
    twice = _only_error([preflight, preflight, *events], plans)
    assert twice.index == 1
    assert "preflight pass comes once per fit, before on_train_begin" in twice.expected
    late = _only_error([events[0], preflight, *events[1:]], plans)
    assert late.index == 1
    assert "preflight pass comes once per fit, before on_train_begin" in late.expected
    trailing = _only_error([*events, preflight], plans)
    assert "nothing may follow the on_train_end" in trailing.expected
