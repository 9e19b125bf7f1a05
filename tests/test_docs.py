"""The documentation stays true to the code: a short README, a navigation whose every page exists,
an architecture page that names every package of service/, and a site that builds with --strict."""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from mkdocs.commands.build import build
from mkdocs.config import load_config

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"


def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nav_pages(entries: Any) -> Iterator[str]:
    """Every page a navigation names, however deep its sections."""
    for entry in entries if isinstance(entries, list) else [entries]:
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict):
            for value in entry.values():
                yield from nav_pages(value)


def packages() -> list[str]:
    """Every package under service/, as its path from there (`provider/omicall`)."""
    service = ROOT / "service"
    return sorted(
        init.parent.relative_to(service).as_posix()
        for init in service.rglob("__init__.py")
        if init.parent != service and "__pycache__" not in init.parts
    )


def test_readme_is_at_most_250_lines() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move the rest into docs/"


def test_every_page_in_the_navigation_exists() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    published = set(hooks().PAGES.values())
    pages = list(nav_pages(config["nav"]))
    missing = [p for p in pages if not (DOCS / p).is_file() and p not in published]
    assert pages and not missing, f"in mkdocs.yml's nav but not in docs/: {missing}"
    unlisted = sorted({p.name for p in DOCS.glob("*.md")} - set(pages))
    assert not unlisted, f"in docs/ but not in mkdocs.yml's nav: {unlisted}"


def test_the_published_repository_files_exist() -> None:
    missing = [path for path in hooks().published() if not (ROOT / path).is_file()]
    assert not missing


def test_links_outside_docs_point_at_what_the_site_carries() -> None:
    rewrite = hooks().rewrite
    assert rewrite("[s](../schemas/outcome.schema.json#x)", "events.md") == (
        "[s](schemas/outcome.schema.json#x)"
    )
    assert rewrite("[chart](../helm/autocall-bridge/README.md)", "a.md") == "[chart](helm-chart.md)"
    assert rewrite("[home](../../README.md)", "helm-chart.md") == "[home](index.md)"
    assert rewrite("[b](../docs/benchmark.md#x)", "benchmark-harness.md") == "[b](benchmark.md#x)"
    assert rewrite("[`app.py`](../service/app.py)", "a.md") == "`app.py`"
    assert rewrite("[gone](../service/gone.py)", "a.md") == "[gone](../service/gone.py)"
    assert rewrite("[w](https://example.com/x.md) [o](operating.md#holds)", "a.md") == (
        "[w](https://example.com/x.md) [o](operating.md#holds)"
    )


def test_the_architecture_names_every_package() -> None:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    found = packages()
    assert {"amqp", "pipeline", "provider/omicall", "store"} <= set(found)
    unnamed = [p for p in found if f"`{p}/`" not in text]
    assert not unnamed, f"docs/architecture.md does not name these packages of service/: {unnamed}"


def test_the_benchmark_figures_are_in_one_place() -> None:
    row = re.compile(r"^\| latency-0 \| service", re.MULTILINE)
    places = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "README.md", ROOT / "bench" / "README.md", *DOCS.glob("*.md"))
        if row.search(path.read_text(encoding="utf-8"))
    ]
    assert places == ["docs/benchmark.md"]


def test_the_site_builds_strictly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = load_config(str(ROOT / "mkdocs.yml"), site_dir=str(tmp_path), strict=True)
    with caplog.at_level(logging.WARNING, logger="mkdocs"):
        build(config)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not warnings
    assert (tmp_path / "schemas" / "outcome.schema.json").is_file()
    assert (tmp_path / "architecture" / "index.html").is_file()
