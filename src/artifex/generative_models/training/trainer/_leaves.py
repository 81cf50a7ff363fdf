r"""The trained state as flat leaf lists: the one owner of the model-sync invariant.

Between steps the trainer's arrays live here, as flat lists of leaves (the ``wrt``
parameters, the rest of the module's state, the optimizer state), with their tree
definitions and, on a mesh, their shardings. The module's ``nnx.Variable``\ s are
brought up to date lazily. Three flags say where the truth is, and only this class
writes them:

* ``stale``: the leaves ran ahead of the module (a step ran since the last sync);
* ``model exposed``: somebody holds the module's current arrays (``trainer.model``
  was read, or state was loaded into it), so before a donating step the leaves are
  re-read from the module (a callback may have edited it) and copied;
* ``optimizer exposed``: the optimizer state was handed out, so it is copied before
  the next donating step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Sharding

from artifex.generative_models.training._spmd import DataParallel
from artifex.generative_models.training.optimizer import GradientTransformationLike
from artifex.generative_models.training.trainer._modes import (
    ModeFlags,
    changed_modes,
    mode_flags,
    restore_modes,
)

__all__ = ["FlatState", "Layout", "Leaves", "same", "split"]

M = TypeVar("M", bound=nnx.Module)

Leaves: TypeAlias = list[jax.Array]
"""A flat list of state arrays, in ``jax.tree.flatten`` order."""


def split(
    model: nnx.Module, wrt: nnx.filterlib.Filter
) -> tuple[Any, nnx.State[Any, Any], nnx.State[Any, Any]]:
    """``nnx.split(model, wrt, ...)``: the graph, the trained state and the rest."""
    graphdef, *states = nnx.split(model, wrt, ...)
    params, rest = states
    return graphdef, params, rest


def same(a: object, b: object) -> bool:
    """Whether two tree or graph definitions are equal."""
    if a is None or b is None:
        return a is b
    return bool(a == b)


def _copy_leaves(leaves: Leaves) -> Leaves:
    return [jnp.copy(leaf) for leaf in leaves]


_copy = jax.jit(_copy_leaves)


@dataclass(frozen=True, slots=True)
class Layout:
    """The structure the compiled steps are built for: tree definitions and shardings.

    The shardings are empty lists when the trainer runs without a mesh.
    """

    graphdef: Any
    params_def: Any
    rest_def: Any
    opt_state_def: Any
    params_shardings: list[Sharding]
    rest_shardings: list[Sharding]
    opt_state_shardings: list[Sharding]


class FlatState(Generic[M]):
    """The module's trained state and optimizer state as flat, placed leaf lists.

    Args:
        model: The live module; it is updated in place (lazily, see the module docs).
        optimizer: The optax transformation; its state is initialised here.
        wrt: The ``nnx`` filter of the trained variables.
        donate: Whether the steps donate the leaves (handed-out arrays are then
            copied before the next step).
        spmd: Where the leaves live on a mesh, or ``None`` for the default device.
    """

    __slots__ = (
        "_model_exposed",
        "_modes",
        "_opt_state_exposed",
        "_stale",
        "donate",
        "layout",
        "model",
        "opt_state",
        "optimizer",
        "params",
        "rest",
        "spmd",
        "wrt",
    )

    def __init__(
        self,
        model: M,
        optimizer: GradientTransformationLike,
        wrt: nnx.filterlib.Filter,
        *,
        donate: bool,
        spmd: DataParallel | None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.wrt = wrt
        self.donate = donate
        self.spmd = spmd
        self.params: Leaves = []
        self.rest: Leaves = []
        self.opt_state: Leaves = []
        self._adopt(*split(model, wrt))
        self._stale = False
        self._model_exposed = True  # the user holds the module's current arrays
        self._opt_state_exposed = False

    # ------------------------------------------------------------------ reading

    def module(self) -> M:
        """The live module, synced; its arrays count as handed out from now on."""
        self.sync()
        self._model_exposed = True
        return self.model

    def opt_state_tree(self) -> Any:
        """The optimizer state as a pytree; its arrays count as handed out from now on."""
        self._opt_state_exposed = True
        return jax.tree.unflatten(self.layout.opt_state_def, self.opt_state)

    def sync(self) -> None:
        """Write the trained leaves into the module's variables, if they lag behind."""
        if self._stale:
            layout = self.layout
            nnx.update(
                self.model,
                jax.tree.unflatten(layout.params_def, self.params),
                jax.tree.unflatten(layout.rest_def, self.rest),
            )
            self._stale = False

    # ------------------------------------------------------------------ writing

    def trained(self, params: Leaves, rest: Leaves, opt_state: Leaves) -> None:
        """Take the leaves a step returned; the module now lags behind them."""
        self.params, self.rest, self.opt_state = params, rest, opt_state
        self._stale = True

    def rolled_back(self, params: Leaves, rest: Leaves, opt_state: Leaves) -> None:
        """Take recomputed leaves that replace a discarded chunk's end state.

        A module handed out during the chunk shows its end state; it is synced to the
        kept state at once.
        """
        self.trained(params, rest, opt_state)
        if self._model_exposed:
            self.sync()

    def own(self) -> list[str]:
        """Before a donating step: take back handed-out arrays, copying them.

        Returns:
            The mode flags (``model.eval()``'s) that were found changed and set back to
            their training values, as ``path.flag (old -> new)``; usually none.

        Raises:
            RuntimeError: If the module's structure changed otherwise.
        """
        restored: list[str] = []
        if self._model_exposed:
            restored = self._pull()
            if self.donate:
                self.params, self.rest = _copy(self.params), _copy(self.rest)
            self._model_exposed = False
        if self._opt_state_exposed:
            if self.donate:
                self.opt_state = _copy(self.opt_state)
            self._opt_state_exposed = False
        return restored

    def load(self, model_state: Any, opt_state: Any) -> None:
        """Load a saved model state (through ``nnx.update``) and optimizer state.

        Raises:
            ValueError: If ``opt_state`` does not have this optimizer state's structure.
        """
        opt_leaves, opt_def = jax.tree.flatten(opt_state)
        if not same(opt_def, self.layout.opt_state_def):
            raise ValueError(
                "state['opt_state'] does not match this trainer's optimizer state: "
                f"expected {self.layout.opt_state_def}, got {opt_def}"
            )
        self.sync()
        nnx.update(self.model, model_state)
        self._model_exposed = True  # the caller owns the arrays just loaded
        self._pull()
        if self.spmd is not None:
            opt_leaves = self.spmd.place(opt_leaves, self.layout.opt_state_shardings)
        self.opt_state = list(_copy(opt_leaves)) if opt_leaves else []

    def refresh(self) -> None:
        """At the start of ``fit``: re-split the module, which may have changed since.

        The user or a callback may have changed the module since the last ``fit``. A
        changed structure gets a fresh optimizer state and a new ``layout`` object (the
        compiled steps for the old one must be rebuilt).
        """
        self.sync()
        graphdef, params, rest = split(self.model, self.wrt)
        if self._matches(graphdef, params, rest):
            self.params, self.rest = jax.tree.leaves(params), jax.tree.leaves(rest)
            self._place_model_leaves()
        else:
            self._adopt(graphdef, params, rest)
        self._model_exposed = True

    def graphdef_with(self, attributes: Mapping[str, Any], *, strict: bool) -> Any:
        """The graph definition of the module with static ``attributes`` set.

        The attributes are set on a merged copy of the module (sharing its arrays, not
        copying them); the user's module keeps its own. An empty mapping gives the
        module's own graph definition.

        Args:
            attributes: Attribute names and values, as ``nnx.Module.set_attributes``
                takes them (e.g. ``deterministic=True``).
            strict: Raise if some attribute is found on no submodule.

        Raises:
            ValueError: If ``strict`` and an attribute is found on no submodule, or if
                setting the attributes changed the module's state structure.
        """
        layout = self.layout
        if not attributes:
            return layout.graphdef
        copy = nnx.merge(
            layout.graphdef,
            jax.tree.unflatten(layout.params_def, self.params),
            jax.tree.unflatten(layout.rest_def, self.rest),
        )
        try:
            copy.set_attributes(**attributes, raise_if_not_found=strict)
        except ValueError as error:
            raise ValueError(
                f"eval_mode {dict(attributes)!r}: no submodule of the model has some of these "
                f"attributes ({error})"
            ) from error
        graphdef, params, rest = split(copy, self.wrt)
        if not (
            same(jax.tree.structure(params), layout.params_def)
            and same(jax.tree.structure(rest), layout.rest_def)
        ):
            raise ValueError(
                f"eval_mode {dict(attributes)!r} changed the model's state structure; "
                "evaluation must run on the same variables as training"
            )
        return layout.graphdef if same(graphdef, layout.graphdef) else graphdef

    # ------------------------------------------------------------------ internals

    def _matches(
        self, graphdef: Any, params: nnx.State[Any, Any], rest: nnx.State[Any, Any]
    ) -> bool:
        layout = self.layout
        return (
            same(jax.tree.structure(params), layout.params_def)
            and same(jax.tree.structure(rest), layout.rest_def)
            and same(graphdef, layout.graphdef)
        )

    def _adopt(self, graphdef: Any, params: nnx.State[Any, Any], rest: nnx.State[Any, Any]) -> None:
        """Take a (new) structure: flatten, initialise the optimizer state, place it all."""
        self.params, params_def = jax.tree.flatten(params)
        self.rest, rest_def = jax.tree.flatten(rest)
        self.opt_state, opt_state_def = jax.tree.flatten(self.optimizer.init(params))
        params_shardings: list[Sharding] = []
        rest_shardings: list[Sharding] = []
        opt_state_shardings: list[Sharding] = []
        spmd = self.spmd
        if spmd is not None:
            params_shardings = spmd.state_shardings(params)
            rest_shardings = spmd.state_shardings(rest)
            opt_state_shardings = spmd.opt_shardings(
                self.optimizer,
                jax.tree.unflatten(opt_state_def, self.opt_state),
                params_def,
                params_shardings,
            )
            self.opt_state = spmd.place(self.opt_state, opt_state_shardings)
        self.layout = Layout(
            graphdef,
            params_def,
            rest_def,
            opt_state_def,
            params_shardings,
            rest_shardings,
            opt_state_shardings,
        )
        self._modes: ModeFlags = mode_flags(self.model)  # the flags the layout was built with
        self._place_model_leaves()

    def _pull(self) -> list[str]:
        """Re-read the leaves from the module (which a callback may have changed).

        Mode flags changed since (``model.eval()``) are set back first; returns them.
        """
        graphdef, params, rest = split(self.model, self.wrt)
        restored: list[str] = []
        if not self._matches(graphdef, params, rest):
            restored = changed_modes(self.model, self._modes)
            if restored:
                restore_modes(self.model, self._modes)
                graphdef, params, rest = split(self.model, self.wrt)
            if not self._matches(graphdef, params, rest):
                flags = f" (its mode flags changed too: {', '.join(restored)})" if restored else ""
                raise RuntimeError(
                    "the model's structure changed during training (variables were added, "
                    f"removed or retyped){flags}; the trainer cannot continue with it"
                )
        self.params, self.rest = jax.tree.leaves(params), jax.tree.leaves(rest)
        self._place_model_leaves()  # a callback may have put arrays elsewhere
        return restored

    def _place_model_leaves(self) -> None:
        """On a mesh: put the model's leaves on their shardings (a no-op where they are)."""
        if self.spmd is not None:
            self.params = self.spmd.place(self.params, self.layout.params_shardings)
            self.rest = self.spmd.place(self.rest, self.layout.rest_shardings)
