"""The reference ``Trainer``: its constructor, the protocols it implements, its state.

``fit`` itself runs in ``_fit`` (start, epochs, end, teardown, read in one place).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Literal

import jax
from flax import nnx
from jax.sharding import Mesh
from typing_extensions import TypeVar

from artifex.generative_models.training._checks import check_bool, check_int
from artifex.generative_models.training._spmd import DataAxis, DataParallel
from artifex.generative_models.training.callbacks._state import stateful_callbacks
from artifex.generative_models.training.callbacks.base import (
    CallbackList,
    Logs,
    TrainingCallback,
)
from artifex.generative_models.training.callbacks.protocols import (
    CallbackHost,
    CheckpointableTrainer,
    ExampleCounter,
    HyperparameterTrainer,
    RunStatus,
    TrainingPlan,
)
from artifex.generative_models.training.optimizer import GradientTransformationLike
from artifex.generative_models.training.trainer._chunks import DataSource
from artifex.generative_models.training.trainer._fit import (
    FitOptions,
    Outcome,
    evaluate,
    run_fit,
)
from artifex.generative_models.training.trainer._injected import InjectedHyperparams
from artifex.generative_models.training.trainer._leaves import FlatState
from artifex.generative_models.training.trainer._modes import warn_modes_restored
from artifex.generative_models.training.trainer._position import RunPosition
from artifex.generative_models.training.trainer._steps import (
    CompiledSteps,
    LossFn,
    check_step_arguments,
    eval_attributes,
)

__all__ = ["Trainer"]

M = TypeVar("M", bound=nnx.Module)
# The optimizer's own type, so that ``trainer.optimizer`` is what the user passed (an
# ``optax.GradientTransformationExtraArgs`` stays one); defaulted, so ``Trainer[Model]``
# still names a trainer, and covariant (``optimizer`` is read-only), so a trainer of any
# optimizer is a ``Trainer[Model]``.
Opt = TypeVar(
    "Opt", bound=GradientTransformationLike, default=GradientTransformationLike, covariant=True
)


class Trainer(InjectedHyperparams[M], Generic[M, Opt]):
    """Train an ``nnx.Module`` with an optax optimizer, dispatching to callbacks.

    The step is a pure function of flat state lists, compiled with ``jax.jit`` once
    per batch shape (plus one abstract trace of ``loss_fn`` per trainer that learns
    the metric names), with the parameter, non-parameter, optimizer and metric-sum
    buffers donated. See the module docstring for when ``trainer.model`` is synced.

    The optimizer's ``optax.inject_hyperparams`` values can be read and set between
    steps ([`HyperparameterTrainer`][], from ``InjectedHyperparams``).

    Lifecycle (in full in the docs' Lifecycle page): ``preflight``, ``on_train_begin``;
    per epoch ``on_epoch_begin(e)``, batch pairs ``on_batch_begin(s)``/``on_batch_end(s, logs)``
    (device-scalar ``logs``), one validation pair (with ``val_data``, unless stopped),
    ``on_epoch_end(e, logs)`` (Python floats); ``on_train_end`` on every exit.
    ``trainer.step`` is ``s`` in ``on_batch_begin(s)``, ``s + 1`` in ``on_batch_end(s, ...)``.

    With ``steps_per_execution=k > 1``, ``k`` consecutive batches of equal shapes run
    in one compiled ``lax.scan``, their batch pairs dispatched after it (see
    ``_fit``); a stop or a raise inside a chunk discards its later steps, so step,
    model, logs and data position reflect exactly the dispatched batches. On a CPU a
    chunk of a step with a convolution, or a large one, runs step by step instead,
    exactly as unchunked, where the scan would be slower (``_chunk_rule``).

    Args:
        model: The module to train; it is updated in place.
        optimizer: An optax ``GradientTransformation`` over the ``wrt`` variables (any
            [`GradientTransformationLike`][]).
        loss_fn: ``loss_fn(model, batch)`` returning a scalar loss or ``(loss,
            metrics)`` with scalar metrics (not named ``"loss"``).
        callbacks: Callbacks (any iterable, or a ``CallbackList``, used as is).
        eval_fn: Like ``loss_fn``, for [`evaluate`][] and validation; defaults to
            ``loss_fn``. Its state changes are discarded.
        eval_mode: How validation and [`evaluate`][] run the model. ``True`` (the
            default): in evaluation mode, with NNX's ``deterministic=True`` and
            ``use_running_average=True`` set on the submodules that have them (no
            dropout, batch norm on its running averages), as ``model.eval()`` would.
            ``False``: the module as it is. A mapping: these attributes instead (each
            must exist on some submodule). The evaluation mode is its own graph
            definition, compiled once per structure; the user's module, which the
            callbacks see in every hook, is never switched. Training steps run the
            module as it is (NNX modules are built in training mode).
        steps_per_execution: Steps per compiled dispatch (>= 1).
        wrt: The ``nnx`` filter of the trained variables (default ``nnx.Param``).
        donate: Whether the step donates its state buffers (default ``True``).
        mesh: A ``jax.sharding.Mesh`` to train data-parallel on (see the README's
            "Several devices and hosts"): each batch's leading dimension is split over
            ``data_axis``; variables are sharded as their NNX sharding annotations
            say, replicated otherwise, and the optimizer state like its parameters.
            ``None`` (the default) runs on the default device.
        data_axis: The mesh axis (or tuple of axes) that splits each batch.
        preemption: Handle preemption notices (SIGTERM; JAX's sync point in a
            multi-process job) when a ``ModelCheckpoint`` (a ``PreemptionSaver``) is
            registered: save, tear down with ``status == "preempted"`` and raise
            [`Preempted`][artifex.generative_models.training.trainer.Preempted] (see the
            README). ``False`` opts out.

    Raises:
        TypeError: If ``model`` is not an ``nnx.Module``, ``optimizer`` is not a
            gradient transformation, a function is not callable, or an option has the
            wrong type.
        ValueError: If ``steps_per_execution < 1``, two callbacks share a
            ``state_key`` (the message names both), ``data_axis`` is not an axis of
            ``mesh``, or an ``eval_mode`` mapping names an attribute no submodule has.
    """

    def __init__(
        self,
        model: M,
        optimizer: Opt,
        loss_fn: LossFn[M],
        *,
        callbacks: Iterable[TrainingCallback] | CallbackList | None = None,
        eval_fn: LossFn[M] | None = None,
        eval_mode: bool | Mapping[str, Any] = True,
        steps_per_execution: int = 1,
        wrt: nnx.filterlib.Filter = nnx.Param,
        donate: bool = True,
        mesh: Mesh | None = None,
        data_axis: DataAxis = "data",
        preemption: bool = True,
    ) -> None:
        check_step_arguments(model, optimizer, loss_fn, eval_fn, wrt)
        self.steps_per_execution: int = check_int(
            "steps_per_execution", steps_per_execution, minimum=1
        )
        self.donate: bool = check_bool("donate", donate)
        self.preemption: bool = check_bool("preemption", preemption)
        self._eval_mode = eval_attributes(eval_mode)
        self._spmd = None if mesh is None else DataParallel(mesh, data_axis)
        self._optimizer = optimizer
        self.loss_fn = loss_fn
        self.eval_fn = eval_fn
        self.wrt = wrt
        self.callbacks: CallbackList = (
            callbacks if isinstance(callbacks, CallbackList) else CallbackList(callbacks)
        )
        stateful_callbacks(self.callbacks)  # two equal state_keys fail here
        self.stop_training: bool = False
        self._position = RunPosition()
        self._outcome = Outcome()
        self._state = FlatState(model, optimizer, wrt, donate=donate, spmd=self._spmd)
        self._steps = self._compile()

    # ------------------------------------------------------------------ protocols

    @property
    def optimizer(self) -> Opt:
        """The optimizer given to the constructor, as given (fixed for the trainer's life)."""
        return self._optimizer

    @property
    def model(self) -> M:
        """The live module, brought up to date with the trained state on access."""
        return self._state.module()

    @property
    def mesh(self) -> Mesh | None:
        """The device mesh this trainer runs data-parallel on, or ``None``."""
        return None if self._spmd is None else self._spmd.mesh

    @property
    def step(self) -> int:
        """The global step: how many training steps have run, across ``fit`` calls."""
        return self._position.step

    @property
    def planned_epochs(self) -> int | None:
        """The epoch this ``fit`` ends at if nothing stops it (``TrainingPlan``)."""
        return self._position.planned_epochs

    @property
    def steps_per_epoch(self) -> int | None:
        """``len(train_data)`` of this ``fit``, or ``None`` (``TrainingPlan``)."""
        return self._position.steps_per_epoch

    @property
    def epoch(self) -> int:
        """The current epoch (during ``fit``) or the next one to run (outside it)."""
        return self._position.epoch

    @property
    def status(self) -> RunStatus:
        """``"running"`` during ``fit``; afterwards how the last run ended."""
        return self._outcome.status

    @property
    def stopped_by(self) -> object | None:
        """The callback (or this trainer, for ``stop_training``) that stopped the run."""
        return self._outcome.stopped_by

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the last run when ``status == "failed"``."""
        return self._outcome.error

    @property
    def resumable_mid_epoch(self) -> bool:
        """Whether [`state_dict`][] now holds a mid-epoch position (see the README)."""
        return self._position.sums is not None

    @property
    def last_batch_of_epoch(self) -> bool:
        """Whether the batch that just ran is known (sized data) to end its epoch."""
        return self._position.last_batch

    @property
    def opt_state(self) -> Any:
        """The optimizer state (a pytree shaped like ``optimizer.init`` returned)."""
        return self._state.opt_state_tree()

    @property
    def examples_seen(self) -> int:
        """Examples trained by this trainer: the sum of each step's global batch rows.

        A batch's rows are the leading dimension of its first leaf. The count is a
        host int (no sync), not checkpointed: ``ThroughputMonitor`` uses differences.
        """
        return self._position.examples

    def state_dict(self) -> dict[str, Any]:
        """Return everything needed to resume training.

        Returns:
            ``{"model": nnx.State, "opt_state": pytree, "step": int, "epoch": int}``,
            where ``"epoch"`` is the next epoch to run (during ``on_epoch_end(e)``,
            whose steps are all done, that is ``e + 1``, so a checkpoint taken there
            resumes with the following epoch), plus ``"data"`` (the data's
            ``state_dict()``: an ``ArrayBatcher``'s seed, data epoch and position, a
            grain iterator's state) when the last ``fit`` used data with state. The
            model's RNG streams are part of ``"model"``. Where
            [`resumable_mid_epoch`][], ``"epoch"`` is the epoch in progress and
            ``"epoch_progress"`` holds the position in it (see ``_position``).
            The arrays are never donated later.
        """
        return {
            # A snapshot: fresh Variable containers, not the module's live ones.
            "model": jax.tree.map(lambda leaf: leaf, nnx.state(self.model)),
            "opt_state": self.opt_state,
            **self._position.state_entries(),
        }

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        """Restore what [`state_dict`][] returned.

        ``"data"``, if present, is loaded into the current training data if it has
        state, or else kept and loaded into the next ``fit``'s data. With
        ``"epoch_progress"`` (a mid-epoch state) the next ``fit`` continues inside
        epoch ``"epoch"``, after its first ``batches`` batches.

        Args:
            state: A pytree with the structure [`state_dict`][] returns.

        Raises:
            KeyError: If a required key is missing.
            ValueError: If the model or optimizer state does not match this trainer's.
        """
        for key in ("model", "opt_state", "step", "epoch"):
            if key not in state:
                raise KeyError(f"trainer state lacks {key!r}; got keys {sorted(state)}")
        self._state.load(state["model"], state["opt_state"])
        self._position.load(state, self._spmd)

    def resume(self, checkpoint: str | os.PathLike[str], /, *, supersede: bool = False) -> int:
        """Restore a ``ModelCheckpoint`` checkpoint: all state, callbacks' included.

        Loads the model (its RNG streams included), the optimizer state, ``step``,
        ``epoch``, the data position (into the current, else the next ``fit``'s
        training data) and the state of every stateful callback, by ``state_key``
        (a callback without a saved state, or a saved state without a callback,
        warns). ``fit(..., resume_from=...)`` calls it before ``on_train_begin``.

        All or nothing: if anything fails, the trainer and its callbacks are as they were.

        Args:
            checkpoint: A ``ModelCheckpoint`` directory (its latest checkpoint) or one
                step's directory in it.
            supersede: For a step older than the directory's latest: let the run's
                ``ModelCheckpoint`` move the later checkpoints aside, inside the
                directory, as ``<step>.superseded-<n>`` (never deleted; a warning
                names each), instead of refusing the directory as holding later steps.

        Returns:
            The restored global step.

        Raises:
            FileNotFoundError: If there is no such checkpoint.
            ValueError: If it is not a ``ModelCheckpoint`` checkpoint or does not fit
                this trainer, or two callbacks share a ``state_key``.
        """
        # Deferred: the resume path imports Orbax (about 0.4 s of CPU and 25 MB), which
        # a run that never resumes does not pay for.
        from artifex.generative_models.training.callbacks._checkpoint_restore import restore_run

        return restore_run(
            checkpoint, self, self.callbacks, supersede=check_bool("supersede", supersede)
        )

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        train_data: DataSource,
        *,
        epochs: int,
        val_data: DataSource | None = None,
        resume_from: str | os.PathLike[str] | None = None,
        resume: bool = False,
        supersede: bool = False,
        steps_per_epoch: int | None = None,
        data_resume: Literal["replay", "refuse"] = "replay",
    ) -> list[Logs]:
        """Train for ``epochs`` epochs, validating after each if ``val_data`` is given.

        A resume (``resume_from`` or ``resume=True``) continues exactly where the
        checkpoint was saved; one that fails (a state that does not load, or a
        ``preflight`` refusal after it) leaves the trainer and its callbacks as they were.

        Args:
            train_data: Batches (pytrees of arrays with one structure): a re-iterable
                iterated once per epoch, or a callable returning a fresh iterable. A
                one-shot iterator is accepted only for ``epochs <= 1`` (or with
                ``steps_per_epoch``). A ``grain.MapDataset``, ``grain.IterDataset`` or
                ``grain.DataLoader`` resumes at its iterator's saved state.
            epochs: How many epochs to run (>= 0), an epoch resumed inside counted.
                Epoch numbers continue from ``trainer.epoch``. With ``resume=True``:
                the run's total, so ``epochs - trainer.epoch`` more run (none if the
                run is already there).
            val_data: Validation batches, in the same forms, or ``None``.
            resume_from: A ``ModelCheckpoint`` directory (its latest checkpoint) or
                one step's directory in it (see [`resume`][]), or ``None`` to continue
                from the current state.
            resume: The same command, run again, continues its run (the docs'
                Checkpoints page, "Same-command resume"): the first ``ModelCheckpoint``'s
                latest checkpoint is restored (an empty or missing directory starts
                fresh) and ``epochs`` is the run's total, as Keras's ``epochs`` with
                ``initial_epoch``. A run that completed or was stopped early is not
                trained again: ``fit`` logs how it ended and returns ``[]``, with no
                hook dispatched (``status`` is the recorded one, ``stopped_by`` is
                ``None``). Not with ``resume_from``.
            supersede: With a ``resume_from`` step older than its directory's latest,
                move the later checkpoints aside (see [`resume`][]) instead of refusing.
            steps_per_epoch: Batches per epoch (>= 1), for a stream: one iterator then
                lives across the fit's epochs, and each epoch draws this many batches
                from it (fewer where it ends; the next epoch starts a new pass).
                ``None``: an epoch is one pass. Endless data (``repeat()``) needs it.
            data_resume: What a fit resumed inside an epoch does with data that has no
                saved position (not a ``StatefulData``): ``"replay"`` (the default)
                iterates the epoch from its start, skipping (drawing, not training) the
                batches already trained, with a warning; ``"refuse"`` raises instead.

        Returns:
            The ``on_epoch_end`` logs of each epoch run, in order.

        Raises:
            TypeError: If ``epochs`` is not an int or a data source is not iterable.
            ValueError: If ``epochs < 0``, an epoch yields no batches, a batch's
                structure differs from the first, ``loss_fn``'s output is wrong (see
                the class docs), two callbacks share a ``state_key``, a checkpoint does
                not fit, data is endless without ``steps_per_epoch``, data without
                state is resumed mid-epoch with ``data_resume="refuse"``, or
                ``resume=True`` comes with ``resume_from`` or without a
                ``ModelCheckpoint``. What the step, the data or a callback raises
                propagates unchanged after ``on_train_end`` (a ``preflight`` refusal:
                before ``on_train_begin``, and no callback sees ``on_train_end``).
            FileNotFoundError: If ``resume_from`` holds no checkpoint.
            Preempted: After a preemption notice, once the checkpoint is saved and
                ``on_train_end`` ran (``status == "preempted"``).
        """
        return run_fit(
            self,
            train_data,
            epochs=epochs,
            options=FitOptions(
                val_data=val_data,
                resume_from=resume_from,
                resume=resume,
                supersede=supersede,
                steps_per_epoch=steps_per_epoch,
                data_resume=data_resume,
            ),
            state=self._state,
            position=self._position,
            outcome=self._outcome,
            compiled=self._current_steps,
            spmd=self._spmd,
        )

    # ------------------------------------------------------------------ evaluate

    def evaluate(self, data: DataSource) -> dict[str, float]:
        """Return the mean metrics of ``eval_fn`` (or ``loss_fn``) over ``data``.

        Dispatches no callbacks; the model's state is not changed.

        Args:
            data: Batches: a re-iterable or a callable returning a fresh iterable.

        Returns:
            The means as Python floats, at least ``"loss"`` (no ``val_`` prefix).

        Raises:
            ValueError: If ``data`` yields no batches or batch structures differ.
        """
        restored = self._state.own()
        if restored:
            warn_modes_restored(restored, "before Trainer.evaluate")
        return evaluate(self._current_steps(), self._state, self._spmd, data, "data")

    # ------------------------------------------------------------------ compiled steps

    def _compile(self) -> CompiledSteps[M]:
        attributes, strict = self._eval_mode
        return CompiledSteps(
            self._state.layout,
            self._state.graphdef_with(attributes, strict=strict),
            optimizer=self._optimizer,
            loss_fn=self.loss_fn,
            eval_fn=self.eval_fn,
            wrt=self.wrt,
            donate=self.donate,
            spmd=self._spmd,
        )

    def _current_steps(self) -> CompiledSteps[M]:
        """The compiled steps, rebuilt if the state's layout, ``loss_fn`` or ``eval_fn`` changed."""
        steps = self._steps
        if (
            steps.layout is not self._state.layout
            or steps.loss_fn is not self.loss_fn
            or steps.eval_fn is not self.eval_fn
        ):
            steps = self._steps = self._compile()
        return steps


# Static conformance to the optional trainer protocols: a check, never called.
if TYPE_CHECKING:

    def _conforms(trainer: Trainer[nnx.Linear]) -> None:  # pyright: ignore[reportUnusedFunction]
        checkpointable: CheckpointableTrainer = trainer
        host: CallbackHost = trainer
        tunable: HyperparameterTrainer = trainer
        counter: ExampleCounter = trainer
        plan: TrainingPlan = trainer
        del checkpointable, host, tunable, counter, plan
