"""Layout rules of ``src/``: class and function sizes, and who may import what.

A module holds one job whatever its length: a long module is a question for review, not
a failure, so no rule counts a module's lines.

* No class over 400 lines.
* No function over 80 lines of its own: its docstring and the bodies of the functions
  and classes nested in it are not counted (each nested one is measured on its own).
* No import cycle between modules: the imports a module runs (at its top level or in a
  function; not those under ``TYPE_CHECKING``), with importing ``a.b.c`` running the
  packages ``a`` and ``a.b`` first, form no cycle. An import inside a function is then
  only ever a deferral of its cost, never the way out of a cycle.
* No import cycle between the training package's subpackages either (``callbacks``,
  ``_checkpointing``, ``conformance``, ...: each a node, its modules' imports its
  edges; a module directly in ``training/`` is a node of its own): dependencies between
  packages point one way.
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
MAX_CLASS_LINES = 400
MAX_FUNCTION_LINES = 80
CHECKPOINT_MODULE = "artifex.generative_models.training.callbacks.model_checkpoint"
CORE = f"{TRAINING}/callbacks/base.py"


# ------------------------------------------------------------------ the rules


def _sources(src: Path) -> Iterator[tuple[str, Path]]:
    """Every Python file under ``src``, as (path relative to ``src``, path)."""
    for path in sorted(src.rglob("*.py")):
        yield path.relative_to(src).as_posix(), path


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


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


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _nested_definitions(
    node: ast.AST,
) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]:
    """The functions and classes defined in ``node``'s body, not those inside them."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _DEFINITIONS):
            yield child
        else:
            yield from _nested_definitions(child)


def _own_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """A function's lines, less its docstring and its nested definitions (decorators included)."""
    size = (function.end_lineno or function.lineno) - function.lineno + 1
    first = function.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        size -= (first.end_lineno or first.lineno) - first.lineno + 1
    for inner in _nested_definitions(function):
        start = min([inner.lineno, *(d.lineno for d in inner.decorator_list)])
        size -= (inner.end_lineno or inner.lineno) - start + 1
    return size


