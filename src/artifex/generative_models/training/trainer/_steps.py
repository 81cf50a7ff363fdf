"""The compiled steps: a train step, a ``lax.scan`` chunk of them, and an eval step.

Every step is a pure function of flat leaf lists (see ``_leaves``), built from
the functions passed in (nothing of the trainer is captured) and compiled with
``jax.jit``: the train step donates its state and metric-sum buffers; the chunk does
not (a stop inside a chunk rolls back to the state before it); the eval step donates
only its sums. Whether a chunk runs as the scan or step by step is ``_chunk_rule``'s
call, made once per state layout. On a mesh the state keeps its shardings from step
to step and sums and logs are replicated, so every process can read them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Generic, TypeAlias, TypeVar

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from artifex.generative_models.training._checks import check_filter, describe
from artifex.generative_models.training._spmd import DataParallel
from artifex.generative_models.training.optimizer import GradientTransformationLike
from artifex.generative_models.training.trainer._batch_errors import note_traced_failure
from artifex.generative_models.training.trainer._chunk_rule import chunk_scans
from artifex.generative_models.training.trainer._leaves import Layout, Leaves, same, split
from artifex.generative_models.training.trainer._means import (
    MetricSums,
    accumulate,
    zeros_function,
)

__all__ = [
    "NNX_EVAL_MODE",
    "CompiledSteps",
    "LossFn",
    "LossOutput",
    "check_step_arguments",
    "eval_attributes",
    "normalize",
]

M = TypeVar("M", bound=nnx.Module)

LossOutput: TypeAlias = jax.Array | tuple[jax.Array, Mapping[str, jax.Array]]
"""What a loss (or eval) function returns: a scalar loss, or ``(loss, metrics)``."""

LossFn: TypeAlias = Callable[[M, Any], LossOutput]
"""``loss_fn(model, batch)``: traced under ``jax.jit``; returns a [`LossOutput`][]."""

_TrainOut: TypeAlias = tuple[Leaves, Leaves, Leaves, MetricSums, MetricSums]
_ChunkOut: TypeAlias = tuple[Leaves, Leaves, Leaves, MetricSums, tuple[MetricSums, ...]]


def normalize(output: object, where: str) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Split a loss function's output into ``(loss, metrics)``, checking its shape.

    Args:
        output: What ``loss_fn`` (or ``eval_fn``) returned.
        where: The function's name, used in messages.

    Returns:
        The scalar loss and the metrics dict.

    Raises:
        TypeError: If the output is neither a scalar nor ``(scalar, dict)``, the loss
            is not a real float (an int, bool or complex dtype), or a metric is not a
            scalar array.
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
    if not jnp.issubdtype(loss.dtype, jnp.floating):  # grad needs a real float
        raise TypeError(
            f"{where} must return a real floating-point loss, got dtype {loss.dtype}; "
            "cast it, e.g. with .astype(jnp.float32)"
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


NNX_EVAL_MODE: Final[Mapping[str, bool]] = {"deterministic": True, "use_running_average": True}
"""What ``eval_mode=True`` sets for evaluation: NNX's own flags, as ``nnx.Module.eval()``."""


