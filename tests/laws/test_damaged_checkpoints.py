"""Issue 18, clear errors: a damaged checkpoint is named, with its step, item and entry.

Garbled metadata used to reach the user as a bare ``JSONDecodeError``, truncated array
data as a page of TensorStore spec (and asyncio noise), a target of another shape as
Orbax's truncation message, and a deleted item directory as "no checkpoint in ...".
"""

from __future__ import annotations

import gc
import logging
import re
import shutil
import sys
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path

import optax
import pytest
from flax import nnx

from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    ModelCheckpoint,
    restore_checkpoint,
)
from artifex.generative_models.training.trainer import Trainer
from tests.training._models import DropoutBatchNorm, batches, mse, new_model

DATA = batches(2)  # 2 steps per epoch: one checkpoint, at step 2


def _trainer(directory: Path) -> Trainer[DropoutBatchNorm]:
    checkpoint = ModelCheckpoint(CheckpointConfig(dirpath=directory, async_save=False))
    return Trainer(new_model(), optax.sgd(0.1), mse, callbacks=[checkpoint])


@contextmanager
def orbax_noise() -> Generator[list[object]]:
    """Collect, in this test, what Orbax's reads abandoned after damaged data report.

    A failed read leaves reads that fail again when collected: asyncio's "Task
    exception was never retrieved" (logged) and unraisable "Event loop is closed"
    reports, which TensorStore's thread may send well after the restore raised (on
    Python 3.13 in particular). The library documents that noise and no longer hides
    it with a process-wide hook (issue 24); the test takes the reports itself and waits
    until none came for 0.3 s, so that none reaches a later test.
    """
    reports: list[object] = []
    times = [time.monotonic()]
    hook = sys.unraisablehook

    def take(report: object) -> None:
        reports.append(report)
        times.append(time.monotonic())

    sys.unraisablehook = take
    try:
        yield reports
        start = time.monotonic()
        while time.monotonic() - times[-1] < 0.3 and time.monotonic() - start < 10:
            gc.collect()
            time.sleep(0.05)
    finally:
        sys.unraisablehook = hook


@pytest.fixture(name="saved", scope="module")
def _saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("saved") / "checkpoints"
    _trainer(directory).fit(DATA, epochs=1)
    assert restore_checkpoint(directory).step == 2
    return directory


@pytest.fixture(name="directory")
def _directory(tmp_path: Path, saved: Path) -> Path:
    """A fresh copy of a checkpoint directory with one checkpoint, at step 2."""
    return Path(shutil.copytree(saved, tmp_path / "checkpoints"))


def test_garbled_metadata_names_the_step_and_the_item(directory: Path) -> None:
    meta = directory / "2" / "meta" / "metadata"
    meta.write_text('{"format": ')
    with pytest.raises(ValueError, match=r"step 2 in .* is damaged: its 'meta' item .*meta"):
        restore_checkpoint(directory)


def _other_shape() -> DropoutBatchNorm:
    """The test model with 5 hidden units instead of 8."""
    model = new_model()
    model.hidden = nnx.Linear(3, 5, rngs=nnx.Rngs(0))
    model.norm = nnx.BatchNorm(5, rngs=nnx.Rngs(0))
    model.out = nnx.Linear(5, 1, rngs=nnx.Rngs(0))
    return model


def test_resuming_into_a_model_of_another_shape_names_the_entry(directory: Path) -> None:
    trainer = Trainer(_other_shape(), optax.sgd(0.1), mse)
    with pytest.raises(
        ValueError,
        match=r"step 2 in .* does not fit the target: item 'state' entry 'model\.hidden\.bias' "
        r"was saved with shape \(8,\), the target expects \(5,\)",
    ):
        trainer.fit(DATA, epochs=2, resume_from=directory)
    gc.collect()  # nothing of Orbax's is left to report later (filterwarnings=error)


@pytest.mark.parametrize("target", ["none", "module", "trainer"])
def test_truncated_array_data_names_the_step_the_item_and_the_entry(
    directory: Path, target: str
) -> None:
    data = sorted((directory / "2" / "state" / "d").iterdir())  # the OCDBT data files
    assert data
    for file in data:
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    message = r"^checkpoint step 2 in .* is damaged: item 'state' entry '[\w.]+' cannot be read \("
    trainer = Trainer(new_model(), optax.sgd(0.1), mse)
    restore: Callable[[], object] = {
        "none": lambda: restore_checkpoint(directory),
        "module": lambda: restore_checkpoint(directory, target=new_model()),
        "trainer": lambda: trainer.fit(DATA, epochs=2, resume_from=directory),
    }[target]
    with orbax_noise(), pytest.raises(ValueError, match=message) as caught:
        restore()
    assert "tensorstore_spec" not in str(caught.value)


@pytest.mark.parametrize("item", ["state", "meta"])
def test_a_deleted_item_directory_names_the_step_and_the_item(
    tmp_path: Path, item: str, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "checkpoints"
    checkpoint = ModelCheckpoint(
        CheckpointConfig(dirpath=directory, async_save=False, save_top_k=-1)
    )
    Trainer(new_model(), optax.sgd(0.1), mse, callbacks=[checkpoint]).fit(DATA, epochs=2)
    shutil.rmtree(directory / "4" / item)
    lacks = rf"step 4 \('.*4'\) lacks the '{item}' item, so it is incomplete"
    with pytest.raises(FileNotFoundError, match=rf"no checkpoint for step 4 in .*\({lacks}"):
        restore_checkpoint(directory, step=4)
    with caplog.at_level(logging.WARNING):
        assert restore_checkpoint(directory).step == 2  # the latest complete step
    assert any(
        re.search(rf"restoring step 2 of .*: {lacks}", r.getMessage()) for r in caplog.records
    )
    shutil.rmtree(directory / "2" / item)
    with pytest.raises(FileNotFoundError, match=rf"no checkpoint in .*; step 2 .*; {lacks}"):
        restore_checkpoint(directory)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("_METADATA", r"state/_METADATA: invalid JSON"),
        ("array_metadatas/process_0", r"state/array_metadatas/process_0: invalid JSON"),
        ("manifest.ocdbt", r"state/manifest\.ocdbt: "),
    ],
)
def test_a_truncated_metadata_file_of_the_arrays_names_the_step_the_item_and_the_file(
    directory: Path, name: str, reason: str
) -> None:
    file = directory / "2" / "state" / name
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with (
        orbax_noise(),
        pytest.raises(
            ValueError, match=rf"^checkpoint step 2 in .* is damaged: item 'state'.* \({reason}"
        ),
    ):
        restore_checkpoint(directory)
