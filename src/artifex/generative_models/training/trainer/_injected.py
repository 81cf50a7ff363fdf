"""The optimizer's injected hyperparameters (``optax.inject_hyperparams``), read and set.

The trainer keeps its optimizer state as a flat leaf list (``_leaves``). This
module finds the ``inject_hyperparams`` state in it, at the top of the state or
inside ``optax.chain`` / ``optax.MultiSteps``, and maps each hyperparameter to its
leaf. Setting one replaces that leaf with an array of the same shape, dtype and
sharding, so the compiled step takes it from the next step on without recompiling.
"""

from __future__ import annotations

import math
from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from artifex.generative_models.training.trainer._leaves import FlatState, Leaves

__all__ = ["Injected", "InjectedHyperparams"]

M = TypeVar("M", bound=nnx.Module)

# InjectHyperparamsState is optax's deprecated older state; a later optax may drop it.
_INJECTED: tuple[type, ...] = tuple(
    getattr(optax, name)
    for name in ("InjectStatefulHyperparamsState", "InjectHyperparamsState")
    if hasattr(optax, name)
)
_FIX = (
    "build the optimizer with optax.inject_hyperparams, e.g. "
    "optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)"
)


def _find(state: Any, where: str) -> list[tuple[str, Any]]:
    """The ``inject_hyperparams`` states in ``state``, looked for where optax nests them."""
    if isinstance(state, _INJECTED):
        return [(where, state)]
    if isinstance(state, optax.MultiStepsState):
        return _find(state.inner_opt_state, f"{where}.inner_opt_state")
    if type(state) is tuple:  # the state of optax.chain
        return [found for i, part in enumerate(state) for found in _find(part, f"{where}[{i}]")]
    return []


class Injected:
    """Where the injected hyperparameters sit in a flat optimizer state.

    Args:
        opt_state_def: The tree definition of the optimizer state.

    Raises:
        ValueError: If the state holds no ``inject_hyperparams`` state where it is looked
            for, or more than one.
    """

    __slots__ = ("indices", "schedules", "where")

    def __init__(self, opt_state_def: Any) -> None:
        numbered = jax.tree.unflatten(opt_state_def, list(range(opt_state_def.num_leaves)))
        found = _find(numbered, "opt_state")
        if not found:
            raise ValueError(
                "the optimizer state has no optax.inject_hyperparams state at its top or "
                f"inside optax.chain / optax.MultiSteps; {_FIX}"
            )
        if len(found) > 1:
            raise ValueError(
                "the optimizer state holds several optax.inject_hyperparams states, at "
                f"{', '.join(where for where, _ in found)}; keep one, so that its "
                "hyperparameters have one meaning"
            )
        self.where, state = found[0]
        self.indices: dict[str, int] = dict(state.hyperparams)
        """Each hyperparameter's index in the flat optimizer state."""
        self.schedules = frozenset(getattr(state, "hyperparams_states", {}))
        """The hyperparameters given as schedules (optax recomputes them every step)."""

    def read(self, leaves: Leaves) -> dict[str, float]:
        """The hyperparameters' current values, in one fetch (from a local shard).

        Args:
            leaves: The flat optimizer state.

        Returns:
            Each hyperparameter's value as a Python float.
        """
        names = sorted(self.indices)
        local = [leaves[self.indices[name]].addressable_data(0) for name in names]
        return {
            name: float(value) for name, value in zip(names, jax.device_get(local), strict=True)
        }

    def write(self, leaves: Leaves, name: str, value: float, *, placed: bool) -> Leaves:
        """Return ``leaves`` with ``name`` set to ``value`` (same shape, dtype and sharding).

        Args:
            leaves: The flat optimizer state (not changed).
            name: The hyperparameter.
            value: Its new value, a finite real number.
            placed: Whether the state is placed on shardings (a mesh). Otherwise the
                new array is left uncommitted, as the step's own outputs are: a
                committed one would change the step's signature and recompile it.

        Returns:
            The new flat optimizer state.

        Raises:
            TypeError: If ``value`` is not a real number.
            ValueError: If there is no such hyperparameter, it is a schedule, or
                ``value`` is not finite (or not integral, for an integer one).
        """
        raw: object = value
        if isinstance(raw, bool) or not isinstance(raw, (int, float, np.integer, np.floating)):
            raise TypeError(f"the value of {name!r} must be a real number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ValueError(f"the value of {name!r} must be finite, got {value!r}")
        if name not in self.indices:
            raise ValueError(
                f"the optimizer has no injected hyperparameter {name!r}; it has "
                f"{sorted(self.indices)} (at {self.where})"
            )
        if name in self.schedules:
            raise ValueError(
                f"the optimizer's {name!r} is a schedule, which optax recomputes at every "
                f"step, so it cannot be set; pass a number to optax.inject_hyperparams instead"
            )
        index = self.indices[name]
        old = leaves[index]
        if not jnp.issubdtype(old.dtype, jnp.floating) and float(value) != int(value):
            raise ValueError(f"{name!r} is an {old.dtype} hyperparameter, got {value!r}")
        host = np.asarray(value, dtype=old.dtype)
        new = (
            jax.make_array_from_callback(old.shape, old.sharding, lambda where: host[where])
            if placed
            else jnp.asarray(host)
        )
        return [new if i == index else leaf for i, leaf in enumerate(leaves)]


class InjectedHyperparams(Generic[M]):
    """The trainer's side of the ``HyperparameterTrainer`` protocol, over its flat state."""

    __slots__ = ()
    _state: FlatState[M]

    def hyperparameters(self) -> dict[str, float]:
        """The optimizer's ``optax.inject_hyperparams`` values (one device fetch).

        Returns:
            Each injected hyperparameter's value, by name.

        Raises:
            ValueError: If the optimizer state has none (or several) at its top or
                inside ``optax.chain`` / ``optax.MultiSteps``; the message names the fix.
        """
        return Injected(self._state.layout.opt_state_def).read(self._state.opt_state)

    def scheduled_hyperparameters(self) -> frozenset[str]:
        """The injected hyperparameters given as schedules (see ``hyperparameters``).

        Raises:
            ValueError: As ``hyperparameters``.
        """
        return Injected(self._state.layout.opt_state_def).schedules

    def set_hyperparameter(self, name: str, value: float, /) -> None:
        """Set an injected hyperparameter from the next compiled step on (no recompiling).

        The new value has the old one's shape, dtype and sharding. Set from a hook:
        with ``steps_per_execution > 1``, a value set in an ``on_batch_end`` holds from
        the next chunk, and is lost if a stop inside the chunk rolls it back.

        Args:
            name: The hyperparameter, e.g. ``"learning_rate"``.
            value: Its new value.

        Raises:
            TypeError: If ``value`` is not a real number.
            ValueError: As ``hyperparameters``, or if ``name`` is no injected
                hyperparameter, is a schedule, or ``value`` is not finite.
        """
        state = self._state
        injected = Injected(state.layout.opt_state_def)
        state.opt_state = injected.write(
            state.opt_state, name, value, placed=state.spmd is not None
        )
