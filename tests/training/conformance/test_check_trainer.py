"""check_trainer end to end: broken trainers are rejected by name, good ones pass."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from examples.minimal_trainer import MinimalHarness
from flax import nnx

from artifex.generative_models.training.callbacks import TrainerLike, TrainerState, TrainingCallback
from artifex.generative_models.training.conformance import (
    SCENARIOS,
    ConformanceReport,
    ProbeError,
    ProbeInterrupt,
    ScenarioResult,
    check_trainer,
)
from artifex.generative_models.training.conformance._execute import is_real_interrupt
from artifex.generative_models.training.conformance._report import SLOW_SECONDS
from tests.training.conformance.broken_trainers import (
    BrokenHarness,
    ExitingHarness,
    Fault,
    InterruptedHarness,
    PlainHarness,
)

# fault -> (a scenario that must fail, a phrase its violation must contain)
MISTAKES: dict[Fault, tuple[str, str]] = {
    "forgets_validation_end": ("validation", "must be followed by on_validation_end"),
    "batch_end_off_by_one": ("plain_run", "on_batch_end got step 1 but its on_batch_begin got 0"),
    "skips_train_end_on_error": ("callback_raises", "expects on_train_end (teardown"),
    "swallows_exception": ("callback_raises", "returned normally, swallowing"),
    "ignores_stop": ("stop_at_batch_end", "a stop requested at on_batch_end"),
    "epoch_end_before_last_batch_end": (
        "plain_run",
        "on_batch_begin(2) must be followed by on_batch_end(2) (a batch pair); got on_epoch_end",
    ),
    "epochs_from_1": ("plain_run", "on_epoch_begin got epoch 1; epochs are numbered from 0"),
    "model_not_module": ("protocol", "trainer.model is a builtins.dict"),
    "wraps_exception": ("callback_raises", "raised RuntimeError('training failed')"),
    "status_always_completed": ("callback_raises", "trainer.status must be 'failed'"),
    # Issue 12: one per clause the suite checked late.
    "reversed_teardown": ("plain_run", "on_train_end reached the last registered callback"),
    "data_interrupt_stops_gracefully": ("data_raises", "although the data raises at batch 4"),
    "exits_on_error": ("callback_raises", "raised SystemExit(1)"),
    "keeps_stop_flag": ("stop_training_flag", "fit resets stop_training to False"),
    "checks_stop_before_batch": ("stop_at_last_batch", "no further batch pair and no validation"),
    "validates_twice": ("validation", "exactly one validation pair per epoch"),
    "cumulative_epoch_loss": ("plain_run", "outside the range"),
    "val_logs_differ": ("validation", "into the epoch logs unchanged"),
    "deletes_batch_logs": ("plain_run", "could no longer be read at on_epoch_end"),
    "stale_val_keys": ("stop_at_batch_end", "although this epoch ran no validation"),
    "vector_batch_loss": ("plain_run", "logs['loss'] is a jax.Array[shape (4,)]"),
    "mapping_logs": ("plain_run", "a Mapping that is not a dict"),
    "keeps_error": ("fit_after_failure", "although that run did not fail"),
    "reraises_copy": ("callback_raises", "a different object of the same type and message"),
    "reverses_callbacks": ("plain_run", "the dispatch order looks reversed"),
    # Issue 25: the trainer's state at every hook, the model, failures and stops combined.
    "step_lags_in_batch_end": ("plain_run", "during on_batch_end, trainer.step was 0"),
    "epoch_advanced_in_epoch_end": ("plain_run", "during on_epoch_end, trainer.epoch was 1"),
    "status_not_running": (
        "plain_run",
        "trainer.status was 'completed'; the contract expects 'running'",
    ),
    "examples_restart": ("fit_twice", "nothing changes the counters between two fit calls"),
    "examples_counted_at_begin": ("plain_run", "counts a step's examples by its on_batch_end"),
    "last_batch_always": ("plain_run", "yet a batch pair of the same epoch followed"),
    "keeps_stopped_by": ("stop_then_fit", "each fit starts with stopped_by None"),
    "restored_counters": ("plain_run", "build() returns a fresh trainer"),
    "status_kept_after_teardown_failure": ("callback_raises", "expects status 'failed' and error"),
    "model_copy_per_read": ("model", "trainer.model was another object than at on_train_begin"),
    "donates_model_read_at_batch_begin": ("model", "the model scenario's build or fit raised"),
    "model_written_back_after_fit": ("model", "were gone after fit returned"),
    "model_written_back_before_train_end": ("model", "other weights at on_train_end"),
    "epoch_logs_copied_per_callback": ("plain_run", "hands one dict from callback to callback"),
    "hooks_by_keyword": ("plain_run", "raised TypeError"),
    "readonly_view": ("plain_run", "got a _View as its trainer argument"),
    "stoppers_dispatched_last": ("plain_run", "in the order EventRecorder, OrderMark, the second"),
    "dedupes_callback_classes": (
        "plain_run",
        "registered: EventRecorder, OrderMark, StopAt, the second OrderMark",
    ),
    "data_exit_stops_gracefully": (
        "data_raises",
        "although the data raises at batch 4",
    ),
    "validation_interrupt_skips": ("callback_raises", "raised in on_validation_begin()"),
    "teardown_error_as_cause": ("callback_raises", "chained as its __cause__"),
    "teardown_error_dropped": ("callback_raises", "that error was dropped"),
    "teardown_interrupt_hides_failure": ("callback_raises", "hidden by raise ... from None"),
    "teardown_interrupt_dropped": (
        "callback_raises",
        "on_train_end #0') during the teardown of a failed run, and that error was dropped",
    ),
    "teardown_interrupt_cuts_short": (
        "callback_raises",
        "on_train_end did not reach the last registered callback",
    ),
    "preflight_interleaved": ("preflight_refusal", "before any on_train_begin"),
    "teardown_after_refusal": ("preflight_refusal", "the contract tears nothing down"),
    "latches_stop": ("stop_then_fit", "a stop request ends its own fit only"),
    "flag_reset_after_train_begin": ("stop_at_any_hook", "on_train_begin"),
    "stop_beats_failure": ("callback_raises", "trainer.status must be 'failed'; got 'stopped'"),
    "last_batch_epoch_loss": ("plain_run", "so any mean, weighted or not, is their plain mean"),
    "nan_dropped_from_mean": ("plain_run", "although a batch loss of that epoch was NaN"),
    "bool_batch_logs": ("plain_run", "logs['finite'] is a Python bool"),
    "frees_batch_metric": ("plain_run", "logs['scaled'] could no longer be read"),
    "vector_batch_metric": ("plain_run", "logs['per_example'] is a jax.Array[shape (4,)]"),
    "reuses_batch_logs_dict": ("plain_run", "was changed after its dispatch"),
    "mutates_epoch_logs": ("plain_run", "on_epoch_end(0, {loss: float}) was changed after"),
    "reuses_data_iterator": ("plain_run", "iterates one iterator for every epoch"),
    "planned_epochs_off_by_one": (
        "plain_run",
        "trainer.planned_epochs was 3; the contract expects 2",
    ),
    "plan_kept_from_first_fit": ("fit_twice", "the epoch this fit starts at (1) plus its"),
    "plan_set_after_train_begin": (
        "plain_run",
        "trainer.planned_epochs was None; the contract expects 2",
    ),
    "steps_per_epoch_counts_examples": ("plain_run", "len(train_data), the 3 batch pairs"),
    "plan_dropped_after_fit": ("plain_run", "the contract keeps the plan after a fit"),
    "plan_before_first_fit": ("plain_run", "before the first fit, trainer.planned_epochs was 0"),
}

# Correct but unusual trainers: the suite must accept each.
UNUSUAL: list[Fault] = [
    "ok_no_preflight",
    "ok_own_dispatch",
    "ok_extra_metrics",
    "ok_never_last_batch",
    "ok_counts_steps_as_examples",
    "ok_teardown_interrupt_takes_over",
]


@pytest.fixture(scope="module")
def reports() -> dict[Fault, ConformanceReport]:
    faults: list[Fault] = [
        "none",
        *MISTAKES,
        "float_batch_logs",
        "int_batch_counter",
        "int_epoch_logs",
        *UNUSUAL,
    ]
    return {fault: check_trainer(BrokenHarness(fault), max_examples=8) for fault in faults}


@pytest.mark.parametrize("fault", UNUSUAL)
def test_correct_but_unusual_trainers_conform(
    reports: dict[Fault, ConformanceReport], fault: Fault
) -> None:
    report = reports[fault]
    assert report.ok, report.format()
    assert report.errors == (), report.format()


def test_a_nan_batch_loss_makes_a_nan_epoch_mean_and_conforms() -> None:
    report = check_trainer(BrokenHarness("none", nan_batch=True), max_examples=4)
    assert report.ok, report.format()
    assert report.errors == ()


def test_the_unbroken_test_trainer_conforms(reports: dict[Fault, ConformanceReport]) -> None:
    report = reports["none"]
    assert report.ok, report.format()
    assert report.violations == ()
    assert [r.name for r in report.results] == list(SCENARIOS)
    assert all(r.outcome == "passed" for r in report.results)


@pytest.mark.parametrize("fault", list(MISTAKES))
def test_broken_trainer_is_rejected_naming_its_mistake(
    reports: dict[Fault, ConformanceReport], fault: Fault
) -> None:
    report = reports[fault]
    scenario, phrase = MISTAKES[fault]
    assert not report.ok
    assert report.result(scenario).outcome == "failed"
    named = [v for v in report.errors if v.scenario.startswith(scenario) and phrase in v.expected]
    assert named, report.format()
    assert "NOT CONFORMING" in report.format()


def test_teardown_skipping_is_caught_for_every_raising_hook(
    reports: dict[Fault, ConformanceReport],
) -> None:
    report = reports["skips_train_end_on_error"]
    scenarios = {v.scenario for v in report.errors}
    for hook in ("on_train_begin", "on_batch_end #1", "on_validation_end", "KeyboardInterrupt"):
        assert any(hook in s for s in scenarios), (hook, scenarios)


def test_swallowed_data_failure_is_named(reports: dict[Fault, ConformanceReport]) -> None:
    found = reports["swallows_exception"].result("data_raises").violations
    assert any("although the data raises at batch 4" in v.expected for v in found)


def test_ignored_stop_fails_every_stop_scenario(reports: dict[Fault, ConformanceReport]) -> None:
    report = reports["ignores_stop"]
    for name in ("stop_at_epoch_end", "stop_at_batch_end", "stop_training_flag"):
        assert report.result(name).outcome == "failed"


def test_property_scenario_shrinks_to_a_minimal_draw(
    reports: dict[Fault, ConformanceReport],
) -> None:
    result = reports["epochs_from_1"].result("property")
    assert result.outcome == "failed"
    assert result.detail == "minimal failing draw: fit(epochs=1)"
    assert all("[minimal failing draw: fit(epochs=1)]" in v.expected for v in result.violations)


def test_synced_batch_logs_are_a_warning_only(reports: dict[Fault, ConformanceReport]) -> None:
    report = reports["float_batch_logs"]
    assert report.ok
    assert report.errors == ()
    (warning,) = report.warnings  # reported once, not once per scenario
    assert warning.severity == "warning"
    assert "synced the device every step" in warning.expected
    assert "logs['loss'] is a float" in warning.expected
    assert "0 error(s), 1 warning(s)" in report.format()


def test_minimal_example_trainer_conforms() -> None:
    report = check_trainer(MinimalHarness(), max_examples=10)
    assert report.ok, report.format()
    assert report.violations == ()
    assert all(r.outcome == "passed" for r in report.results), report.format()


def test_missing_capabilities_are_not_applicable_not_passed() -> None:
    report = check_trainer(PlainHarness(), scenarios=["validation", "data_raises", "zero_epochs"])
    outcomes = {r.name: r.outcome for r in report.results}
    assert outcomes == {
        "zero_epochs": "passed",
        "validation": "not applicable",
        "data_raises": "not applicable",
    }
    assert "fit_validated" in report.result("validation").detail
    assert "n/a" in report.format()


class _CrashingHarness:
    def build(self, callbacks: Sequence[TrainingCallback]) -> TrainerLike:
        raise RuntimeError("no GPU here")

    def fit(self, trainer: TrainerLike, epochs: int) -> None:
        raise AssertionError("unreachable")


def test_a_crashing_harness_is_reported_not_raised() -> None:
    report = check_trainer(_CrashingHarness(), max_examples=2)
    assert not report.ok
    assert report.result("protocol").outcome == "failed"
    assert any("no GPU here" in v.expected for v in report.errors)


def test_bad_arguments_raise() -> None:
    with pytest.raises(TypeError, match="TrainerHarness"):
        check_trainer(object())  # type: ignore[arg-type]  # deliberately not a harness  # ty: ignore[invalid-argument-type]
    with pytest.raises(ValueError, match="unknown scenarios"):
        check_trainer(MinimalHarness(), scenarios=["plain_run", "nope"])
    with pytest.raises(ValueError, match="max_examples"):
        check_trainer(MinimalHarness(), max_examples=0)


def test_state_checks_apply_to_trainer_state_trainers(
    reports: dict[Fault, ConformanceReport],
) -> None:
    trainer = BrokenHarness("none").build([])
    assert isinstance(trainer, TrainerState)  # so the status/stopped_by/error checks ran
    stop = reports["status_always_completed"].result("stop_at_batch_end").violations
    assert any("trainer.status must be 'stopped'" in v.expected for v in stop)


def test_model_is_a_module_for_conforming_trainers() -> None:
    trainer = MinimalHarness().build([])
    assert isinstance(trainer, TrainerLike)
    assert isinstance(trainer.model, nnx.Module)


def test_format_reports_each_distinct_finding_once_with_its_scenarios(
    reports: dict[Fault, ConformanceReport],
) -> None:
    report = reports["epochs_from_1"]
    text = report.format()
    phrase = "on_epoch_begin got epoch 1; epochs are numbered from 0"
    found_in = {v.scenario for v in report.errors if phrase in v.expected}
    assert {"plain_run", "validation"} <= found_in
    assert text.count(phrase) < len([v for v in report.errors if phrase in v.expected])
    assert "(also found in: validation," in text
    assert "the same finding as in" not in text


def test_the_stop_request_in_play_is_named(reports: dict[Fault, ConformanceReport]) -> None:
    report = reports["ignores_stop"]
    flag = report.result("stop_training_flag").violations
    assert any("by setting trainer.stop_training = True" in v.expected for v in flag)
    requester = report.result("stop_at_batch_end").violations
    assert any("by a StopRequester callback" in v.expected for v in requester)


def test_host_numbers_are_worded_from_what_was_seen(
    reports: dict[Fault, ConformanceReport],
) -> None:
    report = reports["int_batch_counter"]
    assert report.ok, report.format()
    (warning,) = report.warnings
    assert "logs['batches'] is a Python int, a host value" in warning.expected
    assert "synced the device every step" not in warning.expected


def test_python_ints_in_epoch_logs_are_accepted(
    reports: dict[Fault, ConformanceReport],
) -> None:
    report = reports["int_epoch_logs"]
    assert report.ok, report.format()
    assert report.violations == ()


def test_a_real_ctrl_c_stops_the_check() -> None:
    with pytest.raises(KeyboardInterrupt):
        check_trainer(InterruptedHarness(), scenarios=["zero_epochs"])


def test_a_system_exit_from_the_trainer_is_a_finding() -> None:
    report = check_trainer(ExitingHarness(), scenarios=["plain_run", "zero_epochs"])
    assert not report.ok
    assert {r.outcome for r in report.results} == {"failed"}
    for result in report.results:
        assert any("raised SystemExit(3)" in v.expected for v in result.violations), result


def test_a_slow_check_names_its_total_time_and_slowest_scenario() -> None:
    quick = ScenarioResult(name="plain_run", outcome="passed", seconds=0.5)
    slow = ScenarioResult(name="property", outcome="passed", seconds=SLOW_SECONDS)
    text = ConformanceReport(harness="h", results=(quick, slow), seconds=SLOW_SECONDS + 1).format()
    assert f"took {SLOW_SECONDS + 1:.1f} s; the slowest scenario was property" in text
    assert "compile once" in text
    fast = ConformanceReport(harness="h", results=(quick,), seconds=0.5).format()
    assert "slowest" not in fast


def test_report_times_every_scenario(reports: dict[Fault, ConformanceReport]) -> None:
    report = reports["none"]
    assert all(r.seconds > 0 for r in report.results)
    assert report.seconds >= sum(r.seconds for r in report.results)


def test_property_scenario_writes_no_example_database_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    report = check_trainer(BrokenHarness("epochs_from_1"), scenarios=["property"], max_examples=3)
    assert report.result("property").outcome == "failed"
    assert list(tmp_path.iterdir()) == []
    database = tmp_path / "db"
    again = check_trainer(
        BrokenHarness("epochs_from_1"),
        scenarios=["property"],
        max_examples=3,
        example_database=database,
    )
    assert again.result("property").outcome == "failed"
    assert [p.name for p in tmp_path.iterdir()] == ["db"]
    assert any(p.is_file() for p in database.rglob("*"))


def _raised_from(cause: BaseException, error: BaseException) -> BaseException:
    try:
        raise error from cause
    except BaseException as caught:  # the very object, with its __cause__ set
        return caught


def test_a_ctrl_c_is_told_apart_by_the_injected_object() -> None:
    injected = ProbeInterrupt("injected")
    assert is_real_interrupt(KeyboardInterrupt())
    assert not is_real_interrupt(injected, [injected])
    assert not is_real_interrupt(ProbeInterrupt("a copy"), [injected])
    assert not is_real_interrupt(_raised_from(injected, KeyboardInterrupt("wrapped")), [injected])
    assert is_real_interrupt(_raised_from(ProbeError("other"), KeyboardInterrupt()), [injected])
    assert not is_real_interrupt(SystemExit(0))
    assert not is_real_interrupt(BaseExceptionGroup("both", [injected]), [injected])


@pytest.mark.parametrize(
    "fault", ["latches_stop", "keeps_stop_flag", "flag_reset_after_train_begin"]
)
def test_the_property_scenario_finds_a_latched_stop_within_its_default_budget(
    fault: Fault,
) -> None:
    report = check_trainer(BrokenHarness(fault), scenarios=["property"])
    result = report.result("property")
    assert result.outcome == "failed", report.format()
    assert result.detail.startswith("minimal failing draw: ")
