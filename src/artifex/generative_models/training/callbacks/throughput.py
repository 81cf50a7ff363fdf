"""Measure training throughput: steps and examples per second, per epoch."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, TypedDict, Unpack, overload

import jax
import numpy as np
from jax.experimental import multihost_utils

from artifex.generative_models.training._checks import set_int
from artifex.generative_models.training.callbacks._configured import ConfiguredCallback
from artifex.generative_models.training.callbacks._order import warn_if_read_before
from artifex.generative_models.training.callbacks.base import TrainerLike
from artifex.generative_models.training.callbacks.protocols import ExampleCounter

__all__ = ["ThroughputMonitor", "ThroughputMonitorConfig", "ThroughputMonitorKwargs"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ThroughputMonitorConfig:
    """Configuration of [`ThroughputMonitor`][].

    Attributes:
        examples_per_step: The global batch size (all processes together). ``None``
            (the default): counted by the trainer if it can (the
            [`ExampleCounter`][]
            protocol; the reference ``Trainer`` counts the leading dimension of each
            batch's first leaf), else only steps per second are logged.
        every_n_steps: Also put the throughput of the last ``n`` steps into every
            ``n``-th step's batch logs. That waits for the step (one sync per ``n``
            steps, never per step); ``0`` (the default) never does.
    """

    examples_per_step: int | None = None
    every_n_steps: int = 0

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            TypeError: If a field is not an int.
            ValueError: If a field is out of range.
        """
        if self.examples_per_step is not None:
            set_int(self, "examples_per_step", minimum=1)
        set_int(self, "every_n_steps", minimum=0)


def _agreed_seconds(seconds: float) -> float:
    """The longest of every process's ``seconds`` (a collective in a multi-process job).

    Every process must call it at the same point; in a single process it returns
    ``seconds`` without communicating.

    Args:
        seconds: This process's measurement.

    Returns:
        The largest measurement of all processes.
    """
    if jax.process_count() == 1:
        return seconds
    gathered = multihost_utils.process_allgather(np.asarray(seconds, np.float32))
    return float(np.max(np.asarray(gathered)))


class _Window:
    """Where a measurement started: host time, steps and examples seen."""

    __slots__ = ("examples", "start", "steps")

    def __init__(self, steps: int, examples: int | None) -> None:
        self.start = time.perf_counter()
        self.steps = steps
        self.examples = examples


class ThroughputMonitorKwargs(TypedDict, total=False):
    """The fields of [`ThroughputMonitorConfig`][], as keyword arguments (each optional)."""

    examples_per_step: int | None
    every_n_steps: int


class ThroughputMonitor(ConfiguredCallback[ThroughputMonitorConfig]):
    """Put ``steps_per_second`` and ``examples_per_second`` into the epoch logs.

    Each epoch is timed on the host, from ``on_epoch_begin`` to the end of its
    training steps (``on_validation_begin``, or ``on_epoch_end`` without validation):
    no array is read, so there is no per-step sync. The reference ``Trainer`` fetches
    the epoch means before either hook, so the time covers the finished steps, not
    only their dispatch. The first epoch includes the compilation.

    Examples per second are global (all devices of a mesh, all processes): from
    ``examples_per_step`` if given, else from the trainer's count (the
    [`ExampleCounter`][]
    protocol; the reference ``Trainer`` counts global batch rows), else not logged.

    Epoch logs are identical on every process: in a multi-process job each process
    measures its own time and, at ``on_epoch_end``, all agree on the longest
    (one small collective per epoch), so this callback runs
    on every process (``process_scope = "all"``). Register it before the callbacks
    that read the epoch logs (a [`LogOrderWarning`][] says when one comes first).

    With ``every_n_steps=n``, every ``n``-th ``on_batch_end`` waits for that step
    and adds the last ``n`` steps' throughput to the batch logs (this process's own
    measurement, not agreed between processes).

    Args:
        config: The configuration (positional-only); the defaults if omitted.
        **kwargs: Instead of ``config``, its fields ([`ThroughputMonitorKwargs`][]).
    """

    __slots__ = ("_batch", "_epoch", "_steps", "_train_seconds")
    reads_epoch_logs: ClassVar[bool] = False  # it adds keys (see callbacks/_order.py)

    @overload
    def __init__(self, config: ThroughputMonitorConfig | None, /) -> None: ...
    @overload
    def __init__(self, /, **kwargs: Unpack[ThroughputMonitorKwargs]) -> None: ...
    def __init__(
        self,
        config: ThroughputMonitorConfig | None = None,
        /,
        **kwargs: Unpack[ThroughputMonitorKwargs],
    ) -> None:
        self._configure(ThroughputMonitorConfig, config, kwargs)
        self._steps = 0
        self._epoch = _Window(0, None)
        self._batch = _Window(0, None)
        self._train_seconds: float | None = None

    @staticmethod
    def _examples(trainer: TrainerLike) -> int | None:
        return trainer.examples_seen if isinstance(trainer, ExampleCounter) else None

    def _rates(self, trainer: TrainerLike, window: _Window, seconds: float) -> dict[str, float]:
        steps = self._steps - window.steps
        seconds = max(seconds, 1e-9)
        rates = {"steps_per_second": steps / seconds}
        per_step = self.config.examples_per_step
        seen = self._examples(trainer)
        if per_step is not None:
            rates["examples_per_second"] = steps * per_step / seconds
        elif seen is not None and window.examples is not None:
            rates["examples_per_second"] = (seen - window.examples) / seconds
        return rates

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Warn if a callback that reads the epoch logs is registered first."""
        warn_if_read_before(trainer, self, ("steps_per_second", "examples_per_second"))

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, /) -> None:
        """Start timing the epoch."""
        self._steps = 0
        self._train_seconds = None
        self._epoch = self._batch = _Window(0, self._examples(trainer))

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        """Count the step; every ``n`` steps, wait for it and log the last ``n`` steps' rates."""
        self._steps += 1
        every = self.config.every_n_steps
        if every and self._steps % every == 0:
            for value in logs.values():
                if isinstance(value, jax.Array):
                    value.block_until_ready()
            logs.update(self._rates(trainer, self._batch, time.perf_counter() - self._batch.start))
            self._batch = _Window(self._steps, self._examples(trainer))

    def on_validation_begin(self, trainer: TrainerLike, /) -> None:
        """The training steps are done: stop the epoch's clock."""
        self._train_seconds = time.perf_counter() - self._epoch.start

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Add the epoch's rates to ``logs`` (agreed between processes)."""
        seconds = self._train_seconds
        if seconds is None:
            seconds = time.perf_counter() - self._epoch.start
        logs.update(self._rates(trainer, self._epoch, _agreed_seconds(seconds)))
