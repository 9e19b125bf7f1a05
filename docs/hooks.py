"""MkDocs hooks: the site also publishes the repository files its pages link to.

Pages link to files outside docs/ as a forge shows the repository (`../schemas/outcome.schema.json`,
`../helm/autocall-bridge/README.md`), so the Markdown reads the same on a forge. The site carries
those files too: the JSON Schemas and the AsyncAPI document as they are; the README (the home
page), the chart's and the benchmark harness's READMEs and the fault suite's last run as pages.
Links between them are pointed at the published copies. Nothing is fetched: all is in the clone.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent

# Repository files published as pages: repository path -> the page's path on the site. The
# README is the site's home page, so what the project is and how to start is said once.
PAGES = {
    "README.md": "index.md",
    "helm/autocall-bridge/README.md": "helm-chart.md",
    "bench/README.md": "benchmark-harness.md",
    "tests/faults/last-run.md": "fault-run.md",
}
SCHEMAS = "schemas"

LINK = re.compile(
    r"(?P<bang>!?)\[(?P<text>[^\]]*)\]"
    r"\((?P<target>[^)\s#]*)(?P<anchor>#[^)\s]*)?(?P<title>\s+\"[^\"]*\")?\)"
)


def published() -> dict[str, str]:
    """Every repository file outside docs/ the site carries: repository path -> site path."""
    files = {f"{SCHEMAS}/{path.name}": f"{SCHEMAS}/{path.name}" for path in schema_files()}
    return files | PAGES


def schema_files() -> list[Path]:
    return sorted(p for p in (ROOT / SCHEMAS).iterdir() if p.suffix in {".json", ".yaml"})


def on_files(files: Files, config: Any) -> Files:
    for source, uri in published().items():
        files.append(File.generated(config, uri, abs_src_path=str(ROOT / source)))
    return files


def on_page_markdown(markdown: str, page: Page, config: Any, files: Files) -> str:
    return rewrite(markdown, page.file.src_uri)


def rewrite(markdown: str, uri: str) -> str:
    """A page's links as the site has them: to the published copies of repository files; a link
    to a file the site does not carry (a module, say) becomes its text, as the site has no such
    page. A link to a file the repository does not have is left for --strict to report."""
    source = source_of(uri)
    here = posixpath.dirname(uri) or "."

    def point(match: re.Match[str]) -> str:
        target = match["target"]
        if not target or "://" in target or target.startswith(("/", "mailto:")):
            return match[0]
        path = posixpath.normpath(posixpath.join(posixpath.dirname(source), target))
        site = site_uri(path)
        if site is None:
            outside = not path.startswith(("docs/", "../")) and (ROOT / path).exists()
            return match["text"] if outside and not match["bang"] else match[0]
        link = f"{posixpath.relpath(site, here)}{match['anchor'] or ''}{match['title'] or ''}"
        return f"{match['bang']}[{match['text']}]({link})"

    return LINK.sub(point, markdown)


def source_of(uri: str) -> str:
    """A page's file in the repository."""
    pages = {site: repo for repo, site in PAGES.items()}
    return pages.get(uri, f"docs/{uri}")


def site_uri(path: str) -> str | None:
    """Where a repository path is on the site, or None for what the site does not carry."""
    if path.startswith("docs/"):
        return path.removeprefix("docs/")
    return published().get(path)
