"""Typed training callbacks for JAX / Flax NNX.

The core (:mod:`.base`) defines the :class:`TrainerLike` and :class:`TrainingCallback`
protocols, the no-op :class:`BaseCallback` and the dispatching :class:`CallbackList`.
:mod:`.protocols` adds the optional trainer and callback protocols.
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
from artifex.generative_models.training.callbacks.protocols import (
    CheckpointableTrainer,
    RunStatus,
    StatefulCallback,
    StopRequester,
    TrainerState,
)

__all__ = [
    "HOOK_NAMES",
    "BaseCallback",
    "CallbackList",
    "CheckpointableTrainer",
    "HookName",
    "Logs",
    "RunStatus",
    "StatefulCallback",
    "StopRequester",
    "TrainerLike",
    "TrainerState",
    "TrainingCallback",
]
