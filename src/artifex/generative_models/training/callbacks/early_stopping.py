"""Early stopping: stop training when a monitored metric stops improving."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack, overload

import jax
import jax.numpy as jnp
from flax import nnx

from artifex.generative_models.training._checkpointing._pytree import match_keys
from artifex.generative_models.training._checks import (
    check_bool,
    check_name,
    check_real,
    set_int,
)
from artifex.generative_models.training.callbacks._configured import ConfiguredCallback
from artifex.generative_models.training.callbacks._monitor import (
    MissingMetricWarning,
    Mode,
    MonitorLookup,
    check_resumed_mode,
    set_mode,
    worst,
)
from artifex.generative_models.training.callbacks.base import TrainerLike

__all__ = ["EarlyStopping", "EarlyStoppingConfig", "EarlyStoppingKwargs", "MissingMetricWarning"]
# MissingMetricWarning is shared with ModelCheckpoint and TerminateOnNaN.


@dataclass(frozen=True, slots=True, kw_only=True)
class EarlyStoppingConfig:
    """Configuration of [`EarlyStopping`][].

    Attributes:
        monitor: The ``on_epoch_end`` log key to watch.
        min_delta: The smallest change that counts as an improvement (``>= 0``).
        patience: Epochs without improvement after which training stops (``>= 0``).
        mode: ``"min"`` if lower is better, ``"max"`` if higher is better, or
            ``"auto"`` (the default): inferred from ``monitor``'s name, ``"max"`` for an
            accuracy, ``"min"`` for a loss or an error (the Built-in callbacks page lists
            the names); any other name is refused with a ``ValueError``. A built config
            holds the resolved ``"min"`` or ``"max"``: ``dataclasses.replace`` with
            another ``monitor`` keeps it, unless you pass ``mode="auto"`` again.
        check_finite: Stop as soon as the metric is NaN or infinite.
        stopping_threshold: Stop as soon as the metric is better than this.
        divergence_threshold: Stop as soon as the metric is worse than this.
        baseline: The score to beat; epochs that do not beat it count against patience.
        start_from_epoch: Epochs before this one are ignored (warm-up).
        restore_best_weights: At ``on_train_end``, load the model state of the best
            epoch into the model (the state is copied on the device, never synced).
            The copy is part of the checkpointed state ([`EarlyStopping.array_state`][]),
            so a resumed run that stops later restores the best epoch of the whole run.
        strict: Raise ``KeyError`` when ``monitor`` is missing from the epoch logs,
            instead of warning once.
    """

    monitor: str = "val_loss"
    min_delta: float = 0.0
    patience: int = 10
    mode: Mode = "auto"
    check_finite: bool = True
    stopping_threshold: float | None = None
    divergence_threshold: float | None = None
    baseline: float | None = None
    start_from_epoch: int = 0
    restore_best_weights: bool = False
    strict: bool = False

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            TypeError: If a field has the wrong type.
            ValueError: If a field has a bad value.
        """
        check_name("monitor", self.monitor)
        check_real("min_delta", self.min_delta, minimum=0.0)
        set_int(self, "patience", minimum=0)
        set_mode(self, "EarlyStoppingConfig", self.monitor)
        set_int(self, "start_from_epoch", minimum=0)
        for field in ("stopping_threshold", "divergence_threshold", "baseline"):
            value = getattr(self, field)
            if value is not None:
                check_real(field, value)
        for field in ("check_finite", "restore_best_weights", "strict"):
            check_bool(field, getattr(self, field))


class EarlyStoppingKwargs(TypedDict, total=False):
    """The fields of [`EarlyStoppingConfig`][], as keyword arguments (each optional)."""

    monitor: str
    min_delta: float
    patience: int
    mode: Mode
    check_finite: bool
    stopping_threshold: float | None
    divergence_threshold: float | None
    baseline: float | None
    start_from_epoch: int
    restore_best_weights: bool
    strict: bool


