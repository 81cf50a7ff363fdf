"""Naming the batch that a compiled step could not take (the failure path only).

The step path never inspects a batch: JAX does, when it traces or dispatches a
compiled step. When that fails, ``explain_batch_failure`` looks at the batches just
fed and, where one of them is at fault, raises a ``TypeError`` naming the data
argument, the batch and the leaf, chained to JAX's own error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

__all__ = ["describe_batch", "explain_batch_failure", "note_traced_failure"]

_EXPECTED = (
    "a batch must be a pytree (tuples, lists, dicts) whose leaves are arrays (jax.Array, "
    "NumPy arrays of a numeric dtype) or numbers"
)


def _refused(leaf: object) -> bool:
    """Whether JAX refuses ``leaf`` as a step argument (a str, an object, a str array...)."""
    try:
        jax.eval_shape(lambda x: x, leaf)  # JAX's own check of a step argument
    except TypeError:
        return True
    return False


def _first_node(batch: object) -> tuple[str, str] | None:
    """The path and kind of the first Python list or ``None`` in ``batch``, if any."""

    def visit(node: object, path: str) -> tuple[str, str] | None:
        if isinstance(node, list) or node is None:
            return path or "the top", "None" if node is None else "a Python list"
        children: Any = ()
        if isinstance(node, tuple):
            children = ((f"{path}[{i}]", child) for i, child in enumerate(node))
        elif isinstance(node, dict):
            children = ((f"{path}[{key!r}]", child) for key, child in node.items())
        for child_path, child in children:
            found = visit(child, child_path)
            if found is not None:
                return found
        return None

    return visit(batch, "")


class _Leaf:
    """A leaf shown as ``dtype[shape]`` (``float32[32,8]``) in a batch's structure."""

    __slots__ = ("text",)

    def __init__(self, leaf: object) -> None:
        shape, dtype = getattr(leaf, "shape", None), getattr(leaf, "dtype", None)
        if shape is None or dtype is None:
            self.text = type(leaf).__qualname__
        else:
            self.text = f"{dtype}[{','.join(map(str, shape))}]"

    def __repr__(self) -> str:
        return self.text


def describe_batch(batch: object, *, limit: int = 300) -> str:
    """A batch's structure with each leaf's dtype and shape: ``(float32[32,8], int32[32])``.

    Args:
        batch: A pytree of arrays (or of tracers, inside a traced function).
        limit: The most characters shown; a longer description is cut with ``...``.
    """
    shown = repr(jax.tree.map(_Leaf, batch))
    return shown if len(shown) <= limit else f"{shown[: limit - 3]}..."


def note_traced_failure(error: BaseException, where: str, batch: object) -> None:
    """Add a note to ``error``, raised by the user's ``where`` while the trainer traced it.

    The error keeps its type and identity; the note names the function, how the
    trainer calls it, and the batch's structure.

    Args:
        error: What ``loss_fn`` (or ``eval_fn``) raised.
        where: ``"loss_fn"`` or ``"eval_fn"``.
        batch: The batch it was called with (tracers: their shapes and dtypes).
    """
    error.add_note(
        f"raised in {where}, which the trainer calls as {where}(model, batch) under jax.jit, "
        f"with batch = {describe_batch(batch)}"
    )


def explain_batch_failure(
    error: Exception,
    batches: Sequence[Any],
    name: str,
    first: int,
    epoch: int | None = None,
) -> None:
    """Raise a ``TypeError`` naming the batch at fault if JAX failed on one of ``batches``.

    A ``None`` batch is at fault too (JAX takes it as an empty pytree, and the loss
    function fails on it). Otherwise this returns, and the caller re-raises
    ``error``; a ``TypeError`` or ``AttributeError`` (what a function expecting an
    array raises) on a batch holding a Python list or ``None`` first gets a note: JAX
    takes either as a pytree node (a list's numbers as scalar leaves), not as an array.

    Args:
        error: What the compiled step (or its abstract trace) raised.
        batches: The batches it was given, in order.
        name: The data argument (``"train_data"``, ``"val_data"``, ``"data"``).
        first: The index of ``batches[0]`` in its epoch (or pass).
        epoch: The epoch, named in the message if given.

    Raises:
        TypeError: If a batch holds a leaf JAX cannot take, or is ``None``.
    """
    for offset, batch in enumerate(batches):
        where = f"{name} batch {first + offset}" + ("" if epoch is None else f" of epoch {epoch}")
        if batch is None:
            raise TypeError(f"{where} is None; {_EXPECTED}") from error
        for path, leaf in jax.tree_util.tree_flatten_with_path(batch)[0]:
            if _refused(leaf):
                shown = repr(leaf)
                shown = shown if len(shown) <= 60 else f"{shown[:57]}..."
                dtype = getattr(leaf, "dtype", None)
                kind = type(leaf).__qualname__ + ("" if dtype is None else f" of dtype {dtype}")
                what = f"holds a leaf of type {kind} at {jax.tree_util.keystr(path)}"
                raise TypeError(
                    f"{where} {what if path else f'is a {kind}'} ({shown}), which JAX cannot "
                    f"take as an array; {_EXPECTED}"
                ) from error
        found = _first_node(batch) if isinstance(error, TypeError | AttributeError) else None
        if found is not None:
            error.add_note(
                f"{where} holds {found[1]} at {found[0]}: JAX takes it as a pytree node (a "
                "list's numbers as scalar leaves, None as an empty node), not as an array; "
                "if the function expects an array there, pass one (np.asarray)"
            )
