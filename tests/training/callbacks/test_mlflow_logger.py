"""MLflowLogger against the real mlflow, with a SQLite tracking store in a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from mlflow.tracking import MlflowClient

from artifex.generative_models.training.callbacks import (
    MLflowConfig,
    MLflowLogger,
)
from artifex.generative_models.training.trainer import Trainer
from tests._tmpfs import in_tmpfs, skip_unless_mountable
from tests.training.callbacks._stubs import FullTrainer, ModelOnlyTrainer, TinyModel, drive
from tests.training.callbacks._tracker_fit import tracker_fit

pytestmark = [
    # mlflow 3's SQL store configures its SQLAlchemy mappers at import, with the ``noload``
    # strategy that SQLAlchemy 2.1 deprecates; mlflow's to fix, harmless here.
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
    ),
]


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_params_once_and_metrics_at_the_global_step(tracking_uri: str) -> None:
    cb = MLflowLogger(
        tracking_uri=tracking_uri,
        experiment="steps",
        run_name="trial",
        params={"lr": 0.1, "depth": 2},
        tags={"team": "x"},
        log_every_n_steps=2,
    )
    drive(ModelOnlyTrainer(), [cb], [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert cb.run_id is not None
    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(cb.run_id)
    assert run.info.status == "FINISHED"
    assert MLflowLogger.process_scope == "main"  # one run, from process 0
    assert run.info.run_name == "trial"
    assert run.data.params == {"lr": "0.1", "depth": "2"}
    assert run.data.tags["team"] == "x"
    assert _history(client, cb.run_id, "loss") == [(3, 2.0), (6, 5.0)]
    assert _history(client, cb.run_id, "epoch") == [(3, 0.0), (6, 1.0)]
    assert _history(client, cb.run_id, "batch/loss") == [(2, 2.0), (4, 4.0), (6, 6.0)]


def test_failed_fit_ends_the_run_failed(tracking_uri: str) -> None:
    trainer = FullTrainer()
    cb = MLflowLogger(tracking_uri=tracking_uri, experiment="failed")
    cb.on_train_begin(trainer)
    trainer.status = "failed"
    cb.on_train_end(trainer)
    assert cb.run_id is not None
    assert MlflowClient(tracking_uri=tracking_uri).get_run(cb.run_id).info.status == "FAILED"


def test_a_restored_logger_continues_the_same_run(tracking_uri: str) -> None:
    first = MLflowLogger(tracking_uri=tracking_uri, experiment="resume", params={"lr": 0.1})
    drive(ModelOnlyTrainer(), [first], [[1.0]])
    resumed = MLflowLogger(tracking_uri=tracking_uri, experiment="resume", params={"lr": 0.2})
    resumed.load_state_dict(first.state_dict())
    trainer = FullTrainer()
    trainer.step = 1
    drive(trainer, [resumed], [[2.0]], start_step=1, start_epoch=1)
    run_id = first.run_id
    assert run_id is not None
    assert resumed.run_id == run_id
    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.1"}  # logged once, at the run's creation
    assert _history(client, run_id, "loss") == [(1, 1.0), (2, 2.0)]


def test_a_run_missing_from_the_store_is_a_clear_error(tracking_uri: str) -> None:
    cb = MLflowLogger(tracking_uri=tracking_uri, experiment="missing")
    cb.load_state_dict({"run_id": "0123456789abcdef"})
    with pytest.raises(ValueError, match="cannot resume the run '0123456789abcdef'"):
        cb.on_train_begin(ModelOnlyTrainer())


def test_end_to_end_with_the_reference_trainer_and_resume(
    tmp_path: Path, tracking_uri: str
) -> None:
    cb = MLflowLogger(tracking_uri=tracking_uri, experiment="e2e")
    with pytest.raises(RuntimeError, match="failure at step 4"):
        tracker_fit(tmp_path, cb, epochs=3, fail_at_step=4)  # epoch 0 checkpointed
    assert cb.run_id is not None
    client = MlflowClient(tracking_uri=tracking_uri)
    assert client.get_run(cb.run_id).info.status == "FAILED"
    again = MLflowLogger(tracking_uri=tracking_uri, experiment="e2e")
    _, logs = tracker_fit(tmp_path, again, epochs=2, resume=True)
    assert again.run_id == cb.run_id
    assert client.get_run(cb.run_id).info.status == "FINISHED"
    assert _history(client, cb.run_id, "epoch") == [(3, 0.0), (6, 1.0), (9, 2.0)]
    assert [value for _, value in _history(client, cb.run_id, "loss")][1:] == pytest.approx(
        [entry["loss"] for entry in logs]
    )


def test_after_a_resume_the_steps_run_again_hold_both_values(
    tmp_path: Path, tracking_uri: str
) -> None:
    # What docs/callbacks.md says MLflow shows: it cannot delete a metric's points, so
    # the steps the failed run logged past its checkpoint hold two values each.
    cb = MLflowLogger(tracking_uri=tracking_uri, experiment="twice", log_every_n_steps=1)
    with pytest.raises(RuntimeError, match="failure at step 4"):
        tracker_fit(tmp_path, cb, epochs=2, fail_at_step=4)  # logged steps 1-5; saved 3
    assert cb.run_id is not None
    client = MlflowClient(tracking_uri=tracking_uri)
    first = dict(_history(client, cb.run_id, "batch/loss"))
    assert sorted(first) == [1, 2, 3, 4, 5]
    again = MLflowLogger(tracking_uri=tracking_uri, experiment="twice", log_every_n_steps=1)
    tracker_fit(tmp_path, again, epochs=1, resume=True)  # steps 4-6 again
    steps = [step for step, _ in _history(client, cb.run_id, "batch/loss")]
    assert steps == [1, 2, 3, 4, 4, 5, 5, 6]
    assert _history(client, cb.run_id, "epoch") == [(3, 0.0), (6, 1.0)]  # epochs: once


def test_config_is_validated_and_frozen() -> None:
    with pytest.raises(ValueError, match="tracking_uri"):
        MLflowConfig(tracking_uri="")
    with pytest.raises(ValueError, match="experiment"):
        MLflowConfig(experiment="")
    with pytest.raises(TypeError, match="params"):
        MLflowConfig(params=[("lr", 0.1)])  # type: ignore[arg-type]  # checked at run time  # ty: ignore[invalid-argument-type]
    with pytest.raises(ValueError, match="tags values"):
        MLflowConfig(tags={"a": 1})  # type: ignore[dict-item]  # checked at run time  # ty: ignore[invalid-argument-type]
    with pytest.raises(ValueError, match="log_every_n_steps"):
        MLflowConfig(log_every_n_steps=-1)
    assert MLflowConfig().tracking_uri == "sqlite:///mlflow.db"
    assert hash(MLflowConfig(params={"lr": 0.1})) == hash(MLflowConfig())
    params = {"lr": 0.1}
    config = MLflowConfig(params=params)
    params["lr"] = 1.0
    assert config.params == {"lr": 0.1}
    with pytest.raises(TypeError, match="either"):
        MLflowLogger(config, experiment="x")  # type: ignore[call-overload]  # the point  # ty: ignore[no-matching-overload]


def test_bad_state_is_refused() -> None:
    with pytest.raises(ValueError, match="run_id"):
        MLflowLogger().load_state_dict({"run_id": ""})


def test_missing_mlflow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("mlflow", "mlflow.entities", "mlflow.tracking"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    with pytest.raises(ImportError, match=r"artifex-nnx-callbacks\[mlflow\]"):
        MLflowLogger().on_train_begin(ModelOnlyTrainer())


def _loss(model: TinyModel, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def _preflight_fit(tmp_path: Path, tracker: MLflowLogger) -> Trainer[TinyModel]:
    """A reference fit with a W&B logger (offline) first, then ``tracker``; it must refuse."""
    pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    from artifex.generative_models.training.callbacks import WandbLogger

    wandb_logger = WandbLogger(mode="offline", dir=tmp_path / "wandb")
    trainer = Trainer(
        TinyModel(nnx.Rngs(0)), optax.sgd(0.1), _loss, callbacks=[wandb_logger, tracker]
    )
    x = jnp.ones((4, 2))
    trainer.fit([(x, x[:, :1])], epochs=1)
    return trainer


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("bogus://store", r"cannot use tracking_uri 'bogus://store'"),
        ("http://127.0.0.1:9", r"cannot reach the tracking server .* within 3 s"),
        ("sqlite:///{tmp}/missing/mlflow.db", r"the folder '.*missing' of its SQLite database"),
    ],
)
def test_a_bad_store_refuses_the_run_before_any_tracker_creates_anything(
    tmp_path: Path, uri: str, message: str
) -> None:
    tracker = MLflowLogger(tracking_uri=uri.format(tmp=tmp_path), experiment="refused")
    with pytest.raises(ValueError, match=message) as info:
        _preflight_fit(tmp_path, tracker)
    assert str(info.value).startswith("MLflowLogger ")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no W&B run, no store, no file
    assert tracker.run_id is None


def test_a_sqlite_file_sqlite_cannot_read_is_refused_in_preflight(tmp_path: Path) -> None:
    database = tmp_path / "store" / "mlflow.db"
    database.parent.mkdir()
    database.write_bytes(b"not a database, " * 64)
    tracker = MLflowLogger(tracking_uri=f"sqlite:///{database}", experiment="damaged")
    with pytest.raises(ValueError, match=r"SQLite cannot read '.*mlflow.db' \(file is not a"):
        tracker.preflight(FullTrainer())  # at once: not after MLflow's ~100 s of retries
    assert database.read_bytes() == b"not a database, " * 64
    assert sorted(p.name for p in database.parent.iterdir()) == ["mlflow.db"]


_READ_ONLY_PREFLIGHT = """
import sys
from artifex.generative_models.training.callbacks import MLflowLogger
try:
    MLflowLogger().preflight(None)  # the default store: sqlite:///mlflow.db, here
