r"""The reference trainer: a jitted, donated NNX step driving ``TrainingCallback``s.

:class:`Trainer` splits the model's graph once per ``fit`` (``nnx.split``) and runs a
``jax.jit``-compiled functional step over flat lists of state arrays, donating the
parameter, optimizer and metric buffers. It never syncs the host during an epoch:
batch logs are device scalars, epoch means are accumulated on device and fetched in
one ``jax.device_get`` at the epoch's end.

Model sync policy: between steps the trained arrays live in the trainer, and the
module's ``nnx.Variable``\\ s are brought up to date lazily: whenever ``trainer.model``
or :meth:`Trainer.state_dict` is read, and always before ``on_epoch_end``,
``on_train_end`` and the return of ``fit``. Arrays handed out that way are never
donated afterwards (the next step copies them first), and changes a callback makes
to the module (``nnx.update``) are picked up before the next step. A reference to
the module kept from an earlier hook is stale inside an epoch (its arrays may have
been donated); read ``trainer.model`` in the hook instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, Sharding

from artifex.generative_models.training._spmd import DataAxis, DataParallel
from artifex.generative_models.training.callbacks._state import (
    load_callback_states,
    stateful_callbacks,
)
from artifex.generative_models.training.callbacks.base import (
    CallbackList,
    Logs,
    TrainingCallback,
)
from artifex.generative_models.training.callbacks.protocols import (
    CallbackHost,
    CheckpointableTrainer,
    RunStatus,
    StopRequester,
)
from artifex.generative_models.training.data import StatefulData

__all__ = ["DataAxis", "DataSource", "LossFn", "LossOutput", "RemoteStop", "Trainer"]

M = TypeVar("M", bound=nnx.Module)

LossOutput: TypeAlias = jax.Array | tuple[jax.Array, Mapping[str, jax.Array]]
"""What a loss (or eval) function returns: a scalar loss, or ``(loss, metrics)``."""

LossFn: TypeAlias = Callable[[M, Any], LossOutput]
"""``loss_fn(model, batch)``: traced under ``jax.jit``; returns a :data:`LossOutput`."""

DataSource: TypeAlias = Iterable[Any] | Callable[[], Iterable[Any]]
"""Batches: a re-iterable (iterated once per epoch) or a callable returning a fresh one."""

_Leaves: TypeAlias = list[jax.Array]
_Sums: TypeAlias = dict[str, jax.Array]


@dataclass(frozen=True, slots=True)
class RemoteStop:
    """``Trainer.stopped_by`` on a process that stopped because other processes asked to.

    In a multi-process job every stop request is agreed across processes, so all of
    them stop after the same step; the processes that asked see their own callback
    (or trainer) in ``stopped_by``, the others see this.
    """

    processes: tuple[int, ...]
    """The indices of the processes that asked to stop."""


def _copy_leaves(leaves: _Leaves) -> _Leaves:
    return [jnp.copy(leaf) for leaf in leaves]


_copy = jax.jit(_copy_leaves)


def _zeros_for(keys: tuple[str, ...]) -> _Sums:
    return {key: jnp.zeros((), jnp.float32) for key in keys}


# Compiled, so that fresh sums need no host-to-device transfer.
_zeros = jax.jit(_zeros_for, static_argnums=0)


def _normalize(output: object, where: str) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Split a loss function's output into ``(loss, metrics)``, checking its shape.

    Raises:
        TypeError: If the output is neither a scalar nor ``(scalar, dict)``, or a
            metric is not a scalar array.
        ValueError: If the loss is not a scalar, or a metric is named ``"loss"``.
    """
    metrics: object = {}
    loss = output
    if isinstance(output, tuple):
        if len(output) != 2 or not isinstance(output[1], Mapping):
            raise TypeError(
                f"{where} must return a scalar loss or a (loss, metrics_dict) pair; it "
                f"returned a tuple of {len(output)} item(s): "
                f"({', '.join(type(item).__qualname__ for item in output)})"
            )
        loss, metrics = output
    if not isinstance(loss, jax.Array):
        raise TypeError(
            f"{where} must return a scalar loss (a jax.Array) or a (loss, metrics_dict) "
            f"pair; it returned {type(loss).__qualname__}"
        )
    if loss.shape != ():
        raise ValueError(
            f"{where} must return a scalar loss, got an array of shape {loss.shape}; "
            "reduce it, e.g. with jnp.mean"
        )
    assert isinstance(metrics, Mapping)
    out: dict[str, jax.Array] = {}
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise TypeError(f"{where}'s metrics keys must be str, got {key!r}")
        if key == "loss":
            raise ValueError(f"{where}'s metrics must not be named 'loss' (the loss is added)")
        if not isinstance(value, jax.Array) or value.shape != ():
            shape = getattr(value, "shape", None)
            raise TypeError(
                f"{where}'s metric {key!r} must be a scalar jax.Array, got "
                f"{type(value).__qualname__}" + (f" of shape {shape}" if shape else "")
            )
        out[key] = value
    return loss, out


