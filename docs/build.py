#!/usr/bin/env python3
"""Build the documentation into a folder of static HTML, offline: the guides (``docs/*.md``,
rendered with markdown2) and the API reference (``api/``, generated from the docstrings by
pdoc). Nothing is fetched from the network; the pages load nothing from it either.

    python docs/build.py [OUT]        (default: docs/_build)
"""

from __future__ import annotations

import html
import re
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
#: The guides, in the order of the navigation: (file, title).
PAGES = [
    ("index.md", "Overview"),
    ("choosing-a-mode.md", "Choosing a mode"),
    ("hybrid.md", "Hybrid mode"),
    ("session-features.md", "Devices, remember-me, encrypted cookies, fresh logins"),
    ("fastapi.md", "FastAPI guide"),
    ("flask.md", "Flask guide"),
    ("configuration.md", "Configuration"),
    ("deploying.md", "Deploying behind a load balancer"),
    ("migration.md", "Migration"),
    ("coming-from-peers.md", "Coming from Starlette, Flask, starsessions, Flask-Session"),
    ("security.md", "Security"),
    ("operations.md", "Operations"),
    ("cluster-demo.md", "Cluster demo"),
    ("writing-a-store.md", "Writing a store"),
    ("architecture.md", "Architecture"),
]

_MD_LINK = re.compile(r'href="([^":#]+)\.md(#[^"]*)?"')


def api_modules() -> list[str]:
    """``sessionkit`` and every public module under it: the packages' ``__all__`` name only
    their core classes, so pdoc would not walk their modules by itself."""
    found = []
    for path in sorted((ROOT / "sessionkit").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(part.startswith("_") for part in parts):
            found.append(".".join(parts))
    return found


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - sessionkit</title>
<style>
body {{ font: 16px/1.55 system-ui, sans-serif; margin: 0; color: #1d232a; display: flex; }}
nav {{ min-width: 15rem; padding: 1.5rem 1rem; background: #f4f6f8; min-height: 100vh; }}
nav a {{ display: block; padding: .15rem 0; color: #1d4f91; text-decoration: none; }}
nav a.current {{ font-weight: 700; }}
main {{ max-width: 52rem; padding: 1.5rem 2rem; overflow-x: auto; }}
code, pre {{ font: 14px/1.4 ui-monospace, monospace; background: #f2f4f6; }}
pre {{ padding: .7rem; overflow-x: auto; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #d9dee3; padding: .3rem .5rem; vertical-align: top; }}
</style></head>
<body><nav><b>sessionkit</b>{nav}<a href="api/sessionkit.html">API reference</a></nav>
<main>{body}</main></body></html>
"""


def render_page(source: Path, current: str) -> str:
    import markdown2

    text = source.read_text()
    body = markdown2.markdown(text, extras=["tables", "fenced-code-blocks", "header-ids",
                                            "code-friendly"])
    body = _MD_LINK.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', body)
    nav = "".join(
        f'<a href="{name[:-3]}.html"{" class=current" if name == current else ""}>'
        f"{html.escape(title)}</a>" for name, title in PAGES)
    title = dict(PAGES)[current]
    return TEMPLATE.format(title=html.escape(title), nav=nav, body=body)


def build(out: Path) -> list[Path]:
    """Write every page into ``out``; returns the files written."""
    import pdoc
    import pdoc.render

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, _ in PAGES:
        target = out / f"{name[:-3]}.html"
        target.write_text(render_page(DOCS / name, name))
        written.append(target)
    sys.path.insert(0, str(ROOT))
    pdoc.render.configure(docformat="restructuredtext", show_source=False,
                          footer_text="sessionkit", search=True)
    with warnings.catch_warnings():  # a package without __all__ walks its modules too
        warnings.filterwarnings("ignore", "The module specification .* already been added")
        # A TypedDict's inherited keys (the middleware's options extend the settings).
        warnings.filterwarnings("ignore", "Cannot determine where .* is taken from")
        pdoc.pdoc(*api_modules(), output_directory=out / "api")
    written.extend(sorted((out / "api").rglob("*.html")))
    return written


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DOCS / "_build"
    pages = build(out)
    print(f"docs: {len(pages)} pages in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
