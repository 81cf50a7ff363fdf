"""A progress bar on ``rich``: per-epoch bar with ETA and metrics."""

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

from artifex.generative_models.training._checks import check_bool, set_int
from artifex.generative_models.training.callbacks._configured import ConfiguredCallback
from artifex.generative_models.training.callbacks._monitor import to_float
from artifex.generative_models.training.callbacks.base import (
    ProcessScope,
    TrainerLike,
)

__all__ = ["ProgressBar", "ProgressBarConfig", "ProgressBarKwargs", "format_metrics"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressBarConfig:
    """Configuration of [`ProgressBar`][].

    Attributes:
        steps_per_epoch: The bar's length; if ``None``, the first epoch shows a count
            and the number of steps it ran becomes the length (and ETA) from then on.
        batch_metrics_every_n_steps: Show the batch logs every n steps. Reading them
            waits for the device (a sync), so the default ``0`` never reads them: batch
            ends only advance a counter, and metrics are shown at epoch ends.
        enabled: Draw the live bar: ``None`` (default) only when the console is a
            terminal, so logs and CI output stay quiet.
        epoch_lines: When the live bar is not drawn, print one summary line per epoch
            (steps, time, metrics). ``False`` prints nothing at all.
        console: The ``rich`` console to draw on; a new one on standard error if omitted.
    """

    steps_per_epoch: int | None = None
    batch_metrics_every_n_steps: int = 0
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
    enabled: bool | None
    epoch_lines: bool
    console: Console | None


class ProgressBar(ConfiguredCallback[ProgressBarConfig]):
    """Show training progress: one bar per epoch with step count, elapsed time, ETA and metrics.

    Drawn with ``rich`` on a terminal; elsewhere (logs, CI) it draws nothing and prints
    one line per epoch, never wrapped at the console width (or nothing, with
    ``epoch_lines=False``). Batch ends only advance
    a counter; they read no array unless ``batch_metrics_every_n_steps`` asks for it.

    Args:
        config: The configuration (positional-only); the defaults if omitted.
        **kwargs: Instead of ``config``, its fields ([`ProgressBarKwargs`][]).
    """

    __slots__ = (
        "_console",
        "_count",
        "_epoch_start",
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

    @property
    def live(self) -> bool:
        """Whether the live bar is being drawn (between train begin and end)."""
        return self._progress is not None

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Pick the console and start the live display if it is a terminal (or enabled)."""
        console = self.config.console or Console(stderr=True)
        self._console = console
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
        if self._progress is not None:
            self._task = self._progress.add_task(f"Epoch {epoch}", total=self._total, metrics="")

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        """Advance the counter; read the batch logs only every n steps if configured."""
        self._count += 1
        progress, task = self._progress, self._task
        if progress is None or task is None:
            return
        every = self.config.batch_metrics_every_n_steps
        if every and self._count % every == 0:
            progress.update(task, advance=1, metrics=format_metrics(logs))
        else:
            progress.advance(task)

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Complete the bar with the epoch metrics, or print the epoch line."""
        if self._total is None and self._count:
            self._total = self._count
        metrics = format_metrics(logs)
        progress, task = self._progress, self._task
        if progress is not None and task is not None:
            progress.update(task, total=self._count, completed=self._count, metrics=metrics)
        elif progress is None and self.config.epoch_lines:
            console = self._console or self.config.console or Console(stderr=True)
            elapsed = time.perf_counter() - self._epoch_start
            console.print(
                f"Epoch {epoch}: {self._count} steps in {elapsed:.2f}s {metrics}".rstrip(),
                markup=False,
                highlight=False,
                soft_wrap=True,  # one unwrapped line per epoch, also in CI logs
            )
        self._task = None

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """Stop the live display."""
        progress = self._progress
        self._progress = None
        self._task = None
        if progress is not None:
            progress.stop()
