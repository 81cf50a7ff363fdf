from __future__ import annotations

import io
import time

import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx
from rich.console import Console

from artifex.generative_models.training.callbacks import (
    LambdaCallback,
    ProgressBar,
    ProgressBarConfig,
)
from artifex.generative_models.training.callbacks.progress import format_metrics
from artifex.generative_models.training.callbacks.protocols import TrainingPlan
from artifex.generative_models.training.trainer import Trainer
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
    assert lines[0].startswith("Epoch 1: 2 steps in ")  # counted from 1, as Keras
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
    assert "Epoch 1" in text
    assert "Epoch 2" in text
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
    assert line.startswith("Epoch 13: 0 steps in ")
    assert line.endswith("metric_6=6 metric_7=7")
    assert len(line) > 40


class PlannedTrainer(ModelOnlyTrainer):
    """A trainer that tells its plan (``TrainingPlan``)."""

    def __init__(self, planned_epochs: int | None, steps_per_epoch: int | None) -> None:
        super().__init__()
        self._plan = (planned_epochs, steps_per_epoch)

    @property
    def planned_epochs(self) -> int | None:
        return self._plan[0]

    @property
    def steps_per_epoch(self) -> int | None:
        return self._plan[1]


class _NotReady:
    """A device loss still being computed: ready never, read never."""

    def __init__(self) -> None:
        self.copies = 0

    def is_ready(self) -> bool:
        return False

    def copy_to_host_async(self) -> None:
        self.copies += 1

    def __float__(self) -> float:
        raise AssertionError("the progress bar waited for a loss that was not ready")


def test_epoch_lines_show_epoch_of_n_the_total_and_an_eta(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter(float(10 * i) for i in range(100))  # every epoch takes 10 s
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))  # what progress.py reads
    console, out = _console(terminal=False)
    trainer = PlannedTrainer(planned_epochs=3, steps_per_epoch=2)
    assert isinstance(trainer, TrainingPlan)
    drive(trainer, [ProgressBar(console=console)], [[1.0, 3.0], [2.0, 2.0], [1.0, 1.0]])
    lines = out.getvalue().splitlines()
    assert lines == [
        "Epoch 1/3: 2/2 steps in 10.00s, ETA 0:00:20 loss=2",
        "Epoch 2/3: 2/2 steps in 10.00s, ETA 0:00:10 loss=2",
        "Epoch 3/3: 2/2 steps in 10.00s, ETA 0:00:00 loss=1",
    ]


def test_the_first_epoch_bar_has_the_planned_total_and_an_eta() -> None:
    console, out = _console(terminal=False)
    bar = ProgressBar(console=console, enabled=True)  # drawn, on a captured console
    trainer = PlannedTrainer(planned_epochs=5, steps_per_epoch=4)
    bar.on_train_begin(trainer)
    bar.on_epoch_begin(trainer, 0)
    for step in range(2):
        time.sleep(0.01)  # rich's ETA needs two progress samples apart in time
        bar.on_batch_end(trainer, step, {"loss": _Unreadable()})
    bar.on_train_end(trainer)  # the final frame: epoch 0, two steps of four
    text = out.getvalue()
    assert "Epoch 1/5" in text
    assert "2/4" in text
    assert "0:00:0" in text  # elapsed and remaining time (an ETA, not -:--:--)
    assert "-:--:--" not in text


def test_without_a_length_the_first_epoch_counts_and_then_gives_the_total() -> None:
    console, out = _console(terminal=False)
    drive(
        PlannedTrainer(planned_epochs=2, steps_per_epoch=None),
        [ProgressBar(console=console)],
        [[1.0, 1.0], [1.0, 1.0]],
    )
    first, second = out.getvalue().splitlines()
    assert first.startswith("Epoch 1/2: 2 steps in ")
    assert second.startswith("Epoch 2/2: 2/2 steps in ")


def test_the_live_loss_shows_only_ready_losses_at_most_every_interval() -> None:
    console, out = _console(terminal=True)
    bar = ProgressBar(console=console, live_loss=True, live_loss_interval=0.0)
    trainer = PlannedTrainer(planned_epochs=1, steps_per_epoch=3)
    bar.on_train_begin(trainer)
    bar.on_epoch_begin(trainer, 0)
    not_ready = _NotReady()
    bar.on_batch_end(trainer, 0, {"loss": not_ready})  # asked for, never read
    bar.on_batch_end(trainer, 1, {"loss": jax.numpy.asarray(0.75)})  # not asked: one pending
    assert not_ready.copies == 1
    bar.on_train_end(trainer)
    assert "loss=" not in out.getvalue()

    console, out = _console(terminal=True)
    bar = ProgressBar(console=console, live_loss=True, live_loss_interval=0.0)
    bar.on_train_begin(trainer)
    bar.on_epoch_begin(trainer, 0)
    bar.on_batch_end(trainer, 0, {"loss": jax.numpy.asarray(0.75)})  # copied to the host
    bar.on_batch_end(trainer, 1, {"loss": _NotReady()})  # shows step 0's, ready by now
    bar.on_train_end(trainer)
    assert "loss=0.75" in out.getvalue()

    slow = ProgressBar(console=console, live_loss=True, live_loss_interval=3600.0)
    slow.on_train_begin(trainer)
    slow.on_epoch_begin(trainer, 0)
    first, second = _NotReady(), _NotReady()
    slow.on_batch_end(trainer, 0, {"loss": first})
    slow.on_batch_end(trainer, 1, {"loss": second})
    slow.on_train_end(trainer)
    assert (first.copies, second.copies) == (1, 0)  # at most one per interval


def test_live_loss_interval_is_checked() -> None:
    with pytest.raises(ValueError, match=r"live_loss_interval must be >= 0.0, got -1"):
        ProgressBarConfig(live_loss_interval=-1)
    with pytest.raises(TypeError, match="live_loss_interval must be a number"):
        ProgressBarConfig(live_loss_interval="1")  # type: ignore[arg-type]  # the point of the test  # ty: ignore[invalid-argument-type]


@pytest.mark.parametrize("chunk", [1, 2])
def test_the_reference_trainer_plans_the_bar_and_its_losses_can_say_ready(chunk: int) -> None:
    console, out = _console(terminal=False)
    bar = ProgressBar(console=console, enabled=True, live_loss=True, live_loss_interval=0.0)
    ready: list[object] = []  # what the live loss asks each batch loss
    spy = LambdaCallback(on_batch_end=lambda t, s, logs: ready.append(logs["loss"].is_ready()))
    model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
    trainer = Trainer(model, optax.sgd(0.1), _mse, callbacks=[bar, spy], steps_per_execution=chunk)
    x = jnp.ones((4, 2))
    trainer.fit([(x, x[:, :1])] * 5, epochs=2)
    text = out.getvalue()
    assert "Epoch 1/2" in text
    assert "Epoch 2/2" in text
    assert "5/5" in text
    assert len(ready) == 10
    assert all(isinstance(answer, bool) for answer in ready)


def _mse(model: nnx.Linear, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)
