"""The packages' PEP 562 loader (``training/_lazy.py``), as both ``__init__`` use it.

Each import check runs in a fresh interpreter, so nothing imported by other tests
interferes.
"""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from artifex.generative_models import training
from artifex.generative_models.training import conformance
from artifex.generative_models.training._lazy import lazy_exports


def _fresh(code: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("package", [training, conformance])
def test_dir_lists_every_public_name(package: types.ModuleType) -> None:
    listed = dir(package)
    assert set(package.__all__) <= set(listed)
    assert listed == sorted(set(listed))


@pytest.mark.parametrize("package", [training, conformance])
def test_an_unknown_name_is_an_attribute_error(package: types.ModuleType) -> None:
    with pytest.raises(AttributeError, match=rf"module '{package.__name__}' has no attribute"):
        getattr(package, "warp_drive")  # noqa: B009 - the name must not be a literal attribute


def test_a_loaded_name_is_cached_in_the_package() -> None:
    value = conformance.check_trainer
    assert vars(conformance)["check_trainer"] is value
    from artifex.generative_models.training.conformance.scenarios import check_trainer

    assert value is check_trainer


def test_lazy_exports_loads_from_the_named_submodule() -> None:
    getattr_, dir_ = lazy_exports(conformance.__name__, {"SCENARIOS": "_scenario_table"})
    from artifex.generative_models.training.conformance._scenario_table import SCENARIOS

    assert getattr_("SCENARIOS") is SCENARIOS
    assert "SCENARIOS" in dir_()
    with pytest.raises(AttributeError):
        getattr_("check_trainer")


def test_the_helper_imports_no_jax() -> None:
    _fresh(
        "import sys, artifex.generative_models.training._lazy; "
        "assert 'jax' not in sys.modules, 'jax imported'"
    )


def test_the_callbacks_never_import_the_trainer() -> None:
    _fresh(
        "import sys, artifex.generative_models.training.callbacks; "
        "assert 'artifex.generative_models.training.trainer' not in sys.modules"
    )


def test_the_trainer_loads_on_first_use() -> None:
    _fresh(
        "import sys, artifex.generative_models.training as t; "
        "assert 'artifex.generative_models.training.trainer' not in sys.modules; "
        "from artifex.generative_models.training.trainer import Trainer; "
        "assert t.Trainer is Trainer and vars(t)['Trainer'] is Trainer"
    )
