"""Optional protocols beyond [`TrainerLike`][], for richer callback/trainer interplay.

Callbacks know a trainer only through protocols. [`TrainerLike`][] (a ``model``)
is all a trainer must provide; the protocols here are what a trainer *may* provide,
and callbacks check for them with ``isinstance`` before relying on them. The
reference ``Trainer`` implements all of them.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from typing_extensions import Protocol, runtime_checkable

from artifex.generative_models.training.callbacks.base import CallbackList, TrainerLike

__all__ = [
    "ArrayStatefulCallback",
    "CallbackHost",
    "CheckpointableTrainer",
    "ExampleCounter",
    "HyperparameterTrainer",
    "PreemptionSaver",
    "PreflightCallback",
    "RunStatus",
    "StatefulCallback",
    "StepCheckpointableTrainer",
    "StopRequester",
    "TrainerState",
    "TrainingPlan",
]

RunStatus: TypeAlias = Literal["running", "completed", "stopped", "failed", "preempted"]
"""How a ``fit`` run stands: running, or how it ended (``"preempted"``: a preemption
notice stopped it after a checkpoint was saved)."""


@runtime_checkable
class StopRequester(Protocol):
    """A callback that can ask the trainer to stop (``EarlyStopping`` does).

    Trainers read ``should_stop`` after every ``on_batch_end`` and ``on_epoch_end``.
    """

    @property
    def should_stop(self) -> bool:
        """Whether this callback asks training to stop."""
        ...


@runtime_checkable
class TrainerState(TrainerLike, Protocol):
    """A trainer that exposes its counters, stop flag and run status."""

    # A settable property, not a plain ``stop_training: bool``: a data member is
    # invariant, so pyright, basedpyright and pyrefly would reject a trainer whose flag is
    # a settable property. A plain attribute, a dataclass field and a settable property
    # all match this; a read-only property and a ``Final`` do not.
    @property
    def stop_training(self) -> bool:
        """Set to ``True`` (as in Keras) to stop after the current batch or epoch."""
        ...

    @stop_training.setter
    def stop_training(self, value: bool, /) -> None: ...

    @property
    def step(self) -> int:
        """The global step: how many training steps have run, across ``fit`` calls."""
        ...

    @property
    def epoch(self) -> int:
        """The current epoch (during ``fit``) or the next one to run (outside it)."""
        ...

    @property
    def status(self) -> RunStatus:
        """``"running"`` during ``fit``; afterwards how the last run ended."""
        ...

    @property
    def stopped_by(self) -> object | None:
        """What requested the stop when ``status == "stopped"``: the callback, or the trainer."""
        ...

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the run when ``status == "failed"``."""
        ...


@runtime_checkable
class CheckpointableTrainer(TrainerState, Protocol):
    """A trainer whose full training state can be saved and restored."""

    def state_dict(self) -> dict[str, Any]:
        """Return a pytree of everything needed to resume training exactly.

        Returns:
            At least ``"model"`` (the NNX state), ``"opt_state"``, ``"step"`` and
            ``"epoch"``; trainers may add the data position and RNG state.
        """
        ...

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        """Restore what [`state_dict`][] returned.

        Args:
            state: A pytree with the structure [`state_dict`][] returns.
        """
        ...


@runtime_checkable
class StepCheckpointableTrainer(CheckpointableTrainer, Protocol):
    """A trainer whose ``state_dict()`` can also describe a position inside an epoch.

    ``ModelCheckpoint(every_n_steps=...)`` saves mid-epoch checkpoints only where
    [`resumable_mid_epoch`][] is ``True``, and leaves a due save that falls on an
    epoch's last batch to that epoch's ``on_epoch_end``.
    """

    @property
    def resumable_mid_epoch(self) -> bool:
        """Whether ``state_dict()`` now holds a mid-epoch position a fit resumes from exactly.

        ``True`` in ``on_batch_end`` after a single step or after a chunk's last step;
        ``False`` inside a chunk (``steps_per_execution > 1``) and outside the batches.
        """
        ...

    @property
    def last_batch_of_epoch(self) -> bool:
        """Whether the batch that just ran is known to be the last of its epoch."""
        ...


@runtime_checkable
class PreemptionSaver(Protocol):
    """A callback that saves a checkpoint on demand (``ModelCheckpoint`` does).

    On a preemption notice the reference trainer calls [`save_now`][] of every
    registered one, after the step or chunk in flight, whatever its schedule.
    """

    def save_now(self, trainer: TrainerLike, /) -> None:
        """Save a checkpoint of ``trainer`` now and wait until it is on disk.

        Args:
            trainer: The trainer to checkpoint.
        """
        ...


@runtime_checkable
class PreflightCallback(Protocol):
    """A callback that can refuse a run before any callback has changed a file.

    A trainer that supports it calls [`preflight`][] of every callback that has one
    (nested lists included, in dispatch order) once per ``fit``, after restoring a
    ``resume_from`` checkpoint and before the first ``on_train_begin``; the reference
    ``Trainer`` does. If one raises, ``fit`` raises that exception: no callback gets
    ``on_train_begin`` or ``on_train_end``. ``ModelCheckpoint`` and ``CSVLogger``
    implement it; they run the same checks again in ``on_train_begin``, for trainers
    that do not call it (their refusals then come after the earlier callbacks'
    ``on_train_begin``).
    """

    def preflight(self, trainer: TrainerLike, /) -> None:
        """Raise if the run must be refused; change nothing, on disk or in ``trainer``.

        Args:
            trainer: The trainer about to run (its state restored, if it resumes).
        """
        ...


