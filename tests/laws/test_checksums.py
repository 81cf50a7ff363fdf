"""Issue 18: a flipped bit in a checkpoint's array data is detected on restore.

Format 4 saves the CRC-32 of every leaf of the ``state`` and ``callback_arrays``
items in the ``checksums`` item of the same atomic save; ``restore_checkpoint`` (and
so ``fit(resume_from=)`` and ``Trainer.resume``) verifies them. Before, one flipped
bit in an array data file restored silently with altered values. The format-4
fixture (a mid-epoch checkpoint, its data position in the ``state`` item) restores,
verified, and resumes to the weights it must end with (its saved best weights); the
format-3 fixture (no checksums) is refused since format 5, naming the version that
reads it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    EarlyStopping,
    EarlyStoppingConfig,
    History,
    ModelCheckpoint,
    restore_checkpoint,
)
from artifex.generative_models.training.trainer import Trainer
from tests.laws._outcomes import assert_best_weights_restored
from tests.laws._resume_script import early_stopping, loss_fn, make_data, make_model

FORMAT_3 = Path(__file__).resolve().parent / "format3_checkpoint"
"""A checkpoint of format 3 (before checksums), written by the code of that format:
``early_stopping(restore_best_weights=True)``, ``History`` and
``ModelCheckpoint(every_n_steps=3, save_top_k=1)``, the run failing before step 10;
the one checkpoint kept is the mid-epoch step 9 (epoch 1, position 3)."""
FORMAT_4 = Path(__file__).resolve().parent / "format4_checkpoint"
"""The same run's checkpoint in format 4 (checksums; the data position in ``state``),
written by the code of that format (commit 00a1ee1)."""

WIDE = 64  # a 64 x 64 float32 kernel (16 KiB): stored in a data file of its own


class Wide(nnx.Module):
    """One square kernel, large enough that Orbax writes it to a data file of its own."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.kernel = nnx.Param(jax.random.normal(rngs.params(), (WIDE, WIDE)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.kernel


def _loss(model: Wide, batch: Any) -> jax.Array:
    return jnp.mean(model(jnp.asarray(batch)) ** 2)


DATA = [np.full((2, WIDE), 0.01, np.float32)] * 2  # 2 steps per epoch


def _trainer(directory: Path, *, best_weights: bool = False, async_save: bool = False) -> Any:
    callbacks: list[Any] = []
    if best_weights:  # the best weights are the callback_arrays item
        config = EarlyStoppingConfig(monitor="val_loss", patience=5, restore_best_weights=True)
        callbacks.append(EarlyStopping(config))
    checkpoint = CheckpointConfig(dirpath=directory, async_save=async_save)
    callbacks.append(ModelCheckpoint(checkpoint))
    return Trainer(Wide(nnx.Rngs(0)), optax.sgd(0.1), _loss, callbacks=callbacks)


def _flip_a_bit(item: Path) -> Path:
    """Flip one bit in the middle of the largest file of a checkpoint item (its array data)."""
    data = max((f for f in item.rglob("*") if f.is_file()), key=lambda f: f.stat().st_size)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x04
    data.write_bytes(bytes(raw))
    return data


@pytest.mark.parametrize(
    ("item", "best_weights", "named"),
    [
        (
            "state",
            False,
            r"checkpoint step 2 in .*checkpoints'.*: item 'state' entry 'model\.kernel' ",
        ),
        (
            "callback_arrays",  # the best weights
            True,
            r"step 2 .*: item 'callback_arrays' entry 'EarlyStopping\[val_loss\]\.kernel' ",
        ),
    ],
)
def test_a_flipped_bit_names_step_item_and_entry(
    tmp_path: Path, item: str, best_weights: bool, named: str
) -> None:
    directory = tmp_path / "checkpoints"
    val_data = DATA[:1] if best_weights else None  # validation gives the best weights
    _trainer(directory, best_weights=best_weights).fit(DATA, epochs=1, val_data=val_data)
    _flip_a_bit(directory / "2" / item)
    with pytest.raises(ValueError, match=named + "fails its checksum"):
        restore_checkpoint(directory)


