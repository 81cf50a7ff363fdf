"""Typed training callbacks for JAX / Flax NNX.

The core ([`.base`][]) defines the [`TrainerLike`][] and [`TrainingCallback`][]
protocols, the no-op [`BaseCallback`][] and the dispatching [`CallbackList`][].
[`.protocols`][] adds the optional trainer and callback protocols. The built-in
callbacks (early stopping, Orbax checkpoints, NaN guard, history, CSV, progress bar,
TensorBoard, W&B, MLflow, lambdas, profilers, learning-rate control, throughput) live in
one module each.

Every name is imported lazily (PEP 562), from its module on first use: importing this
package imports none of its modules, so the checkpoint package can import
``callbacks.base`` with no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from artifex.generative_models.training._lazy import lazy_exports

if TYPE_CHECKING:
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
    from artifex.generative_models.training.callbacks.mlflow_logger import (
        MLflowConfig,
        MLflowLogger,
    )
    from artifex.generative_models.training.callbacks.model_checkpoint import (
        CheckpointConfig,
        CheckpointInfo,
        CheckpointOrderWarning,
        ModelCheckpoint,
        RestoredCheckpoint,
        list_checkpoints,
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
        TrainingPlan,
    )
    from artifex.generative_models.training.callbacks.reduce_lr_on_plateau import (
        ReduceLROnPlateau,
        ReduceLROnPlateauConfig,
    )
    from artifex.generative_models.training.callbacks.tensorboard import (
        TensorBoardConfig,
        TensorBoardLogger,
    )
    from artifex.generative_models.training.callbacks.terminate_on_nan import (
        TerminateOnNaN,
        TerminateOnNaNConfig,
    )
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
    "CheckpointInfo",
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
    "TerminateOnNaNConfig",
    "ThroughputMonitor",
    "ThroughputMonitorConfig",
    "TrainerLike",
    "TrainerState",
    "TrainingPlan",
    "TrainingCallback",
    "WandbConfig",
    "WandbLogger",
    "WandbMode",
    "list_checkpoints",
    "restore_checkpoint",
]

__getattr__: Callable[[str], object]
__dir__: Callable[[], list[str]]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LogOrderWarning": "_order",
        "HOOK_NAMES": "base",
        "BaseCallback": "base",
        "CallbackList": "base",
        "HookName": "base",
        "Logs": "base",
        "ProcessScope": "base",
        "TrainerLike": "base",
        "TrainingCallback": "base",
        "CSVLogger": "csv_logger",
        "CSVLoggerConfig": "csv_logger",
        "EarlyStopping": "early_stopping",
        "EarlyStoppingConfig": "early_stopping",
        "MissingMetricWarning": "early_stopping",
        "History": "history",
        "JAXProfiler": "jax_profiler",
        "JAXProfilerConfig": "jax_profiler",
        "LambdaCallback": "lambda_callback",
        "LearningRateMonitor": "learning_rate_monitor",
        "LearningRateMonitorConfig": "learning_rate_monitor",
        "MemoryProfiler": "memory_profiler",
        "MemoryProfilerConfig": "memory_profiler",
        "MemoryRecord": "memory_profiler",
        "MLflowConfig": "mlflow_logger",
        "MLflowLogger": "mlflow_logger",
        "CheckpointConfig": "model_checkpoint",
        "CheckpointInfo": "model_checkpoint",
        "CheckpointOrderWarning": "model_checkpoint",
        "ModelCheckpoint": "model_checkpoint",
        "RestoredCheckpoint": "model_checkpoint",
        "list_checkpoints": "model_checkpoint",
        "restore_checkpoint": "model_checkpoint",
        "ProgressBar": "progress",
        "ProgressBarConfig": "progress",
        "ArrayStatefulCallback": "protocols",
        "CheckpointableTrainer": "protocols",
        "ExampleCounter": "protocols",
        "HyperparameterTrainer": "protocols",
        "RunStatus": "protocols",
        "StatefulCallback": "protocols",
        "StopRequester": "protocols",
        "TrainerState": "protocols",
        "TrainingPlan": "protocols",
        "ReduceLROnPlateau": "reduce_lr_on_plateau",
        "ReduceLROnPlateauConfig": "reduce_lr_on_plateau",
        "TensorBoardConfig": "tensorboard",
        "TensorBoardLogger": "tensorboard",
        "TerminateOnNaN": "terminate_on_nan",
        "TerminateOnNaNConfig": "terminate_on_nan",
        "ThroughputMonitor": "throughput",
        "ThroughputMonitorConfig": "throughput",
        "WandbConfig": "wandb_logger",
        "WandbLogger": "wandb_logger",
        "WandbMode": "wandb_logger",
    },
)
