"""The specification's "Usage" example, verbatim."""

from artifex.generative_models.training.callbacks import (
    TrainerLike,
    TrainingCallback,
    BaseCallback,
    CallbackList,
)

# Implement custom callback
class LoggingCallback(BaseCallback):
    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict):
        if batch % 100 == 0:
            print(f"Batch {batch}: {logs}")

# Use with trainer
callbacks = CallbackList([LoggingCallback()])
