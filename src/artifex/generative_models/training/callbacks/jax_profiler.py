"""Capture a ``jax.profiler`` trace over a window of training steps."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, Unpack, overload

import jax

from artifex.generative_models.training._checks import check_path, set_int
from artifex.generative_models.training.callbacks._configured import ConfiguredCallback
from artifex.generative_models.training.callbacks.base import (
    ProcessScope,
    TrainerLike,
)

__all__ = ["JAXProfiler", "JAXProfilerConfig", "JAXProfilerKwargs"]

# Unannotated in some JAX versions; typed aliases keep strict mypy happy on all of them.
_block_until_ready: Callable[[Any], Any] = jax.block_until_ready
_stop_trace: Callable[[], None] = jax.profiler.stop_trace


@dataclass(frozen=True, slots=True, kw_only=True)
class JAXProfilerConfig:
    """Configuration of [`JAXProfiler`][].

    Attributes:
        log_dir: Where the trace goes (``<log_dir>/plugins/profile/<run>/``), readable
            by TensorBoard's profile plugin, XProf or Perfetto.
        start_step: The global step at whose ``on_batch_begin`` tracing starts.
        stop_step: The global step at whose ``on_batch_begin`` (or at the end of
            training, if earlier) tracing stops: the window is
            ``[start_step, stop_step)``; ``stop_step > start_step``.
    """

    log_dir: str | os.PathLike[str] = "profile"
    start_step: int = 10
    stop_step: int = 20

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            TypeError: If a step is not an int.
            ValueError: If ``log_dir`` is empty or the window is empty or negative.
        """
        check_path("log_dir", self.log_dir)
        set_int(self, "start_step", minimum=0)
        set_int(self, "stop_step", minimum=self.start_step + 1)


class JAXProfilerKwargs(TypedDict, total=False):
    """The fields of [`JAXProfilerConfig`][], as keyword arguments (each optional)."""

    log_dir: str | os.PathLike[str]
    start_step: int
    stop_step: int


class JAXProfiler(ConfiguredCallback[JAXProfilerConfig]):
    """Trace the steps ``start_step`` to ``stop_step - 1`` with ``jax.profiler``.

    Tracing starts at ``on_batch_begin(start_step)``. At ``on_batch_end`` of the last
    step in the window it waits for that step's logs (the window's only device sync, so
    that the trace holds the device work) and stops. If training ends inside the window,
    ``on_train_end`` stops the trace. Only one trace can run per process: a second
    active trace makes ``jax.profiler.start_trace`` raise.

    Args:
        config: The configuration (positional-only); the defaults if omitted.
        **kwargs: Instead of ``config``, its fields ([`JAXProfilerKwargs`][]).
    """

    __slots__ = ("_tracing", "trace_dir")
    process_scope: ProcessScope = "main"  # one trace, on process 0 only

    @overload
    def __init__(self, config: JAXProfilerConfig | None, /) -> None: ...
    @overload
    def __init__(self, /, **kwargs: Unpack[JAXProfilerKwargs]) -> None: ...
    def __init__(
        self, config: JAXProfilerConfig | None = None, /, **kwargs: Unpack[JAXProfilerKwargs]
    ) -> None:
        self._configure(JAXProfilerConfig, config, kwargs)
        self._tracing = False
        self.trace_dir: Path | None = None
        """The directory of the last completed trace, or ``None``."""

    @property
    def tracing(self) -> bool:
        """Whether a trace is running now."""
        return self._tracing

    def on_batch_begin(self, trainer: TrainerLike, batch: int, /) -> None:
        """Start the trace at ``start_step``."""
        if batch == self.config.start_step and not self._tracing:
            log_dir = Path(self.config.log_dir).resolve()
            log_dir.mkdir(parents=True, exist_ok=True)
            jax.profiler.start_trace(str(log_dir))
            self._tracing = True

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        """Stop the trace after the window's last step (waiting for its results)."""
        if self._tracing and batch >= self.config.stop_step - 1:
            _block_until_ready(logs)
            self._stop()

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """Stop a trace still running."""
        if self._tracing:
            self._stop()

    def _stop(self) -> None:
        self._tracing = False
        _stop_trace()
        self.trace_dir = Path(self.config.log_dir).resolve()
