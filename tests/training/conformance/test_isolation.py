"""The suite never imports the reference trainer, its plugin no JAX; a check writes nothing.

Each check runs in a fresh interpreter, so nothing imported by other tests interferes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


_CHECK = """
import sys
from artifex.generative_models.training.conformance import check_trainer
from examples.minimal_trainer import MinimalHarness
keep = sys.argv[1] == "keep"
report = check_trainer(
    MinimalHarness(), scenarios=["property"], keep_hypothesis_storage=keep
)
assert report.ok, report.format()
"""


@pytest.mark.parametrize("keep", [False, True], ids=["default", "keep_hypothesis_storage"])
def test_a_fresh_check_leaves_the_working_directory_unchanged(tmp_path: Path, keep: bool) -> None:
    """Hypothesis's constants cache goes to a temporary directory, unless asked to stay.

    The control run (``keep_hypothesis_storage=True``, as under the pytest plugin) shows
    the cache that would otherwise land in the working directory.
    """
    root = Path(__file__).resolve().parents[3]
    env = dict(os.environ, JAX_PLATFORMS="cpu", HYPOTHESIS_STORAGE_DIRECTORY="")
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(
        [sys.executable, "-c", _CHECK, "keep" if keep else "default"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    if keep:
        assert any(name.startswith(".hypothesis/constants/") for name in written), written
    else:
        assert written == []
