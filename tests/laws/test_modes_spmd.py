"""Dropout and batch norm data-parallel on 8 devices: the single-device maths, both modes.

The batch-norm statistics are over the global batch (XLA computes them across the
devices), dropout masks do not depend on the sharding, and validation and
``evaluate`` run the evaluation graph on the mesh; all within float tolerance of the
single-device run (the reductions run in another order).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests._distributed import run_job
from tests.laws._modes_script import train


def close(actual: Any, expected: Any) -> None:
    np.testing.assert_allclose(actual, expected, rtol=5e-5, atol=5e-6)


@pytest.mark.parametrize("chunk", [1, 4])
def test_modes_on_an_8_device_mesh_match_one_device(tmp_path: Path, chunk: int) -> None:
    run_job(
        "tests.laws._modes_script",
        str(tmp_path),
        "--mesh",
        "--steps-per-execution",
        str(chunk),
        processes=1,
        devices=8,
    )
    result = json.loads((tmp_path / "process-0.json").read_text())
    reference = train(steps_per_execution=chunk)
    close(result["losses"], reference["losses"])
    for logs, expected in zip(result["history"], reference["history"], strict=True):
        assert logs.keys() == expected.keys() == {"loss", "val_loss"}
        close([logs[key] for key in expected], list(expected.values()))
    close(result["evaluate"]["loss"], reference["evaluate"]["loss"])
    close(result["evaluate"]["loss"], result["by_hand"])  # eval mode on the mesh too
    for leaf, expected_leaf in zip(result["params"], reference["params"], strict=True):
        close(leaf, expected_leaf)
    for leaf, expected_leaf in zip(result["batch_stats"], reference["batch_stats"], strict=True):
        close(leaf, expected_leaf)
