from __future__ import annotations

from typing import Any

import pytest

from artifex.generative_models.training.callbacks import (
    CallbackList,
    LambdaCallback,
    TrainerLike,
    TrainingCallback,
)
from tests.training.callbacks._stubs import ModelOnlyTrainer, drive


def test_calls_the_given_functions_only() -> None:
    seen: list[tuple[str, object]] = []

    def epoch_end(trainer: TrainerLike, epoch: int, logs: dict[str, Any]) -> None:
        seen.append(("epoch_end", (epoch, logs["loss"])))

    cb = LambdaCallback(
        on_train_begin=lambda t: seen.append(("train_begin", None)),
        on_epoch_end=epoch_end,
        on_validation_end=lambda t, logs: seen.append(("val", logs["loss"])),
    )
    assert isinstance(cb, TrainingCallback)
    drive(ModelOnlyTrainer(), [cb], [[1.0, 3.0]], val_losses=[0.5])
    assert seen == [("train_begin", None), ("val", 0.5), ("epoch_end", (0, 2.0))]
    assert "on_epoch_end" in repr(cb)


def test_unused_hooks_are_skipped_by_callback_list() -> None:
    cb = LambdaCallback(on_epoch_end=lambda t, e, logs: None)
    cbs = CallbackList([cb])
    cbs._refresh()  # the tables are built lazily, at the first dispatch
    # the dispatch tables hold only what was given
    assert len(cbs._on_epoch_end[0]) == 1
    assert cbs._on_batch_end[0] == ()


def test_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="on_batch_end must be callable"):
        LambdaCallback(on_batch_end=3)  # type: ignore[arg-type]  # the point of the test  # ty: ignore[invalid-argument-type]
