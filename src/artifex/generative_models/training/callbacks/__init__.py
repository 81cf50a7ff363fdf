"""Typed training callbacks for JAX / Flax NNX.

The core ([`.base`][]) defines the [`TrainerLike`][] and [`TrainingCallback`][]
protocols, the no-op [`BaseCallback`][] and the dispatching [`CallbackList`][].
[`.protocols`][] adds the optional trainer and callback protocols. The built-in
callbacks (early stopping, Orbax checkpoints, NaN guard, history, CSV, progress bar,
TensorBoard, lambdas, profilers) live in one module each.
"""

from artifex.generative_models.training.callbacks.base import (
    HOOK_NAMES,
    BaseCallback,
    CallbackList,
    HookName,
    Logs,
    ProcessScope,
    TrainerLike,
    TrainingCallback,
)
from artifex.generative_models.training.callbacks.csv_logger import CSVLogger, CSVLoggerConfig
from artifex.generative_models.training.callbacks.early_stopping import (
    EarlyStopping,
    EarlyStoppingConfig,
    MissingMetricWarning,
)
from artifex.generative_models.training.callbacks.history import History
from artifex.generative_models.training.callbacks.jax_profiler import (
    JAXProfiler,
    JAXProfilerConfig,
)
from artifex.generative_models.training.callbacks.lambda_callback import LambdaCallback
from artifex.generative_models.training.callbacks.memory_profiler import (
    MemoryProfiler,
    MemoryProfilerConfig,
    MemoryRecord,
)
from artifex.generative_models.training.callbacks.model_checkpoint import (
    CheckpointConfig,
    CheckpointOrderWarning,
    ModelCheckpoint,
    RestoredCheckpoint,
    restore_checkpoint,
)
from artifex.generative_models.training.callbacks.progress import ProgressBar, ProgressBarConfig
from artifex.generative_models.training.callbacks.protocols import (
    ArrayStatefulCallback,
    CheckpointableTrainer,
    RunStatus,
    StatefulCallback,
    StopRequester,
    TrainerState,
)
from artifex.generative_models.training.callbacks.tensorboard import (
    TensorBoardConfig,
    TensorBoardLogger,
)
from artifex.generative_models.training.callbacks.terminate_on_nan import TerminateOnNaN

__all__ = [
    "HOOK_NAMES",
    "ArrayStatefulCallback",
    "BaseCallback",
    "CSVLogger",
    "CSVLoggerConfig",
    "CallbackList",
    "CheckpointConfig",
    "CheckpointOrderWarning",
    "CheckpointableTrainer",
    "EarlyStopping",
    "EarlyStoppingConfig",
    "History",
    "HookName",
    "JAXProfiler",
    "JAXProfilerConfig",
    "LambdaCallback",
    "Logs",
    "ProcessScope",
    "MemoryProfiler",
    "MemoryProfilerConfig",
    "MemoryRecord",
    "MissingMetricWarning",
    "ModelCheckpoint",
    "ProgressBar",
    "ProgressBarConfig",
    "RestoredCheckpoint",
    "RunStatus",
    "StatefulCallback",
    "StopRequester",
    "TensorBoardConfig",
    "TensorBoardLogger",
    "TerminateOnNaN",
    "TrainerLike",
    "TrainerState",
    "TrainingCallback",
    "restore_checkpoint",
]
