"""Typed training callbacks for JAX / Flax NNX.

The core ([`.base`][]) defines the [`TrainerLike`][] and [`TrainingCallback`][]
protocols, the no-op [`BaseCallback`][] and the dispatching [`CallbackList`][].
[`.protocols`][] adds the optional trainer and callback protocols. The built-in
callbacks (early stopping, Orbax checkpoints, NaN guard, history, CSV, progress bar,
TensorBoard, W&B, MLflow, lambdas, profilers, learning-rate control, throughput) live in
one module each.
"""

from artifex.generative_models.training.callbacks._order import LogOrderWarning
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
from artifex.generative_models.training.callbacks.learning_rate_monitor import (
    LearningRateMonitor,
    LearningRateMonitorConfig,
)
from artifex.generative_models.training.callbacks.memory_profiler import (
    MemoryProfiler,
    MemoryProfilerConfig,
    MemoryRecord,
)
from artifex.generative_models.training.callbacks.mlflow_logger import MLflowConfig, MLflowLogger
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
    ExampleCounter,
    HyperparameterTrainer,
    RunStatus,
    StatefulCallback,
    StopRequester,
    TrainerState,
)
from artifex.generative_models.training.callbacks.reduce_lr_on_plateau import (
    ReduceLROnPlateau,
    ReduceLROnPlateauConfig,
)
from artifex.generative_models.training.callbacks.tensorboard import (
    TensorBoardConfig,
    TensorBoardLogger,
)
from artifex.generative_models.training.callbacks.terminate_on_nan import TerminateOnNaN
from artifex.generative_models.training.callbacks.throughput import (
    ThroughputMonitor,
    ThroughputMonitorConfig,
)
from artifex.generative_models.training.callbacks.wandb_logger import (
    WandbConfig,
    WandbLogger,
    WandbMode,
)

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
    "ExampleCounter",
    "History",
    "HookName",
    "HyperparameterTrainer",
    "JAXProfiler",
    "JAXProfilerConfig",
    "LambdaCallback",
    "LearningRateMonitor",
    "LearningRateMonitorConfig",
    "LogOrderWarning",
    "Logs",
    "MLflowConfig",
    "MLflowLogger",
    "ProcessScope",
    "MemoryProfiler",
    "MemoryProfilerConfig",
    "MemoryRecord",
    "MissingMetricWarning",
    "ModelCheckpoint",
    "ProgressBar",
    "ProgressBarConfig",
    "ReduceLROnPlateau",
    "ReduceLROnPlateauConfig",
    "RestoredCheckpoint",
    "RunStatus",
    "StatefulCallback",
    "StopRequester",
    "TensorBoardConfig",
    "TensorBoardLogger",
    "TerminateOnNaN",
    "ThroughputMonitor",
    "ThroughputMonitorConfig",
    "TrainerLike",
    "TrainerState",
    "TrainingCallback",
    "WandbConfig",
    "WandbLogger",
    "WandbMode",
    "restore_checkpoint",
]
