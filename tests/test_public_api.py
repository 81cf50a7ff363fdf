"""The API reference pages (``docs/api/``) are kept in step with every module's ``__all__``.

Each page renders one module with mkdocstrings (``::: module``) and lists the members it
shows under ``members:``; that list must be exactly the module's ``__all__``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import artifex

API_DOCS = Path(__file__).resolve().parents[1] / "docs" / "api"
DIRECTIVE = re.compile(r"^::: (\S+)\n((?:[ ]{4}.*\n?)*)", re.MULTILINE)
MEMBER = re.compile(r"^[ ]{8}- (\S+)$", re.MULTILINE)


def _api_pages() -> dict[str, set[str]]:
    """``{module: the members its API page lists}`` over every page of ``docs/api/``."""
    pages: dict[str, set[str]] = {}
    for page in sorted(API_DOCS.glob("*.md")):
        for module, options in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            assert module not in pages, f"{module} has two API pages"
            assert "members:" in options, f"{page.name} lists no members of {module}"
            pages[module] = set(MEMBER.findall(options.split("members:", 1)[1]))
    return pages


def _public_modules() -> list[ModuleType]:
    modules = []
    for info in pkgutil.walk_packages(artifex.__path__, "artifex."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def test_the_api_pages_are_found() -> None:
    pages = _api_pages()
    assert len(pages) >= 20, f"only {sorted(pages)} have API pages: is docs/api/ parsed?"
    assert all(pages.values()), "an API page lists no member"


def test_every_public_module_has_a_page_listing_its_all() -> None:
    pages = _api_pages()
    for module in _public_modules():
        if not hasattr(module, "__all__") or hasattr(module, "__path__"):
            continue  # packages only re-export; checked below
        assert module.__name__ in pages, f"{module.__name__} has no page in docs/api/"
        assert set(module.__all__) == pages[module.__name__], module.__name__


def test_no_api_page_is_stale() -> None:
    for name, members in _api_pages().items():
        module = importlib.import_module(name)
        assert set(module.__all__) == members, name


def test_packages_reexport_only_documented_names() -> None:
    documented = set().union(*_api_pages().values())
    for module in _public_modules():
        if hasattr(module, "__path__") and hasattr(module, "__all__"):
            assert set(module.__all__) <= documented, module.__name__
            for name in module.__all__:
                assert hasattr(module, name), f"{module.__name__}.{name}"
