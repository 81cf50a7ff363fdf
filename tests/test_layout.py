"""Layout rules of ``src/``: module and class sizes, and who may import what.

* No module over 500 lines, except the two the design makes one module: the callback
  core (``callbacks/base.py``, the specification's module) and the conformance grammar
  (``conformance/grammar.py``, one parser), each capped at 650.
* No class over 400 lines.
* Outside ``callbacks/``, nothing in the training package imports
  ``callbacks.model_checkpoint``: the trainer reaches checkpointing through its own
  modules, so the callback stays a thin layer over them.
* ``callbacks/base.py`` imports nothing from ``artifex``: the callback core stands alone.

Each rule is a function of a source root, tried here on small trees in ``tmp_path``
as well as on the real ``src/``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
TRAINING = "artifex/generative_models/training"
MAX_LINES = 500
LINE_CAPS: Mapping[str, int] = {
    f"{TRAINING}/callbacks/base.py": 650,  # the specification makes the core one module
    f"{TRAINING}/conformance/grammar.py": 650,  # one parser
}
MAX_CLASS_LINES = 400
CHECKPOINT_MODULE = "artifex.generative_models.training.callbacks.model_checkpoint"
CORE = f"{TRAINING}/callbacks/base.py"


# ------------------------------------------------------------------ the rules


def _sources(src: Path) -> Iterator[tuple[str, Path]]:
    """Every Python file under ``src``, as (path relative to ``src``, path)."""
    for path in sorted(src.rglob("*.py")):
        yield path.relative_to(src).as_posix(), path


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def oversized_modules(src: Path) -> list[str]:
    """The files over their line cap, each with its length and cap."""
    found = []
    for name, path in _sources(src):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        cap = LINE_CAPS.get(name, MAX_LINES)
        if lines > cap:
            found.append(f"{name}: {lines} lines, over the cap of {cap}")
    return found


def oversized_classes(src: Path) -> list[str]:
    """The classes (nested ones included) over ``MAX_CLASS_LINES``, each with its length."""
    found = []
    for name, path in _sources(src):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ClassDef):
                end = node.end_lineno if node.end_lineno is not None else node.lineno
                size = end - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    found.append(
                        f"{name}: class {node.name} (lines {node.lineno}-{end}) is {size} "
                        f"lines, over the cap of {MAX_CLASS_LINES}"
                    )
    return found


def _module_name(relative: str) -> tuple[str, ...]:
    parts = tuple(relative.removesuffix(".py").split("/"))
    return parts[:-1] if parts[-1] == "__init__" else parts


def imports(src: Path, relative: str) -> Iterator[tuple[int, str]]:
    """Every module a file imports, anywhere in it, as (line, absolute dotted name).

    Relative imports are resolved against the file's package. ``from P import a``
    yields ``P`` and ``P.a`` (``a`` may be a submodule). A string constant that is a
    dotted name starting with ``artifex.`` counts too: a lazy or ``importlib`` import.
    """
    package = _module_name(relative)
    if not relative.endswith("__init__.py"):
        package = package[:-1]
    for node in ast.walk(_tree(src / relative)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("artifex.")
            and node.value.replace(".", "").replace("_", "").isalnum()
        ):
            yield node.lineno, node.value


def checkpoint_importers(src: Path) -> list[str]:
    """The files of the training package, outside ``callbacks/``, importing the checkpoint."""
    found = []
    for name, _ in _sources(src):
        if not name.startswith(f"{TRAINING}/") or name.startswith(f"{TRAINING}/callbacks/"):
            continue
        lines: dict[int, str] = {}  # the first offending name of each line
        for line, module in imports(src, name):
            if module == CHECKPOINT_MODULE or module.startswith(f"{CHECKPOINT_MODULE}."):
                lines.setdefault(line, module)
        found += [f"{name}:{line} imports {module}" for line, module in sorted(lines.items())]
    return found


def core_imports_of_artifex(src: Path) -> list[str]:
    """What ``callbacks/base.py`` imports from ``artifex``, relative imports included."""
    if not (src / CORE).exists():
        return [f"{CORE} is missing"]
    return [
        f"{CORE}:{line} imports {module}"
        for line, module in imports(src, CORE)
        if module == "artifex" or module.startswith("artifex.")
    ]


# ------------------------------------------------------------ the real source tree


def test_no_module_over_its_line_cap() -> None:
    found = oversized_modules(SRC)
    assert not found, "modules over their line cap:\n" + "\n".join(found)


def test_line_cap_exceptions_name_existing_modules() -> None:
    missing = [name for name in LINE_CAPS if not (SRC / name).is_file()]
    assert not missing, f"line-cap exceptions for modules that do not exist: {missing}"


def test_no_class_over_400_lines() -> None:
    found = oversized_classes(SRC)
    assert not found, "classes over the cap:\n" + "\n".join(found)


def test_only_callbacks_import_the_checkpoint_callback() -> None:
    found = checkpoint_importers(SRC)
    assert not found, (
        f"outside callbacks/, modules of {TRAINING} import {CHECKPOINT_MODULE}:\n"
        + "\n".join(found)
    )


def test_callback_core_imports_nothing_from_artifex() -> None:
    found = core_imports_of_artifex(SRC)
    assert not found, "the callback core imports from artifex:\n" + "\n".join(found)


# ------------------------------------------------------- the rules on small trees


def _write(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _lines(count: int) -> str:
    return "".join(f"x{i} = {i}\n" for i in range(count))


def _class(name: str, size: int) -> str:
    return f"class {name}:\n" + "".join(f"    a{i} = {i}\n" for i in range(size - 1))


def test_line_caps_on_a_tree(tmp_path: Path) -> None:
    compliant = _write(
        tmp_path / "ok",
        {
            f"{TRAINING}/trainer.py": _lines(MAX_LINES),
            f"{TRAINING}/callbacks/base.py": _lines(650),
            f"{TRAINING}/conformance/grammar.py": _lines(650),
        },
    )
    assert oversized_modules(compliant) == []
    broken = _write(
        tmp_path / "bad",
        {
            f"{TRAINING}/trainer.py": _lines(MAX_LINES + 1),
            f"{TRAINING}/callbacks/base.py": _lines(651),
            f"{TRAINING}/other.py": _lines(650),  # the exception is for its module only
        },
    )
    assert oversized_modules(broken) == [
        f"{TRAINING}/callbacks/base.py: 651 lines, over the cap of 650",
        f"{TRAINING}/other.py: 650 lines, over the cap of 500",
        f"{TRAINING}/trainer.py: 501 lines, over the cap of 500",
    ]


def test_class_cap_on_a_tree(tmp_path: Path) -> None:
    compliant = _write(tmp_path / "ok", {"m.py": "import os\n" + _class("Fits", 400)})
    assert oversized_classes(compliant) == []
    nested = "class Outer:\n    " + _class("Inner", 401).replace("\n", "\n    ") + "pass\n"
    broken = _write(
        tmp_path / "bad",
        {"m.py": "\n@decorator\n" + _class("Big", 401), "n.py": nested},
    )
    assert oversized_classes(broken) == [
        "m.py: class Big (lines 3-403) is 401 lines, over the cap of 400",
        "n.py: class Outer (lines 1-403) is 403 lines, over the cap of 400",
        "n.py: class Inner (lines 2-402) is 401 lines, over the cap of 400",
    ]


def test_checkpoint_imports_on_a_tree(tmp_path: Path) -> None:
    allowed = {
        f"{TRAINING}/callbacks/__init__.py": "from .model_checkpoint import ModelCheckpoint\n",
        f"{TRAINING}/callbacks/model_checkpoint.py": "from .._checkpointing import Saver\n",
        f"{TRAINING}/trainer.py": (
            "from artifex.generative_models.training import callbacks\n"
            "from artifex.generative_models.training._checkpointing import Saver\n"
            "from .callbacks import ModelCheckpoint\n"
        ),
        f"{TRAINING}/_checkpointing/__init__.py": "from ..callbacks import base\n",
    }
    assert checkpoint_importers(_write(tmp_path / "ok", allowed)) == []
    forbidden = {
        f"{TRAINING}/a.py": f"import {CHECKPOINT_MODULE}\n",
        f"{TRAINING}/b.py": "from .callbacks.model_checkpoint import ModelCheckpoint\n",
        f"{TRAINING}/c.py": "def f():\n    from .callbacks import model_checkpoint\n",
        f"{TRAINING}/d/__init__.py": "from ..callbacks import model_checkpoint as mc\n",
        f"{TRAINING}/e.py": f"LAZY = {{'ModelCheckpoint': {CHECKPOINT_MODULE!r}}}\n",
        "artifex/elsewhere.py": f"import {CHECKPOINT_MODULE}\n",  # not in the package
    }
    assert checkpoint_importers(_write(tmp_path / "bad", forbidden)) == [
        f"{TRAINING}/a.py:1 imports {CHECKPOINT_MODULE}",
        f"{TRAINING}/b.py:1 imports {CHECKPOINT_MODULE}",
        f"{TRAINING}/c.py:2 imports {CHECKPOINT_MODULE}",
        f"{TRAINING}/d/__init__.py:1 imports {CHECKPOINT_MODULE}",
        f"{TRAINING}/e.py:1 imports {CHECKPOINT_MODULE}",
    ]


@pytest.mark.parametrize(
    ("source", "culprit"),
    [
        ("import artifex\n", "artifex"),
        ("from artifex.generative_models import training\n", "artifex.generative_models"),
        ("from . import protocols\n", "artifex.generative_models.training.callbacks"),
        ("def f():\n    from ._monitor import to_float\n", "training.callbacks._monitor"),
    ],
)
def test_core_imports_on_a_tree(tmp_path: Path, source: str, culprit: str) -> None:
    compliant = _write(tmp_path / "ok", {CORE: "import jax\nfrom flax import nnx\n"})
    assert core_imports_of_artifex(compliant) == []
    found = core_imports_of_artifex(_write(tmp_path / "bad", {CORE: source}))
    assert found
    assert all(entry.startswith(f"{CORE}:") for entry in found)
    assert any(culprit in entry for entry in found)
