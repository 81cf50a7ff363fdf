"""``list_checkpoints`` and ``restore_checkpoint(step="best")``, read from a new process.

The listing reads each step's ``meta`` alone; "best" is retention's first by the recorded
monitor and mode (ties to the earlier step); a damaged step is listed as unreadable and
hides no other; disagreeing or missing monitors are refused.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from artifex.generative_models.training import ArrayBatcher, Trainer
from artifex.generative_models.training._checkpointing._integrity import seal, unseal
from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    LambdaCallback,
    ModelCheckpoint,
    list_checkpoints,
    restore_checkpoint,
)
from artifex.generative_models.training.trainer import Preempted
from tests.training.callbacks._stubs import FullTrainer, drive

_LIST = """
import json, sys
from dataclasses import asdict
from artifex.generative_models.training.callbacks import list_checkpoints
print(json.dumps([asdict(info) for info in list_checkpoints(sys.argv[1])]))
"""


def _loss(model: nnx.Linear, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


class _Fitted:
    """A fit with best-k and ``every_n_steps``, preempted inside its third epoch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.weights: dict[int, Any] = {}  # epoch -> the model's arrays at its end
        self.val_loss: dict[int, float] = {}
        x = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
        y = x.sum(axis=1, keepdims=True)
        self.checkpoint = ModelCheckpoint(
            dirpath=path, monitor="val_loss", save_top_k=2, every_n_steps=3, async_save=False
        )
        trainer = Trainer(
            nnx.Linear(2, 1, rngs=nnx.Rngs(0)),
            optax.sgd(0.05),
            _loss,
            callbacks=[
                LambdaCallback(on_epoch_end=self._record, on_batch_end=self._preempt),
                self.checkpoint,
            ],
        )
        with pytest.raises(Preempted):
            trainer.fit(
                ArrayBatcher((x[:32], y[:32]), batch_size=8), epochs=4, val_data=[(x[32:], y[32:])]
            )

    def _record(self, trainer: Any, epoch: int, logs: dict[str, Any] | None) -> None:
        assert logs is not None
        self.val_loss[epoch] = float(logs["val_loss"])
        self.weights[epoch] = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(trainer.model)))

    def _preempt(self, trainer: Any, batch: int, logs: dict[str, Any] | None) -> None:
        if trainer.step == 10:  # epoch 2, batch 1: the preemption save is mid-epoch
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> _Fitted:
    return _Fitted(tmp_path_factory.mktemp("listing") / "ck")


def _checkpoints(path: Path, **kwargs: Any) -> ModelCheckpoint:
    return ModelCheckpoint(CheckpointConfig(dirpath=path, async_save=False, **kwargs))


def _edit_meta(path: Path, step: int, **changes: object) -> None:
    """Rewrite a step's ``meta`` as if saved with ``changes`` (sealed again: not damage)."""
    file = path / str(step) / "meta" / "metadata"
    content = unseal(json.loads(file.read_text()), "meta")
    file.write_text(json.dumps(seal({**content, **changes})))


