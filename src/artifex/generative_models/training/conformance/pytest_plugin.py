"""pytest plugin: the conformance scenarios as tests of your own trainer.

Subclass [`TrainerConformanceSuite`][] in a test module (the subclass's name must
start with ``Test``) and give it a ``harness`` fixture; every scenario becomes its own
test, ``test_conformance[<scenario>]``::

    from artifex.generative_models.training.conformance.pytest_plugin import (
        TrainerConformanceSuite,
    )

    class TestMyTrainer(TrainerConformanceSuite):
        @pytest.fixture
        def harness(self) -> MyHarness:
            return MyHarness()

Set the class attribute ``scenarios`` to a list of names to run only those. A
violation fails the test with the readable report; a scenario the harness cannot
run is skipped. A warning-level finding passes, as the command line's exit status 0
does: it is emitted as a [`ConformanceWarning`][] (shown in pytest's warnings
summary) under its own ``"always"`` filter, so that even ``filterwarnings = error``
does not turn it into a failure. Set ``strict = True`` to make warnings fail the test
(the command line's ``--strict``). Set ``processes = 2`` (or pass
``--conformance-processes 2``) to run each scenario in two local ``jax.distributed`` CPU
processes (the command line's ``--processes``): the harness must declare
``multi_process = True`` and its class must be importable and callable without
arguments, since each process builds its own; an undeclared harness's tests are
skipped, and a disagreement between the processes fails the test. The plugin (a
``pytest11`` entry point) adds ``--conformance-max-examples`` and
``--conformance-processes``. It imports JAX only when a scenario runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from artifex.generative_models.training.conformance._scenario_table import SCENARIOS

if TYPE_CHECKING:
    from artifex.generative_models.training.conformance.scenarios import TrainerHarness

__all__ = ["ConformanceWarning", "TrainerConformanceSuite"]


class ConformanceWarning(UserWarning):
    """A warning-level conformance finding (allowed by the contract, but costly)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--conformance-max-examples`` and ``--conformance-processes``."""
    group = parser.getgroup("artifex-conformance", "trainer conformance suite")
    group.addoption(
        "--conformance-max-examples",
        type=int,
        default=None,
        help="how many runs the property scenario draws (default: the suite class's max_examples)",
    )
    group.addoption(
        "--conformance-processes",
        type=int,
        default=None,
        help="run each scenario in this many jax.distributed CPU processes (default: the "
        "suite class's processes)",
    )


class TrainerConformanceSuite:
    """Base class of a trainer's conformance tests: one test per scenario.

    Attributes:
        max_examples: How many runs the ``property`` scenario draws.
        scenarios: The scenarios to turn into tests; ``None`` (the default) for all.
        strict: Whether a warning-level finding fails the test (default: it passes,
            with a [`ConformanceWarning`][], whatever the warning filters).
        example_database: A directory for Hypothesis's example database (the
            ``property`` scenario); ``None`` (the default) for none.
        processes: How many local ``jax.distributed`` CPU processes run each scenario
            (default 1: this one); see the module docs.
    """

    max_examples: ClassVar[int] = 20
    scenarios: ClassVar[Sequence[str] | None] = None
    strict: ClassVar[bool] = False
    example_database: ClassVar[str | None] = None
    processes: ClassVar[int] = 1

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize ``test_conformance`` with the selected scenario names."""
        if "scenario" not in metafunc.fixturenames:
            return
        names = list(SCENARIOS) if self.scenarios is None else list(self.scenarios)
        unknown = [name for name in names if name not in SCENARIOS]
        if unknown:
            raise ValueError(
                f"{type(self).__qualname__}.scenarios has unknown names {unknown}; "
                f"expected names from {list(SCENARIOS)}"
            )
        metafunc.parametrize("scenario", names)

    @pytest.fixture
    def harness(self) -> TrainerHarness[Any]:
        """Override: return the harness that builds and runs your trainer."""
        pytest.fail(
            f"{type(self).__qualname__} must define a `harness` fixture returning your "
            "TrainerHarness",
            pytrace=False,
        )

    def test_conformance(
        self, harness: TrainerHarness[Any], scenario: str, request: pytest.FixtureRequest
    ) -> None:
        """Run one scenario against the harness."""
        from artifex.generative_models.training.conformance.scenarios import check_trainer

        option: int | None = request.config.getoption("conformance_max_examples", None)
        processes: int | None = request.config.getoption("conformance_processes", None)
        report = check_trainer(
            harness,
            scenarios=[scenario],
            max_examples=self.max_examples if option is None else option,
            example_database=self.example_database,
            keep_hypothesis_storage=True,  # your Hypothesis settings rule in your session
            processes=self.processes if processes is None else processes,
        )
        result = report.result(scenario)
        if result.outcome == "not applicable":
            pytest.skip(f"{scenario} not applicable: {result.detail}")
        if not report.ok or (self.strict and report.warnings):
            pytest.fail(report.format(), pytrace=False)
        with warnings.catch_warnings():
            # A warning passes, as on the command line, even under filterwarnings=error.
            warnings.simplefilter("always", ConformanceWarning)
            for finding in report.warnings:
                warnings.warn(ConformanceWarning(str(finding)), stacklevel=1)
