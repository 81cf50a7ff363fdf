"""ModelCheckpoint and restore_checkpoint on a global mesh: a 2-process job, and 1 process.

Each job runs ``_checkpoint_mp_script.py`` (beside this file; see its docstring) once; the tests
assert on what every process wrote to ``process-<index>.json`` and on the checkpoint
directories the job left behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from artifex.generative_models.training._checkpointing._format import MARKER_FILE
from artifex.generative_models.training._checkpointing._integrity import unseal
from artifex.generative_models.training.callbacks.model_checkpoint import CHECKPOINT_FORMAT
from tests._distributed import Finished, run_job
from tests.training.callbacks import _checkpoint_mp_script as script


@dataclass(frozen=True, slots=True)
class Job:
    processes: int
    workdir: Path
    finished: list[Finished]
    reports: list[dict[str, Any]]


@pytest.fixture(scope="module", params=[(2, 4), (1, 8)], ids=["2x4-devices", "1x8-devices"])
def job(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Job:
    processes, devices = request.param
    workdir = tmp_path_factory.mktemp(f"ckpt-{processes}x{devices}")
    finished = run_job(
        "tests.training.callbacks._checkpoint_mp_script",
        str(workdir),
        processes=processes,
        devices=devices,
        timeout=120.0,
    )
    reports = [
        json.loads((workdir / f"process-{index}.json").read_text()) for index in range(processes)
    ]
    return Job(processes, workdir, finished, reports)


def _expected_steps() -> list[int]:
    """The best TOP_K epochs by VAL_LOSS (lower is better) plus the last, as steps."""
    ranked = sorted(range(len(script.VAL_LOSS)), key=lambda e: (script.VAL_LOSS[e], e))
    kept = set(ranked[: script.TOP_K]) | {len(script.VAL_LOSS) - 1}
    return sorted((epoch + 1) * script.STEPS_PER_EPOCH for epoch in kept)


def _best_step() -> int:
    best = min(range(len(script.VAL_LOSS)), key=lambda e: (script.VAL_LOSS[e], e))
    return (best + 1) * script.STEPS_PER_EPOCH


def _step_dirs(path: Path) -> list[int]:
    return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit())


def test_every_process_reports_its_own_view_of_one_job(job: Job) -> None:
    assert [r["process_index"] for r in job.reports] == list(range(job.processes))
    for report in job.reports:
        assert report["process_count"] == job.processes
        assert report["device_count"] == 8
    for finished in job.finished:
        assert "Traceback" not in finished.stderr, finished.stderr[-4000:]


def test_checkpoint_directory_has_one_marker_and_the_kept_steps(job: Job) -> None:
    ckpt = job.workdir / "ckpt"
    assert _step_dirs(ckpt) == _expected_steps()
    others = sorted(p.name for p in ckpt.iterdir() if not p.name.isdigit())
    assert others == [MARKER_FILE]  # no second marker, no half-written temporary one
    marker = json.loads((ckpt / MARKER_FILE).read_text())
    content = unseal(marker, "the marker")  # process 0's, whole
    assert sorted(content) == ["ended", "format", "run"]
    assert content["format"] == CHECKPOINT_FORMAT
    assert content["ended"]["run"] == content["run"]  # how the run ended, for a rerun


def test_every_process_sees_the_same_retention_and_best(job: Job) -> None:
    for report in job.reports:
        assert report["saved_steps"] == _expected_steps()
        assert report["best_step"] == _best_step()
        assert report["steps_second_run"] == _expected_steps()
        assert report["best_step_second_run"] == _best_step()


def _check_global(described: dict[str, Any], spec: str, processes: int) -> None:
    assert described["values_match"], described
    assert described["same_sharding"], described
    assert described["spec"] == spec
    assert described["device_count"] == 8
    # In a 2-process job the restored arrays span both processes' devices.
    assert described["fully_addressable"] is (processes == 1)


def test_restore_into_a_trainer_keeps_its_global_shardings(job: Job) -> None:
    for report in job.reports:
        restored = report["restore_trainer"]
        assert sorted(int(step) for step in restored) == _expected_steps()
        for step_name, entry in restored.items():
            step = int(step_name)
            epoch = step // script.STEPS_PER_EPOCH - 1
            assert (entry["trainer_step"], entry["trainer_epoch"], entry["epoch"]) == (
                step,
                epoch,
                epoch,
            )
            assert entry["metrics"] == {"loss": 1.0, "val_loss": script.VAL_LOSS[epoch]}
            _check_global(entry["w"], "P()", job.processes)
            _check_global(entry["b"], "P('data',)", job.processes)


def test_restore_into_a_model_keeps_its_global_shardings(job: Job) -> None:
    for report in job.reports:
        entry = report["restore_model"]
        assert entry["step"] == _best_step()
        _check_global(entry["w"], "P()", job.processes)
        _check_global(entry["b"], "P('data',)", job.processes)


def test_restore_without_target_gives_each_process_local_arrays(job: Job) -> None:
    last = _expected_steps()[-1]
    for report in job.reports:
        entry = report["restore_none"]
        assert (entry["step"], entry["step_entry"]) == (last, last)
        assert entry["epoch_entry"] == last // script.STEPS_PER_EPOCH - 1
        for name, shape in (("w", script.W_SHAPE), ("b", script.B_SHAPE)):
            described = entry[name]
            assert described["values_match"], described
            assert described["shape"] == list(shape)
            assert described["fully_addressable"]
            assert described["local_only"]
            assert described["device_count"] == 1


def test_a_foreign_directory_is_refused_on_every_process_and_left_alone(job: Job) -> None:
    for report in job.reports:
        assert report["foreign_error"] is not None
        assert report["foreign_error"].startswith("FileExistsError: ")
        assert "foreign" in report["foreign_error"]
    foreign = job.workdir / "foreign"
    assert sorted(p.name for p in foreign.iterdir()) == ["precious.txt"]
    assert (foreign / "precious.txt").read_text() == "the user's own file\n"


def test_processes_with_different_logs_all_raise_and_save_nothing(job: Job) -> None:
    for report in job.reports:
        if job.processes == 1:
            assert report["disagree_error"] is None
            assert report["disagree_steps"] == [len(script.VAL_LOSS) * script.STEPS_PER_EPOCH]
        else:
            assert report["disagree_error"].startswith("RuntimeError: ")
            assert "disagree" in report["disagree_error"]
            assert "process 1: step 50, score 0.2" in report["disagree_error"]
            assert report["disagree_steps"] == []
    if job.processes > 1:
        assert _step_dirs(job.workdir / "disagree") == []


def test_a_failure_on_one_process_is_raised_on_every_process(job: Job) -> None:
    last = job.processes - 1
    for index, report in enumerate(job.reports):
        error = report["strict_error"]
        if index == last:
            assert error.startswith("KeyError: ")
            assert "val_loss" in error
        else:
            assert error.startswith("RuntimeError: ")
            assert f"process(es) [{last}]" in error
        assert report["strict_steps"] == []
    assert _step_dirs(job.workdir / "strict") == []
