"""The optimizer type the reference ``Trainer`` takes, written as a protocol of our own.

optax ships no ``py.typed``, so for mypy (and any checker that does not infer types
from an untyped package) ``optax.GradientTransformation`` is ``Any``, and a typo such
as ``Trainer(model, "adam", loss_fn)`` would pass. [`GradientTransformationLike`][]
states what the trainer calls, with optax's signatures, so every checker checks it
whether it sees optax's types or not; an ``optax.GradientTransformation`` (and
``GradientTransformationExtraArgs``, whose ``update`` also takes extra keyword
arguments) matches it.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import Protocol

__all__ = ["GradientTransformationLike"]


class _InitFn(Protocol):
    def __call__(self, params: Any, /) -> Any: ...


class _UpdateFn(Protocol):
    def __call__(self, updates: Any, state: Any, params: Any = None, /) -> tuple[Any, Any]: ...


class GradientTransformationLike(Protocol):
    """An optax-style gradient transformation: a pair of pure ``init`` and ``update``.

    Its members are read-only properties, so that optax's transformations (whose
    ``init`` and ``update`` are fields of a ``NamedTuple``), ``optax.MultiSteps`` and
    a user's own class with these two methods all match, under every checker. Their
    parameters are positional, as the trainer passes them; ``update`` may take more
    (optax's ``GradientTransformationExtraArgs`` takes extra keyword arguments).
    """

    @property
    def init(self) -> _InitFn:
        """``init(params)``: the initial optimizer state for ``params`` (a pytree)."""
        ...

    @property
    def update(self) -> _UpdateFn:
        """``update(updates, state, params=None)``: the new ``(updates, state)``."""
        ...
