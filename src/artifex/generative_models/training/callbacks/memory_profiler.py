"""Report device memory statistics at epoch ends."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict, Unpack, overload

import jax
from typing_extensions import Protocol, runtime_checkable

from artifex.generative_models.training._checks import set_int
from artifex.generative_models.training.callbacks._configured import ConfiguredCallback
from artifex.generative_models.training.callbacks.base import TrainerLike

__all__ = [
    "MemoryProfiler",
    "MemoryProfilerConfig",
    "MemoryProfilerKwargs",
    "MemoryRecord",
    "MemoryStatsDevice",
]

_log = logging.getLogger(__name__)


@runtime_checkable
class MemoryStatsDevice(Protocol):
    """What [`MemoryProfiler`][] needs of a device: ``jax.Device`` provides it."""

    def memory_stats(self) -> dict[str, Any] | None:
        """The backend's memory statistics, or ``None`` where it gives none (CPU)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryProfilerConfig:
    """Configuration of [`MemoryProfiler`][].

    Attributes:
        every_n_epochs: Record at the end of every n-th epoch.
        devices: The devices to query; ``jax.local_devices()`` if ``None``.
        log_level: The ``logging`` level of the per-epoch report (``INFO``).
    """

    every_n_epochs: int = 1
    devices: Sequence[MemoryStatsDevice] | None = None
    log_level: int = logging.INFO

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            TypeError: If a field has the wrong type.
            ValueError: If ``every_n_epochs`` is below 1.
        """
        set_int(self, "every_n_epochs", minimum=1)
        set_int(self, "log_level", minimum=0)
        if self.devices is not None:
            devices: object = self.devices
            if isinstance(devices, str | bytes) or not isinstance(devices, Sequence):
                raise TypeError(
                    "devices must be a sequence of devices (a list or tuple) or None, got "
                    f"{type(devices).__qualname__} {devices!r}"
                )
            object.__setattr__(self, "devices", tuple(self.devices))  # a copy
            for device in self.devices:
                if not isinstance(device, MemoryStatsDevice):
                    raise TypeError(f"devices must have memory_stats(), got {device!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryRecord:
    """One device's memory statistics at one epoch end.

    Attributes:
        epoch: The epoch that ended.
        device: ``str(device)``.
        stats: The backend's statistics (e.g. ``bytes_in_use``, ``peak_bytes_in_use``).
    """

    epoch: int
    device: str
    stats: dict[str, Any] = field(default_factory=dict)


class MemoryProfilerKwargs(TypedDict, total=False):
    """The fields of [`MemoryProfilerConfig`][], as keyword arguments (each optional)."""

    every_n_epochs: int
    devices: Sequence[MemoryStatsDevice] | None
    log_level: int


class MemoryProfiler(ConfiguredCallback[MemoryProfilerConfig]):
    """Record ``device.memory_stats()`` at epoch ends, where the backend reports them.

    GPU and TPU backends report statistics; the CPU backend returns ``None``. Such
    devices are reported once per ``fit`` with a logged warning (and in
    [`unavailable`][]), never an error. Records go to [`records`][] and to the
    ``logging`` logger of this module. Querying the allocator does not wait for the
    device.

    Args:
        config: The configuration (positional-only); the defaults if omitted.
        **kwargs: Instead of ``config``, its fields ([`MemoryProfilerKwargs`][]).
    """

    __slots__ = ("records", "unavailable")
    reads_epoch_logs: ClassVar[bool] = False  # its on_epoch_end reads memory statistics

    @overload
    def __init__(self, config: MemoryProfilerConfig | None, /) -> None: ...
    @overload
    def __init__(self, /, **kwargs: Unpack[MemoryProfilerKwargs]) -> None: ...
    def __init__(
        self, config: MemoryProfilerConfig | None = None, /, **kwargs: Unpack[MemoryProfilerKwargs]
    ) -> None:
        self._configure(MemoryProfilerConfig, config, kwargs)
        self.records: list[MemoryRecord] = []
        """Every record taken, across ``fit`` calls."""
        self.unavailable: tuple[str, ...] = ()
        """The devices that report no statistics, as found at the last ``on_train_begin``."""

    def _devices(self) -> Sequence[MemoryStatsDevice]:
        if self.config.devices is not None:
            return self.config.devices
        devices: Sequence[MemoryStatsDevice] = jax.local_devices()
        return devices

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Find the devices without statistics and say so (a logged warning)."""
        missing = tuple(str(d) for d in self._devices() if d.memory_stats() is None)
        self.unavailable = missing
        if missing:
            _log.warning(
                "MemoryProfiler: no memory statistics on %s (the backend reports none; "
                "the CPU backend never does)",
                ", ".join(missing),
            )

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Record and log the statistics of every device that has them."""
        if (epoch + 1) % self.config.every_n_epochs != 0:
            return
        for device in self._devices():
            stats = device.memory_stats()
            if stats is None:
                continue
            record = MemoryRecord(epoch=epoch, device=str(device), stats=dict(stats))
            self.records.append(record)
            _log.log(
                self.config.log_level,
                "epoch %d %s: %.1f MiB in use, peak %.1f MiB",
                epoch,
                record.device,
                stats.get("bytes_in_use", 0) / 2**20,
                stats.get("peak_bytes_in_use", 0) / 2**20,
            )
