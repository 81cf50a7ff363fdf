"""The built documentation site, opened in a real headless browser (run by ``nox -s docs``).

``nox -s docs`` builds the site strictly into ``build/site`` first; these tests then load
its pages in Debian's Chromium (``apt-get install chromium``) and read the DOM after the
page's scripts ran. Without Chromium they are skipped, saying so: the strict build ran.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("ARTIFEX_SITE_DIR", ROOT / "build" / "site"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
API_PAGE = "api/training.callbacks.base/index.html"
NAV_PAGES = ("The callback core", "The lifecycle contract", "Built-in callbacks", "API reference")


def _page(relative: str) -> Path:
    path = SITE / relative
    if not path.is_file():
        pytest.fail(f"{path} is missing: build the site first (`nox -s docs`)")
    return path


def _dom(relative: str) -> str:
    """The DOM of a built page after Chromium has loaded it and run its scripts."""
    if CHROMIUM is None:
        pytest.skip(
            "Chromium is not installed (Debian: apt-get install chromium): the browser "
            "check of the site is skipped; the strict build still ran"
        )
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--allow-file-access-from-files",
        "--virtual-time-budget=5000",
        "--dump-dom",
        _page(relative).as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    assert "<body" in done.stdout, f"chromium printed no DOM for {relative}: {done.stderr[-2000:]}"
    return done.stdout


def _images(dom: str, relative: str) -> dict[str, Path]:
    """Every ``<img>`` of the page: its ``src`` and the file it points to in the site."""
    base = (SITE / relative).parent
    return {src: (base / src).resolve() for src in re.findall(r'<img[^>]*\ssrc="([^"]+)"', dom)}


def _assert_navigation(dom: str, relative: str) -> None:
    assert 'class="md-nav' in dom, f"{relative} has no navigation"
    for title in NAV_PAGES:
        assert title in dom, f"the navigation of {relative} has no {title!r}"


def _assert_pictures(dom: str, relative: str, names: set[str]) -> None:
    images = _images(dom, relative)
    found = {path.name for path in images.values()}
    assert names <= found, f"{relative} shows {sorted(found)}, not all of {sorted(names)}"
    for src, path in images.items():
        if path.name in names:
            assert path.is_file(), f"{relative}: <img src={src!r}> points to no file"
            assert path.read_bytes().startswith(PNG_MAGIC), f"{path} is not a PNG"


def test_index_renders_with_navigation_and_the_demo_picture() -> None:
    dom = _dom("index.html")
    assert "<h1" in dom, "the index renders no heading"
    assert "artifex-nnx-callbacks" in dom
    _assert_navigation(dom, "index.html")
    _assert_pictures(dom, "index.html", {"samples.png"})


def test_getting_started_shows_both_demo_pictures() -> None:
    dom = _dom("getting-started/index.html")
    _assert_pictures(dom, "getting-started/index.html", {"samples.png", "loss_curves.png"})


def test_an_api_page_renders_its_objects_from_the_docstrings() -> None:
    dom = _dom(API_PAGE)
    _assert_navigation(dom, API_PAGE)
    prefix = "artifex.generative_models.training.callbacks.base"
    for name in ("BaseCallback", "CallbackList", "TrainerLike", "TrainingCallback"):
        assert f'id="{prefix}.{name}"' in dom, f"{API_PAGE} does not render {name}"
    assert "doc-signature" in dom or "doc-heading" in dom, f"{API_PAGE} renders no object"


def test_the_search_index_holds_every_page() -> None:
    index = json.loads(_page("search/search_index.json").read_text(encoding="utf-8"))
    locations = {doc["location"].split("#", 1)[0] for doc in index["docs"]}
    for page in ("", "core/", "api/training.callbacks.base/", "api/training.trainer/"):
        assert page in locations, f"the search index has no page {page!r}"
    assert any("BaseCallback" in doc["title"] for doc in index["docs"])