def test_a_new_process_lists_every_kind_with_epoch_and_metrics(fitted: _Fitted) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LIST, str(fitted.path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    listed = json.loads(done.stdout)
    assert listed == [asdict(info) for info in list_checkpoints(fitted.path)]
    steps = [entry["step"] for entry in listed]
    assert steps == list(fitted.checkpoint.saved_checkpoint_steps)
    kinds = {entry["step"]: entry["kind"] for entry in listed}
    assert set(kinds.values()) == {"best", "epoch_end", "mid_epoch"}
    assert [s for s, kind in kinds.items() if kind == "best"] == [
        fitted.checkpoint.best_checkpoint_step
    ]
    for entry in listed:
        assert (entry["monitor"], entry["mode"]) == ("val_loss", "min")
        if entry["kind"] == "mid_epoch":
            assert (entry["epoch"], entry["position"], entry["metrics"]) == (2, 2, {})
        else:
            assert entry["position"] is None
            assert entry["metrics"]["val_loss"] == pytest.approx(fitted.val_loss[entry["epoch"]])
    best = next(entry for entry in listed if entry["kind"] == "best")
    assert best["epoch"] == min(fitted.val_loss, key=fitted.val_loss.__getitem__)


def test_best_restores_the_best_epochs_weights(fitted: _Fitted) -> None:
    (best,) = [info for info in list_checkpoints(fitted.path) if info.kind == "best"]
    assert best.epoch is not None
    model = nnx.Linear(2, 1, rngs=nnx.Rngs(7))
    restored = restore_checkpoint(fitted.path, step="best", target=model)
    assert restored.step == best.step != restore_checkpoint(fitted.path).step
    expected = fitted.weights[best.epoch]
    got = nnx.to_pure_dict(nnx.state(model))
    for name in ("kernel", "bias"):
        np.testing.assert_array_equal(np.asarray(got[name]), expected[name])


def test_best_takes_the_recorded_mode_and_the_earlier_of_a_tie(tmp_path: Path) -> None:
    drive(
        FullTrainer(),
        [_checkpoints(tmp_path, monitor="val_loss", mode="max", save_top_k=-1)],
        [[1.0, 1.0]] * 4,
        val_losses=[0.5, 0.9, 0.9, float("nan")],
    )
    kinds = [(i.step, i.kind, i.mode) for i in list_checkpoints(tmp_path)]
    assert kinds == [
        (2, "epoch_end", "max"),
        (4, "best", "max"),
        (6, "epoch_end", "max"),
        (8, "epoch_end", "max"),
    ]
    assert restore_checkpoint(tmp_path, step="best").step == 4


def test_damaged_meta_is_listed_by_name_and_hides_no_other(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    drive(
        FullTrainer(),
        [_checkpoints(tmp_path, monitor="val_loss", save_top_k=3)],
        [[1.0, 1.0]] * 3,
        val_losses=[2.0, 1.0, 3.0],
    )
    (tmp_path / "4" / "meta" / "metadata").write_text('{"format": "artifex')
    listed = list_checkpoints(tmp_path)
    assert [(i.step, i.kind) for i in listed] == [(2, "best"), (4, "unreadable"), (6, "epoch_end")]
    damaged = listed[1]
    assert damaged.problem is not None
    assert "step 4" in damaged.problem
    assert str(tmp_path / "4" / "meta") in damaged.problem
    assert damaged.problem.startswith("checkpoint step 4")
    assert "damaged" in damaged.problem
    with caplog.at_level(logging.WARNING):
        assert restore_checkpoint(tmp_path, step="best").step == 2
    assert "not ranked for step='best'" in caplog.text
    assert "step 4" in caplog.text
    with pytest.raises(ValueError, match=r"step 4 .* is damaged: its 'meta' item") as caught:
        restore_checkpoint(tmp_path, step=4)
    assert not isinstance(caught.value, json.JSONDecodeError)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"format": "artifex-nnx-callbacks/checkpoint/9"}, r"has the format '.*/9'; this version"),
        ({"format": "artifex-nnx-callbacks/checkpoint/2"}, r"no longer reads .* 0\.1\.0"),
        ({"epoch": None}, r"is damaged: its 'meta' item has an invalid field \(TypeError"),
        ({"mode": "sideways"}, r"invalid field \(ValueError: monitor 'val_loss' with mode"),
    ],
)
def test_a_meta_this_version_cannot_read_is_listed_with_its_problem(
    tmp_path: Path, changes: dict[str, object], problem: str
) -> None:
    drive(
        FullTrainer(),
        [_checkpoints(tmp_path, monitor="val_loss", save_top_k=2)],
        [[1.0, 1.0]] * 2,
        val_losses=[1.0, 2.0],
    )
    _edit_meta(tmp_path, 2, **changes)
    listed = list_checkpoints(tmp_path)
    assert [(i.step, i.kind) for i in listed] == [(2, "unreadable"), (4, "best")]
    assert listed[0].problem is not None
    assert re.search(rf"^checkpoint step 2 in .*{problem}", listed[0].problem)


def test_disagreeing_monitors_or_modes_are_refused_naming_each_step(tmp_path: Path) -> None:
    drive(
        FullTrainer(),
        [_checkpoints(tmp_path, monitor="val_loss", save_top_k=3)],
        [[1.0, 1.0]] * 3,
        val_losses=[2.0, 1.0, 3.0],
    )
    _edit_meta(tmp_path, 6, monitor="loss")
    with pytest.raises(ValueError, match="disagree on the monitor") as caught:
        restore_checkpoint(tmp_path, step="best")
    for shown in ("step 2: 'val_loss' (min)", "step 4: 'val_loss' (min)", "step 6: 'loss' (min)"):
        assert shown in str(caught.value)
    assert "best" not in [i.kind for i in list_checkpoints(tmp_path)]
    _edit_meta(tmp_path, 6, monitor="val_loss", mode="max")
    with pytest.raises(ValueError, match=r"step 6: 'val_loss' \(max\)"):
        restore_checkpoint(tmp_path, step="best")


def test_no_monitor_or_no_score_is_refused(tmp_path: Path) -> None:
    drive(FullTrainer(), [_checkpoints(tmp_path / "plain", save_top_k=2)], [[1.0, 1.0]] * 2)
    with pytest.raises(ValueError, match=r"steps \[2, 4\]\) were saved without a monitor"):
        restore_checkpoint(tmp_path / "plain", step="best")
    listed = list_checkpoints(tmp_path / "plain")
    assert [(i.kind, i.monitor, i.mode) for i in listed] == [("epoch_end", None, None)] * 2
    drive(
        FullTrainer(),
        [_checkpoints(tmp_path / "scored", monitor="val_loss")],
        [[1.0, 1.0]] * 2,
        val_losses=[2.0, 1.0],
    )
    for step in (2, 4):
        _edit_meta(tmp_path / "scored", step, metrics={})
    with pytest.raises(
        ValueError, match=r"no checkpoint .* has a score for the monitor 'val_loss'"
    ):
        restore_checkpoint(tmp_path / "scored", step="best")


def test_a_step_directory_is_refused(fitted: _Fitted) -> None:
    step_dir = fitted.path / str(fitted.checkpoint.saved_checkpoint_steps[0])
    with pytest.raises(ValueError, match="takes a checkpoint directory, got the step directory"):
        list_checkpoints(step_dir)
    with pytest.raises(ValueError, match="step='best' takes a checkpoint directory"):
        restore_checkpoint(step_dir, step="best")
