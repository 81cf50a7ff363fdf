"""The pytest plugin (via a pytest subprocess) and the command line (incl. --static)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from artifex.generative_models.training.conformance import SCENARIOS
from artifex.generative_models.training.conformance.__main__ import main
from artifex.generative_models.training.conformance.static import check_static

ROOT = Path(__file__).resolve().parents[3]
MODULE = "artifex.generative_models.training.conformance"

SUITES = """
import pytest

from artifex.generative_models.training.conformance.pytest_plugin import (
    TrainerConformanceSuite,
)
from tests.training.conformance.broken_trainers import BrokenHarness, PlainHarness


class TestGood(TrainerConformanceSuite):
    @pytest.fixture
    def harness(self):
        return BrokenHarness("none")


class TestEpochsFromOne(TrainerConformanceSuite):
    scenarios = ["plain_run", "zero_epochs"]
    @pytest.fixture
    def harness(self):
        return BrokenHarness("epochs_from_1")


class TestPlain(TrainerConformanceSuite):
    scenarios = ["plain_run", "validation", "data_raises"]
    @pytest.fixture
    def harness(self):
        return PlainHarness()


class TestFloats(TrainerConformanceSuite):
    scenarios = ["plain_run"]
    @pytest.fixture
    def harness(self):
        return BrokenHarness("float_batch_logs")


class TestStrictFloats(TrainerConformanceSuite):
    scenarios = ["plain_run"]
    strict = True
    @pytest.fixture
    def harness(self):
        return BrokenHarness("float_batch_logs")


class TestExits(TrainerConformanceSuite):
    scenarios = ["plain_run"]
    @pytest.fixture
    def harness(self):
        return BrokenHarness("exits_on_error")


class TestExitsOnFailure(TrainerConformanceSuite):
    scenarios = ["callback_raises"]
    @pytest.fixture
    def harness(self):
        return BrokenHarness("exits_on_error")


class TestForgotTheFixture(TrainerConformanceSuite):
    scenarios = ["protocol"]
"""


UNKNOWN = """
from artifex.generative_models.training.conformance.pytest_plugin import (
    TrainerConformanceSuite,
)


class TestUnknownScenario(TrainerConformanceSuite):
    scenarios = ["plain_run", "warp_drive"]
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def test_plugin_is_a_pytest11_entry_point() -> None:
    found = [
        ep
        for ep in importlib.metadata.entry_points(group="pytest11")
        if ep.value == f"{MODULE}.pytest_plugin"
    ]
    assert found, "reinstall the package: the pytest11 entry point is missing"


def test_each_scenario_is_its_own_test(tmp_path: Path) -> None:
    (tmp_path / "test_suites.py").write_text(SUITES)
    (tmp_path / "test_unknown.py").write_text(UNKNOWN)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-v",
            "-p",
            "no:cacheprovider",
            "-W",
            "error",  # as this project's filterwarnings: a warning-only finding still passes
            "--conformance-max-examples",
            "3",
            "--continue-on-collection-errors",
            "test_suites.py",
            "test_unknown.py",
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = done.stdout + done.stderr
    outcome = dict(re.findall(r"test_suites\.py::(\S+) (PASSED|FAILED|SKIPPED|ERROR)", out))
    for scenario in SCENARIOS:
        assert outcome[f"TestGood::test_conformance[{scenario}]"] == "PASSED", out
    assert outcome["TestFloats::test_conformance[plain_run]"] == "PASSED", out
    assert outcome["TestForgotTheFixture::test_conformance[protocol]"] == "ERROR", out
    assert sum(name.startswith("TestPlain::") for name in outcome) == 3
    assert "TestUnknownScenario.scenarios has unknown names ['warp_drive']" in out
    assert outcome["TestEpochsFromOne::test_conformance[plain_run]"] == "FAILED"
    assert outcome["TestEpochsFromOne::test_conformance[zero_epochs]"] == "PASSED"
    assert outcome["TestPlain::test_conformance[validation]"] == "SKIPPED"
    assert outcome["TestPlain::test_conformance[plain_run]"] == "PASSED"
    assert "on_epoch_begin got epoch 1; epochs are numbered from 0" in out
    assert "ConformanceWarning" in out
    assert "synced the device every step" in out
    assert "must define a `harness` fixture" in out
    assert outcome["TestStrictFloats::test_conformance[plain_run]"] == "FAILED"
    assert outcome["TestExits::test_conformance[plain_run]"] == "PASSED"
    assert outcome["TestExitsOnFailure::test_conformance[callback_raises]"] == "FAILED"
    assert "raised SystemExit(1)" in out
    assert not (tmp_path / ".hypothesis").exists(), "the property scenario wrote a database"
    assert done.returncode == 1


def test_cli_subprocess_reports_and_exits_non_zero_on_violations() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            MODULE,
            "tests.training.conformance.broken_trainers:epochs_from_one",
            "--scenario",
            "plain_run",
            "--scenario",
            "zero_epochs",
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "FAILED  plain_run" in done.stdout
    assert "passed  zero_epochs" in done.stdout
    assert "on_epoch_begin got epoch 1" in done.stdout
    assert "NOT CONFORMING: 1 error(s)" in done.stdout


