"""Issue 30, point 9: one integer rule, everywhere.

Every integer field of every built-in config takes a NumPy integer and stores it as a
Python ``int`` (an ``np.int16`` stored as it was overflowed ``examples_per_second``), and
every saved checkpoint item holds Python scalars where a callback's state or the
metadata held NumPy ones (an ``np.int64`` failed the checkpoint's JSON save mid-run).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import optax
import pytest

import artifex.generative_models.training.callbacks as callbacks
from artifex.generative_models.training.callbacks import (
    BaseCallback,
    CheckpointConfig,
    ModelCheckpoint,
    restore_checkpoint,
)
from artifex.generative_models.training.trainer import Trainer
from tests.training._models import batches, mse, new_model

CONFIGS = sorted(name for name in callbacks.__all__ if name.endswith("Config"))


def _int_fields(cls: type[Any]) -> list[tuple[str, int]]:
    """The integer fields of a config, each with a valid value (its default, or 1)."""
    found: list[tuple[str, int]] = []
    for field in dataclasses.fields(cls):
        default: object = field.default
        if str(field.type) in ("int", "int | None"):
            found.append((field.name, default if isinstance(default, int) else 1))
    return found


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_stores_numpy_integers_as_int(name: str) -> None:
    cls = getattr(callbacks, name)
    for field, value in _int_fields(cls):
        built = cls(**{field: np.int16(value)})
        stored = getattr(built, field)
        assert type(stored) is int, f"{name}.{field} stored {type(stored).__name__}"
        assert stored == value


def test_the_configs_with_integers_are_all_covered() -> None:
    covered = {name for name in CONFIGS if _int_fields(getattr(callbacks, name))}
    assert {"ReduceLROnPlateauConfig", "ThroughputMonitorConfig", "MLflowConfig"} <= covered


class NumpyState(BaseCallback):
    """A stateful callback whose state holds NumPy scalars, as a user's may."""

    state_key = "numpy-state"

    def state_dict(self) -> dict[str, Any]:
        return {
            "patience": np.int64(3),
            "best": np.float32(0.5),
            "stopped": np.bool_(False),
            "history": [np.int16(1), (np.int32(2), np.uint8(3))],
        }

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        self.loaded = state


def test_saved_callback_states_hold_python_scalars(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    checkpoint = ModelCheckpoint(CheckpointConfig(dirpath=ck))
    trainer = Trainer(new_model(), optax.sgd(0.1), mse, callbacks=[NumpyState(), checkpoint])
    trainer.fit(batches(2), epochs=1)
    saved = restore_checkpoint(ck).extra["callbacks"]["numpy-state"]
    assert saved == {"patience": 3, "best": 0.5, "stopped": False, "history": [1, [2, 3]]}
    assert [type(v) for v in saved.values()] == [int, float, bool, list]
    assert [type(v) for v in saved["history"][1]] == [int, int]
