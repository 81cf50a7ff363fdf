"""The built documentation site, opened in a real headless browser (run by ``nox -s docs``).

``nox -s docs`` builds the site strictly into ``build/site`` first; these tests then load
its pages in Debian's Chromium (``apt-get install chromium``) and read the DOM after the
page's scripts ran. Without Chromium they are skipped, saying so: the strict build ran.

The site works offline: no built file refers to a resource on another host (checked on
the files, with or without Chromium), and Chromium, with every host name unresolvable,
records in its network log no request to one while it loads the pages.
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
    return _chromium(_page(relative).as_uri())


def _chromium(uri: str, *options: str) -> str:
    """The DOM of the page at ``uri`` after Chromium has loaded it and run its scripts."""
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
        *options,
        "--dump-dom",
        uri,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    assert "<body" in done.stdout, f"chromium printed no DOM for {uri}: {done.stderr[-2000:]}"
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


# A resource the page loads (not a link the reader may follow): script, stylesheet, icon,
# preconnect, image, frame, media source, CSS url() and @import.
_RESOURCE = re.compile(
    r"""<(?:script|img|iframe|source|audio|video|embed)\b[^>]*\ssrcs?e?t?=["']([^"']+)"""
    r"""|<link\b[^>]*\shref=["']([^"']+)"""
    r"""|url\(\s*["']?([^"')\s]+)"""
    r"""|@import\s+["']([^"']+)"""
)
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)


def _external_resources(text: str) -> set[str]:
    found = {next(group for group in match.groups() if group) for match in _RESOURCE.finditer(text)}
    return {url for url in found if _EXTERNAL.match(url)}


def test_the_detector_sees_external_resources() -> None:
    page = (
        '<link rel="preconnect" href="https://fonts.gstatic.com">'
        '<link rel="stylesheet" href="//cdn.example.org/x.css">'
        '<script src="https://example.org/x.js"></script><img alt="" src="assets/a.png">'
        '<a href="https://example.org/page">a link is not a request</a>'
        "<style>@font-face{src:url(https://example.org/f.woff2)}</style>"
    )
    assert _external_resources(page) == {
        "https://fonts.gstatic.com",
        "//cdn.example.org/x.css",
        "https://example.org/x.js",
        "https://example.org/f.woff2",
    }


def test_no_built_file_loads_anything_from_another_host() -> None:
    _page("index.html")
    offenders: dict[str, set[str]] = {}
    for path in sorted(SITE.rglob("*")):
        if path.suffix in {".html", ".css", ".js"}:
            found = _external_resources(path.read_text(encoding="utf-8", errors="replace"))
            if found:
                offenders[str(path.relative_to(SITE))] = found
    first = dict(list(offenders.items())[:3])
    assert not offenders, f"{len(offenders)} files load resources from other hosts: {first} ..."


def _page_requests(uri: str, log: Path) -> set[str]:
    """The URLs of other hosts that the page at ``uri`` asked for while Chromium loaded it.

    Read from Chromium's network log: a request the page made names the page's origin as
    its initiator (``file://``), while the browser's own background requests (its clock,
    accounts, updates) have ``"not an origin"``. Every host name is made unresolvable, so
    an attempt is logged at once and never waited on.
    """
    _chromium(uri, "--host-resolver-rules=MAP * ~NOTFOUND", f"--log-net-log={log}")
    text = log.read_text(encoding="utf-8")
    try:
        events = json.loads(text)["events"]
    except json.JSONDecodeError:  # a log cut short at exit lacks its closing brackets
        events = json.loads(text.rstrip().rstrip(",") + "]}")["events"]
    urls = set()
    for event in events:
        params = event.get("params", {})
        url, initiator = params.get("url", ""), params.get("initiator", "not an origin")
        if initiator != "not an origin" and re.match(r"(?:https?|wss?)://", url):
            urls.add(url)
    return urls


def test_the_network_log_shows_a_page_request_to_another_host(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        '<html><body><script src="https://cdn.example.org/x.js"></script></body></html>',
        encoding="utf-8",
    )
    assert _page_requests(page.as_uri(), tmp_path / "netlog.json") == {
        "https://cdn.example.org/x.js"
    }


def test_chromium_requests_nothing_from_another_host(tmp_path: Path) -> None:
    pages = ("index.html", "getting-started/index.html", API_PAGE)
    requested = {
        page: _page_requests(_page(page).as_uri(), tmp_path / f"netlog{index}.json")
        for index, page in enumerate(pages)
    }
    assert not any(requested.values()), f"the site requested other hosts: {requested}"
