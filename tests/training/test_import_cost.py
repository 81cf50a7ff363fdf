"""Pay only for what you use at import: the trainer and the plain callbacks load no Orbax.

Each check runs in a fresh interpreter (nothing imported by other tests interferes)
and reads its ``sys.modules``. Orbax, the progress bar's ``rich.progress`` and the
trackers (W&B, MLflow, TensorBoard) are imported when the callback or function that
needs them is built or called; grain never is (the trainer recognises grain data
only where the user has imported grain). Flax itself imports part of rich (``flax.nnx`` loads
``rich.console`` and ``rich.table`` for its summaries), so the rich check is relative:
our import adds no rich module to those that ``flax.nnx`` alone loads. Every other module
under ``callbacks/`` (what ``from ...callbacks import CSVLogger, History, ...`` imports) loads
no Orbax either: only ``ModelCheckpoint``'s own modules do.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_HEAVY = ("orbax", "rich", "wandb", "mlflow", "tensorboard", "tensorboardX", "grain")


def _loaded_after(statement: str) -> dict[str, list[str]]:
    """The heavy modules in ``sys.modules`` of a fresh interpreter after ``statement``."""
    code = (
        "import json, sys\n"
        f"{statement}\n"
        f"heavy = {_HEAVY!r}\n"
        "print(json.dumps({root: sorted(m for m in sys.modules "
        "if m == root or m.startswith(root + '.')) for root in heavy}))\n"
    )
    return _fresh_json(code)


def _fresh_json(code: str) -> dict[str, list[str]]:
    """Run ``code`` in a fresh interpreter; what it printed, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    printed: dict[str, list[str]] = json.loads(done.stdout)
    return printed


@pytest.mark.parametrize(
    "statement",
    [
        "from artifex.generative_models.training import Trainer",
        "from artifex.generative_models.training.callbacks import EarlyStopping",
    ],
)
def test_the_trainer_and_plain_callbacks_import_no_orbax_rich_or_trackers(statement: str) -> None:
    flax_alone = _loaded_after("import flax.nnx")
    loaded = _loaded_after(statement)
    assert loaded["orbax"] == []
    assert loaded["rich"] == flax_alone["rich"]  # only what flax.nnx itself loads
    assert "rich.progress" not in loaded["rich"]
    for tracker in ("wandb", "mlflow", "tensorboard", "tensorboardX", "grain"):
        assert loaded[tracker] == [], tracker


def _added_by_each_callback_module() -> dict[str, list[str]]:
    """Per module under ``callbacks/`` but the checkpoint's own, the heavy modules it adds.

    One fresh interpreter imports ``flax.nnx`` (what it loads is not counted), then each
    module in turn, sorted, and records what each import added to ``sys.modules``.
    """
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import flax.nnx\n"
        "import artifex.generative_models.training.callbacks as package\n"
        f"heavy = {_HEAVY!r}\n"
        "def loaded():\n"
        "    return {m for m in sys.modules if any(m == r or m.startswith(r + '.') "
        "for r in heavy)}\n"
        "added = {}\n"
        "for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):\n"
        "    if info.name == 'model_checkpoint' or info.name.startswith('_checkpoint'):\n"
        "        continue\n"
        "    before = loaded()\n"
        "    importlib.import_module(f'{package.__name__}.{info.name}')\n"
        "    added[info.name] = sorted(loaded() - before)\n"
        "print(json.dumps(added))\n"
    )
    return _fresh_json(code)


def test_no_callback_module_but_the_checkpoints_imports_orbax_or_trackers() -> None:
    added = _added_by_each_callback_module()
    assert {"base", "csv_logger", "early_stopping", "history", "progress"} <= set(added)
    assert {"wandb_logger", "mlflow_logger", "tensorboard"} <= set(added)
    for module, heavy in added.items():
        # Only the progress bar adds rich modules, beyond those flax.nnx loads.
        allowed = ("rich",) if module == "progress" else ()
        assert [m for m in heavy if not m.startswith(allowed)] == [], module
    assert "rich.progress" in added["progress"]  # the control: the check sees imports


def test_what_needs_orbax_and_rich_still_loads_them() -> None:
    # The control: the check above can fail, since these imports do load them.
    loaded = _loaded_after(
        "from artifex.generative_models.training.callbacks import ModelCheckpoint, ProgressBar"
    )
    assert "orbax.checkpoint" in loaded["orbax"]
    assert "rich.progress" in loaded["rich"]