def test_resume_from_verifies_the_checksums(tmp_path: Path) -> None:
    directory = tmp_path / "checkpoints"
    _trainer(directory).fit(DATA, epochs=1)
    _flip_a_bit(directory / "2" / "state")
    with pytest.raises(ValueError, match=r"item 'state' entry 'model\.kernel' fails its checksum"):
        _trainer(tmp_path / "resumed").fit(DATA, epochs=2, resume_from=directory)


@pytest.mark.parametrize("async_save", [False, True])
def test_a_clean_checkpoint_verifies(tmp_path: Path, async_save: bool) -> None:
    directory = tmp_path / "checkpoints"
    trainer = _trainer(directory, best_weights=True, async_save=async_save)
    trainer.fit(DATA, epochs=2, val_data=DATA[:1])
    meta = json.loads((directory / "4" / "meta" / "metadata").read_text())
    assert meta["format"] == "artifex-nnx-callbacks/checkpoint/5"
    assert meta["checksums"] is True
    record = json.loads((directory / "4" / "checksums" / "metadata").read_text())
    assert sorted(record) == ["arrays", "crc32", "json", "run", "step"]
    assert (record["step"], record["run"]) == (4, meta["run"])
    assert sorted(record["json"]) == ["callbacks", "meta"]
    sums = record["arrays"]
    assert sorted(sums) == ["callback_arrays", "state"]
    assert sums["state"]["model.kernel"]["shape"] == [WIDE, WIDE]
    assert "EarlyStopping[val_loss].kernel" in sums["callback_arrays"]
    assert {"step", "epoch", "model.kernel"} <= sums["state"].keys()
    restored = restore_checkpoint(directory)
    np.testing.assert_array_equal(
        restored.state["model"]["kernel"], nnx.to_pure_dict(nnx.state(trainer.model))["kernel"]
    )
    # Into a fresh trainer (restore placeholders from its state), verified as well.
    resumed = _trainer(tmp_path / "resumed", best_weights=True)
    assert resumed.resume(directory) == 4


def _format_3_run(directory: Path) -> tuple[Trainer[Any], EarlyStopping, History]:
    """The fixtures' setup (see ``FORMAT_3``; its run also raised before step 10)."""
    early = early_stopping(restore_best_weights=True)
    history = History()
    config = CheckpointConfig(
        dirpath=directory, save_top_k=1, async_save=False, every_n_epochs=1, every_n_steps=3
    )
    callbacks = [early, history, ModelCheckpoint(config)]
    return Trainer(make_model(0), optax.adam(1e-2), loss_fn, callbacks=callbacks), early, history


def test_a_format_4_mid_epoch_checkpoint_restores_and_resumes(tmp_path: Path) -> None:
    directory = tmp_path / "format4"
    shutil.copytree(FORMAT_4, directory)
    meta = json.loads((directory / "9" / "meta" / "metadata").read_text())
    assert meta["format"] == "artifex-nnx-callbacks/checkpoint/4"
    assert not (directory / "9" / "data").exists()  # the position is in the state item
    raw = restore_checkpoint(directory)
    assert (raw.step, raw.epoch, raw.position) == (9, 1, 3)
    assert list(raw.callback_arrays) == ["EarlyStopping[val_loss]"]

    trainer, early, history = _format_3_run(directory)
    train, val = make_data()
    trainer.fit(train, epochs=6 - raw.epoch, val_data=val, resume_from=directory)
    assert early.stopped_epoch == 3
    assert history.epochs == [0, 1, 2, 3]
    # restore_best_weights: the final weights are epoch 0's, as saved in format 4 (a
    # comparison that holds across JAX versions, unlike a fresh reference run's).
    assert_best_weights_restored(trainer, raw.callback_arrays["EarlyStopping[val_loss]"])
    # The checkpoints written after the resume are of format 5, in the same directory,
    # with the data position as a JSON item of Python values.
    latest = restore_checkpoint(directory)
    assert latest.step > 9
    assert (directory / str(latest.step) / "checksums").is_dir()
    assert (directory / str(latest.step) / "data").is_dir()
    assert {type(value) for value in latest.state["data"].values()} == {int}


def test_a_format_3_checkpoint_is_refused_naming_the_version_that_reads_it(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "format3"
    shutil.copytree(FORMAT_3, directory)
    with pytest.raises(ValueError, match=r"checkpoint/3'.*no longer reads.*commit 00a1ee1"):
        restore_checkpoint(directory)