def check_step_arguments(
    model: object, optimizer: object, loss_fn: object, eval_fn: object, wrt: object
) -> None:
    """Check what the compiled steps are built from (the ``Trainer``'s arguments).

    Raises:
        TypeError: If ``model`` is not an ``nnx.Module``, ``optimizer`` not an optax
            gradient transformation, ``loss_fn`` (or a given ``eval_fn``) not callable,
            or ``wrt`` not an ``nnx`` filter. The message names the argument and value.
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(f"model must be an nnx.Module, got {describe(model)}")
    if isinstance(optimizer, nnx.Optimizer):  # its state and step would go stale in fit
        raise TypeError(
            "optimizer is an nnx.Optimizer; pass the optax transformation you built it with "
            "(e.g. optax.adam(1e-3)): the trainer keeps the optimizer state itself"
        )
    if not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise TypeError(
            "optimizer must be an optax GradientTransformation (with init and update), "
            f"got {describe(optimizer)}"
        )
    for name, fn in (("loss_fn", loss_fn), ("eval_fn", eval_fn)):
        if (fn is not None or name == "loss_fn") and not callable(fn):
            raise TypeError(f"{name} must be callable, got {describe(fn)}")
    check_filter("wrt", wrt)


def eval_attributes(eval_mode: object) -> tuple[dict[str, Any], bool]:
    """The attributes a trainer's ``eval_mode`` sets for evaluation, and whether each must exist.

    Args:
        eval_mode: ``True`` (NNX's ``deterministic`` / ``use_running_average``, where
            submodules have them), ``False`` (evaluate the module as it is), or a
            mapping of attribute names to values (each must exist on some submodule).

    Returns:
        The attributes, and whether a missing one is an error.

    Raises:
        TypeError: If ``eval_mode`` is neither a bool nor a mapping with str keys.
    """
    if isinstance(eval_mode, bool):
        return (dict(NNX_EVAL_MODE) if eval_mode else {}), False
    if isinstance(eval_mode, Mapping) and all(isinstance(key, str) for key in eval_mode):
        return dict(eval_mode), True
    raise TypeError(
        "eval_mode must be a bool or a mapping of attribute names (str) to values, got "
        f"{describe(eval_mode)}"
    )


class CompiledSteps(Generic[M]):
    """The jitted train, chunk and eval steps for one state ``Layout``.

    Args:
        layout: The tree definitions (and shardings) of the state.
        eval_graphdef: The graph definition validation and ``evaluate`` run on (the
            module in evaluation mode; ``layout.graphdef`` for the module as it is).
        optimizer: The optax transformation.
        loss_fn: The training loss.
        eval_fn: The validation / ``evaluate`` function, or ``None`` for ``loss_fn``.
        wrt: The ``nnx`` filter of the trained variables.
        donate: Whether the train step donates its state buffers.
        spmd: The mesh placement, or ``None``.
    """

    __slots__ = (
        "_chunk_scans",
        "_eval_names",
        "_train_names",
        "chunk",
        "eval_fn",
        "eval_graphdef",
        "evaluate",
        "layout",
        "loss_fn",
        "probe",
        "scanned_step",
        "train",
        "zeros",
    )

    def __init__(
        self,
        layout: Layout,
        eval_graphdef: Any,
        *,
        optimizer: GradientTransformationLike,
        loss_fn: LossFn[M],
        eval_fn: LossFn[M] | None,
        wrt: nnx.filterlib.Filter,
        donate: bool,
        spmd: DataParallel | None,
    ) -> None:
        self.layout = layout
        self.eval_graphdef = eval_graphdef
        self.loss_fn = loss_fn
        self.eval_fn = eval_fn
        self._train_names: tuple[str, ...] | None = None
        self._eval_names: tuple[str, ...] | None = None
        self._chunk_scans: bool | None = None
        graphdef, params_def, rest_def = layout.graphdef, layout.params_def, layout.rest_def
        opt_state_def = layout.opt_state_def
        validate, validate_name = (loss_fn, "loss_fn") if eval_fn is None else (eval_fn, "eval_fn")

        def forward(
            fn: LossFn[M], where: str, params: Leaves, rest: Leaves, batch: Any, *, train: bool
        ) -> tuple[jax.Array, dict[str, jax.Array], Leaves]:
            model: M = nnx.merge(
                graphdef if train else eval_graphdef,
                jax.tree.unflatten(params_def, params),
                jax.tree.unflatten(rest_def, rest),
            )
            try:
                output = fn(model, batch)
            except Exception as error:  # the user's code: point at it, keep the object
                note_traced_failure(error, where, batch)
                raise
            loss, metrics = normalize(output, where)
            _, _, new_rest = split(model, wrt)
            rest_out, rest_out_def = jax.tree.flatten(new_rest)
            if not same(rest_out_def, rest_def):
                raise RuntimeError(
                    f"{where} changed the model's structure (for instance with sow or by "
                    "creating variables); the trainer cannot carry that state"
                )
            return loss, metrics, rest_out

        def probe(train: bool, params: Leaves, rest: Leaves, batch: Any) -> Any:
            fn, where = (loss_fn, "loss_fn") if train else (validate, validate_name)
            loss, metrics, _ = forward(fn, where, params, rest, batch, train=train)
            return {"loss": loss, **metrics}

        def train_step(
            params: Leaves, rest: Leaves, opt_state: Leaves, sums: MetricSums, batch: Any
        ) -> _TrainOut:
            def objective(params: Leaves) -> tuple[jax.Array, tuple[dict[str, jax.Array], Leaves]]:
                loss, metrics, rest_out = forward(
                    loss_fn, "loss_fn", params, rest, batch, train=True
                )
                return loss, (metrics, rest_out)

            (loss, (metrics, rest_out)), grads = jax.value_and_grad(objective, has_aux=True)(params)
            tree = jax.tree.unflatten(params_def, params)
            updates, new_opt_state = optimizer.update(
                jax.tree.unflatten(params_def, grads),
                jax.tree.unflatten(opt_state_def, opt_state),
                tree,
            )
            new_params = optax.apply_updates(tree, updates)
            logs = {"loss": loss, **metrics}
            if set(logs) != set(sums):
                raise RuntimeError(
                    f"loss_fn returned metrics {sorted(logs)}, but earlier {sorted(sums)}"
                )
            return (
                jax.tree.leaves(new_params),
                rest_out,
                jax.tree.leaves(new_opt_state),
                accumulate(sums, logs),
                logs,
            )

        def chunk_step(
            params: Leaves,
            rest: Leaves,
            opt_state: Leaves,
            sums: MetricSums,
            batches: tuple[Any, ...],
        ) -> _ChunkOut:
            stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *batches)

            def body(
                carry: tuple[Leaves, Leaves, Leaves, MetricSums], batch: Any
            ) -> tuple[tuple[Leaves, Leaves, Leaves, MetricSums], MetricSums]:
                params, rest, opt_state, sums, logs = scanned_step(*carry, batch)
                return (params, rest, opt_state, sums), logs

            (params, rest, opt_state, sums), logs = jax.lax.scan(
                body, (params, rest, opt_state, sums), stacked
            )
            per_step = tuple({k: v[i] for k, v in logs.items()} for i in range(len(batches)))
            return params, rest, opt_state, sums, per_step

        def eval_step(params: Leaves, rest: Leaves, sums: MetricSums, batch: Any) -> MetricSums:
            loss, metrics, _ = forward(validate, validate_name, params, rest, batch, train=False)
            return accumulate(sums, {"loss": loss, **metrics})

        # The scan's body, jitted on its own so that the trace ``chunk_scans`` lowers
        # is the one the chunk reuses (``loss_fn`` is traced once); XLA inlines it.
        scanned_step = jax.jit(train_step)
        self.scanned_step = scanned_step
        self.probe = probe
        donated = (0, 1, 2, 3) if donate else ()
        if spmd is None:
            self.train = jax.jit(train_step, donate_argnums=donated)
            self.chunk = jax.jit(chunk_step)
            self.evaluate = jax.jit(eval_step, donate_argnums=(2,))
            self.zeros = zeros_function(None)
            return
        replicated = spmd.replicated
        out = (
            layout.params_shardings,
            layout.rest_shardings,
            layout.opt_state_shardings,
            replicated,
            replicated,
        )
        self.train = jax.jit(train_step, donate_argnums=donated, out_shardings=out)
        self.chunk = jax.jit(chunk_step, out_shardings=out)
        self.evaluate = jax.jit(eval_step, donate_argnums=(2,), out_shardings=replicated)
        self.zeros = zeros_function(replicated)

    def metric_names(
        self, params: Leaves, rest: Leaves, batch: Any, *, train: bool
    ) -> tuple[str, ...]:
        """The log keys of the train (or eval) function, learnt once by an abstract trace."""
        names = self._train_names if train else self._eval_names
        if names is None:
            shapes = jax.eval_shape(lambda p, r, b: self.probe(train, p, r, b), params, rest, batch)
            names = tuple(shapes)
            if train:
                self._train_names = names
                if self.eval_fn is None:
                    self._eval_names = names
            else:
                self._eval_names = names
        return names

    def chunk_scans(
        self, params: Leaves, rest: Leaves, opt_state: Leaves, sums: MetricSums, batch: Any
    ) -> bool:
        """Whether a chunk runs as the compiled scan (else step by step), judged once.

        The rule is ``_chunk_rule``'s: on a CPU it reads the train step lowered for
        these arguments (a trace, nothing compiled, no buffer donated).
        """
        if self._chunk_scans is None:
            leaf = next(iter(params), None)
            platform = (
                next(iter(leaf.devices())).platform
                if isinstance(leaf, jax.Array)
                else jax.default_backend()
            )
            lowered = (
                self.scanned_step.lower(params, rest, opt_state, sums, batch)
                if platform == "cpu"
                else None
            )
            self._chunk_scans = chunk_scans(platform, lowered)
        return self._chunk_scans

    def zero_sums(self, params: Leaves, rest: Leaves, batch: Any, *, train: bool) -> MetricSums:
        """Fresh zero sums for the metrics of the train (or eval) function."""
        return self.zeros(self.metric_names(params, rest, batch, train=train))
