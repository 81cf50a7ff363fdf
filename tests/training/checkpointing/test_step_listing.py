"""Which step directories are checkpoints: our listing is Orbax's, without its thread pool."""

from __future__ import annotations

import shutil
from pathlib import Path

from artifex.generative_models.training._checkpointing._step_dirs import (
    CompleteStepsOnly,
    complete_steps,
)
from artifex.generative_models.training.callbacks import list_checkpoints
from tests.training.checkpointing._dirs import run_a


def test_a_step_name_with_a_leading_zero_is_no_step(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints"
    run_a(path)  # steps 2, 4 and 6
    shutil.copytree(path / "6", path / "006")  # a complete checkpoint, named as Orbax never does
    orbax_steps = sorted(found.step for found in CompleteStepsOnly().find_all(path))
    assert orbax_steps == [2, 4, 6]
    assert complete_steps(path) == orbax_steps
    assert [info.step for info in list_checkpoints(path)] == orbax_steps