@runtime_checkable
class StatefulCallback(Protocol):
    """A callback whose state is saved in checkpoints and restored on resume."""

    @property
    def state_key(self) -> str:
        """A stable key, unique among the callbacks of one trainer."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Return the callback's state as a pytree of arrays and Python scalars."""
        ...

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        """Restore what [`state_dict`][] returned.

        Args:
            state: A pytree with the structure [`state_dict`][] returns.
        """
        ...


@runtime_checkable
class ArrayStatefulCallback(StatefulCallback, Protocol):
    """A [`StatefulCallback`][] whose state also has an array part, saved by Orbax.

    [`state_dict`][StatefulCallback.state_dict] stays JSON (Python scalars, strings, lists,
    dicts); arrays that belong in a checkpoint (``EarlyStopping``'s best weights) go
    through this optional part instead, as an Orbax pytree item written in the same
    atomic save as the model. On resume, [`load_array_state`][] is called after
    [`load_state_dict`][StatefulCallback.load_state_dict], and only if the checkpoint holds an
    array state for [`state_key`][StatefulCallback.state_key].
    """

    def array_state(self) -> Any | None:
        """Return the array part of the state, or ``None`` when there is none (yet).

        Returns:
            A pytree of nested dicts with string keys whose leaves are ``jax.Array`` s
            or NumPy arrays (no ``nnx.State``: use ``nnx.to_pure_dict``), or ``None``
            (nothing is saved). In a multi-process job every process must return the
            same structure, with global arrays (Orbax saves collectively).
        """
        ...

    def load_array_state(self, state: Any, /) -> None:
        """Restore what [`array_state`][] returned (never ``None``).

        Args:
            state: The saved pytree, keyed as saved (string keys). Arrays laid out like
                the trainer's model (same path, shape and dtype) come back with the
                model's shardings; the others whole on the first local device.
        """
        ...


@runtime_checkable
class CallbackHost(TrainerLike, Protocol):
    """A trainer that exposes its callbacks (the reference ``Trainer`` does).

    ``ModelCheckpoint`` uses it to save the state of every [`StatefulCallback`][]
    of the trainer in the same checkpoint as the model.
    """

    @property
    def callbacks(self) -> CallbackList:
        """The trainer's callbacks, in dispatch order."""
        ...


@runtime_checkable
class HyperparameterTrainer(TrainerLike, Protocol):
    """A trainer that exposes its optimizer's injected hyperparameters (read and set).

    The hyperparameters are those of ``optax.inject_hyperparams`` (the reference
    ``Trainer`` finds its state at the top of the optimizer state or inside
    ``optax.chain`` / ``optax.MultiSteps``). ``LearningRateMonitor`` reads them and
    ``ReduceLROnPlateau`` sets the learning rate through this protocol.
    """

    def hyperparameters(self) -> dict[str, float]:
        """Return the injected hyperparameters' current values (a device fetch).

        Returns:
            Each hyperparameter's value, by name (e.g. ``"learning_rate"``).

        Raises:
            ValueError: If the optimizer has no ``inject_hyperparams`` state; the
                message names the fix.
        """
        ...

    def scheduled_hyperparameters(self) -> frozenset[str]:
        """Return the names of the hyperparameters given as schedules (not settable).

        Raises:
            ValueError: If the optimizer has no ``inject_hyperparams`` state.
        """
        ...

    def set_hyperparameter(self, name: str, value: float, /) -> None:
        """Set a hyperparameter; it takes effect from the next step, with no recompilation.

        Args:
            name: The hyperparameter (e.g. ``"learning_rate"``).
            value: Its new value.

        Raises:
            ValueError: If there is no such hyperparameter or it is a schedule.
        """
        ...


@runtime_checkable
class ExampleCounter(TrainerLike, Protocol):
    """A trainer that counts the examples it trained on (``ThroughputMonitor`` reads it)."""

    @property
    def examples_seen(self) -> int:
        """Examples trained on across ``fit`` calls, over all processes (read without a sync)."""
        ...


@runtime_checkable
class TrainingPlan(TrainerLike, Protocol):
    """A trainer that tells what its ``fit`` plans to run (Keras's ``params``).

    Both values are set before ``on_train_begin`` and hold in every hook of that
    ``fit``, and after it until the next ``fit``; ``None`` before the first ``fit``.
    ``ProgressBar`` reads them for ``Epoch i/N`` and its bar's length.
    """

    @property
    def planned_epochs(self) -> int | None:
        """The epoch this ``fit`` ends at if nothing stops it.

        The epoch it starts at (a resumed run's included) plus ``fit``'s ``epochs``.
        """
        ...

    @property
    def steps_per_epoch(self) -> int | None:
        """The batches an epoch of this ``fit`` runs: ``len(train_data)``.

        ``None`` when the data has no length.
        """
        ...
