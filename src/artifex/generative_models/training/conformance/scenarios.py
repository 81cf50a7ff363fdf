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
    T,
    TrainerHarness,
    ValidatingHarness,
)
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
    harness: TrainerHarness[T],
    *,
    scenarios: Iterable[str] | None = None,
    max_examples: int = 20,
    example_database: str | os.PathLike[str] | None = None,
    keep_hypothesis_storage: bool = False,
) -> ConformanceReport:
    """Check that the trainer ``harness`` builds honours the callback contract.

    Runs the scenarios and reports; it raises nothing for a non-conforming trainer:
    any exception escaping the trainer, ``SystemExit`` included, is a finding. Only a
    real Ctrl-C (a ``KeyboardInterrupt`` the suite did not inject) gets through.

    Args:
        harness: Builds and runs your trainer. Implementing [`ValidatingHarness`][]
            and [`FailingHarness`][] too enables the ``validation`` and
            ``data_raises`` scenarios; otherwise they are reported "not applicable".
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

    Returns:
        The report: ``.ok``, ``.violations``, and ``.format()`` for a readable text.

    Raises:
        TypeError: If ``harness`` has no ``build`` and ``fit`` methods.
        ValueError: If a scenario name is unknown or ``max_examples`` is below 1.
    """
    untrusted: object = harness
    if not isinstance(untrusted, TrainerHarness):
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
    began = time.perf_counter()
    database = None if example_database is None else os.fspath(example_database)
    ctx = Context(harness=harness, max_examples=max_examples, example_database=database)
    private = "property" in chosen and not keep_hypothesis_storage
    with private_storage() if private else contextlib.nullcontext():
        results = _run_all(ctx, chosen)
    return ConformanceReport(
        harness=_describe_harness(harness),
        results=tuple(results),
        seconds=time.perf_counter() - began,
    )


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
