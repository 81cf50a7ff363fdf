"""The scenarios: drive a trainer through a harness and check what it dispatches.

[`check_trainer`][] runs the scenarios of [`SCENARIOS`][] (their names and what
each checks, in order) against a [`TrainerHarness`][] and returns a
[`ConformanceReport`][]. A scenario builds a trainer with injected callbacks, runs
one or more ``fit`` calls, and checks the record with [`check_events`][], the
exceptions that reached the caller, and what the last callback saw during
``on_train_end``.

The pieces live in private modules: the harness protocols in ``_harness``, the report
in ``_report``, running and checking ``fit`` calls in ``_execute``, the scenarios in
``_fixed_scenarios`` (with every runner, in ``RUNNERS``) and ``_property_scenario``; the
scenario names in the JAX-free ``_scenario_table``; the rules in ``grammar``, ``_logs_rules``
and ``_state_rules``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from typing import Any

from artifex.generative_models.training.conformance._execute import (
    Context,
    NotApplicable,
    describe_exception,
    fault,
    is_real_interrupt,
)
from artifex.generative_models.training.conformance._fixed_scenarios import RUNNERS
from artifex.generative_models.training.conformance._harness import (
    FailingHarness,
    StreamingHarness,
    T,
    TrainerHarness,
    ValidatingHarness,
    load_harness,
)
from artifex.generative_models.training.conformance._processes import check_processes
from artifex.generative_models.training.conformance._property_scenario import private_storage
from artifex.generative_models.training.conformance._report import (
    ConformanceReport,
    Outcome,
    ScenarioResult,
)
from artifex.generative_models.training.conformance._scenario_table import SCENARIOS

__all__ = [
    "SCENARIOS",
    "ConformanceReport",
    "FailingHarness",
    "Outcome",
    "ScenarioResult",
    "StreamingHarness",
    "TrainerHarness",
    "ValidatingHarness",
    "check_trainer",
]


def _run_one(ctx: Context, name: str) -> ScenarioResult:
    began = time.perf_counter()
    try:
        found, detail = RUNNERS[name](ctx)
    except NotApplicable as why:
        seconds = time.perf_counter() - began
        return ScenarioResult(name=name, outcome="not applicable", detail=str(why), seconds=seconds)
    except BaseException as error:  # a SystemExit from the trainer is a finding too
        if is_real_interrupt(error):
            raise
        found = [fault(name, (), f"the scenario crashed: {describe_exception(error)}")]
        detail = ""
    failed = any(v.severity == "error" for v in found)
    return ScenarioResult(
        name=name,
        outcome="failed" if failed else "passed",
        violations=tuple(found),
        detail=detail,
        seconds=time.perf_counter() - began,
    )


def check_trainer(
    harness: TrainerHarness[T] | str,
    *,
    scenarios: Iterable[str] | None = None,
    max_examples: int = 20,
    example_database: str | os.PathLike[str] | None = None,
    keep_hypothesis_storage: bool = False,
    processes: int = 1,
) -> ConformanceReport:
    """Check that the trainer ``harness`` builds honours the callback contract.

    Runs the scenarios and reports; it raises nothing for a non-conforming trainer:
    any exception escaping the trainer, ``SystemExit`` included, is a finding. Only a
    real Ctrl-C (a ``KeyboardInterrupt`` the suite did not inject) gets through.

    Args:
        harness: Builds and runs your trainer, or the import name of its factory
            (``'pkg.module:HarnessFactory'``, as on the command line). Implementing
            [`ValidatingHarness`][], [`FailingHarness`][] and [`StreamingHarness`][] too
            enables the ``validation``, ``data_raises`` and ``steps_per_epoch`` scenarios;
            otherwise they are reported "not applicable".
        scenarios: The scenario names to run (keys of [`SCENARIOS`][]); all by
            default. The plain run always runs first, to learn how many batches an
            epoch holds; its findings are reported only if ``plain_run`` is selected.
        max_examples: How many runs the ``property`` scenario draws (it then shrinks a
            failing draw, within five times as many runs).
        example_database: A directory for Hypothesis's example database, to replay
            failing draws of the ``property`` scenario in later checks; by default
            none is used and nothing is written.
        keep_hypothesis_storage: Leave Hypothesis's storage directory as configured
            (its constants cache is written there, ``.hypothesis/`` in the working
            directory by default). By default the ``property`` scenario points it at a
            temporary directory, removed afterwards, and restores it: nothing is written
            outside a temporary directory. The pytest plugin keeps it, so that your own
            Hypothesis settings rule in your test session.
        processes: With 2 or more, run the scenarios in that many local
            ``jax.distributed`` CPU processes instead of this one, each loading the
            harness by its import name (a harness object's class, called without
            arguments), and check that every process sees the same events and that a
            stop asked for on process 0 only stops them all (the extra
            ``processes_agree`` result). A harness must declare ``multi_process =
            True`` for this; otherwise every scenario is "not applicable".

    Returns:
        The report: ``.ok``, ``.violations``, and ``.format()`` for a readable text.

    Raises:
        TypeError: If ``harness`` has no ``build`` and ``fit`` methods, or with
            ``processes > 1`` its class has no import name.
        ValueError: If a scenario name is unknown, ``max_examples`` or ``processes``
            is below 1, or an import name is not ``'pkg.module:HarnessFactory'``.
        ImportError: If the module of an import name cannot be found (in this process).
        AttributeError: If that module has no such attribute.
    """
    untrusted, chosen = _checked(harness, scenarios, max_examples=max_examples, processes=processes)
    began = time.perf_counter()
    if isinstance(untrusted, str) or processes > 1:  # _checked loads a str if processes == 1
        results = check_processes(
            untrusted, processes=processes, chosen=chosen, max_examples=max_examples
        )
    else:
        database = None if example_database is None else os.fspath(example_database)
        ctx = Context(harness=untrusted, max_examples=max_examples, example_database=database)
        results = _run_here(ctx, chosen, keep_hypothesis_storage=keep_hypothesis_storage)
    return ConformanceReport(
        harness=untrusted if isinstance(untrusted, str) else _describe_harness(untrusted),
        results=tuple(results),
        seconds=time.perf_counter() - began,
    )


def _checked(
    harness: TrainerHarness[T] | str,
    scenarios: Iterable[str] | None,
    *,
    max_examples: int,
    processes: int,
) -> tuple[TrainerHarness[Any] | str, list[str]]:
    """``check_trainer``'s refusals, in order; the harness (loaded if run here) and scenarios."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes!r}")
    untrusted: object = harness
    if isinstance(untrusted, str) and processes == 1:
        untrusted = load_harness(untrusted)
    if not isinstance(untrusted, str | TrainerHarness):
        raise TypeError(
            f"harness must be a TrainerHarness (with build(callbacks) and fit(trainer, "
            f"epochs) methods); got {type(harness).__qualname__} {harness!r}"
        )
    chosen = list(SCENARIOS) if scenarios is None else list(scenarios)
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; expected names from {list(SCENARIOS)}")
    if max_examples < 1:
        raise ValueError(f"max_examples must be >= 1, got {max_examples!r}")
    return untrusted, chosen