def _iterate(data: DataSource, name: str) -> Iterator[Any]:
    """Start one pass over ``data`` (calling it first if it is a factory)."""
    source: object = data
    if not isinstance(source, Iterable) and callable(source):
        source = source()
        if not isinstance(source, Iterable):
            raise TypeError(
                f"{name} is a callable, so it must return an iterable of batches; it "
                f"returned {type(source).__qualname__}"
            )
    if not isinstance(source, Iterable):
        raise TypeError(
            f"{name} must be an iterable of batches or a callable returning one, got "
            f"{type(data).__qualname__}"
        )
    return iter(source)


def _check_reiterable(data: DataSource, name: str, epochs: int) -> None:
    if isinstance(data, Iterator) and epochs > 1:
        raise TypeError(
            f"{name} is a one-shot iterator ({type(data).__qualname__}), but it is "
            f"iterated once per epoch and epochs={epochs}; pass a re-iterable (a list, an "
            "ArrayBatcher) or a callable that returns a fresh iterable"
        )


def _stop_requesters(callbacks: Iterable[TrainingCallback]) -> list[StopRequester]:
    """Every ``StopRequester`` among ``callbacks``, nested ``CallbackList``s flattened."""
    found: list[StopRequester] = []
    for callback in callbacks:
        if isinstance(callback, CallbackList):
            found.extend(_stop_requesters(callback.callbacks))
        elif isinstance(callback, StopRequester):
            found.append(callback)
    return found


def _split(
    model: nnx.Module, wrt: nnx.filterlib.Filter
) -> tuple[Any, nnx.State[Any, Any], nnx.State[Any, Any]]:
    """``nnx.split(model, wrt, ...)``: the graph, the trained state and the rest."""
    graphdef, *states = nnx.split(model, wrt, ...)
    params, rest = states
    return graphdef, params, rest


def _same(a: object, b: object) -> bool:
    """Whether two tree or graph definitions are equal."""
    if a is None or b is None:
        return a is b
    return bool(a == b)


def _signature(leaves: Sequence[Any]) -> tuple[tuple[tuple[int, ...], Any], ...]:
    return tuple((np.shape(leaf), getattr(leaf, "dtype", None)) for leaf in leaves)


