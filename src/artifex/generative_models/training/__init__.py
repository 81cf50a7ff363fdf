"""Training utilities: callbacks, the reference :class:`Trainer` and an array batcher.

The trainer and the batcher are imported lazily (PEP 562), so that importing
``artifex.generative_models.training.callbacks`` never imports the trainer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from artifex.generative_models.training.data import ArrayBatcher, StatefulData
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
    "LossFn",
    "LossOutput",
    "RemoteStop",
    "StatefulData",
    "Trainer",
]

_LAZY = {
    "ArrayBatcher": "data",
    "StatefulData": "data",
    "DataAxis": "trainer",
    "DataSource": "trainer",
    "LossFn": "trainer",
    "LossOutput": "trainer",
    "RemoteStop": "trainer",
    "Trainer": "trainer",
}


def __getattr__(name: str) -> Any:
    """Import the trainer or batcher module on first use of one of its names."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
