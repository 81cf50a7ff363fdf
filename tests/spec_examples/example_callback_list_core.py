"""The specification's ``CallbackList`` call, with core callbacks and a supplied trainer.

``example_callback_list.py`` runs the example with the built-in callbacks it names.
"""

from artifex.generative_models.training.callbacks import CallbackList
from tests.spec_examples.example_base_callback import MyCallback
from tests.typing.cases import AttributeTrainer

trainer = AttributeTrainer()  # supplied: the example assumes a trainer

callbacks = CallbackList([
    MyCallback(),
    MyCallback(),
])

# All callbacks receive events
callbacks.on_epoch_end(trainer, epoch=5, metrics={"loss": 0.5})
