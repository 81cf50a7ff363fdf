"""The README's public-API table is kept in step with every module's ``__all__``."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import artifex

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_table() -> dict[str, set[str]]:
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- public-api:start -->")[1].split("<!-- public-api:end -->")[0]
    table: dict[str, set[str]] = {}
    for line in block.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`artifex"):
            table[cells[0].strip("`")] = set(re.findall(r"`([^`]+)`", cells[1]))
    return table


def _public_modules() -> list[ModuleType]:
    modules = []
    for info in pkgutil.walk_packages(artifex.__path__, "artifex."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def test_readme_lists_every_public_module_with_its_all() -> None:
    table = _readme_table()
    assert table, "the README's public-API table is empty or unparsable"
    for module in _public_modules():
        if not hasattr(module, "__all__") or hasattr(module, "__path__"):
            continue  # packages only re-export; checked below
        assert module.__name__ in table, f"{module.__name__} is missing from the README table"
        assert set(module.__all__) == table[module.__name__], module.__name__


def test_readme_lists_no_stale_module() -> None:
    for name, names in _readme_table().items():
        module = importlib.import_module(name)
        assert set(module.__all__) == names, name


def test_packages_reexport_only_documented_names() -> None:
    documented = set().union(*_readme_table().values())
    for module in _public_modules():
        if hasattr(module, "__path__") and hasattr(module, "__all__"):
            assert set(module.__all__) <= documented, module.__name__
            for name in module.__all__:
                assert hasattr(module, name), f"{module.__name__}.{name}"
