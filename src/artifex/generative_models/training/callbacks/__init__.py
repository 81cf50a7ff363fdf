"""Typed training callbacks for JAX / Flax NNX.

The core (:mod:`.base`) defines the :class:`TrainerLike` and :class:`TrainingCallback`
protocols, the no-op :class:`BaseCallback` and the dispatching :class:`CallbackList`.
"""

from artifex.generative_models.training.callbacks.base import (
    HOOK_NAMES,
    BaseCallback,
    CallbackList,
    HookName,
    Logs,
    TrainerLike,
    TrainingCallback,
)

__all__ = [
    "HOOK_NAMES",
    "BaseCallback",
    "CallbackList",
    "HookName",
    "Logs",
    "TrainerLike",
    "TrainingCallback",
]