except ValueError as error:
    print(error)
    sys.exit(3)
"""


@pytest.mark.one_python
def test_the_default_store_on_a_read_only_disk_is_refused_in_preflight(tmp_path: Path) -> None:
    # A read-only tmpfs in a private mount namespace (tests/_tmpfs.py).
    mount = tmp_path / "ro"
    mount.mkdir()
    skip_unless_mountable(mount, options="ro,size=1m")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", _READ_ONLY_PREFLIGHT]
    run = subprocess.run(
        in_tmpfs(mount, *command, options="ro,size=1m", enter=True),
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=90,  # a bound only; MLflow's own retries would take ~100 s after preflight
    )
    assert run.returncode == 3, run.stderr[-2000:]
    assert "MLflowLogger tracking_uri 'sqlite:///mlflow.db'" in run.stdout
    assert "cannot be written (a read-only file system, or no permission)" in run.stdout


def test_a_checkpointed_run_missing_from_the_store_is_refused_in_preflight(
    tmp_path: Path, tracking_uri: str
) -> None:
    tracker = MLflowLogger(tracking_uri=tracking_uri, experiment="missing")
    tracker.load_state_dict({"run_id": "0123456789abcdef"})
    with pytest.raises(ValueError, match="cannot resume the run '0123456789abcdef'"):
        _preflight_fit(tmp_path, tracker)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
