"""A progress bar on ``rich``: ``Epoch i/N``, a per-epoch bar with ETA and metrics.

The plan (epochs, steps per epoch) comes from a trainer that implements
[`TrainingPlan`][]. The live batch loss, when asked for, is shown only once its
array is on the host or ready: the bar asks for an older step's copy
(``copy_to_host_async``) and reads it at a later batch end once ``is_ready()``, so
the bar never waits for the device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack, overload

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from artifex.generative_models.training._checks import check_bool, check_real, set_int
from artifex.generative_models.training.callbacks._configured import ConfiguredCallback
from artifex.generative_models.training.callbacks._monitor import to_float
from artifex.generative_models.training.callbacks.base import (
    ProcessScope,
    TrainerLike,
)
from artifex.generative_models.training.callbacks.protocols import TrainingPlan

__all__ = ["ProgressBar", "ProgressBarConfig", "ProgressBarKwargs", "format_metrics"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressBarConfig:
    """Configuration of [`ProgressBar`][].

    Attributes:
        steps_per_epoch: The bar's length; if ``None``, the trainer's plan
            (``TrainingPlan.steps_per_epoch``: ``len(train_data)``) where it has one,
            else the first epoch shows a count and the number of steps it ran becomes
            the length (and ETA) from then on.
        batch_metrics_every_n_steps: Show the batch logs every n steps. Reading them
            waits for the device (a sync), so the default ``0`` never reads them: batch
            ends only advance a counter, and metrics are shown at epoch ends.
        live_loss: Show the batch loss on the live bar, refreshed at most every
            ``live_loss_interval`` seconds, without a sync: a step's loss is copied to
            the host asynchronously and shown at a later batch end once it is ready
            (``is_ready()``), so it lags by a few steps. Off by default.
        live_loss_interval: The least seconds between two live-loss refreshes.
        enabled: Draw the live bar: ``None`` (default) only when the console is a
            terminal, so logs and CI output stay quiet.
        epoch_lines: When the live bar is not drawn, print one summary line per epoch
            (steps, time, metrics). ``False`` prints nothing at all.
        console: The ``rich`` console to draw on; a new one on standard error if omitted.
    """

    steps_per_epoch: int | None = None
    batch_metrics_every_n_steps: int = 0
    live_loss: bool = False
    live_loss_interval: float = 0.25
    enabled: bool | None = None
    epoch_lines: bool = True
    console: Console | None = None

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            TypeError: If a field has the wrong type.
            ValueError: If a count is out of range.
        """
        if self.steps_per_epoch is not None:
            set_int(self, "steps_per_epoch", minimum=1)
        set_int(self, "batch_metrics_every_n_steps", minimum=0)
        if self.enabled is not None:
            check_bool("enabled", self.enabled)
        check_bool("epoch_lines", self.epoch_lines)
        check_bool("live_loss", self.live_loss)
        interval = check_real("live_loss_interval", self.live_loss_interval, minimum=0.0)
        object.__setattr__(self, "live_loss_interval", interval)
        console: object = self.console  # a run-time check of what the types promise
        if console is not None and not isinstance(console, Console):
            raise TypeError(f"console must be a rich Console, got {self.console!r}")


def format_metrics(logs: dict[str, Any]) -> str:
    """Format the numeric entries of ``logs`` as ``"key=value"`` pairs (4 significant digits).

    Args:
        logs: Metrics; non-numeric values are skipped.

    Returns:
        The pairs, separated by spaces.
    """
    parts = []
    for key, raw in logs.items():
        value = to_float(raw)
        if value is not None:
            parts.append(f"{key}={value:.4g}")
    return " ".join(parts)


class ProgressBarKwargs(TypedDict, total=False):
    """The fields of [`ProgressBarConfig`][], as keyword arguments (each optional)."""

    steps_per_epoch: int | None
    batch_metrics_every_n_steps: int
    live_loss: bool
    live_loss_interval: float
    enabled: bool | None
    epoch_lines: bool
    console: Console | None


