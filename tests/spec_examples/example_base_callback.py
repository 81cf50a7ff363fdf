"""The specification's ``BaseCallback`` example, verbatim."""

from artifex.generative_models.training.callbacks import BaseCallback

class MyCallback(BaseCallback):
    def on_epoch_end(self, trainer, epoch, metrics):
        print(f"Epoch {epoch} completed with loss: {metrics.get('loss', 'N/A')}")