def _run_here(
    ctx: Context, chosen: list[str], *, keep_hypothesis_storage: bool
) -> list[ScenarioResult]:
    """Run the scenarios in this process, Hypothesis's storage private unless kept."""
    private = "property" in chosen and not keep_hypothesis_storage
    with private_storage() if private else contextlib.nullcontext():
        return _run_all(ctx, chosen)


def _run_all(ctx: Context, chosen: list[str]) -> list[ScenarioResult]:
    """Run the plain run, then each chosen scenario in order; each warning once."""
    plain = _run_one(ctx, "plain_run")
    results: list[ScenarioResult] = []
    warned: set[str] = set()
    for name in SCENARIOS:
        if name not in chosen:
            continue
        result = plain if name == "plain_run" else _run_one(ctx, name)
        kept = []
        for violation in result.violations:
            if violation.severity == "warning":
                if violation.expected in warned:
                    continue
                warned.add(violation.expected)
            kept.append(violation)
        results.append(
            ScenarioResult(
                name=result.name,
                outcome=result.outcome,
                violations=tuple(kept),
                detail=result.detail,
                seconds=result.seconds,
            )
        )
    return results


def _describe_harness(harness: object) -> str:
    kind = type(harness)
    return f"{kind.__module__}.{kind.__qualname__}"