class Trainer(Generic[M]):
    """Train an ``nnx.Module`` with an optax optimizer, dispatching to callbacks.

    The step is a pure function of flat state lists, compiled with ``jax.jit`` once
    per batch shape (plus one abstract trace of ``loss_fn`` per trainer that learns
    the metric names), with the parameter, non-parameter, optimizer and metric-sum
    buffers donated. See the module docstring for when ``trainer.model`` is synced.

    Lifecycle (see the README for the full contract): ``on_train_begin``; per epoch
    ``on_epoch_begin(e)``, batch pairs ``on_batch_begin(s)``/``on_batch_end(s, logs)``
    (``logs`` hold device scalars), then, when ``val_data`` is given and no stop was
    requested, one validation pair, then ``on_epoch_end(e, logs)`` (Python floats);
    finally ``on_train_end`` on every exit. ``trainer.step`` is ``s`` during
    ``on_batch_begin(s)`` and ``s + 1`` during ``on_batch_end(s, ...)``.

    With ``steps_per_execution=k > 1``, ``k`` consecutive batches of equal shapes run
    in one compiled ``lax.scan``; their ``k`` batch pairs are dispatched in order
    after the chunk has run (so ``trainer.model`` then shows the state after the whole
    chunk). Leftover batches (fewer than ``k``, or a change of shape) run one step at
    a time. A stop requested at ``on_batch_end(s)`` inside a chunk discards the
    chunk's later steps: the trainer recomputes the chunk's steps up to ``s`` from the
    state before the chunk (which the chunk does not donate), so ``trainer.step``, the
    model, the epoch logs and (for an
    :class:`~artifex.generative_models.training.data.ArrayBatcher`) the data position
    all reflect exactly the batches that were dispatched. A callback raising inside a
    chunk is handled the same way: the steps kept are those an unchunked run would
    have run (up to the batch whose ``on_batch_begin`` returned), so a later ``fit``
    continues contiguously. Batches fetched for a chunk that never ran (the data
    raised first) are not dispatched.

    Args:
        model: The module to train; it is updated in place.
        optimizer: An optax ``GradientTransformation`` over the ``wrt`` variables.
        loss_fn: ``loss_fn(model, batch)`` returning a scalar loss or ``(loss,
            metrics)`` with scalar metrics (not named ``"loss"``).
        callbacks: Callbacks (any iterable, or a ``CallbackList``, used as is).
        eval_fn: Like ``loss_fn``, for :meth:`evaluate` and validation; defaults to
            ``loss_fn``. Its state changes are discarded.
        steps_per_execution: Steps per compiled dispatch (>= 1).
        wrt: The ``nnx`` filter of the trained variables (default ``nnx.Param``).
        donate: Whether the step donates its state buffers (default ``True``).
        mesh: A ``jax.sharding.Mesh`` to train data-parallel on (see the README's
            "Several devices and hosts"): each batch's leading dimension is split over
            ``data_axis``; variables are sharded as their NNX sharding annotations
            say, replicated otherwise, and the optimizer state like its parameters.
            ``None`` (the default) runs on the default device.
        data_axis: The mesh axis (or tuple of axes) that splits each batch.

    Raises:
        TypeError: If ``model`` is not an ``nnx.Module``, ``optimizer`` is not a
            gradient transformation, a function is not callable, or an option has the
            wrong type.
        ValueError: If ``steps_per_execution < 1``, two callbacks share a
            ``state_key`` (the message names both), or ``data_axis`` is not an axis
            of ``mesh``.
    """

    def __init__(
        self,
        model: M,
        optimizer: optax.GradientTransformation,
        loss_fn: LossFn[M],
        *,
        callbacks: Iterable[TrainingCallback] | CallbackList | None = None,
        eval_fn: LossFn[M] | None = None,
        steps_per_execution: int = 1,
        wrt: nnx.filterlib.Filter = nnx.Param,
        donate: bool = True,
        mesh: Mesh | None = None,
        data_axis: DataAxis = "data",
    ) -> None:
        untrusted: object = model
        if not isinstance(untrusted, nnx.Module):
            raise TypeError(
                f"model must be an nnx.Module, got {type(model).__qualname__} {model!r}"
            )
        opt: object = optimizer
        if not (callable(getattr(opt, "init", None)) and callable(getattr(opt, "update", None))):
            raise TypeError(
                "optimizer must be an optax GradientTransformation (with init and update), "
                f"got {type(optimizer).__qualname__} {optimizer!r}"
            )
        for name, fn in (("loss_fn", loss_fn), ("eval_fn", eval_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__qualname__} {fn!r}")
        spe: object = steps_per_execution
        if isinstance(spe, bool) or not isinstance(spe, int):
            raise TypeError(
                f"steps_per_execution must be an int, got {type(spe).__qualname__} {spe!r}"
            )
        if steps_per_execution < 1:
            raise ValueError(f"steps_per_execution must be >= 1, got {steps_per_execution}")
        if not isinstance(donate, bool):
            raise TypeError(f"donate must be a bool, got {type(donate).__qualname__} {donate!r}")
        self._spmd = None if mesh is None else DataParallel(mesh, data_axis)
        # In a multi-process job every stop check is agreed across processes.
        self._agree = self._spmd is not None and self._spmd.multiprocess

        self._model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.eval_fn = eval_fn
        self.steps_per_execution = steps_per_execution
        self.wrt = wrt
        self.donate = donate
        self.callbacks = (
            callbacks if isinstance(callbacks, CallbackList) else CallbackList(callbacks)
        )
        stateful_callbacks(self.callbacks)  # two equal state_keys fail here
        self.stop_training = False
        self._step = 0
        self._epoch = 0
        self._epoch_closing = False  # during on_epoch_end: the epoch's steps are done
        self._status: RunStatus = "completed"
        self._stopped_by: object | None = None
        self._error: BaseException | None = None
        self._data: object | None = None
        self._pending_data_state: dict[str, Any] | None = None
        self._batch_def: Any = None

        # Functional state: flat leaf lists and their tree definitions.
        graphdef, params, rest = _split(model, wrt)
        self._graphdef = graphdef
        p_leaves, self._p_def = jax.tree.flatten(params)
        r_leaves, self._r_def = jax.tree.flatten(rest)
        opt_state = optimizer.init(params)
        o_leaves, self._o_def = jax.tree.flatten(opt_state)
        self._p: _Leaves = p_leaves
        self._r: _Leaves = r_leaves
        self._o: _Leaves = o_leaves
        self._p_sh: list[Sharding] = []
        self._r_sh: list[Sharding] = []
        self._o_sh: list[Sharding] = []
        self._place_state(params, rest)
        # Whether the module lags behind the leaves, and whether the module's arrays
        # (or the optimizer state) were handed out and must not be donated.
        self._model_stale = False
        self._model_exposed = True  # the user holds the module's current arrays
        self._opt_exposed = False
        self._metric_keys: tuple[str, ...] | None = None
        self._eval_keys: tuple[str, ...] | None = None
        self._build()

    # ------------------------------------------------------------------ protocols

    @property
    def model(self) -> M:
        """The live module, brought up to date with the trained state on access."""
        self._sync()
        self._model_exposed = True
        return self._model

    @property
    def mesh(self) -> Mesh | None:
        """The device mesh this trainer runs data-parallel on, or ``None``."""
        return None if self._spmd is None else self._spmd.mesh

    @property
    def step(self) -> int:
        """The global step: how many training steps have run, across ``fit`` calls."""
        return self._step

    @property
    def epoch(self) -> int:
        """The current epoch (during ``fit``) or the next one to run (outside it)."""
        return self._epoch

    @property
    def status(self) -> RunStatus:
        """``"running"`` during ``fit``; afterwards how the last run ended."""
        return self._status

    @property
    def stopped_by(self) -> object | None:
        """The callback (or this trainer, for ``stop_training``) that stopped the run."""
        return self._stopped_by

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the last run when ``status == "failed"``."""
        return self._error

    @property
    def opt_state(self) -> Any:
        """The optimizer state (a pytree shaped like ``optimizer.init`` returned)."""
        self._opt_exposed = True
        return jax.tree.unflatten(self._o_def, self._o)

    def state_dict(self) -> dict[str, Any]:
        """Return everything needed to resume training.

        Returns:
            ``{"model": nnx.State, "opt_state": pytree, "step": int, "epoch": int}``,
            where ``"epoch"`` is the next epoch to run (during ``on_epoch_end(e)``,
            whose steps are all done, that is ``e + 1``, so a checkpoint taken there
            resumes with the following epoch), plus ``"data"`` (the batcher's
            ``state_dict()``: seed, data epoch and position) when the last ``fit``
            used data with state. The model's RNG streams are part of ``"model"``.
            The arrays are never donated later.
        """
        state: dict[str, Any] = {
            # A snapshot: fresh Variable containers, not the module's live ones.
            "model": jax.tree.map(lambda leaf: leaf, nnx.state(self.model)),
            "opt_state": self.opt_state,
            "step": self._step,
            "epoch": self._epoch + 1 if self._epoch_closing else self._epoch,
        }
        if isinstance(self._data, StatefulData):
            state["data"] = self._data.state_dict()
        elif self._pending_data_state is not None:
            state["data"] = dict(self._pending_data_state)
        return state

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        """Restore what :meth:`state_dict` returned.

        ``"data"``, if present, is loaded into the current training data if it has
        state, or else kept and loaded into the next ``fit``'s data.

        Args:
            state: A pytree with the structure :meth:`state_dict` returns.

        Raises:
            KeyError: If a required key is missing.
            ValueError: If the model or optimizer state does not match this trainer's.
        """
        for key in ("model", "opt_state", "step", "epoch"):
            if key not in state:
                raise KeyError(f"trainer state lacks {key!r}; got keys {sorted(state)}")
        o_leaves, o_def = jax.tree.flatten(state["opt_state"])
        if not _same(o_def, self._o_def):
            raise ValueError(
                "state['opt_state'] does not match this trainer's optimizer state: "
                f"expected {self._o_def}, got {o_def}"
            )
        self._sync()
        nnx.update(self._model, state["model"])
        self._model_exposed = True  # the caller owns the arrays just loaded
        self._pull()
        if self._spmd is not None:
            o_leaves = self._spmd.place(o_leaves, self._o_sh)
        self._o = list(_copy(o_leaves)) if o_leaves else []
        self._step = int(state["step"])
        self._epoch = int(state["epoch"])
        if "data" in state:
            if isinstance(self._data, StatefulData):
                self._data.load_state_dict(state["data"])
            else:
                self._pending_data_state = dict(state["data"])

    def resume(self, checkpoint: str | os.PathLike[str], /) -> int:
        """Restore a ``ModelCheckpoint`` checkpoint: all state, callbacks' included.

        Loads the model (its RNG streams included), the optimizer state, ``step``,
        ``epoch``, the data position (into the current, else the next ``fit``'s
        training data) and the state of every stateful callback, by ``state_key``
        (a callback without a saved state, or a saved state without a callback,
        warns). ``fit(..., resume_from=...)`` calls it before ``on_train_begin``.

        Args:
            checkpoint: A ``ModelCheckpoint`` directory (its latest checkpoint) or one
                step's directory in it.

        Returns:
            The restored global step.

        Raises:
            FileNotFoundError: If there is no such checkpoint.
            ValueError: If it is not a ``ModelCheckpoint`` checkpoint or does not fit
                this trainer, or two callbacks share a ``state_key``.
        """
        # Imported here: Orbax is needed only by runs that checkpoint.
        from artifex.generative_models.training.callbacks.model_checkpoint import (
            CALLBACKS_ITEM,
            restore_checkpoint,
        )

        targets = stateful_callbacks(self.callbacks)
        restored = restore_checkpoint(checkpoint, target=self)
        states: object = restored.extra.get(CALLBACKS_ITEM, {})
        if not isinstance(states, Mapping):
            raise ValueError(
                f"checkpoint {str(restored.directory)!r} step {restored.step} has a "
                f"{CALLBACKS_ITEM!r} item that is not a mapping: {type(states).__qualname__}"
            )
        if targets or states:
            load_callback_states(self.callbacks, states)
        return restored.step

    # ------------------------------------------------------------------ state sync

    def _sync(self) -> None:
        """Write the trained leaves into the module's variables, if they lag behind."""
        if self._model_stale:
            nnx.update(
                self._model,
                jax.tree.unflatten(self._p_def, self._p),
                jax.tree.unflatten(self._r_def, self._r),
            )
            self._model_stale = False

    def _pull(self) -> None:
        """Re-read the leaves from the module (which a callback may have changed)."""
        graphdef, params, rest = _split(self._model, self.wrt)
        p_leaves, p_def = jax.tree.flatten(params)
        r_leaves, r_def = jax.tree.flatten(rest)
        if (
            not _same(p_def, self._p_def)
            or not _same(r_def, self._r_def)
            or not _same(graphdef, self._graphdef)
        ):
            raise RuntimeError(
                "the model's structure changed during training (variables were added, "
                "removed or retyped); the trainer cannot continue with it"
            )
        self._p, self._r = p_leaves, r_leaves
        self._place_leaves()  # a callback may have put arrays elsewhere

    def _own_state(self) -> None:
        """Before a donating step: take back handed-out arrays, copying them."""
        if self._model_exposed:
            self._pull()
            if self.donate:
                self._p, self._r = _copy(self._p), _copy(self._r)
            self._model_exposed = False
        if self._opt_exposed:
            if self.donate:
                self._o = _copy(self._o)
            self._opt_exposed = False

    def _refresh_structure(self) -> None:
        """At the start of ``fit``: re-split the module, rebuilding if it changed."""
        self._sync()
        graphdef, params, rest = _split(self._model, self.wrt)
        p_leaves, p_def = jax.tree.flatten(params)
        r_leaves, r_def = jax.tree.flatten(rest)
        changed = (
            not _same(p_def, self._p_def)
            or not _same(r_def, self._r_def)
            or not _same(graphdef, self._graphdef)
        )
        if changed:
            self._graphdef, self._p_def, self._r_def = graphdef, p_def, r_def
            o_leaves, self._o_def = jax.tree.flatten(self.optimizer.init(params))
            self._o = o_leaves
            self._metric_keys = self._eval_keys = None
        self._p, self._r = p_leaves, r_leaves
        if changed:
            self._place_state(params, rest)
            self._build()
        else:
            self._place_leaves()
        self._model_exposed = True

    def _place_leaves(self) -> None:
        """On a mesh: put the model's leaves on their shardings (a no-op where they are)."""
        if self._spmd is not None:
            self._p = self._spmd.place(self._p, self._p_sh)
            self._r = self._spmd.place(self._r, self._r_sh)

    def _place_state(self, params: nnx.State[Any, Any], rest: nnx.State[Any, Any]) -> None:
        """On a mesh: work out the state's shardings and put the leaves there."""
        spmd = self._spmd
        if spmd is None:
            return
        self._p_sh = spmd.state_shardings(params)
        self._r_sh = spmd.state_shardings(rest)
        opt_state = jax.tree.unflatten(self._o_def, self._o)
        self._o_sh = spmd.opt_shardings(self.optimizer, opt_state, self._p_def, self._p_sh)
        self._p = spmd.place(self._p, self._p_sh)
        self._r = spmd.place(self._r, self._r_sh)
        self._o = spmd.place(self._o, self._o_sh)

    # ------------------------------------------------------------------ compiled fns

    def _build(self) -> None:
        """Create the jitted step, chunk and eval functions for the current structure."""
        graphdef, p_def, r_def, o_def = self._graphdef, self._p_def, self._r_def, self._o_def
        wrt, tx = self.wrt, self.optimizer

        def forward(
            fn: LossFn[M], where: str, p: _Leaves, r: _Leaves, batch: Any
        ) -> tuple[jax.Array, dict[str, jax.Array], _Leaves]:
            model: M = nnx.merge(
                graphdef, jax.tree.unflatten(p_def, p), jax.tree.unflatten(r_def, r)
            )
            loss, metrics = _normalize(fn(model, batch), where)
            _, _, new_rest = _split(model, wrt)
            r_out, r_out_def = jax.tree.flatten(new_rest)
            if not _same(r_out_def, r_def):
                raise RuntimeError(
                    f"{where} changed the model's structure (for instance with sow or by "
                    "creating variables); the trainer cannot carry that state"
                )
            return loss, metrics, r_out

        def probe(fn: LossFn[M], where: str, p: _Leaves, r: _Leaves, batch: Any) -> Any:
            loss, metrics, _ = forward(fn, where, p, r, batch)
            return {"loss": loss, **metrics}

        def train_step(
            p: _Leaves, r: _Leaves, o: _Leaves, sums: _Sums, batch: Any
        ) -> tuple[_Leaves, _Leaves, _Leaves, _Sums, _Sums]:
            def objective(p: _Leaves) -> tuple[jax.Array, tuple[dict[str, jax.Array], _Leaves]]:
                loss, metrics, r_out = forward(self.loss_fn, "loss_fn", p, r, batch)
                return loss, (metrics, r_out)

            (loss, (metrics, r_out)), grads = jax.value_and_grad(objective, has_aux=True)(p)
            params = jax.tree.unflatten(p_def, p)
            updates, opt_state = tx.update(
                jax.tree.unflatten(p_def, grads), jax.tree.unflatten(o_def, o), params
            )
            new_params = optax.apply_updates(params, updates)
            logs = {"loss": loss, **metrics}
            if set(logs) != set(sums):
                raise RuntimeError(
                    f"loss_fn returned metrics {sorted(logs)}, but earlier {sorted(sums)}"
                )
            new_sums = {k: sums[k] + logs[k].astype(sums[k].dtype) for k in sums}
            return (
                jax.tree.leaves(new_params),
                r_out,
                jax.tree.leaves(opt_state),
                new_sums,
                logs,
            )

        def chunk_step(
            p: _Leaves, r: _Leaves, o: _Leaves, sums: _Sums, batches: tuple[Any, ...]
        ) -> tuple[_Leaves, _Leaves, _Leaves, _Sums, tuple[_Sums, ...]]:
            stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *batches)

            def body(
                carry: tuple[_Leaves, _Leaves, _Leaves, _Sums], batch: Any
            ) -> tuple[tuple[_Leaves, _Leaves, _Leaves, _Sums], _Sums]:
                p, r, o, sums, logs = train_step(*carry, batch)
                return (p, r, o, sums), logs

            (p, r, o, sums), logs = jax.lax.scan(body, (p, r, o, sums), stacked)
            per_step = tuple({k: v[i] for k, v in logs.items()} for i in range(len(batches)))
            return p, r, o, sums, per_step

        def eval_step(p: _Leaves, r: _Leaves, sums: _Sums, batch: Any) -> _Sums:
            fn = self.eval_fn if self.eval_fn is not None else self.loss_fn
            where = "eval_fn" if self.eval_fn is not None else "loss_fn"
            loss, metrics, _ = forward(fn, where, p, r, batch)
            logs = {"loss": loss, **metrics}
            return {k: sums[k] + logs[k].astype(sums[k].dtype) for k in sums}

        donated = (0, 1, 2, 3) if self.donate else ()
        self._probe = probe
        spmd = self._spmd
        if spmd is None:
            self._train_step = jax.jit(train_step, donate_argnums=donated)
            # Not donated: a stop inside a chunk rolls back to the state before it.
            self._chunk_step = jax.jit(chunk_step)
            self._eval_step = jax.jit(eval_step, donate_argnums=(2,))
            self._zeros = _zeros
            return
        # On a mesh the state keeps its shardings from step to step; sums and logs
        # are replicated, so every process can read them.
        rep = spmd.replicated
        out = (self._p_sh, self._r_sh, self._o_sh, rep, rep)
        self._train_step = jax.jit(train_step, donate_argnums=donated, out_shardings=out)
        self._chunk_step = jax.jit(chunk_step, out_shardings=out)
        self._eval_step = jax.jit(eval_step, donate_argnums=(2,), out_shardings=rep)
        self._zeros = jax.jit(_zeros_for, static_argnums=0, out_shardings=rep)

    def _keys(self, batch: Any, *, train: bool) -> tuple[str, ...]:
        """The metric names, learnt once by an abstract trace of the loss function."""
        keys = self._metric_keys if train else self._eval_keys
        if keys is None:
            fn: LossFn[M] = self.loss_fn
            where = "loss_fn"
            if not train and self.eval_fn is not None:
                fn, where = self.eval_fn, "eval_fn"
            shapes = jax.eval_shape(
                lambda p, r, b: self._probe(fn, where, p, r, b), self._p, self._r, batch
            )
            keys = tuple(shapes)
            if train:
                self._metric_keys = keys
                if self.eval_fn is None:
                    self._eval_keys = keys
            else:
                self._eval_keys = keys
        return keys

    # ------------------------------------------------------------------ stopping

    def _stop_source(self, stoppers: list[StopRequester]) -> object | None:
        """What asks to stop: a callback, this trainer, or (only) other processes."""
        found: object | None = None
        for stopper in stoppers:
            if stopper.should_stop:
                found = stopper
                break
        else:
            if self.stop_training:
                found = self
        if self._agree:
            assert self._spmd is not None
            asking = self._spmd.anyone(found is not None)
            if found is None and asking:
                return RemoteStop(asking)
        return found

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        train_data: DataSource,
        *,
        epochs: int,
        val_data: DataSource | None = None,
        resume_from: str | os.PathLike[str] | None = None,
    ) -> list[Logs]:
        """Train for ``epochs`` epochs, validating after each if ``val_data`` is given.

        With ``resume_from``, first restore a checkpoint written by ``ModelCheckpoint``
        (see :meth:`resume`): the run then continues exactly where it was saved.

        Args:
            train_data: Batches (pytrees of arrays with one structure): a re-iterable
                iterated once per epoch, or a callable returning a fresh iterable. A
                one-shot iterator is accepted only for ``epochs <= 1``.
            epochs: How many epochs to run (>= 0). Epoch numbers continue from
                ``trainer.epoch``.
            val_data: Validation batches, in the same forms, or ``None``.
            resume_from: A ``ModelCheckpoint`` directory (its latest checkpoint) or
                one step's directory in it, or ``None`` to continue from the current
                state.

        Returns:
            The ``on_epoch_end`` logs of each epoch run, in order.

        Raises:
            TypeError: If ``epochs`` is not an int or a data source is not iterable.
            ValueError: If ``epochs < 0``, an epoch yields no batches, or a batch's
                structure differs from the first; also any error of ``loss_fn``'s
                output (see the class docs), two callbacks sharing a ``state_key``,
                or a checkpoint that does not fit. Exceptions from the step, the data
                or a callback propagate unchanged after ``on_train_end``.
            FileNotFoundError: If ``resume_from`` holds no checkpoint.
        """
        untrusted: object = epochs
        if isinstance(untrusted, bool) or not isinstance(untrusted, int):
            raise TypeError(f"epochs must be an int, got {type(epochs).__qualname__} {epochs!r}")
        if epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {epochs}")
        _check_reiterable(train_data, "train_data", epochs)
        if val_data is not None:
            _check_reiterable(val_data, "val_data", epochs)

        stateful_callbacks(self.callbacks)  # callbacks may have been added since __init__
        self._refresh_structure()
        self._data = train_data
        self._batch_def = None
        if resume_from is not None:
            self.resume(resume_from)
        source: object = train_data
        if self._pending_data_state is not None and isinstance(source, StatefulData):
            source.load_state_dict(self._pending_data_state)
            self._pending_data_state = None
        cbs = self.callbacks
        stoppers = _stop_requesters(cbs.callbacks)
        self.stop_training = False
        self._status, self._stopped_by, self._error = "running", None, None
        history: list[Logs] = []
        try:
            cbs.on_train_begin(self)
            for _ in range(epochs):
                epoch = self._epoch
                cbs.on_epoch_begin(self, epoch)
                logs, stopper = self._train_epoch(train_data, stoppers)
                if val_data is not None and stopper is None:
                    cbs.on_validation_begin(self)
                    val_logs = self._evaluate(val_data, "val_data")
                    cbs.on_validation_end(self, val_logs)
                    logs.update({f"val_{key}": value for key, value in val_logs.items()})
                self._sync()
                self._epoch_closing = True
                cbs.on_epoch_end(self, epoch, logs)
                history.append(logs)
                self._epoch = epoch + 1
                self._epoch_closing = False
                if stopper is None:
                    stopper = self._stop_source(stoppers)
                if stopper is not None:
                    self._stopped_by = stopper
                    break
        except BaseException as error:
            self._status, self._error = "failed", error
            self._epoch_closing = False
            try:
                self._sync()
            except Exception as sync_error:  # pragma: no cover - a deleted donated buffer
                error.add_note(f"the trainer could not sync the model: {sync_error!r}")
            try:
                cbs.on_train_end(self)
            except BaseException as teardown_error:
                error.add_note(
                    f"on_train_end also raised {type(teardown_error).__qualname__}: "
                    f"{teardown_error}"
                )
            raise
        self._status = "stopped" if self._stopped_by is not None else "completed"
        self._sync()
        cbs.on_train_end(self)
        return history

    def _train_epoch(
        self, data: DataSource, stoppers: list[StopRequester]
    ) -> tuple[Logs, object | None]:
        """Run one epoch's batch pairs; return its mean logs and what stopped it."""
        cbs = self.callbacks
        chunk = self.steps_per_execution
        sums: _Sums | None = None
        count = 0
        stopper: object | None = None
        pending: list[Any] = []
        pending_sig: Any = None

        for batch in _iterate(data, "train_data"):
            leaves, treedef = jax.tree.flatten(batch)
            if not _same(treedef, self._batch_def):
                if self._batch_def is not None:
                    raise ValueError(
                        f"train_data batch {count + len(pending)} of epoch {self._epoch} has "
                        f"structure {treedef}, but the first batch of this fit had "
                        f"{self._batch_def}"
                    )
                self._batch_def = treedef
            if self._spmd is not None:
                batch = self._spmd.shard_batch(batch, "train_data")
            if sums is None:
                sums = self._zeros(self._keys(batch, train=True))
            if chunk == 1:
                self._own_state()
                step = self._step
                cbs.on_batch_begin(self, step)
                self._p, self._r, self._o, sums, logs = self._train_step(
                    self._p, self._r, self._o, sums, batch
                )
                self._model_stale = True
                self._step = step + 1
                count += 1
                cbs.on_batch_end(self, step, logs)
                if stoppers or self.stop_training or self._agree:
                    stopper = self._stop_source(stoppers)
                    if stopper is not None:
                        break
                continue
            sig = _signature(leaves)
            if pending and sig != pending_sig:
                sums, ran, stopper = self._run_singles(pending, sums, stoppers)
                count += ran
                pending = []
                if stopper is not None:
                    break
            pending.append(batch)
            pending_sig = sig
            if len(pending) == chunk:
                sums, ran, stopper = self._run_chunk(pending, sums, stoppers)
                count += ran
                pending = []
                if stopper is not None:
                    break
        else:
            if pending:
                assert sums is not None
                sums, ran, stopper = self._run_singles(pending, sums, stoppers)
                count += ran

        if count == 0 or sums is None:
            raise ValueError(
                f"train_data yielded no batches in epoch {self._epoch}; pass a non-empty "
                "re-iterable (an exhausted iterator yields nothing the second time)"
            )
        host = jax.device_get(sums)  # the one device-to-host fetch of the epoch
        return {key: float(value) / count for key, value in host.items()}, stopper

    def _run_singles(
        self, batches: list[Any], sums: _Sums, stoppers: list[StopRequester]
    ) -> tuple[_Sums, int, object | None]:
        cbs = self.callbacks
        ran = 0
        for batch in batches:
            self._own_state()
            step = self._step
            cbs.on_batch_begin(self, step)
            self._p, self._r, self._o, sums, logs = self._train_step(
                self._p, self._r, self._o, sums, batch
            )
            self._model_stale = True
            self._step = step + 1
            ran += 1
            cbs.on_batch_end(self, step, logs)
            stopper = self._stop_source(stoppers)
            if stopper is not None:
                return sums, ran, stopper
        return sums, ran, None

    def _run_chunk(
        self, batches: list[Any], sums: _Sums, stoppers: list[StopRequester]
    ) -> tuple[_Sums, int, object | None]:
        cbs = self.callbacks
        self._own_state()
        before = (self._p, self._r, self._o, sums)
        self._p, self._r, self._o, new_sums, per_step = self._chunk_step(
            self._p, self._r, self._o, sums, tuple(batches)
        )
        self._model_stale = True
        start = self._step
        kept = 0  # the steps that count: those whose on_batch_begin returned
        try:
            for i, logs in enumerate(per_step):
                self._step = start + i
                cbs.on_batch_begin(self, start + i)
                kept = i + 1
                self._step = start + kept
                cbs.on_batch_end(self, start + i, logs)
                stopper = self._stop_source(stoppers)
                if stopper is not None:
                    if kept < len(batches):
                        new_sums = self._rerun(before, batches[:kept])
                        self._rewind_data(len(batches) - kept)
                    return new_sums, kept, stopper
        except BaseException as error:
            self._step = start + kept
            if kept < len(batches):  # keep what an unchunked run would have kept
                try:
                    self._rerun(before, batches[:kept])
                    self._rewind_data(len(batches) - kept)
                except BaseException as rerun_error:
                    self._step = start + len(batches)  # the chunk's end state stays
                    error.add_note(
                        f"the trainer kept all {len(batches)} steps of the chunk: recomputing "
                        f"the first {kept} raised {rerun_error!r}"
                    )
            raise
        return new_sums, len(batches), None

    def _rerun(self, before: tuple[_Leaves, _Leaves, _Leaves, _Sums], batches: list[Any]) -> _Sums:
        """Discard a chunk's later steps: recompute its first steps from ``before``."""
        p, r, o, sums = before
        for batch in batches:
            p, r, o, sums, _ = self._train_step(p, r, o, sums, batch)
        self._p, self._r, self._o = p, r, o
        self._model_stale = True
        if self._model_exposed:  # a callback holds the chunk's end state: replace it
            self._sync()
        return sums

    def _rewind_data(self, batches: int) -> None:
        """Give back ``batches`` fetched but discarded batches to a stateful batcher."""
        data = self._data
        if isinstance(data, StatefulData):
            state = data.state_dict()
            if "position" in state:
                state["position"] = max(0, int(state["position"]) - batches)
                data.load_state_dict(state)

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
        self._own_state()
        return self._evaluate(data, "data")

    def _evaluate(self, data: DataSource, name: str) -> dict[str, float]:
        sums: _Sums | None = None
        batch_def: Any = None
        count = 0
        for batch in _iterate(data, name):
            treedef = jax.tree.structure(batch)
            if self._spmd is not None:
                batch = self._spmd.shard_batch(batch, name)
            if sums is None:
                batch_def = treedef
                sums = self._zeros(self._keys(batch, train=False))
            elif not _same(treedef, batch_def):
                raise ValueError(
                    f"{name} batch {count} has structure {treedef}, but the first had {batch_def}"
                )
            sums = self._eval_step(self._p, self._r, sums, batch)
            count += 1
        if sums is None:
            raise ValueError(f"{name} yielded no batches; evaluation needs at least one")
        host = jax.device_get(sums)
        return {key: float(value) / count for key, value in host.items()}


if TYPE_CHECKING:  # static conformance to the optional trainer protocols

    def _conforms(trainer: Trainer[nnx.Linear]) -> CheckpointableTrainer:
        return trainer

    def _hosts(trainer: Trainer[nnx.Linear]) -> CallbackHost:
        return trainer
