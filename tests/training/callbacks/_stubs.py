"""Small stub trainers and a contract-following driver loop for the callback tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from artifex.generative_models.training.callbacks import CallbackList, StopRequester
from artifex.generative_models.training.callbacks.base import TrainingCallback
from artifex.generative_models.training.callbacks.protocols import RunStatus


class TinyModel(nnx.Module):
    """A two-layer MLP (with an ``nnx.List``, so state dicts have integer keys)."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.layers = nnx.List([nnx.Linear(2, 4, rngs=rngs), nnx.Linear(4, 1, rngs=rngs)])

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.layers[1](jax.nn.relu(self.layers[0](x)))


class ModelOnlyTrainer:
    """A trainer that is only ``TrainerLike``: it exposes ``model`` and nothing else."""

    def __init__(self, model: nnx.Module | None = None) -> None:
        self._model = model if model is not None else TinyModel(nnx.Rngs(0))

    @property
    def model(self) -> nnx.Module:
        return self._model


class TunableTrainer(ModelOnlyTrainer):
    """A ``HyperparameterTrainer``, ``ExampleCounter`` and ``CallbackHost`` over plain values.

    ``hyperparameters()`` counts its calls in ``reads`` (each is a device fetch in a
    real trainer).
    """

    def __init__(
        self,
        hyperparams: dict[str, float] | None = None,
        *,
        schedules: Sequence[str] = (),
        callbacks: Sequence[TrainingCallback] = (),
    ) -> None:
        super().__init__()
        self.values = dict({"learning_rate": 0.1} if hyperparams is None else hyperparams)
        self.schedules = frozenset(schedules)
        self.examples_seen = 0
        self.callbacks = CallbackList(callbacks)
        self.reads = 0

    def hyperparameters(self) -> dict[str, float]:
        self.reads += 1
        return dict(self.values)

    def scheduled_hyperparameters(self) -> frozenset[str]:
        return self.schedules

    def set_hyperparameter(self, name: str, value: float, /) -> None:
        if name in self.schedules or name not in self.values:
            raise ValueError(f"cannot set {name!r}")
        self.values[name] = float(value)


class FullTrainer:
    """A ``CheckpointableTrainer`` (hence ``TrainerState``) with a real optimiser."""

    def __init__(self, seed: int = 0) -> None:
        self._model = TinyModel(nnx.Rngs(seed))
        self.optimizer = nnx.Optimizer(self._model, optax.sgd(1e-2, momentum=0.9), wrt=nnx.Param)
        self.step = 0
        self.epoch = 0
        self.stop_training = False
        self.status: RunStatus = "running"
        self.stopped_by: object | None = None
        self.error: BaseException | None = None

    @property
    def model(self) -> nnx.Module:
        return self._model

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": nnx.state(self._model),
            "opt_state": nnx.state(self.optimizer),
            "step": self.step,
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        nnx.update(self._model, state["model"])
        nnx.update(self.optimizer, state["opt_state"])
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])

    def train_step(self) -> jax.Array:
        """One real optimiser step on a fixed batch; returns the loss (on device)."""
        x = jnp.ones((4, 2), jnp.float32)

        def loss_fn(model: TinyModel) -> jax.Array:
            return jnp.mean(model(x) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(self._model)
        self.optimizer.update(self._model, grads)
        out: jax.Array = loss
        return out


def params(model: nnx.Module) -> list[jax.Array]:
    """The model's parameter arrays, in a fixed order."""
    return list(jax.tree.leaves(nnx.state(model, nnx.Param)))


def drive(
    trainer: Any,
    callbacks: Sequence[TrainingCallback],
    epoch_losses: Sequence[Sequence[float]],
    *,
    val_losses: Sequence[float] | None = None,
    start_step: int = 0,
    start_epoch: int = 0,
) -> list[str]:
    """Run the lifecycle contract over scripted losses; honour stop requests.

    ``epoch_losses[e]`` are epoch ``e``'s batch losses (sent as device scalars).
    Returns the events dispatched, as ``"hook:arg"`` strings.
    """
    cbs = CallbackList(callbacks)
    stoppers = [cb for cb in callbacks if isinstance(cb, StopRequester)]
    events: list[str] = []

    def stop() -> bool:
        return any(s.should_stop for s in stoppers) or bool(getattr(trainer, "stop_training", 0))

    step, epoch = start_step, start_epoch
    cbs.on_train_begin(trainer)
    events.append("train_begin")
    try:
        for e, losses in enumerate(epoch_losses, start=start_epoch):
            epoch = e
            if hasattr(trainer, "epoch"):
                trainer.epoch = e
            cbs.on_epoch_begin(trainer, e)
            events.append(f"epoch_begin:{e}")
            seen: list[float] = []
            stopped = False
            for loss in losses:
                cbs.on_batch_begin(trainer, step)
                if hasattr(trainer, "step"):
                    trainer.step = step + 1
                seen.append(loss)
                cbs.on_batch_end(trainer, step, {"loss": jnp.asarray(loss, jnp.float32)})
                events.append(f"batch:{step}")
                step += 1
                if stop():
                    stopped = True
                    break
            logs: dict[str, Any] = {"loss": sum(seen) / max(len(seen), 1)}
            if val_losses is not None and not stopped:
                cbs.on_validation_begin(trainer)
                cbs.on_validation_end(trainer, {"loss": val_losses[e - start_epoch]})
                logs["val_loss"] = val_losses[e - start_epoch]
            cbs.on_epoch_end(trainer, e, logs)
            events.append(f"epoch_end:{e}")
            if stopped or stop():
                break
    finally:
        if hasattr(trainer, "epoch"):
            trainer.epoch = epoch + 1
        cbs.on_train_end(trainer)
        events.append("train_end")
    return events
