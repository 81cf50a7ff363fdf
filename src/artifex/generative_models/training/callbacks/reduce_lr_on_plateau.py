"""Reduce the learning rate when a monitored metric has stopped improving (Keras's rule)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack, overload

import numpy as np

from artifex.generative_models.training._checks import (
    check_bool,
    check_name,
    check_real,
    set_int,
)
from artifex.generative_models.training.callbacks._configured import ConfiguredCallback
from artifex.generative_models.training.callbacks._monitor import (
    Mode,
    MonitorLookup,
    check_resumed_mode,
    set_mode,
)
from artifex.generative_models.training.callbacks._tuning import injected
from artifex.generative_models.training.callbacks.base import TrainerLike

__all__ = ["ReduceLROnPlateau", "ReduceLROnPlateauConfig", "ReduceLROnPlateauKwargs"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReduceLROnPlateauConfig:
    """Configuration of [`ReduceLROnPlateau`][] (Keras's fields and defaults).

    Attributes:
        monitor: The ``on_epoch_end`` log key to watch.
        factor: The learning rate is multiplied by this (``0 < factor < 1``).
        patience: Epochs without improvement after which it is reduced (``>= 0``).
        mode: ``"min"`` if lower is better, ``"max"`` if higher is better, or
            ``"auto"`` (the default): inferred from ``monitor``'s name, ``"max"`` for an
            accuracy, ``"min"`` for a loss or an error (the Built-in callbacks page lists
            the names); any other name is refused with a ``ValueError``. A built config
            holds the resolved ``"min"`` or ``"max"``: ``dataclasses.replace`` with
            another ``monitor`` keeps it, unless you pass ``mode="auto"`` again.
        min_delta: The smallest change that counts as an improvement (``>= 0``).
        cooldown: Epochs after a reduction during which no epoch counts against
            patience (``>= 0``).
        min_lr: The learning rate is never reduced below this (``>= 0``).
        hyperparameter: The injected hyperparameter that is the learning rate.
        strict: Raise ``KeyError`` when ``monitor`` is missing from the epoch logs,
            instead of warning once.
    """

    monitor: str = "val_loss"
    factor: float = 0.1
    patience: int = 10
    mode: Mode = "auto"
    min_delta: float = 1e-4
    cooldown: int = 0
    min_lr: float = 0.0
    hyperparameter: str = "learning_rate"
    strict: bool = False

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            TypeError: If a field has the wrong type.
            ValueError: If a field has a bad value.
        """
        check_name("monitor", self.monitor)
        factor = check_real("factor", self.factor)
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be > 0 and < 1 (it reduces), got {self.factor!r}")
        set_int(self, "patience", minimum=0)
        set_mode(self, "ReduceLROnPlateauConfig", self.monitor)
        check_real("min_delta", self.min_delta, minimum=0.0)
        set_int(self, "cooldown", minimum=0)
        check_real("min_lr", self.min_lr, minimum=0.0)
        check_name("hyperparameter", self.hyperparameter)
        check_bool("strict", self.strict)


class ReduceLROnPlateauKwargs(TypedDict, total=False):
    """The fields of [`ReduceLROnPlateauConfig`][], as keyword arguments (each optional)."""

    monitor: str
    factor: float
    patience: int
    mode: Mode
    min_delta: float
    cooldown: int
    min_lr: float
    hyperparameter: str
    strict: bool


class ReduceLROnPlateau(ConfiguredCallback[ReduceLROnPlateauConfig]):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    Keras's rule, at each ``on_epoch_end``: during a cooldown (``cooldown`` epochs
    after a reduction) the patience counter stays at 0; an improvement of more than
    ``min_delta`` over [`best`][] resets it; otherwise (out of cooldown) it grows, and
    at ``patience``, if the learning rate is above ``min_lr``, it becomes
    ``max(lr * factor, min_lr)``, the counter resets and a cooldown starts. NaN is
    never an improvement; a missing key warns once ([`MissingMetricWarning`][]) and
    changes nothing.

    The learning rate is set through the
    [`HyperparameterTrainer`][]
    protocol: the optimizer must be built with ``optax.inject_hyperparams`` and a
    number (not a schedule, which optax recomputes every step) as learning rate;
    ``on_train_begin`` refuses anything else. The reference ``Trainer`` replaces the
    value in the optimizer state with an array of the same dtype and sharding, so the
    new rate holds from the next step, without recompiling, on a mesh too.

    The decision state is checkpointed (``state_key`` ``"ReduceLROnPlateau[<monitor>]"``);
    the learning rate itself is in the optimizer state, so a resume is exact. State
    resets at ``on_train_begin`` unless it was just loaded (a resume). It reads only
    the epoch logs, which are identical on every process, so every process reduces
    at the same epoch.

    Args:
        config: The configuration (positional-only); the defaults if omitted.
        **kwargs: Instead of ``config``, its fields ([`ReduceLROnPlateauKwargs`][]).
    """

    __slots__ = (
        "_loaded_mode",
        "_lookup",
        "_resumed",
        "best",
        "cooldown_counter",
        "wait",
    )

    @overload
    def __init__(self, config: ReduceLROnPlateauConfig | None, /) -> None: ...
    @overload
    def __init__(self, /, **kwargs: Unpack[ReduceLROnPlateauKwargs]) -> None: ...
    def __init__(
        self,
        config: ReduceLROnPlateauConfig | None = None,
        /,
        **kwargs: Unpack[ReduceLROnPlateauKwargs],
    ) -> None:
        config = self._configure(ReduceLROnPlateauConfig, config, kwargs)
        self._lookup = MonitorLookup("ReduceLROnPlateau", config.monitor, strict=config.strict)
        self.best: float | None = None
        """The best value seen, or ``None`` before a first (non-NaN) one."""
        self.wait: int = 0
        """Epochs since the last improvement (or the end of the last cooldown)."""
        self.cooldown_counter: int = 0
        """Epochs of cooldown left."""
        self._resumed = False
        self._loaded_mode: object = None  # the mode of a loaded state, until checked

    def preflight(self, trainer: TrainerLike, /) -> None:
        """Refuse the run now if ``on_train_begin`` would.

        See
        [`PreflightCallback`][artifex.generative_models.training.callbacks.protocols.PreflightCallback].

        Args:
            trainer: The trainer about to run.

        Raises:
            TypeError: If the trainer does not expose its optimizer's hyperparameters.
            ValueError: If the optimizer lacks ``optax.inject_hyperparams`` or its
                learning rate, the learning rate is a schedule, or a loaded state was
                saved under another mode (the message names both).
        """
        self._refusals(trainer)

    def _refusals(self, trainer: TrainerLike) -> None:
        """Raise unless the learning rate can be set (run by preflight and set-up)."""
        if self._resumed:
            config = self.config
            check_resumed_mode("ReduceLROnPlateau", config.monitor, self._loaded_mode, config.mode)
        name = self.config.hyperparameter
        tunable, _ = injected(trainer, "ReduceLROnPlateau", name)
        if name in tunable.scheduled_hyperparameters():
            raise ValueError(
                f"ReduceLROnPlateau cannot set the optimizer's {name!r}: it is a schedule, "
                "which optax recomputes at every step; pass a number to "
                "optax.inject_hyperparams, or drop ReduceLROnPlateau and keep the schedule"
            )

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Check the learning rate can be set; reset the state unless it was just loaded.

        Runs the checks of [`preflight`][] first, for trainers that do not call it.

        Raises:
            TypeError: If the trainer does not expose its optimizer's hyperparameters.
            ValueError: If the optimizer lacks ``optax.inject_hyperparams`` or its
                learning rate, the learning rate is a schedule, or a loaded state was
                saved under another mode.
        """
        self._refusals(trainer)
        self._lookup.reset()
        if self._resumed:
            self._resumed = False
            return
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def _improves(self, current: float) -> bool:
        best, delta = self.best, self.config.min_delta
        if math.isnan(current):
            return False
        if best is None:
            return True
        return current < best - delta if self.config.mode == "min" else current > best + delta

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Update the state; reduce the learning rate when patience has run out.

        Raises:
            KeyError: If ``strict`` and the monitored key is missing.
            TypeError: If the monitored value is not a number.
        """
        current = self._lookup.number(logs, "on_epoch_end")
        if current is None:
            return
        config = self.config
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improves(current):
            self.best = current
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait < config.patience:
            return
        tunable, values = injected(trainer, "ReduceLROnPlateau", config.hyperparameter)
        old = values[config.hyperparameter]
        if old > float(np.float32(config.min_lr)):  # as Keras: a float32 rate at min_lr stays
            new = max(old * config.factor, config.min_lr)
            tunable.set_hyperparameter(config.hyperparameter, new)
            _log.info("ReduceLROnPlateau: epoch %d: learning rate %.4g -> %.4g", epoch, old, new)
            self.cooldown_counter = config.cooldown
            self.wait = 0

    # ------------------------------------------------------------- callback state

    @property
    def state_key(self) -> str:
        """A stable key for checkpoints: ``"ReduceLROnPlateau[<monitor>]"``."""
        return f"ReduceLROnPlateau[{self.config.monitor}]"

    def state_dict(self) -> dict[str, Any]:
        """Return the decision state as JSON-compatible Python scalars, with the mode.

        The resolved ``mode`` is there so that a resume under another mode is refused.
        """
        return {
            "mode": self.config.mode,
            "best": self.best,
            "wait": self.wait,
            "cooldown_counter": self.cooldown_counter,
        }

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        """Restore what [`state_dict`][] returned; the next ``on_train_begin`` keeps it.

        The saved ``mode`` (absent from states saved before it was recorded) is
        checked against ``config.mode`` by [`preflight`][] and ``on_train_begin``.

        Args:
            state: A mapping with the keys [`state_dict`][] returns.

        Raises:
            KeyError: If a key is missing.
        """
        self._loaded_mode = state.get("mode")
        best = state["best"]
        self.best = None if best is None else float(best)
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self._resumed = True
