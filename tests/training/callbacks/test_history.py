from __future__ import annotations

import math

from artifex.generative_models.training.callbacks import History, StatefulCallback
from tests.training.callbacks._stubs import ModelOnlyTrainer, drive


def test_records_epoch_logs_aligned_with_epochs() -> None:
    history = History()
    assert isinstance(history, StatefulCallback)
    trainer = ModelOnlyTrainer()
    history.on_epoch_end(trainer, 0, {"loss": 1.0})
    history.on_epoch_end(trainer, 1, {"loss": 0.5, "val_loss": 0.7, "note": "text"})
    history.on_epoch_end(trainer, 2, {"val_loss": 0.6})
    assert history.epochs == [0, 1, 2]
    assert set(history.history) == {"loss", "val_loss"}
    loss, val = history.history["loss"], history.history["val_loss"]
    assert loss[:2] == [1.0, 0.5]
    assert math.isnan(loss[2])
    assert math.isnan(val[0])
    assert val[1:] == [0.7, 0.6]


def test_accumulates_across_fits_and_round_trips() -> None:
    history = History()
    drive(ModelOnlyTrainer(), [history], [[1.0, 3.0], [2.0]])
    drive(ModelOnlyTrainer(), [history], [[4.0]], start_epoch=2, start_step=3)
    assert history.epochs == [0, 1, 2]
    assert history.history == {"loss": [2.0, 2.0, 4.0]}
    other = History()
    other.load_state_dict(history.state_dict())
    assert (other.epochs, other.history) == (history.epochs, history.history)
    assert other.state_key == "History"
    history.clear()
    assert (history.epochs, history.history) == ([], {})
    assert other.epochs == [0, 1, 2]  # state_dict copies
