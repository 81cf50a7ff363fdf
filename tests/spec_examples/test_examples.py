"""The specification's code examples run as written (and type-check: see mypy.ini)."""

from __future__ import annotations

import importlib
import sys

import pytest

from artifex.generative_models.training.callbacks import (
    CallbackList,
    TrainerLike,
    TrainingCallback,
)
from tests.typing.cases import AttributeTrainer


def _run(module: str) -> object:
    sys.modules.pop(module, None)
    return importlib.import_module(module)


def test_base_callback_example(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.spec_examples.example_base_callback import MyCallback

    callback: TrainingCallback = MyCallback()
    trainer: TrainerLike = AttributeTrainer()
    CallbackList([callback]).on_epoch_end(trainer, 3, {"loss": 0.25})
    callback.on_epoch_end(trainer, 4, {})
    assert capsys.readouterr().out.splitlines() == [
        "Epoch 3 completed with loss: 0.25",
        "Epoch 4 completed with loss: N/A",
    ]


def test_usage_example(capsys: pytest.CaptureFixture[str]) -> None:
    module = _run("tests.spec_examples.example_usage")
    callbacks = module.callbacks  # type: ignore[attr-defined]  # a module attribute made at run time  # ty: ignore[missing-attribute]
    assert isinstance(callbacks, CallbackList)
    trainer = AttributeTrainer()
    for batch in (0, 1, 99, 100, 250):
        callbacks.on_batch_end(trainer, batch, {"loss": batch})
    assert capsys.readouterr().out.splitlines() == [
        "Batch 0: {'loss': 0}",
        "Batch 100: {'loss': 100}",
    ]


def test_callback_list_example_with_core_callbacks(capsys: pytest.CaptureFixture[str]) -> None:
    _run("tests.spec_examples.example_callback_list_core")
    assert capsys.readouterr().out.splitlines() == ["Epoch 5 completed with loss: 0.5"] * 2
