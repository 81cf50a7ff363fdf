from __future__ import annotations

import io

import jax
import pytest
from rich.console import Console

from artifex.generative_models.training.callbacks import ProgressBar, ProgressBarConfig
from artifex.generative_models.training.callbacks.progress import format_metrics
from tests.training.callbacks._stubs import ModelOnlyTrainer, drive


class _Unreadable:
    """A batch-log value that fails if anything reads it (stands in for a device sync)."""

    def __float__(self) -> float:
        raise AssertionError("the progress bar read a batch metric")


def _console(*, terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=120, color_system=None), out


def test_quiet_when_not_a_terminal_prints_one_line_per_epoch() -> None:
    console, out = _console(terminal=False)
    bar = ProgressBar(ProgressBarConfig(console=console))
    drive(ModelOnlyTrainer(), [bar], [[1.0, 3.0], [2.0]], val_losses=[0.5, 0.25])
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Epoch 0: 2 steps in ")
    assert lines[0].endswith("loss=2 val_loss=0.5")
    assert lines[1].endswith("loss=2 val_loss=0.25")
    assert not bar.live


def test_silent_when_not_a_terminal_and_epoch_lines_off() -> None:
    console, out = _console(terminal=False)
    drive(
        ModelOnlyTrainer(),
        [ProgressBar(ProgressBarConfig(console=console, epoch_lines=False))],
        [[1.0]],
    )
    assert out.getvalue() == ""


def test_live_bar_on_a_terminal_shows_count_eta_and_metrics() -> None:
    console, out = _console(terminal=True)
    bar = ProgressBar(ProgressBarConfig(console=console))
    trainer = ModelOnlyTrainer()
    bar.on_train_begin(trainer)
    live_during = bar.live
    for epoch in range(2):
        bar.on_epoch_begin(trainer, epoch)
        for step in range(3):
            bar.on_batch_end(trainer, epoch * 3 + step, {"loss": _Unreadable()})
        bar.on_epoch_end(trainer, epoch, {"loss": 0.125})
    bar.on_train_end(trainer)
    assert (live_during, bar.live) == (True, False)
    text = out.getvalue()
    assert "Epoch 0" in text
    assert "Epoch 1" in text
    assert "3/3" in text
    assert "loss=0.125" in text
    assert "0:00:00" in text  # elapsed / remaining columns


def test_batch_metrics_only_when_configured() -> None:
    console, out = _console(terminal=True)
    bar = ProgressBar(ProgressBarConfig(console=console, batch_metrics_every_n_steps=2))
    trainer = ModelOnlyTrainer()
    bar.on_train_begin(trainer)
    bar.on_epoch_begin(trainer, 0)
    bar.on_batch_end(trainer, 0, {"loss": _Unreadable()})  # step 1 of 2: not read
    bar.on_batch_end(trainer, 1, {"loss": jax.numpy.asarray(0.75)})  # read
    bar.on_train_end(trainer)
    assert "loss=0.75" in out.getvalue()


def test_config_validation_and_formatting() -> None:
    with pytest.raises(ValueError, match="steps_per_epoch"):
        ProgressBarConfig(steps_per_epoch=0)
    with pytest.raises(ValueError, match="batch_metrics_every_n_steps"):
        ProgressBarConfig(batch_metrics_every_n_steps=-1)
    with pytest.raises(TypeError, match="console"):
        ProgressBarConfig(console="stderr")  # type: ignore[arg-type]  # the point of the test  # ty: ignore[invalid-argument-type]
    assert format_metrics({"loss": 0.123456, "name": "x", "n": 3}) == "loss=0.1235 n=3"


def test_a_long_epoch_line_is_not_wrapped_when_not_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=40, color_system=None)
    bar = ProgressBar(ProgressBarConfig(console=console))
    metrics = {f"metric_{i}": float(i) for i in range(8)}
    bar.on_train_begin(ModelOnlyTrainer())
    bar.on_epoch_begin(ModelOnlyTrainer(), 12)
    bar.on_epoch_end(ModelOnlyTrainer(), 12, metrics)
    [line] = out.getvalue().splitlines()
    assert line.startswith("Epoch 12: 0 steps in ")
    assert line.endswith("metric_6=6 metric_7=7")
    assert len(line) > 40
