"""Record the optimizer's learning rate (and other injected hyperparameters) per epoch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypedDict, Unpack, overload

from artifex.generative_models.training._checks import check_bool, check_name
from artifex.generative_models.training.callbacks._configured import ConfiguredCallback
from artifex.generative_models.training.callbacks._order import (
    LogOrderWarning,
    warn_if_read_before,
)
from artifex.generative_models.training.callbacks._tuning import injected
from artifex.generative_models.training.callbacks.base import TrainerLike

__all__ = [
    "LearningRateMonitor",
    "LearningRateMonitorConfig",
    "LearningRateMonitorKwargs",
    "LogOrderWarning",
]
# LogOrderWarning (callbacks/_order.py) is shared with ThroughputMonitor.


@dataclass(frozen=True, slots=True, kw_only=True)
class LearningRateMonitorConfig:
    """Configuration of [`LearningRateMonitor`][].

    Attributes:
        key: The epoch-log key of the learning rate.
        hyperparameter: The injected hyperparameter that is the learning rate.
        log_others: Also log every other injected hyperparameter, as ``"hp_<name>"``.
    """

    key: str = "lr"
    hyperparameter: str = "learning_rate"
    log_others: bool = False

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            TypeError: If ``log_others`` is not a bool.
            ValueError: If a name is not a non-empty string.
        """
        check_name("key", self.key)
        check_name("hyperparameter", self.hyperparameter)
        check_bool("log_others", self.log_others)


class LearningRateMonitorKwargs(TypedDict, total=False):
    """The fields of [`LearningRateMonitorConfig`][], as keyword arguments (each optional)."""

    key: str
    hyperparameter: str
    log_others: bool


class LearningRateMonitor(ConfiguredCallback[LearningRateMonitorConfig]):
    """Put the optimizer's current learning rate into the epoch logs, as ``lr``.

    At each ``on_epoch_end`` it reads the injected hyperparameters through the
    [`HyperparameterTrainer`][]
    protocol (one device fetch per epoch, none per step) and adds ``logs["lr"]`` (and,
    with ``log_others``, ``logs["hp_<name>"]``), so that ``CSVLogger``,
    ``TensorBoardLogger``, ``History`` and the trackers record it. The value is the
    one the next step will use (a ``ReduceLROnPlateau`` registered earlier may have
    just changed it). Register it before the callbacks that read the epoch logs
    (a [`LogOrderWarning`][] says
    when one comes first). It runs on every process, so the logs stay identical.

    The optimizer must be built with ``optax.inject_hyperparams`` (alone, or inside
    ``optax.chain`` / ``optax.MultiSteps``); otherwise ``on_train_begin`` raises.

    Args:
        config: The configuration (positional-only); the defaults if omitted.
        **kwargs: Instead of ``config``, its fields ([`LearningRateMonitorKwargs`][]).
    """

    __slots__ = ()
    reads_epoch_logs: ClassVar[bool] = False  # it adds keys (see callbacks/_order.py)

    @overload
    def __init__(self, config: LearningRateMonitorConfig | None, /) -> None: ...
    @overload
    def __init__(self, /, **kwargs: Unpack[LearningRateMonitorKwargs]) -> None: ...
    def __init__(
        self,
        config: LearningRateMonitorConfig | None = None,
        /,
        **kwargs: Unpack[LearningRateMonitorKwargs],
    ) -> None:
        self._configure(LearningRateMonitorConfig, config, kwargs)

    def preflight(self, trainer: TrainerLike, /) -> None:
        """Refuse the run now if ``on_train_begin`` would.

        See
        [`PreflightCallback`][artifex.generative_models.training.callbacks.protocols.PreflightCallback].

        Args:
            trainer: The trainer about to run.

        Raises:
            TypeError: As [`on_train_begin`][].
            ValueError: As [`on_train_begin`][].
        """
        injected(trainer, "LearningRateMonitor", self.config.hyperparameter)

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Check that the learning rate can be read; warn if a log reader runs first.

        Raises:
            TypeError: If the trainer does not expose its optimizer's hyperparameters.
            ValueError: If the optimizer lacks ``optax.inject_hyperparams`` (the message
                names the fix) or its learning rate.
        """
        config = self.config
        _, values = injected(trainer, "LearningRateMonitor", config.hyperparameter)
        keys = [config.key]
        if config.log_others:
            keys += [f"hp_{name}" for name in values if name != config.hyperparameter]
        warn_if_read_before(trainer, self, keys)

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Add the learning rate (and the other hyperparameters, if asked) to ``logs``.

        Raises:
            TypeError: As [`on_train_begin`][].
            ValueError: As [`on_train_begin`][].
        """
        config = self.config
        _, values = injected(trainer, "LearningRateMonitor", config.hyperparameter)
        logs[config.key] = values[config.hyperparameter]
        if config.log_others:
            for name, value in values.items():
                if name != config.hyperparameter:
                    logs[f"hp_{name}"] = value
