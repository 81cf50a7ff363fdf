"""Conversions between ``nnx.State``, the pure dicts Orbax saves, and restore placeholders."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = [
    "abstract_from_metadata",
    "abstract_tree",
    "cast_leaves",
    "dotted",
    "from_savable",
    "load_model",
    "match_keys",
    "named_leaves",
    "saved_dtypes",
    "to_savable",
    "with_shardings",
]

_shape_dtype_struct: Callable[..., Any] = jax.ShapeDtypeStruct  # untyped __init__ in jax 0.10


def _is_state(x: object) -> bool:
    return isinstance(x, nnx.State)


def _is_array_meta(x: object) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def to_savable(tree: object) -> Any:
    """Replace every ``nnx.State`` in ``tree`` by its pure dict (plain, Orbax-friendly)."""
    return jax.tree.map(
        lambda x: nnx.to_pure_dict(x) if isinstance(x, nnx.State) else x, tree, is_leaf=_is_state
    )


def from_savable(template: object, restored: object) -> Any:
    """Rebuild the ``nnx.State`` entries of ``template`` from the pure dicts in ``restored``."""

    def rebuild(t: object, r: object) -> object:
        if isinstance(t, nnx.State) and isinstance(r, dict):
            state = jax.tree.map(lambda x: x, t)
            nnx.replace_by_pure_dict(state, r)
            return state
        return r

    return jax.tree.map(rebuild, template, restored, is_leaf=_is_state)


def abstract_tree(tree: object) -> Any:
    """Shape/dtype/sharding placeholders for the arrays of ``tree`` (other leaves kept)."""
    return jax.tree.map(
        lambda x: (
            _shape_dtype_struct(x.shape, x.dtype, sharding=x.sharding)
            if isinstance(x, jax.Array)
            else x
        ),
        tree,
    )


def abstract_from_metadata(metadata: object) -> Any:
    """Restore placeholders for saved tree metadata."""
    tree = getattr(metadata, "tree", metadata)
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def placeholder(m: Any) -> Any:
        if not _is_array_meta(m):
            return m
        if type(m).__name__ == "ScalarMetadata":
            return 0 if np.issubdtype(m.dtype, np.integer) else 0.0
        return _shape_dtype_struct(m.shape, m.dtype, sharding=sharding)

    return jax.tree.map(placeholder, tree, is_leaf=_is_array_meta)


def dotted(path: tuple[Any, ...]) -> str:
    """A leaf's name as Orbax and the checksums give it (``model.hidden.kernel``)."""
    return jax.tree_util.keystr(path, simple=True, separator=".")


def named_leaves(tree: object) -> dict[str, Any]:
    """The leaves of ``tree`` (array placeholders taken whole) by ``dotted`` name."""
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_array_meta)[0]
    return {dotted(path): leaf for path, leaf in leaves}


def _numeric(dtype: Any) -> bool:
    return not jnp.issubdtype(dtype, jax.dtypes.prng_key)


def saved_dtypes(abstract: object, saved: object) -> tuple[Any, dict[str, Any]]:
    """``abstract`` with each array placeholder in its saved dtype; the target's dtypes."""
    saved_leaves = named_leaves(saved)
    casts: dict[str, Any] = {}

    def fit(path: tuple[Any, ...], leaf: Any) -> Any:
        name = dotted(path)
        found = saved_leaves.get(name)
        if (
            isinstance(leaf, jax.ShapeDtypeStruct)
            and found is not None
            and _is_array_meta(found)
            and found.dtype != leaf.dtype
            and _numeric(found.dtype)
            and _numeric(leaf.dtype)
        ):
            casts[name] = leaf.dtype
            return _shape_dtype_struct(leaf.shape, found.dtype, sharding=leaf.sharding)
        return leaf

    return jax.tree_util.tree_map_with_path(fit, abstract), casts


def cast_leaves(tree: Any, casts: Mapping[str, Any]) -> Any:
    """``tree`` with the leaves named in ``casts`` cast to their dtype there."""
    if not casts:
        return tree

    def cast(path: tuple[Any, ...], leaf: Any) -> Any:
        dtype = casts.get(dotted(path))
        return leaf if dtype is None else leaf.astype(dtype)

    return jax.tree_util.tree_map_with_path(cast, tree)


def with_shardings(abstract: object, template: object) -> Any:
    """``abstract`` (keyed as saved) with the shardings of ``template``'s arrays that fit."""
    if isinstance(abstract, Mapping):
        if not isinstance(template, Mapping):
            return abstract
        by_name = {str(key): value for key, value in template.items()}
        return {
            key: with_shardings(value, by_name[str(key)]) if str(key) in by_name else value
            for key, value in abstract.items()
        }
    if (
        isinstance(abstract, jax.ShapeDtypeStruct)
        and isinstance(template, jax.Array)
        and abstract.shape == template.shape
        and abstract.dtype == template.dtype
    ):
        return _shape_dtype_struct(abstract.shape, abstract.dtype, sharding=template.sharding)
    return abstract


def match_keys(template: object, restored: object, path: str) -> object:
    """Re-key ``restored`` (string keys, as Orbax stores them) like the pure dict ``template``."""
    if isinstance(template, Mapping):
        if not isinstance(restored, Mapping):
            raise ValueError(f"checkpoint has a leaf at {path or '<root>'}, the model a subtree")
        out: dict[object, object] = {}
        for key, sub in template.items():
            if key in restored:
                value = restored[key]
            elif str(key) in restored:
                value = restored[str(key)]
            else:
                raise ValueError(f"checkpoint lacks model entry {path}/{key}")
            out[key] = match_keys(sub, value, f"{path}/{key}")
        return out
    shape, dtype = getattr(template, "shape", None), getattr(template, "dtype", None)
    if shape is not None and (
        getattr(restored, "shape", None) != shape or getattr(restored, "dtype", None) != dtype
    ):
        raise ValueError(
            f"checkpoint entry {path} has shape {getattr(restored, 'shape', None)} and dtype "
            f"{getattr(restored, 'dtype', None)}; the model expects {shape} and {dtype}"
        )
    return restored


def load_model(model: nnx.Module, state: Mapping[str, Any], where: str) -> None:
    """Load the ``"model"`` entry of a restored ``state`` into ``model``."""
    model_state = nnx.state(model)
    if "model" not in state:
        raise ValueError(f"{where} has no 'model' entry")
    pure = match_keys(nnx.to_pure_dict(model_state), state["model"], "model")
    assert isinstance(pure, dict)  # match_keys returns a dict for a dict template
    nnx.replace_by_pure_dict(model_state, pure)
    nnx.update(model, model_state)
