"""Training utilities: callbacks, the reference [`Trainer`][] and an array batcher.

The trainer and the batcher are imported lazily (PEP 562), so that importing
``artifex.generative_models.training.callbacks`` never imports the trainer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from artifex.generative_models.training._lazy import lazy_exports

if TYPE_CHECKING:
    from artifex.generative_models.training.data import ArrayBatcher, StatefulData
    from artifex.generative_models.training.optimizer import GradientTransformationLike
    from artifex.generative_models.training.trainer import (
        DataAxis,
        DataSource,
        LossFn,
        LossOutput,
        RemoteStop,
        Trainer,
    )

__all__ = [
    "ArrayBatcher",
    "DataAxis",
    "DataSource",
    "GradientTransformationLike",
    "LossFn",
    "LossOutput",
    "RemoteStop",
    "StatefulData",
    "Trainer",
]

__getattr__: Callable[[str], object]
__dir__: Callable[[], list[str]]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ArrayBatcher": "data",
        "StatefulData": "data",
        "DataAxis": "trainer",
        "DataSource": "trainer",
        "GradientTransformationLike": "optimizer",
        "LossFn": "trainer",
        "LossOutput": "trainer",
        "RemoteStop": "trainer",
        "Trainer": "trainer",
    },
)
