"""The suite's package never imports the reference trainer; its pytest plugin no JAX.

Each check runs in a fresh interpreter, so nothing imported by other tests interferes.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "artifex.generative_models.training.conformance.scenarios",
        "artifex.generative_models.training.conformance.__main__",
    ],
)
def test_the_suite_never_imports_the_reference_trainer(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "assert 'artifex.generative_models.training.trainer' not in sys.modules"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_pytest_plugin_imports_no_jax() -> None:
    code = (
        "import sys, artifex.generative_models.training.conformance.pytest_plugin; "
        "assert 'jax' not in sys.modules, 'jax imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
