from __future__ import annotations

import csv
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx

from artifex.generative_models.training import Trainer
from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    CSVLogger,
    CSVLoggerConfig,
    LambdaCallback,
    ModelCheckpoint,
    TrainingCallback,
)
from tests.training.callbacks._stubs import ModelOnlyTrainer, drive


def _rows(path: Path, sep: str = ",") -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file, delimiter=sep))


def _header(path: Path) -> list[str]:
    with path.open(newline="") as file:
        return next(csv.reader(file))


def test_one_row_per_epoch_with_widening_header(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "train.csv"
    cb = CSVLogger(filename=path)
    trainer = ModelOnlyTrainer()
    cb.on_train_begin(trainer)
    assert cb.path == path.resolve()
    cb.on_epoch_end(trainer, 0, {"loss": 0.5})
    cb.on_epoch_end(trainer, 1, {"loss": 0.25, "val_loss": 0.75, "tag": "x"})
    cb.on_epoch_end(trainer, 2, {"val_loss": 0.1})
    text = path.read_text()
    assert text.splitlines()[0] == "epoch,loss,val_loss"
    assert _rows(path) == [
        {"epoch": "0", "loss": "0.5", "val_loss": ""},
        {"epoch": "1", "loss": "0.25", "val_loss": "0.75"},
        {"epoch": "2", "loss": "", "val_loss": "0.1"},
    ]
    assert not [p for p in path.parent.iterdir() if p.name != "train.csv"]  # no temp left


def test_appends_on_resume_and_keeps_columns(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    drive(ModelOnlyTrainer(), [CSVLogger(filename=path)], [[1.0], [2.0]])
    # a new process resumes at epoch 2 with a new logger instance
    drive(ModelOnlyTrainer(), [CSVLogger(filename=path)], [[3.0]], start_epoch=2)
    assert [(r["epoch"], r["loss"]) for r in _rows(path)] == [
        ("0", "1.0"),
        ("1", "2.0"),
        ("2", "3.0"),
    ]
    assert path.read_text().count("epoch") == 1


def test_append_false_truncates_once_and_separator(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("old\n")
    cb = CSVLogger(CSVLoggerConfig(filename=path, append=False, separator="\t"))
    drive(ModelOnlyTrainer(), [cb], [[1.0]])
    drive(ModelOnlyTrainer(), [cb], [[2.0]], start_epoch=1)
    assert path.read_text() == "epoch\tloss\n0\t1.0\n1\t2.0\n"


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="separator"):
        CSVLoggerConfig(filename=tmp_path / "a.csv", separator=";;")
    with pytest.raises(ValueError, match="filename"):
        CSVLoggerConfig(filename="")
    with pytest.raises(TypeError, match="not both"):
        CSVLogger(CSVLoggerConfig(), filename="x.csv")  # type: ignore[call-overload]  # the point  # ty: ignore[no-matching-overload]


def test_resume_moves_rows_after_the_checkpoint_aside(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    crashed = CSVLogger(filename=path)
    drive(ModelOnlyTrainer(), [crashed], [[1.0], [2.0]])
    saved = crashed.state_dict()  # the checkpoint of epoch 1
    assert saved == {"rows": 2}
    drive(ModelOnlyTrainer(), [crashed], [[3.0], [4.0]], start_epoch=2)  # then a crash
    for attempt in (1, 2):  # resumed from that checkpoint, twice
        resumed = CSVLogger(filename=path)
        assert resumed.state_key == "CSVLogger[train.csv]"
        resumed.load_state_dict(saved)
        drive(ModelOnlyTrainer(), [resumed], [[3.5], [4.5]], start_epoch=2)
        assert [(r["epoch"], r["loss"]) for r in _rows(path)] == [
            ("0", "1.0"),
            ("1", "2.0"),
            ("2", "3.5"),
            ("3", "4.5"),
        ]
        aside = _rows(path.with_name(f"train.csv.superseded-{attempt}"))
        expected = [("2", "3.0"), ("3", "4.0")] if attempt == 1 else [("2", "3.5"), ("3", "4.5")]
        assert [(r["epoch"], r["loss"]) for r in aside] == expected
    resumed = CSVLogger(filename=path)  # a checkpoint at the file's end moves nothing
    resumed.load_state_dict({"rows": 4})
    drive(ModelOnlyTrainer(), [resumed], [[5.0]], start_epoch=4)
    assert len(_rows(path)) == 5
    assert not path.with_name("train.csv.superseded-3").exists()


@pytest.mark.parametrize("rows", [-1, 1.5, True, "2"])
def test_bad_state_names_the_value(rows: object) -> None:
    with pytest.raises(ValueError, match=f"'rows' must be an int >= 0, got {rows!r}"):
        CSVLogger().load_state_dict({"rows": rows})


def test_formula_like_names_are_escaped_and_numbers_never(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    names = ['=HYPERLINK("http://x","y")', "+p", "-m", "@a", "'q"]
    first = CSVLogger(filename=path)
    trainer = ModelOnlyTrainer()
    first.on_train_begin(trainer)
    first.on_epoch_end(trainer, 0, {name: -1.5 for name in names})
    saved = first.state_dict()
    first.on_epoch_end(trainer, 1, {name: -2.5 for name in names})
    header = _header(path)
    assert header == ["epoch", *sorted(f"'{name}" for name in names)]
    assert all(row[f"'{n}"] in ("-1.5", "-2.5") for row in _rows(path) for n in names)
    # a resume reads the escaped header back: the same columns, negative values intact
    resumed = CSVLogger(filename=path)
    resumed.load_state_dict(saved)
    resumed.on_train_begin(trainer)
    resumed.on_epoch_end(trainer, 1, {name: -3.5 for name in names})
    assert _header(path) == header
    assert [row["'-m"] for row in _rows(path)] == ["-1.5", "-3.5"]
    aside = path.with_name("train.csv.superseded-1")
    assert _header(aside) == header
    assert [row["'-m"] for row in _rows(aside)] == ["-2.5"]


Batch = tuple[jax.Array, jax.Array]


def _mse(model: nnx.Linear, batch: Batch) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


_BATCHES: list[Batch] = [(jnp.full((2, 2), i, jnp.float32), jnp.ones((2, 1))) for i in range(2)]


def _trainer(*callbacks: TrainingCallback) -> Trainer[nnx.Linear]:
    return Trainer(nnx.Linear(2, 1, rngs=nnx.Rngs(0)), optax.sgd(0.01), _mse, callbacks=callbacks)


def test_a_refused_resume_leaves_the_log_untouched_and_a_later_resume_no_hole(
    tmp_path: Path,
) -> None:
    log, ck = tmp_path / "log.csv", tmp_path / "ck"

    def callbacks() -> tuple[CSVLogger, ModelCheckpoint]:
        return CSVLogger(filename=log), ModelCheckpoint(CheckpointConfig(dirpath=ck))

    _trainer(*callbacks()).fit(_BATCHES, epochs=3)  # checkpoints at steps 2, 4 and 6
    before = log.read_bytes()
    with pytest.raises(FileExistsError, match="up to step 6, beyond this run's step 2"):
        _trainer(*callbacks()).fit(_BATCHES, epochs=1, resume_from=ck / "2")
    assert log.read_bytes() == before  # ModelCheckpoint refused before CSVLogger moved rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "log.csv"]  # no .superseded-*
    _trainer(*callbacks()).fit(_BATCHES, epochs=1, resume_from=ck)
    assert [row["epoch"] for row in _rows(log)] == ["0", "1", "2", "3"]


def test_a_log_path_that_is_a_directory_refuses_the_run_before_any_begin(tmp_path: Path) -> None:
    touched = tmp_path / "touched"
    earlier = LambdaCallback(on_train_begin=lambda trainer: touched.write_text("begun"))
    (tmp_path / "log.csv").mkdir()
    with pytest.raises(IsADirectoryError, match=r"CSVLogger filename .*log\.csv.* is a directory"):
        _trainer(earlier, CSVLogger(filename=tmp_path / "log.csv")).fit(_BATCHES, epochs=1)
    assert not touched.exists()
    (tmp_path / "file").write_text("x")
    below = CSVLogger(filename=tmp_path / "file" / "sub" / "log.csv")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        below.preflight(ModelOnlyTrainer())
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        below.on_train_begin(ModelOnlyTrainer())  # the same checks, for trainers without preflight
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "log.csv"]