def test_cli_minimal_trainer_passes_with_static_check(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["examples.minimal_trainer:MinimalHarness", "--static", "--scenario", "protocol"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "OK: 0 error(s), 0 warning(s)." in out
    assert "Static check (mypy on a generated file): OK" in out


def test_cli_static_check_rejects_a_build_typed_object(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        [
            "tests.training.conformance.broken_trainers:UntypedBuildHarness",
            "--scenario",
            "zero_epochs",
            "--static",
        ]
    )
    out = capsys.readouterr().out
    assert status == 1, out
    assert "OK: 0 error(s)" in out  # it runs fine: only the types are wrong
    assert "Static check (mypy on a generated file): FAILED" in out
    assert 'variable has type "TrainerLike"' in out


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_xyz:Harness", "No module named 'no_such_module_xyz'"),
        ("examples.minimal_trainer:Nope", "Nope"),
        ("examples.minimal_trainer", "expected 'pkg.module:HarnessFactory'"),
        ("examples.minimal_trainer:make_batches", "calling examples.minimal_trainer:make_batches"),
        ("collections:OrderedDict", "gave a OrderedDict, not a TrainerHarness"),
        ("sys:exit", "calling sys:exit() to get the harness raised SystemExit("),
        ("builtins:exit", "calling builtins:exit() to get the harness raised SystemExit("),
        ("tests.training.conformance._interrupting_factory:harness", "KeyboardInterrupt()"),
        ("tests.training.conformance._exits_on_import:Harness", "importing tests.training"),
    ],
)
def test_cli_bad_targets_exit_2(
    target: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([target]) == 2
    assert message in capsys.readouterr().err


def test_cli_agrees_with_the_plugin_on_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    target = "tests.training.conformance.broken_trainers:float_logs"
    assert main([target, "--scenario", "plain_run"]) == 0
    assert "OK: 0 error(s), 1 warning(s)." in capsys.readouterr().out
    assert main([target, "--scenario", "plain_run", "--strict"]) == 1


def test_cli_reports_a_system_exit_and_stops_on_a_real_ctrl_c(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["tests.training.conformance.broken_trainers:ExitingHarness"])
    out = capsys.readouterr().out
    assert status == 1, out
    assert "raised SystemExit(3)" in out
    assert main(["tests.training.conformance.broken_trainers:InterruptedHarness"]) == 130
    captured = capsys.readouterr()
    assert "interrupted" in captured.err
    assert captured.out == ""


UNTYPED = """
from examples.minimal_trainer import MinimalHarness


class Untyped:
    def build(self, callbacks):
        return object()

    def fit(self, trainer, epochs):
        MinimalHarness().fit(MinimalHarness().build([]), epochs)
"""

HIDDEN = """
from collections.abc import Sequence

from artifex.generative_models.training.callbacks import TrainingCallback
from hidden_trainer_xyz import Trainer


class Hidden:
    def build(self, callbacks: Sequence[TrainingCallback]) -> Trainer:
        return Trainer()

    def fit(self, trainer: Trainer, epochs: int) -> None:
        pass
"""


UNANNOTATED_HIDDEN = """
from hidden_trainer_xyz import Trainer


class UnannotatedHidden:
    def build(self, callbacks):
        return Trainer()

    def fit(self, trainer: Trainer, epochs: int) -> None:
        pass
"""


def test_static_check_blames_an_unannotated_build_before_unresolved_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "unannotated_hidden_xyz.py").write_text(UNANNOTATED_HIDDEN)
    hidden = tmp_path / "elsewhere"
    hidden.mkdir()
    (hidden / "hidden_trainer_xyz.py").write_text("class Trainer:\n    model = None\n")
    monkeypatch.syspath_prepend(str(hidden))
    monkeypatch.syspath_prepend(str(tmp_path))
    found = check_static("unannotated_hidden_xyz:UnannotatedHidden")
    assert not found.ok, found.output
    assert "build() returns Any to mypy (it has no return annotation)" in found.output
    assert "the trainer type is unresolved" not in found.output


def test_static_check_rejects_what_mypy_sees_as_any(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "untyped_harness_xyz.py").write_text(UNTYPED)
    (tmp_path / "hidden_harness_xyz.py").write_text(HIDDEN)
    hidden = tmp_path / "elsewhere"
    hidden.mkdir()
    (hidden / "hidden_trainer_xyz.py").write_text("class Trainer:\n    model = None\n")
    monkeypatch.syspath_prepend(str(hidden))
    monkeypatch.syspath_prepend(str(tmp_path))
    untyped = check_static("untyped_harness_xyz:Untyped")
    assert not untyped.ok, untyped.output
    assert "build() returns Any" in untyped.output
    hidden_check = check_static("hidden_harness_xyz:Hidden")
    assert not hidden_check.ok, hidden_check.output
    assert "the trainer type is unresolved" in hidden_check.output
    assert "mypy cannot find hidden_trainer_xyz" in hidden_check.output


def test_static_check_explains_a_list_typed_build(capsys: pytest.CaptureFixture[str]) -> None:
    target = "tests.training.conformance.broken_trainers:ListBuildHarness"
    status = main([target, "--scenario", "zero_epochs", "--static"])
    out = capsys.readouterr().out
    assert status == 1, out
    assert "Static check (mypy on a generated file): FAILED" in out
    assert "build accepts any Sequence[TrainingCallback]" in out
