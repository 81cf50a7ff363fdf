"""The ``model`` scenario's probe: ``trainer.model`` is one live module, trained in place.

[`ModelProbe`][] reads ``trainer.model`` at the epoch and train hooks, and at the first
``on_batch_begin`` of each epoch (a read may cost the trainer a sync, so the other batch
hooks are left alone; a trainer that donates the arrays a read handed out fails there,
at its next step). It checks that the trainer hands
out the same object every time, that the model already shows the trained weights at
``on_epoch_end`` (nothing trains between the last ``on_epoch_end`` and
``on_train_end``), and that an edit of its weights by a callback stays: the edit made at
``on_epoch_end`` of epoch 0 is seen at the next ``on_epoch_begin``, the one made at
``on_train_end`` after ``fit`` returns (``EarlyStopping(restore_best_weights=True)``
writes there).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from artifex.generative_models.training.callbacks.base import BaseCallback, TrainerLike

__all__ = ["ModelProbe"]


def _weights(model: nnx.Module) -> list[np.ndarray[Any, Any]]:
    """Host copies of the model's ``nnx.Param`` values (one transfer)."""
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    return [np.asarray(leaf) for leaf in jax.device_get(leaves)]


def _same(a: list[np.ndarray[Any, Any]], b: list[np.ndarray[Any, Any]]) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and np.array_equal(x, y, equal_nan=x.dtype.kind in "fc")
        for x, y in zip(a, b, strict=True)
    )


def _edit(model: nnx.Module) -> list[np.ndarray[Any, Any]] | None:
    """Add 1 to every floating ``nnx.Param``, as a callback restoring weights would write.

    Returns:
        The weights after the edit, or ``None`` if the model has no floating parameter.
    """
    state = nnx.state(model, nnx.Param)
    if not any(jnp.issubdtype(leaf.dtype, jnp.inexact) for leaf in jax.tree.leaves(state)):
        return None

    def bump(leaf: jax.Array) -> jax.Array:
        return leaf + 1 if jnp.issubdtype(leaf.dtype, jnp.inexact) else leaf

    nnx.update(model, jax.tree.map(bump, state))
    return _weights(model)


class ModelProbe(BaseCallback):
    """Reads, compares and edits ``trainer.model`` at the epoch and train hooks.

    ``problems`` collects ``(hook, sentence)`` for every broken rule (at most one each).
    """

    __slots__ = ("_batch_read", "_epoch_end", "_first", "_pending", "_seen", "edited", "problems")

    def __init__(self) -> None:
        self._first: object = None
        self._batch_read = False
        self._seen: set[str] = set()
        self._epoch_end: list[np.ndarray[Any, Any]] | None = None
        self._pending: list[np.ndarray[Any, Any]] | None = None
        self.edited: list[np.ndarray[Any, Any]] | None = None
        """The weights as this probe left them at ``on_train_end`` (``None``: no edit)."""
        self.problems: list[tuple[str, str]] = []

    def _note(self, key: str, hook: str, sentence: str) -> None:
        if key not in self._seen:
            self._seen.add(key)
            self.problems.append((hook, sentence))

    def model(self, trainer: TrainerLike, hook: str) -> nnx.Module | None:
        """``trainer.model`` if it is the module of the first read (else note it)."""
        model: object = trainer.model
        if self._first is None:
            self._first = model
        elif model is not self._first:
            self._note(
                "identity",
                hook,
                f"during {hook}, trainer.model was another object than at on_train_begin (a "
                "copy per read?); the contract's trainer.model is one live module, so an edit "
                "by a callback (EarlyStopping restoring the best weights) reaches training",
            )
            return None
        return model if isinstance(model, nnx.Module) else None

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Take the module of this run."""
        self._first, self._epoch_end, self._pending = None, None, None
        self.model(trainer, "on_train_begin")

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, /) -> None:
        """The edit made at the last ``on_epoch_end`` must still be there."""
        model = self.model(trainer, "on_epoch_begin")
        if (
            model is not None
            and self._pending is not None
            and not _same(_weights(model), self._pending)
        ):
            self._note(
                "edit",
                "on_epoch_begin",
                "the weights a callback wrote into trainer.model at on_epoch_end were gone at "
                "the next on_epoch_begin; the contract keeps a callback's edit of the model "
                "(training continues from it)",
            )
        self._pending = None
        self._batch_read = False

    def on_batch_begin(self, trainer: TrainerLike, batch: int, /) -> None:
        """Read the module before the epoch's first step (the step must still run)."""
        if not self._batch_read:
            self._batch_read = True
            self.model(trainer, "on_batch_begin")

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Keep the weights; edit them at epoch 0."""
        model = self.model(trainer, "on_epoch_end")
        if model is None:
            return
        self._epoch_end = _weights(model)
        if epoch == 0 and self._pending is None:
            self._pending = _edit(model)
            if self._pending is not None:
                self._epoch_end = self._pending

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """The weights are those of the last ``on_epoch_end``; then edit them."""
        model = self.model(trainer, "on_train_end")
        if model is None:
            return
        if self._epoch_end is not None and not _same(_weights(model), self._epoch_end):
            self._note(
                "fresh",
                "on_train_end",
                "trainer.model showed other weights at on_train_end than at the last "
                "on_epoch_end, with no step in between: the model did not show the trained "
                "weights at on_epoch_end (trained elsewhere, written back late?); the contract "
                "updates trainer.model in place before on_epoch_end",
            )
        self.edited = _edit(model)

    def after_fit(self, trainer: TrainerLike) -> None:
        """After ``fit`` returned: the same module, with this probe's last edit."""
        model = self.model(trainer, "after fit")
        if (
            model is not None
            and self.edited is not None
            and not _same(_weights(model), self.edited)
        ):
            self._note(
                "kept",
                "after fit",
                "the weights a callback wrote into trainer.model at on_train_end were gone "
                "after fit returned (EarlyStopping(restore_best_weights=True) writes there); "
                "the contract leaves the model as the callbacks left it",
            )