def oversized_functions(src: Path) -> list[str]:
    """The functions (methods and nested ones included) over ``MAX_FUNCTION_LINES`` of their own."""
    found = []
    for name, path in _sources(src):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = _own_lines(node)
                if size > MAX_FUNCTION_LINES:
                    found.append(
                        f"{name}: function {node.name} (line {node.lineno}) has {size} lines "
                        f"of its own, over the cap of {MAX_FUNCTION_LINES}"
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


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _run_imports(node: ast.AST, package: tuple[str, ...]) -> Iterator[str]:
    """The modules that the statements under ``node`` import when run (``TYPE_CHECKING`` off)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for statement in child.orelse:
                yield from _run_imports(statement, package)
        elif isinstance(child, ast.Import):
            yield from (alias.name for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            base = package[: len(package) - child.level + 1] if child.level else ()
            module = ".".join([*base, *([child.module] if child.module else [])])
            yield module
            yield from (f"{module}.{alias.name}" for alias in child.names)
        else:
            yield from _run_imports(child, package)


def import_graph(src: Path) -> dict[str, set[str]]:
    """Each module under ``src`` mapped to the modules of ``src`` that importing it runs.

    Imports in functions count, as if at the top level; those under ``TYPE_CHECKING`` do
    not. Importing ``a.b.c`` runs the packages ``a`` and ``a.b`` too, except the
    importing module's own packages, which Python imports before it.
    """
    names = {".".join(_module_name(relative)): relative for relative, _ in _sources(src)}
    graph: dict[str, set[str]] = {}
    for name, relative in names.items():
        package = _module_name(relative)
        if not relative.endswith("__init__.py"):
            package = package[:-1]
        own_packages = {".".join(package[: i + 1]) for i in range(len(package))}
        edges: set[str] = set()
        for module in _run_imports(_tree(src / relative), package):
            parts = module.split(".")
            prefixes = {".".join(parts[: i + 1]) for i in range(len(parts) - 1)}
            # The module's own packages are already being imported (Python imports them
            # first), so reaching them on the way to a sibling runs nothing new.
            edges.update(prefixes - own_packages)
            edges.add(module)
        graph[name] = {module for module in edges if module in names and module != name}
    return graph


def import_cycles(src: Path) -> list[str]:
    """The import cycles between the modules under ``src``, each as ``a -> b -> a``."""
    return _cycles(import_graph(src))


def _package(module: str) -> str:
    """The node of ``module`` in the package graph: its subpackage of the training package."""
    prefix = TRAINING.replace("/", ".") + "."
    parts = module.removeprefix(prefix).split(".")
    return prefix + parts[0] if module.startswith(prefix) and len(parts) > 1 else module


def package_graph(src: Path) -> dict[str, set[str]]:
    """``import_graph`` with the modules of each subpackage of the training package as one node."""
    graph: dict[str, set[str]] = {}
    for module, targets in import_graph(src).items():
        node = _package(module)
        graph.setdefault(node, set()).update(_package(target) for target in targets)
    return {node: targets - {node} for node, targets in graph.items()}


def package_cycles(src: Path) -> list[str]:
    """The import cycles between the training package's subpackages (and its other modules)."""
    return _cycles(package_graph(src))


def _cycles(graph: Mapping[str, set[str]]) -> list[str]:
    """The cycles of ``graph``, each as ``a -> b -> a``."""
    found: list[str] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            found.append(" -> ".join(cycle))
            return
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    return found


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


def test_no_function_over_80_lines() -> None:
    found = oversized_functions(SRC)
    assert not found, "functions over the cap:\n" + "\n".join(found)


def test_no_import_cycle() -> None:
    found = import_cycles(SRC)
    assert not found, "import cycles:\n" + "\n".join(found)


def test_no_package_cycle() -> None:
    found = package_cycles(SRC)
    assert not found, "import cycles between packages:\n" + "\n".join(found)


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


def _function(name: str, body: int, *, docstring: int = 0) -> str:
    doc = '    """\n' + "    text\n" * (docstring - 2) + '    """\n' if docstring else ""
    return f"def {name}():\n" + doc + "".join(f"    a{i} = {i}\n" for i in range(body))


def test_function_cap_on_a_tree(tmp_path: Path) -> None:
    nested = (
        "def outer():\n    x = 1\n"
        + "    "
        + _function("inner", 79).replace("\n", "\n    ").rstrip()
        + "\n"
        + "".join(f"    b{i} = {i}\n" for i in range(77))
    )
    compliant = _write(
        tmp_path / "ok",
        {"m.py": _function("fits", 79, docstring=30), "n.py": nested},
    )
    assert oversized_functions(compliant) == []
    method = "class C:\n    " + _function("method", 80).replace("\n", "\n    ").rstrip() + "\n"
    broken = _write(tmp_path / "bad", {"m.py": _function("long", 80), "n.py": method})
    assert oversized_functions(broken) == [
        "m.py: function long (line 1) has 81 lines of its own, over the cap of 80",
        "n.py: function method (line 2) has 81 lines of its own, over the cap of 80",
    ]


def test_import_cycles_on_a_tree(tmp_path: Path) -> None:
    acyclic = _write(
        tmp_path / "ok",
        {
            "p/__init__.py": "from p.a import x\n",  # p.a reaches p.b through p: no cycle
            "p/a.py": "import p.b\n",
            "p/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import p.a\n",
            "q/__init__.py": "",
            "q/c.py": "from p.a import x\ndef f():\n    from . import d\n",
            "q/d.py": "import p\n",
        },
    )
    assert import_cycles(acyclic) == []
    cyclic = _write(
        tmp_path / "bad",
        {
            "p/__init__.py": "from p.a import x\n",  # an eager package
            "p/a.py": "import q.c\n",
            "q/__init__.py": "",
            "q/c.py": "def f():\n    from p import b\n",  # deferred, still a cycle
            "p/b.py": "",
        },
    )
    assert import_cycles(cyclic) == ["p -> p.a -> q.c -> p"]


def test_package_cycles_on_a_tree(tmp_path: Path) -> None:
    files = {
        f"{TRAINING}/__init__.py": "",
        f"{TRAINING}/_checks.py": "",
        f"{TRAINING}/a/__init__.py": "",
        f"{TRAINING}/a/x.py": "from artifex.generative_models.training.b import y\n",
        f"{TRAINING}/b/__init__.py": "",
        f"{TRAINING}/b/y.py": "from artifex.generative_models.training import _checks\n",
        f"{TRAINING}/b/z.py": "import artifex.generative_models.training.a.x\n",
    }
    acyclic = _write(tmp_path / "ok", {**files, f"{TRAINING}/b/z.py": ""})
    assert import_cycles(acyclic) == package_cycles(acyclic) == []
    # b.z imports a.x, which imports b.y: no cycle of modules, one of packages
    cyclic = _write(tmp_path / "bad", files)
    assert import_cycles(cyclic) == []
    training = TRAINING.replace("/", ".")
    assert package_cycles(cyclic) == [f"{training}.a -> {training}.b -> {training}.a"]


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
