"""Stop training as soon as the loss becomes NaN or infinite."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack, overload

from artifex.generative_models.training._checks import check_name
from artifex.generative_models.training.callbacks._configured import ConfiguredCallback
from artifex.generative_models.training.callbacks._monitor import MonitorLookup
from artifex.generative_models.training.callbacks.base import TrainerLike

__all__ = ["TerminateOnNaN", "TerminateOnNaNConfig", "TerminateOnNaNKwargs"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TerminateOnNaNConfig:
    """Configuration of [`TerminateOnNaN`][].

    Attributes:
        monitor: The ``on_batch_end`` log key to check.
    """

    monitor: str = "loss"

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            TypeError: If ``monitor`` is not a str.
            ValueError: If ``monitor`` is empty.
        """
        check_name("monitor", self.monitor)


class TerminateOnNaNKwargs(TypedDict, total=False):
    """The fields of [`TerminateOnNaNConfig`][], as keyword arguments (each optional)."""

    monitor: str


class TerminateOnNaN(ConfiguredCallback[TerminateOnNaNConfig]):
    """Request a stop in the very batch whose loss is NaN or infinite.

    This callback reads ``logs[monitor]`` at every ``on_batch_end``: converting that
    device scalar to a Python float **waits for the step to finish (a device sync per
    batch)**. That is its documented purpose and its cost; leave it out where the
    pipeline must stay asynchronous, and rely on ``EarlyStopping(check_finite=True)``
    at epoch ends instead.

    After a non-finite value [`should_stop`][] is ``True`` (the
    [`StopRequester`][] protocol), so trainers stop right after that batch; a
    trainer with a ``stop_training`` flag also gets it set, for code that polls the
    flag alone. It resets at ``on_train_begin``. A missing key warns once
    ([`MissingMetricWarning`][]).

    Args:
        config: The configuration (positional-only); the defaults if omitted.
        **kwargs: Instead of ``config``, its fields ([`TerminateOnNaNKwargs`][]).
    """

    __slots__ = ("_lookup", "bad_value", "stopped_step")

    @overload
    def __init__(self, config: TerminateOnNaNConfig | None, /) -> None: ...
    @overload
    def __init__(self, /, **kwargs: Unpack[TerminateOnNaNKwargs]) -> None: ...
    def __init__(
        self, config: TerminateOnNaNConfig | None = None, /, **kwargs: Unpack[TerminateOnNaNKwargs]
    ) -> None:
        config = self._configure(TerminateOnNaNConfig, config, kwargs)
        self._lookup = MonitorLookup("TerminateOnNaN", config.monitor, strict=False)
        self.stopped_step: int | None = None
        self.bad_value: float | None = None

    @property
    def monitor(self) -> str:
        """The ``on_batch_end`` log key checked: ``config.monitor``."""
        return self.config.monitor

    @property
    def should_stop(self) -> bool:
        """Whether a non-finite value was seen since ``on_train_begin``."""
        return self.stopped_step is not None

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Forget earlier runs."""
        self.stopped_step = None
        self.bad_value = None
        self._lookup.reset()

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        """Check the monitored value (a device sync) and request a stop if not finite.

        Raises:
            TypeError: If the monitored value is not a number.
        """
        if self.stopped_step is not None:
            return
        value = self._lookup.number(logs, "on_batch_end")
        if value is not None and not math.isfinite(value):
            self.stopped_step = batch
            self.bad_value = value
            if isinstance(getattr(trainer, "stop_training", None), bool):
                flagged: Any = trainer  # a trainer with Keras's flag (TrainerState has it)
                flagged.stop_training = True
