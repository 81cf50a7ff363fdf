"""With default configs, no built-in callback reads batch logs (no per-batch device sync).

``TerminateOnNaN`` is the documented exception: reading each loss is its purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest
from rich.console import Console

from artifex.generative_models.training.callbacks import (
    CallbackList,
    CheckpointConfig,
    CSVLogger,
    EarlyStopping,
    EarlyStoppingConfig,
    History,
    JAXProfiler,
    JAXProfilerConfig,
    MemoryProfiler,
    ModelCheckpoint,
    ProgressBar,
    ProgressBarConfig,
    TensorBoardConfig,
    TensorBoardLogger,
    TerminateOnNaN,
)
from tests.training.callbacks._stubs import FullTrainer


class Unreadable:
    """A batch metric that fails however it is read, converted or waited on."""

    def _fail(self, *args: object) -> NoReturn:
        raise AssertionError("a callback read a batch metric (a device sync)")

    __float__ = __int__ = __index__ = __bool__ = __array__ = __jax_array__ = _fail
    block_until_ready = item = _fail


class Pending(Unreadable):
    """A batch metric still being computed: asking is fine, reading is a sync."""

    def is_ready(self) -> bool:
        return False

    def copy_to_host_async(self) -> None:
        """Starting a copy does not wait."""


def _run(
    callbacks: list[Any],
    trainer: FullTrainer,
    epochs: int = 2,
    batches: int = 3,
    metric: Callable[[], object] = Unreadable,
) -> None:
    cbs = CallbackList(callbacks)
    cbs.on_train_begin(trainer)
    for epoch in range(epochs):
        trainer.epoch = epoch
        cbs.on_epoch_begin(trainer, epoch)
        for _ in range(batches):
            step = trainer.step
            cbs.on_batch_begin(trainer, step)
            trainer.step += 1
            cbs.on_batch_end(trainer, step, {"loss": metric(), "kl": metric()})
        cbs.on_epoch_end(trainer, epoch, {"loss": 0.5, "val_loss": 0.25})
    cbs.on_train_end(trainer)


def test_defaults_read_no_batch_metric(tmp_path: Path) -> None:
    console = Console(file=None, force_terminal=True, quiet=True)
    callbacks = [
        EarlyStopping(EarlyStoppingConfig(patience=100)),
        ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "ck")),
        History(),
        CSVLogger(filename=tmp_path / "log.csv"),
        ProgressBar(ProgressBarConfig(console=console)),
        TensorBoardLogger(TensorBoardConfig(log_dir=tmp_path / "tb")),
        JAXProfiler(JAXProfilerConfig(log_dir=tmp_path / "prof")),  # window at steps 10-19
        MemoryProfiler(),
    ]
    _run(callbacks, FullTrainer())
    assert (tmp_path / "log.csv").read_text().count("\n") == 3


def test_the_opt_in_live_loss_reads_no_loss_that_is_not_ready() -> None:
    console = Console(file=None, force_terminal=True, quiet=True)
    bar = ProgressBar(ProgressBarConfig(console=console, live_loss=True, live_loss_interval=0.0))
    _run([bar], FullTrainer(), metric=Pending)
    _run([bar], FullTrainer())  # a metric that cannot say whether it is ready: never read


def test_terminate_on_nan_is_the_documented_exception() -> None:
    with pytest.raises(AssertionError, match="read a batch metric"):
        _run([TerminateOnNaN()], FullTrainer())


def test_opt_in_batch_logging_reads_them(tmp_path: Path) -> None:
    logger = TensorBoardLogger(TensorBoardConfig(log_dir=tmp_path, log_every_n_steps=1))
    trainer = FullTrainer()
    with pytest.raises(AssertionError, match="read a batch metric"):
        _run([logger], trainer)
    logger.on_train_end(trainer)  # the run above stopped before its teardown: close the writer
