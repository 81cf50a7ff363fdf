"""The multi-process mode: the scenarios in two local ``jax.distributed`` CPU processes.

Each check starts two fresh processes (a JAX job on a loopback port), so these tests
run a few scenarios with a small property budget, and only on the first Python of the
matrix (``one_python``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from artifex.generative_models.training.callbacks import TrainerLike, TrainingCallback
from artifex.generative_models.training.conformance import check_trainer
from artifex.generative_models.training.conformance.__main__ import main
from tests.training.conformance.test_reference_trainer import ReferenceHarness

pytestmark = pytest.mark.one_python

ROOT = Path(__file__).resolve().parents[3]
REFERENCE = "tests.training.conformance.test_reference_trainer:ReferenceHarness"
SCENARIOS = ["plain_run", "stop_at_batch_end", "callback_raises", "property"]


class SingleProcessHarness(ReferenceHarness):
    """The reference harness without the ``multi_process`` declaration."""

    multi_process = False


class UndeclaredHarness:
    """A harness with no ``multi_process`` attribute at all; it is never run."""

    def build(self, callbacks: Sequence[TrainingCallback]) -> NoReturn:
        raise AssertionError("an undeclared harness must not be built")

    def fit(self, trainer: TrainerLike, epochs: int) -> NoReturn:
        raise AssertionError("an undeclared harness must not be run")


def test_the_reference_trainer_passes_in_two_processes() -> None:
    report = check_trainer(REFERENCE, processes=2, scenarios=SCENARIOS, max_examples=3)
    assert report.ok, report.format()
    assert report.violations == (), report.format()
    assert [r.name for r in report.results] == [*SCENARIOS, "processes_agree"]
    assert all(r.outcome == "passed" for r in report.results), report.format()


def test_a_harness_without_the_declaration_is_not_applicable() -> None:
    report = check_trainer(UndeclaredHarness(), processes=2, scenarios=["plain_run"])
    assert [(r.name, r.outcome) for r in report.results] == [
        ("plain_run", "not applicable"),
        ("processes_agree", "not applicable"),
    ]
    assert "multi_process" in report.result("plain_run").detail
    assert report.ok


def test_an_import_name_without_the_declaration_is_not_applicable_on_the_cli(
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = "tests.training.conformance.test_multi_process:SingleProcessHarness"
    status = main([target, "--processes", "2", "--scenario", "plain_run"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "n/a     plain_run" in out
    assert "does not declare multi_process = True" in out


def test_a_local_harness_class_needs_an_import_name() -> None:
    class Local(ReferenceHarness):
        pass

    with pytest.raises(TypeError, match="import name"):
        check_trainer(Local(), processes=2)


def test_processes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="processes must be >= 1"):
        check_trainer(ReferenceHarness(), processes=0)


class UnagreedHarness(ReferenceHarness):
    """The reference Trainer without a mesh: its processes never agree on a stop."""

    def __init__(self) -> None:
        super().__init__()
        self.mesh = None


def test_a_stop_on_one_process_only_is_found() -> None:
    target = "tests.training.conformance.test_multi_process:UnagreedHarness"
    report = check_trainer(target, processes=2, scenarios=["plain_run"], max_examples=1)
    assert report.result("plain_run").outcome == "passed", report.format()
    agree = report.result("processes_agree")
    assert agree.outcome == "failed", report.format()
    [finding] = agree.violations
    assert "in the stop on process 0 run, process 1 saw" in finding.expected
    assert "must stop every process" in finding.expected


PLUGIN_SUITES = """
import pytest

from artifex.generative_models.training.conformance.pytest_plugin import (
    TrainerConformanceSuite,
)
from tests.training.conformance.test_multi_process import SingleProcessHarness
from tests.training.conformance.test_reference_trainer import ReferenceHarness


class TestReference(TrainerConformanceSuite):
    scenarios = ["stop_at_batch_end"]
    @pytest.fixture
    def harness(self):
        return ReferenceHarness()


class TestSingleProcess(TrainerConformanceSuite):
    scenarios = ["plain_run"]
    @pytest.fixture
    def harness(self):
        return SingleProcessHarness()
"""


def test_the_plugin_runs_each_scenario_in_two_processes(tmp_path: Path) -> None:
    (tmp_path / "test_suites.py").write_text(PLUGIN_SUITES)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    command = [sys.executable, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, "--conformance-processes", "2", "test_suites.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = done.stdout + done.stderr
    assert "TestReference::test_conformance[stop_at_batch_end] PASSED" in out, out
    assert "TestSingleProcess::test_conformance[plain_run] SKIPPED" in out, out
    assert "does not declare multi_process = True" in out, out
    assert done.returncode == 0, out


def test_a_crashing_process_fails_every_scenario_with_its_output() -> None:
    target = "tests.training.conformance._exits_on_import:harness"
    report = check_trainer(target, processes=2, scenarios=["plain_run", "zero_epochs"])
    assert [(r.name, r.outcome) for r in report.results] == [
        ("plain_run", "failed"),
        ("zero_epochs", "failed"),
        ("processes_agree", "failed"),
    ], report.format()
    assert "ended without a report" in report.format()
    assert "--- process 1 ---" in report.format()


def test_a_malformed_import_name_is_refused_before_any_process_starts() -> None:
    with pytest.raises(ValueError, match=r"'pkg\.module:HarnessFactory'"):
        check_trainer("no_colon_here", processes=2)