class EarlyStopping(ConfiguredCallback[EarlyStoppingConfig]):
    """Ask the trainer to stop when ``config.monitor`` has stopped improving.

    Decisions are taken at ``on_epoch_end`` (a Python-float read of the epoch logs; no
    per-batch work, no device sync). After each epoch (from ``start_from_epoch`` on):

    * a missing key warns once ([`MissingMetricWarning`][], listing the keys there
      are) and changes nothing; ``strict=True`` raises ``KeyError`` instead;
    * a non-finite value stops at once when ``check_finite``, and otherwise counts as
      no improvement (NaN never improves);
    * a value better than ``stopping_threshold`` or worse than ``divergence_threshold``
      stops at once;
    * otherwise an improvement of more than ``min_delta`` over ``best_score`` (which
      starts at ``baseline``, if given) resets ``wait_count``; anything else increments
      it, and ``wait_count >= patience`` stops. Before a first score (without
      ``baseline``), [`best_score`][] is ``None`` and any non-NaN score improves.

    Stopping means [`should_stop`][] becomes ``True`` (the [`StopRequester`][]
    protocol); trainers honour it after the hook. All state resets at
    ``on_train_begin``, so a reused instance behaves like a fresh one, except right
    after [`load_state_dict`][] (a resume): then the next ``on_train_begin`` keeps
    the loaded best score, best epoch and patience counter, and only clears a loaded
    stop request, so the resumed run goes on until the next stop decision.

    The best weights of ``restore_best_weights`` are the array part of the state (the
    [`ArrayStatefulCallback`][]
    protocol): ``ModelCheckpoint`` saves them with Orbax next to the model, and a resume
    loads them back ([`load_array_state`][]), laid out like the model. Restored from a
    checkpoint that holds none (saved without ``restore_best_weights``), they cover the
    epochs since the resume.

    Args:
        config: The configuration (positional-only); the defaults if omitted.
        **kwargs: Instead of ``config``, its fields ([`EarlyStoppingKwargs`][]).
    """

    __slots__ = (
        "_best_state",
        "_loaded_best",
        "_loaded_mode",
        "_lookup",
        "_resumed",
        "best_epoch",
        "best_score",
        "stop_reason",
        "stopped_epoch",
        "wait_count",
    )

    @overload
    def __init__(self, config: EarlyStoppingConfig | None, /) -> None: ...
    @overload
    def __init__(self, /, **kwargs: Unpack[EarlyStoppingKwargs]) -> None: ...
    def __init__(
        self, config: EarlyStoppingConfig | None = None, /, **kwargs: Unpack[EarlyStoppingKwargs]
    ) -> None:
        config = self._configure(EarlyStoppingConfig, config, kwargs)
        self._lookup = MonitorLookup("EarlyStopping", config.monitor, strict=config.strict)
        self._best_state: nnx.State[Any, Any] | None = None
        # Best weights loaded by load_array_state (a pure dict, keyed as saved), made
        # an nnx.State of the model's structure at the next on_train_begin.
        self._loaded_best: Any = None
        self.best_score: float | None = None
        """The best value seen: ``None`` until a first one is (``baseline``, if given)."""
        self.wait_count: int = 0
        """Epochs since the last improvement."""
        self.best_epoch: int | None = None
        """The epoch of ``best_score``, or ``None`` before any improvement."""
        self.stopped_epoch: int | None = None
        """The epoch at whose end the stop was requested, or ``None``."""
        self.stop_reason: str | None = None
        """Why the stop was requested, or ``None``."""
        self._resumed = False
        self._loaded_mode: object = None  # the mode of a loaded state, until checked
        self._reset()

    def _reset(self) -> None:
        baseline = self.config.baseline
        self.best_score = None if baseline is None else float(baseline)
        self.wait_count = 0
        self.best_epoch = None
        self.stopped_epoch = None
        self.stop_reason = None
        self._best_state = None
        self._loaded_best = None
        self._lookup.reset()

    @property
    def should_stop(self) -> bool:
        """Whether this callback asks training to stop ([`StopRequester`][])."""
        return self.stop_reason is not None

    def _better(self, current: float, reference: float, delta: float) -> bool:
        if self.config.mode == "min":
            return current < reference - delta
        return current > reference + delta

    def _improves(self, current: float) -> bool:
        """Whether ``current`` beats ``best_score`` by ``min_delta`` (NaN never does)."""
        if math.isnan(current):
            return False
        best = self.best_score
        return best is None or self._better(current, best, self.config.min_delta)

    def _stop(self, epoch: int, reason: str) -> None:
        self.stopped_epoch = epoch
        self.stop_reason = reason

    def preflight(self, trainer: TrainerLike, /) -> None:
        """Refuse to continue a loaded state that was saved under another mode.

        See
        [`PreflightCallback`][artifex.generative_models.training.callbacks.protocols.PreflightCallback].

        Args:
            trainer: The trainer about to run.

        Raises:
            ValueError: If the loaded state's mode is not ``config.mode``; the message
                names both.
        """
        self._check_loaded_mode()

    def _check_loaded_mode(self) -> None:
        if self._resumed:
            check_resumed_mode(
                "EarlyStopping", self.config.monitor, self._loaded_mode, self.config.mode
            )

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Reset all state, unless a state was just loaded (see the class docs).

        Runs the check of [`preflight`][] first, for trainers that do not call it.

        Raises:
            ValueError: If loaded best weights do not fit ``trainer.model``, or the
                loaded state was saved under another mode.
        """
        self._check_loaded_mode()
        if self._resumed:
            self._resumed = False
            self.stopped_epoch = None
            self.stop_reason = None
            loaded, self._loaded_best = self._loaded_best, None
            self._best_state = None
            if loaded is not None and self.config.restore_best_weights:
                self._best_state = self._as_model_state(trainer, loaded)
            self._lookup.reset()
            return
        self._reset()

    @staticmethod
    def _as_model_state(trainer: TrainerLike, loaded: Any) -> nnx.State[Any, Any]:
        """Loaded best weights (a pure dict keyed as saved) as an ``nnx.State`` of the model."""
        # A fresh tree of Variables, so that the model's own are left alone.
        state: nnx.State[Any, Any] = jax.tree.map(lambda leaf: leaf, nnx.state(trainer.model))
        pure = match_keys(nnx.to_pure_dict(state), loaded, "best weights")
        assert isinstance(pure, dict)  # match_keys returns a dict for a dict template
        nnx.replace_by_pure_dict(state, pure)
        return state

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Update the best score and the patience counter; maybe request a stop.

        Raises:
            KeyError: If ``strict`` and the monitored key is missing.
            TypeError: If the monitored value is not a number.
        """
        config = self.config
        if epoch < config.start_from_epoch or self.should_stop:
            return
        current = self._lookup.number(logs, "on_epoch_end")
        if current is None:
            return
        name = config.monitor
        if not math.isfinite(current) and config.check_finite:
            self._stop(epoch, f"{name} = {current} is not finite")
            return
        improved = self._improves(current)
        if improved:
            self._improve(trainer, epoch, current)
        else:
            self.wait_count += 1
        if config.stopping_threshold is not None and self._better(
            current, config.stopping_threshold, 0.0
        ):
            self._stop(epoch, f"{name} = {current} is better than stopping_threshold")
        elif config.divergence_threshold is not None and self._better(
            config.divergence_threshold, current, 0.0
        ):
            self._stop(epoch, f"{name} = {current} is worse than divergence_threshold")
        elif not improved and self.wait_count >= config.patience:
            self._stop(
                epoch,
                f"{name} did not improve for {self.wait_count} epochs "
                f"(best {self.best_score} at epoch {self.best_epoch})",
            )

    def _improve(self, trainer: TrainerLike, epoch: int, current: float) -> None:
        self.best_score = current
        self.best_epoch = epoch
        self.wait_count = 0
        if self.config.restore_best_weights:
            # An on-device copy: cheap, asynchronous, and safe from buffer donation.
            self._best_state = jax.tree.map(jnp.copy, nnx.state(trainer.model))

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """Load the best epoch's model state if ``restore_best_weights`` is set."""
        if self.config.restore_best_weights and self._best_state is not None:
            nnx.update(trainer.model, self._best_state)

    # ------------------------------------------------------------- callback state

    @property
    def state_key(self) -> str:
        """A stable key for checkpoints: ``"EarlyStopping[<monitor>]"``."""
        return f"EarlyStopping[{self.config.monitor}]"

    def state_dict(self) -> dict[str, Any]:
        """Return the decision state as JSON-compatible Python scalars.

        It holds the resolved ``mode``, so that a resume under another mode is refused.
        The best weights kept for ``restore_best_weights`` are the array part of the
        state: see [`array_state`][].
        """
        return {
            "mode": self.config.mode,
            "best_score": self.best_score,
            "wait_count": self.wait_count,
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "stop_reason": self.stop_reason,
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
        best_score, best_epoch = state["best_score"], state["best_epoch"]
        self.best_epoch = None if best_epoch is None else int(best_epoch)
        self.best_score = None if best_score is None else float(best_score)
        if self.best_epoch is None and self.best_score == worst(self.config.mode):
            self.best_score = None  # checkpoints before best_score could be None: ±inf
        self.wait_count = int(state["wait_count"])
        stopped_epoch = state["stopped_epoch"]
        self.stopped_epoch = None if stopped_epoch is None else int(stopped_epoch)
        reason = state["stop_reason"]
        self.stop_reason = None if reason is None else str(reason)
        self._loaded_best = None  # until load_array_state (a checkpoint may hold none)
        self._resumed = True

    def array_state(self) -> Any | None:
        """The best weights kept for ``restore_best_weights``, or ``None``.

        Returns:
            The model state of the best epoch as a pure dict of device arrays (no copy:
            the arrays this callback holds), or ``None`` without ``restore_best_weights``
            or before an improvement.
        """
        if self._best_state is not None:
            return nnx.to_pure_dict(self._best_state)
        return self._loaded_best

    def load_array_state(self, state: Any, /) -> None:
        """Restore the best weights that [`array_state`][] returned.

        Call it after [`load_state_dict`][] (a resume does). They become the
        callback's best weights at the next ``on_train_begin``, as an ``nnx.State`` of
        the trainer's model; they are ignored without ``restore_best_weights``.

        Args:
            state: The pure dict that [`array_state`][] returned, keyed as saved.
        """
        self._best_state = None
        self._loaded_best = state
