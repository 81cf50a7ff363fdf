"""WandbLogger against the real wandb, offline, read back with wandb's own .wandb reader."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import pytest

pytest.importorskip("wandb", reason="the [wandb] extra is not installed")

import wandb
from wandb.proto.wandb_internal_pb2 import Record
from wandb.sdk.internal.datastore import DataStore

from artifex.generative_models.training.callbacks import (
    WandbConfig,
    WandbLogger,
)
from tests._tmpfs import in_tmpfs, skip_unless_mountable
from tests.training.callbacks._stubs import FullTrainer, ModelOnlyTrainer, drive
from tests.training.callbacks._tracker_fit import tracker_fit


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Keep wandb offline, quiet and inside ``tmp_path`` (nothing reaches the network).

    wandb reads its environment once per process, at its first setup; ``teardown``
    after each test makes the next one read it again.
    """
    root = tmp_path / "wandb-home"
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONSOLE": "off",
        "WANDB_DISABLE_GIT": "true",
        "WANDB_DISABLE_CODE": "true",
        "WANDB_DIR": str(root),
        "WANDB_CONFIG_DIR": str(root / "config"),
        "WANDB_CACHE_DIR": str(root / "cache"),
        "WANDB_DATA_DIR": str(root / "data"),
    }.items():
        monkeypatch.setenv(name, value)
    yield root
    wandb.teardown()


def _records(path: Path) -> list[Record]:
    store = DataStore()
    store.open_for_scan(str(path))
    records: list[Record] = []
    try:
        while (data := store.scan_data()) is not None:
            record = Record()
            record.ParseFromString(data)
            records.append(record)
    finally:
        store.close()
    return records


def _runs(root: Path) -> list[list[Record]]:
    """The records of every offline run under ``root``, in the order they finished.

    ``run.finish`` may return before wandb's service has written the run's file;
    ``teardown`` waits for the service to exit, so the files are complete.
    """
    wandb.teardown()
    files = sorted(root.glob("wandb/offline-run-*/*.wandb"), key=lambda f: f.stat().st_mtime_ns)
    return [_records(f) for f in files]


def _history(records: list[Record]) -> list[tuple[int, dict[str, Any]]]:
    """Each history row: its step and the user's keys (not wandb's ``_`` keys)."""
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            values = {}
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                if not key.startswith("_"):
                    values[key] = json.loads(item.value_json)
            rows.append((record.history.step.num, values))
    return rows


def _one(records: list[Record], kind: str) -> Record:
    found = [r for r in records if r.WhichOneof("record_type") == kind]
    assert len(found) == 1, kind
    return found[0]


