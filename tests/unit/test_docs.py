"""The documentation builds offline (``python docs/build.py OUT``): every guide and the API
reference are written, every link between them resolves (anchors included), every guide is in
the navigation, and no page loads anything from the network."""

from __future__ import annotations

import re
import runpy
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
build = runpy.run_path(str(DOCS / "build.py"))


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("href", "src") and value is not None:
                self.links.append((tag, name, value))


def parse(path: Path) -> Links:
    parser = Links()
    parser.feed(path.read_text())
    return parser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    build["build"](out)
    return out


def test_every_page_is_built(site: Path) -> None:
    for name, _ in build["PAGES"]:
        assert (site / f"{name[:-3]}.html").is_file(), name
    for module in ("sessionkit", "sessionkit/dashboard", "sessionkit/asgi", "sessionkit/flask",
                   "sessionkit/events", "sessionkit/stores/redis", "sessionkit/client/jwt"):
        assert (site / "api" / f"{module}.html").is_file(), module
    dashboard = (site / "api" / "sessionkit" / "dashboard.html").read_text()
    assert "asgi_app" in dashboard and "AsgiMount" in dashboard  # from the docstrings


def test_every_guide_is_in_the_navigation() -> None:
    listed = {name for name, _ in build["PAGES"]}
    assert {p.name for p in DOCS.glob("*.md")} == listed


def test_internal_links_and_anchors_resolve(site: Path) -> None:
    broken = []
    parsed = {page: parse(page) for page in site.rglob("*.html")}
    assert len(parsed) > 20
    for page, links in parsed.items():
        for tag, _, value in links.links:
            parts = urlsplit(value)
            if parts.scheme or value.startswith(("//", "mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: <{tag}> {value}")
            elif (parts.fragment and target.parent == site.resolve()
                  and parts.fragment not in parsed[site / target.name].ids):
                broken.append(f"{page.relative_to(site)}: {value} (no such anchor)")
    assert broken == []


def test_pages_load_nothing_from_the_network(site: Path) -> None:
    for page in site.rglob("*.html"):
        for tag, attribute, value in parse(page).links:
            if tag in ("script", "link", "img", "iframe") or attribute == "src":
                assert not re.match(r"^(https?:)?//", value), f"{page}: <{tag}> {value}"


def test_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+\.md)(?:#[^)]*)?\)", readme)
    assert len(targets) >= 9
    assert [t for t in targets if not (ROOT / t).is_file()] == []
