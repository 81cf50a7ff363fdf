"""The specification's ``CallbackList`` example, with the built-in callbacks it names.

Copied as written; added: the imports of the two config classes, which the
specification's snippet uses without importing, and a ``trainer`` (the snippet
assumes one). Importing this module runs it.
"""

from artifex.generative_models.training.callbacks import (
    CallbackList,
    EarlyStopping,
    ModelCheckpoint,
)
from artifex.generative_models.training.callbacks.early_stopping import EarlyStoppingConfig
from artifex.generative_models.training.callbacks.model_checkpoint import CheckpointConfig
from tests.training.callbacks._stubs import ModelOnlyTrainer

trainer = ModelOnlyTrainer()  # supplied: the example assumes a trainer

callbacks = CallbackList([
    EarlyStopping(EarlyStoppingConfig(patience=10)),
    ModelCheckpoint(CheckpointConfig(dirpath="./checkpoints")),
])

# All callbacks receive events
callbacks.on_epoch_end(trainer, epoch=5, metrics={"loss": 0.5})
