"""Write metrics as TensorBoard event files (with ``tensorboardX``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack, overload

from artifex.generative_models.training._checks import check_path, set_int
from artifex.generative_models.training.callbacks._configured import ConfiguredCallback
from artifex.generative_models.training.callbacks._monitor import to_float
from artifex.generative_models.training.callbacks._tracking import epoch_step
from artifex.generative_models.training.callbacks.base import (
    ProcessScope,
    TrainerLike,
)

if TYPE_CHECKING:
    from tensorboardX import SummaryWriter

__all__ = ["TensorBoardConfig", "TensorBoardKwargs", "TensorBoardLogger"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorBoardConfig:
    """Configuration of [`TensorBoardLogger`][].

    Attributes:
        log_dir: The event-file directory, created at ``on_train_begin``.
        log_every_n_steps: Also log the batch logs every n global steps, under
            ``batch/<key>``. Reading them waits for the device (a sync), so the default
            ``0`` logs epoch metrics only.
        flush_secs: How often the writer flushes to disk, in seconds.
    """

    log_dir: str | os.PathLike[str] = "tensorboard"
    log_every_n_steps: int = 0
    flush_secs: int = 30

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            TypeError: If a count is not an int.
            ValueError: If ``log_dir`` is empty or a count is out of range.
        """
        check_path("log_dir", self.log_dir)
        set_int(self, "log_every_n_steps", minimum=0)
        set_int(self, "flush_secs", minimum=1)


class TensorBoardKwargs(TypedDict, total=False):
    """The fields of [`TensorBoardConfig`][], as keyword arguments (each optional)."""

    log_dir: str | os.PathLike[str]
    log_every_n_steps: int
    flush_secs: int


class TensorBoardLogger(ConfiguredCallback[TensorBoardConfig]):
    """Log epoch metrics (``epoch/<key>``) at the global step to TensorBoard event files.

    The x-axis is the global step, as for the experiment trackers: an epoch's values
    (with ``epoch/epoch``, the epoch itself) at the training steps done, batch ``s``'s
    at ``s + 1``.

    Needs ``tensorboardX`` (``pip install 'artifex-nnx-callbacks[tensorboard]'``); it is
    imported at ``on_train_begin``. ``on_epoch_end`` logs already include the
    ``val_*`` keys. Batch logs are written only if ``log_every_n_steps`` is set (each
    such write reads device scalars: a sync). Each ``on_epoch_end`` closes the event
    file, which writes every event logged so far (tensorboardX's ``flush`` leaves those
    still queued for its writer thread), so a SIGKILL loses no epoch already
    checkpointed if this logger is registered before ``ModelCheckpoint``; the next
    write opens the next file (one per epoch, named ``...<pid>.<n>``). ``on_train_end``
    closes the file too (a preemption's teardown included).

    A run that starts at global step ``T > 0`` (a resume) opens its event file with
    ``purge_step=T + 1``: TensorBoard then hides the events at later steps that a killed
    run wrote after its checkpoint, so every epoch shows once.

    Args:
        config: The configuration (positional-only); the defaults if omitted.
        **kwargs: Instead of ``config``, its fields ([`TensorBoardKwargs`][]).
    """

    __slots__ = ("_files", "_steps", "_writer")
    process_scope: ProcessScope = "main"  # one event log, on process 0 only

    @overload
    def __init__(self, config: TensorBoardConfig | None, /) -> None: ...
    @overload
    def __init__(self, /, **kwargs: Unpack[TensorBoardKwargs]) -> None: ...
    def __init__(
        self, config: TensorBoardConfig | None = None, /, **kwargs: Unpack[TensorBoardKwargs]
    ) -> None:
        self._configure(TensorBoardConfig, config, kwargs)
        self._writer: SummaryWriter | None = None
        self._steps = 0  # the last batch's s + 1 (the step of a trainer without one)
        self._files = 0  # the event files this process opened (unique file names)

    def _open(self, purge_step: int | None = None) -> SummaryWriter:
        """Open the next event file; ``purge_step`` hides the directory's later events."""
        try:
            from tensorboardX import SummaryWriter
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "TensorBoardLogger needs tensorboardX: "
                "pip install 'artifex-nnx-callbacks[tensorboard]'"
            ) from exc
        log_dir = Path(self.config.log_dir).resolve()
        log_dir.mkdir(parents=True, exist_ok=True)
        self._files += 1  # tensorboardX names files by the second: one per close must differ
        self._writer = SummaryWriter(
            str(log_dir),
            purge_step=purge_step,
            flush_secs=self.config.flush_secs,
            filename_suffix=f".{os.getpid()}.{self._files:06d}",
        )
        return self._writer

    def _write(self, prefix: str, logs: dict[str, Any], step: int) -> None:
        writer = self._writer or self._open()
        for key, raw in logs.items():
            value = to_float(raw)
            if value is not None:
                writer.add_scalar(f"{prefix}/{key}", value, step)

    def _close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()  # its queued events are written first

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Create the directory and open an event file (purging later steps on a resume).

        Raises:
            ImportError: If ``tensorboardX`` is not installed.
        """
        self._close()
        step = epoch_step(trainer, self._steps)
        self._open(purge_step=step + 1 if step > 0 else None)

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        """Every ``log_every_n_steps`` steps (if set), log the batch logs (a sync)."""
        self._steps = batch + 1
        every = self.config.log_every_n_steps
        if every and self._steps % every == 0:
            self._write("batch", logs, self._steps)

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Log the epoch metrics and the epoch, at the global step; close the file."""
        self._write("epoch", {**logs, "epoch": epoch}, epoch_step(trainer, self._steps))
        self._close()

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """Close the event file (writing what is queued)."""
        self._close()