def test_run_fields_and_epoch_and_batch_scalars_at_the_global_step(offline_wandb: Path) -> None:
    cb = WandbLogger(
        project="proj",
        name="trial",
        tags=["a", "b"],
        config={"lr": 0.1, "depth": 2},
        log_every_n_steps=2,
    )
    drive(ModelOnlyTrainer(), [cb], [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    (records,) = _runs(offline_wandb)
    run = _one(records, "run").run
    assert (run.run_id, run.project, run.display_name) == (cb.run_id, "proj", "trial")
    assert list(run.tags) == ["a", "b"]
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert (config["lr"], config["depth"]) == (0.1, 2)
    assert _history(records) == [
        (2, {"batch/loss": 2.0}),  # batch s logs at s + 1 (steps done)
        (3, {"loss": 2.0, "epoch": 0.0}),
        (4, {"batch/loss": 4.0}),
        (6, {"batch/loss": 6.0, "loss": 5.0, "epoch": 1.0}),  # the epoch's last step
    ]
    assert _one(records, "exit").exit.exit_code == 0


def test_after_a_resume_each_offline_file_holds_each_step_once(
    tmp_path: Path, offline_wandb: Path
) -> None:
    # What docs/callbacks.md says W&B shows: offline, the resumed run is a second file
    # of the same id, each with its rows once; `wandb sync` (like an online run) keeps
    # the first value logged at a step, so the steps run again show the failed run's.
    cb = WandbLogger(log_every_n_steps=1)
    with pytest.raises(RuntimeError, match="failure at step 4"):
        tracker_fit(tmp_path, cb, epochs=2, fail_at_step=4)  # logged steps 1-5; saved 3
    again = WandbLogger(log_every_n_steps=1)
    tracker_fit(tmp_path, again, epochs=1, resume=True)  # steps 4-6 again
    failed, resumed = _runs(offline_wandb)
    assert [step for step, _ in _history(failed)] == [1, 2, 3, 4, 5]  # one row a step
    assert [step for step, _ in _history(resumed)] == [4, 5, 6]


def test_batch_logs_fetched_once_per_n_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unreadable:
        def __float__(self) -> float:
            raise AssertionError("a batch log was read between logging steps")

    fetches: list[object] = []
    real_get = jax.device_get

    def counting_get(tree: Any) -> Any:
        fetches.append(tree)
        return real_get(tree)

    monkeypatch.setattr(jax, "device_get", counting_get)
    cb = WandbLogger(log_every_n_steps=3)
    trainer = ModelOnlyTrainer()
    cb.on_train_begin(trainer)
    for step in range(6):
        logged = (step + 1) % 3 == 0
        value: object = jnp.float32(step) if logged else Unreadable()
        cb.on_batch_end(trainer, step, {"loss": value, "kl": value})
    cb.on_train_end(trainer)
    assert len(fetches) == 2  # steps 2 and 5, each one fetch of both keys
    assert all(isinstance(tree, dict) and set(tree) == {"loss", "kl"} for tree in fetches)


def test_failed_fit_marks_the_run_failed(offline_wandb: Path) -> None:
    trainer = FullTrainer()
    cb = WandbLogger()
    cb.on_train_begin(trainer)
    cb.on_epoch_end(trainer, 0, {"loss": 1.0})
    trainer.status = "failed"
    cb.on_train_end(trainer)
    (records,) = _runs(offline_wandb)
    assert _one(records, "exit").exit.exit_code == 1


def test_state_holds_the_run_id_and_a_restored_logger_reuses_it(offline_wandb: Path) -> None:
    first = WandbLogger()
    assert first.state_dict() == {"run_id": None}
    drive(ModelOnlyTrainer(), [first], [[1.0]])
    state = first.state_dict()
    assert state == {"run_id": first.run_id}
    resumed, fresh = WandbLogger(), WandbLogger()
    resumed.load_state_dict(state)
    drive(ModelOnlyTrainer(), [resumed], [[2.0]], start_step=1, start_epoch=1)
    drive(ModelOnlyTrainer(), [fresh], [[3.0]])
    ids = [_one(records, "run").run.run_id for records in _runs(offline_wandb)]
    assert ids[:2] == [first.run_id, first.run_id]  # offline: a new run file, the same id
    assert ids[2] == fresh.run_id != first.run_id


def test_end_to_end_with_the_reference_trainer_and_resume(
    tmp_path: Path, offline_wandb: Path
) -> None:
    cb = WandbLogger(project="e2e")
    with pytest.raises(RuntimeError, match="failure at step 4"):
        tracker_fit(tmp_path, cb, epochs=3, fail_at_step=4)  # epoch 0 checkpointed
    again = WandbLogger(project="e2e")
    _, logs = tracker_fit(tmp_path, again, epochs=2, resume=True)
    assert again.run_id == cb.run_id
    failed, resumed = _runs(offline_wandb)
    assert _one(failed, "exit").exit.exit_code == 1
    assert _one(resumed, "exit").exit.exit_code == 0
    assert _one(resumed, "run").run.run_id == cb.run_id
    assert [(step, row["epoch"]) for step, row in _history(resumed)] == [(6, 1.0), (9, 2.0)]
    assert [row["loss"] for _, row in _history(resumed)] == pytest.approx(
        [entry["loss"] for entry in logs]
    )


def test_disabled_mode_writes_nothing(offline_wandb: Path) -> None:
    cb = WandbLogger(mode="disabled", log_every_n_steps=1)
    drive(ModelOnlyTrainer(), [cb], [[1.0, 2.0]])
    assert _runs(offline_wandb) == []
    assert WandbLogger.process_scope == "main"  # one run, from process 0


def test_config_is_validated_and_frozen() -> None:
    with pytest.raises(ValueError, match="mode"):
        WandbConfig(mode="cloud")  # type: ignore[arg-type]  # a bad value, checked at run time  # ty: ignore[invalid-argument-type]
    with pytest.raises(TypeError, match="tags"):
        WandbConfig(tags="a")
    with pytest.raises(ValueError, match="project"):
        WandbConfig(project="")
    with pytest.raises(ValueError, match="config keys"):
        WandbConfig(config={1: 2})  # type: ignore[dict-item]  # a bad key, checked at run time  # ty: ignore[invalid-argument-type]
    with pytest.raises(ValueError, match="log_every_n_steps"):
        WandbConfig(log_every_n_steps=-1)
    hyper = {"lr": 0.1}
    config = WandbConfig(config=hyper, tags=["x"])
    hyper["lr"] = 1.0
    assert config.config == {"lr": 0.1}
    assert config.tags == ("x",)
    assert hash(config) == hash(WandbConfig(tags=["x"]))
    with pytest.raises(TypeError, match="either"):
        WandbLogger(config, project="p")  # type: ignore[call-overload]  # the point of the test  # ty: ignore[no-matching-overload]


def test_bad_state_is_refused() -> None:
    with pytest.raises(ValueError, match="run_id"):
        WandbLogger().load_state_dict({"run_id": 3})


def test_missing_wandb_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(ImportError, match=r"artifex-nnx-callbacks\[wandb\]"):
        WandbLogger().on_train_begin(ModelOnlyTrainer())


def test_a_dir_below_a_file_is_refused_in_preflight_creating_nothing(
    tmp_path: Path, offline_wandb: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cb = WandbLogger(dir=blocker / "runs")
    with pytest.raises(NotADirectoryError, match=r"WandbLogger dir .* is a file, not a folder"):
        cb.preflight(FullTrainer())
    with pytest.raises(NotADirectoryError):  # a trainer that does not call preflight
        cb.on_train_begin(FullTrainer())
    assert cb.run_id is None
    assert not offline_wandb.exists()


_FULL_DISK_FIT = """
import os, sys, warnings
from pathlib import Path
from artifex.generative_models.training.callbacks import LambdaCallback, WandbLogger
from tests.training.callbacks._stubs import ModelOnlyTrainer, drive

disk = Path(sys.argv[1])


def fill(_trainer):  # after wandb.init created the run's file: the disk fills up
    with (disk / "filler").open("wb", buffering=0) as filler:
        for size in (4096, 1):  # to the last byte
            try:
                while True:
                    filler.write(b"x" * size)
            except OSError:  # ENOSPC: full
                pass


with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    logger = WandbLogger(mode="offline", dir=disk)
    # More rows than the last page that the run's file already holds can take.
    epochs = [[float(epoch)] for epoch in range(300)]
    drive(ModelOnlyTrainer(), [logger, LambdaCallback(on_train_begin=fill)], epochs)
for warning in caught:
    print(warning.category.__name__, warning.message)
"""


@pytest.mark.one_python
def test_rows_lost_to_a_full_disk_are_named_not_silent(tmp_path: Path) -> None:
    # A small tmpfs in a private mount namespace (tests/_tmpfs.py).
    disk = tmp_path / "disk"
    disk.mkdir()
    skip_unless_mountable(disk, options="size=256k")
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path, str(root)])}
    run = subprocess.run(
        in_tmpfs(disk, sys.executable, "-c", _FULL_DISK_FIT, str(disk), options="size=256k"),
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=False,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "RuntimeWarning WandbLogger lost rows: the offline run file" in run.stdout
    found = re.search(r"holds at most (\d+) of the 300 epoch rows logged to it", run.stdout)
    assert found is not None, run.stdout
    assert int(found[1]) < 300