class ProgressBar(ConfiguredCallback[ProgressBarConfig]):
    """Show training progress: one bar per epoch with step count, elapsed time, ETA and metrics.

    Each epoch is ``Epoch i/N`` (counted from 1; ``N`` from a trainer that implements
    [`TrainingPlan`][]), its bar as long as ``len(train_data)`` where the data has a
    length, the first (compiling) epoch included. Drawn with ``rich`` on a terminal;
    elsewhere (logs, CI) it draws nothing and prints one line per epoch with the
    run's ETA (the last epoch's time for each epoch left), never wrapped at the
    console width (or nothing, with ``epoch_lines=False``). Batch ends only advance a
    counter; they read no array unless ``batch_metrics_every_n_steps`` asks for it, or
    ``live_loss`` for one that is already ready.

    Args:
        config: The configuration (positional-only); the defaults if omitted.
        **kwargs: Instead of ``config``, its fields ([`ProgressBarKwargs`][]).
    """

    __slots__ = (
        "_console",
        "_count",
        "_epoch_start",
        "_epochs",
        "_loss_at",
        "_pending",
        "_progress",
        "_task",
        "_total",
    )
    process_scope: ProcessScope = "main"  # one bar, on process 0 only

    @overload
    def __init__(self, config: ProgressBarConfig | None, /) -> None: ...
    @overload
    def __init__(self, /, **kwargs: Unpack[ProgressBarKwargs]) -> None: ...
    def __init__(
        self, config: ProgressBarConfig | None = None, /, **kwargs: Unpack[ProgressBarKwargs]
    ) -> None:
        config = self._configure(ProgressBarConfig, config, kwargs)
        self._console: Console | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._total = config.steps_per_epoch
        self._count = 0
        self._epoch_start = 0.0
        self._epochs: int | None = None
        self._pending: Any = None  # a batch loss being copied to the host
        self._loss_at = 0.0  # when the live loss was last asked for

    @property
    def live(self) -> bool:
        """Whether the live bar is being drawn (between train begin and end)."""
        return self._progress is not None

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Pick the console and start the live display if it is a terminal (or enabled)."""
        console = self.config.console or Console(stderr=True)
        self._console = console
        self._epochs, self._total = None, self.config.steps_per_epoch
        if isinstance(trainer, TrainingPlan):
            self._epochs = trainer.planned_epochs
            if self._total is None:
                self._total = trainer.steps_per_epoch
        enabled = self.config.enabled
        if enabled if enabled is not None else console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[metrics]}"),
                console=console,
            )
            self._progress.start()

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, /) -> None:
        """Add this epoch's bar."""
        self._count = 0
        self._epoch_start = time.perf_counter()
        self._pending = None
        if self._progress is not None:
            self._task = self._progress.add_task(self._title(epoch), total=self._total, metrics="")

    def _title(self, epoch: int) -> str:
        """``Epoch i/N`` (``i`` counted from 1), or ``Epoch i`` with no plan."""
        return f"Epoch {epoch + 1}" + ("" if self._epochs is None else f"/{self._epochs}")

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        """Advance the counter; read the batch logs only every n steps if configured."""
        self._count += 1
        progress, task = self._progress, self._task
        if progress is None or task is None:
            return
        every = self.config.batch_metrics_every_n_steps
        if every and self._count % every == 0:
            progress.update(task, advance=1, metrics=format_metrics(logs))
        elif self.config.live_loss:
            shown = self._live_loss(logs.get("loss"))
            if shown is None:
                progress.advance(task)
            else:
                progress.update(task, advance=1, metrics=shown)
        else:
            progress.advance(task)

    def _live_loss(self, loss: object) -> str | None:
        """The pending loss, formatted, once it is ready; start copying ``loss`` if due.

        Never waits: an array is read only after ``is_ready()`` said so, and one that
        cannot say (no ``is_ready``) is never read.
        """
        shown: str | None = None
        pending = self._pending
        if pending is not None and pending.is_ready():
            value = to_float(pending)
            shown = None if value is None else f"loss={value:.4g}"
            self._pending = pending = None
        now = time.monotonic()
        if (
            pending is None
            and now - self._loss_at >= self.config.live_loss_interval
            and callable(getattr(loss, "is_ready", None))
        ):
            copy = getattr(loss, "copy_to_host_async", None)
            if callable(copy):
                copy()
            self._pending, self._loss_at = loss, now
        return shown

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Complete the bar with the epoch metrics, or print the epoch line."""
        metrics = format_metrics(logs)
        progress, task = self._progress, self._task
        if progress is not None and task is not None:
            progress.update(task, total=self._count, completed=self._count, metrics=metrics)
        elif progress is None and self.config.epoch_lines:
            console = self._console or self.config.console or Console(stderr=True)
            elapsed = time.perf_counter() - self._epoch_start
            steps = f"{self._count}" + ("" if self._total is None else f"/{self._total}")
            eta = ""
            if self._epochs is not None:  # the last epoch's time for each one left
                eta = f", ETA {_duration(elapsed * max(self._epochs - epoch - 1, 0))}"
            console.print(
                f"{self._title(epoch)}: {steps} steps in {elapsed:.2f}s{eta} {metrics}".rstrip(),
                markup=False,
                highlight=False,
                soft_wrap=True,  # one unwrapped line per epoch, also in CI logs
            )
        if self._total is None and self._count:
            self._total = self._count
        self._task = None

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """Stop the live display."""
        progress = self._progress
        self._progress = None
        self._task = None
        if progress is not None:
            progress.stop()


def _duration(seconds: float) -> str:
    """``h:mm:ss``, as rich's remaining-time column shows it."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
