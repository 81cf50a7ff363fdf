"""A minimal custom trainer that honours the whole callback contract, and its harness.

Copy it as the starting point of your own trainer. Check it (or yours) with::

    python -m artifex.generative_models.training.conformance \
        examples.minimal_trainer:MinimalHarness
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Generic, TypeAlias, TypeVar

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from artifex.generative_models.training.callbacks import (
    CallbackList,
    Logs,
    StopRequester,
    TrainingCallback,
)
from artifex.generative_models.training.conformance import FailingData

__all__ = ["Batch", "MinimalHarness", "MinimalTrainer", "make_batches", "mse"]

Batch: TypeAlias = tuple[jax.Array, jax.Array]
M = TypeVar("M", bound=nnx.Module)


@nnx.jit(static_argnames="loss_fn")
def _train_step(
    model: M, optimizer: nnx.Optimizer[M], batch: Batch, loss_fn: Callable[[M, Batch], jax.Array]
) -> jax.Array:
    loss: jax.Array
    loss, grads = nnx.value_and_grad(loss_fn)(model, batch)
    optimizer.update(model, grads)
    return loss


@nnx.jit(static_argnames="loss_fn")
def _eval_step(model: M, batch: Batch, loss_fn: Callable[[M, Batch], jax.Array]) -> jax.Array:
    return loss_fn(model, batch)


class MinimalTrainer(Generic[M]):
    """A plain Python loop over an ``nnx.Module`` with a jitted step.

    It honours the callback contract: lifecycle order, 0-based contiguous epochs and
    global steps (continued by a second ``fit``), device scalars in batch logs (never
    synced here), Python-float means in epoch and validation logs, stop requests after
    every ``on_batch_end`` and ``on_epoch_end``, and ``on_train_end`` on every exit,
    with the original exception propagating.

    Args:
        model: The model to train.
        optimizer: The optax transformation that updates the model's ``nnx.Param``.
        loss_fn: ``loss_fn(model, batch)``, a scalar loss.
        callbacks: The callbacks, in dispatch order.
    """

    def __init__(
        self,
        model: M,
        optimizer: optax.GradientTransformation,
        loss_fn: Callable[[M, Batch], jax.Array],
        *,
        callbacks: Sequence[TrainingCallback] = (),
    ) -> None:
        self._model = model
        self.optimizer = nnx.Optimizer(model, optimizer, wrt=nnx.Param)
        self.loss_fn = loss_fn
        self.callbacks = CallbackList(callbacks)
        self._stoppers = [cb for cb in callbacks if isinstance(cb, StopRequester)]
        self.stop_training = False
        self.step = 0
        self.epoch = 0

    @property
    def model(self) -> M:
        """The model being trained."""
        return self._model

    def _should_stop(self) -> bool:
        return self.stop_training or any(cb.should_stop for cb in self._stoppers)

    def fit(
        self,
        train_data: Iterable[Batch],
        *,
        epochs: int,
        val_data: Iterable[Batch] | None = None,
        steps_per_epoch: int | None = None,
    ) -> None:
        """Train for ``epochs`` epochs, validating after each one if ``val_data`` is given.

        Args:
            train_data: The batches of one epoch; iterated once per epoch.
            epochs: How many epochs to run.
            val_data: Validation batches, or ``None``.
            steps_per_epoch: For a stream: one iterator over ``train_data`` lives across
                the epochs, each of this many batches (``None``: an epoch is one pass).
        """
        cbs, self.stop_training = self.callbacks, False
        stream: Iterator[Batch] | None = None if steps_per_epoch is None else iter(train_data)
        try:
            cbs.on_train_begin(self)
            for _ in range(epochs):
                epoch = self.epoch
                cbs.on_epoch_begin(self, epoch)
                losses: list[jax.Array] = []
                epoch_data = (
                    train_data if stream is None else itertools.islice(stream, steps_per_epoch)
                )
                for batch in epoch_data:
                    step = self.step
                    cbs.on_batch_begin(self, step)
                    loss = _train_step(self._model, self.optimizer, batch, loss_fn=self.loss_fn)
                    self.step += 1
                    losses.append(loss)
                    cbs.on_batch_end(self, step, {"loss": loss})  # a device scalar: no sync
                    if self._should_stop():
                        break
                logs: Logs = {"loss": float(jnp.mean(jnp.stack(losses)))} if losses else {}
                if val_data is not None and not self._should_stop():
                    cbs.on_validation_begin(self)
                    val_losses = [
                        _eval_step(self._model, b, loss_fn=self.loss_fn) for b in val_data
                    ]
                    val_logs: Logs = {"loss": float(jnp.mean(jnp.stack(val_losses)))}
                    cbs.on_validation_end(self, val_logs)
                    logs.update({f"val_{key}": value for key, value in val_logs.items()})
                cbs.on_epoch_end(self, epoch, logs)
                self.epoch += 1
                if self._should_stop():
                    break
        except BaseException as error:  # teardown, then the same exception propagates
            try:
                cbs.on_train_end(self)
            except Exception as teardown_error:
                error.add_note(f"on_train_end also raised {teardown_error!r}")
            raise
        cbs.on_train_end(self)


def mse(model: nnx.Linear, batch: Batch) -> jax.Array:
    """Mean squared error of a linear model on ``(x, y)``."""
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def make_batches(count: int, *, seed: int = 0, size: int = 4) -> list[Batch]:
    """``count`` batches of ``size`` points of ``y = x0 + x1``."""
    x = jax.random.normal(jax.random.key(seed), (count, size, 2))
    y = jnp.sum(x, axis=-1, keepdims=True)
    return [(x[i], y[i]) for i in range(count)]


# Built once, not in every build(): the optax transformation is static to nnx.jit, so a
# new ``optax.sgd(...)`` per trainer would recompile the steps for each of the ~40
# trainers the conformance suite builds (seconds each, instead of once in all).
_SGD = optax.sgd(0.1)


class MinimalHarness:
    """Lets the conformance suite build and run :class:`MinimalTrainer`."""

    def __init__(self) -> None:
        self.train = make_batches(3)
        self.val = make_batches(2, seed=1)

    def build(self, callbacks: Sequence[TrainingCallback]) -> MinimalTrainer[nnx.Linear]:
        """A fresh trainer and model (the optimizer shared: see ``_SGD``)."""
        model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
        return MinimalTrainer(model, _SGD, mse, callbacks=callbacks)

    def fit(self, trainer: MinimalTrainer[nnx.Linear], epochs: int) -> None:
        """Train on three batches per epoch."""
        trainer.fit(self.train, epochs=epochs)

    def fit_validated(self, trainer: MinimalTrainer[nnx.Linear], epochs: int) -> None:
        """Train with validation data."""
        trainer.fit(self.train, epochs=epochs, val_data=self.val)

    def fit_failing(
        self,
        trainer: MinimalTrainer[nnx.Linear],
        epochs: int,
        error: BaseException,
        at_batch: int,
    ) -> None:
        """Train on data that raises ``error`` at batch ``at_batch``."""
        trainer.fit(FailingData(self.train, error, at_batch), epochs=epochs)

    def fit_stream(
        self, trainer: MinimalTrainer[nnx.Linear], epochs: int, steps_per_epoch: int
    ) -> None:
        """Train on an endless stream, ``steps_per_epoch`` batches per epoch."""
        stream = itertools.cycle(self.train)
        trainer.fit(stream, epochs=epochs, steps_per_epoch=steps_per_epoch)
