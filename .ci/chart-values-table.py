"""The chart README's values table, generated from the `# --` comments of values.yaml.

  chart-values-table.py CHART_DIR --check   exit 1 when README.md's table is stale, or a value
                                            has no description
  chart-values-table.py CHART_DIR --write   rewrite the table in README.md

A `# -- text` comment (continued by further `#` lines) documents the key below it; a documented
key that holds a map is one row, its children need no comments of their own. The table sits
between the markers <!-- values-table:start --> and <!-- values-table:end -->.
Run with a python that has PyYAML (the tools venv of .ci/chart-check, or the project's).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

START, END = "<!-- values-table:start -->", "<!-- values-table:end -->"
KEY = re.compile(r"^(\s*)([A-Za-z0-9_.-]+):(?:\s+(.*))?$")
DOC = re.compile(r"^\s*# -- (.*)$")
MORE = re.compile(r"^\s*#\s?(.*)$")


def content_lines(text: str) -> list[str]:
    """The lines of values.yaml, without the bodies of block scalars (`key: |`)."""
    kept: list[str] = []
    block_indent: int | None = None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if block_indent is not None and (not line.strip() or indent > block_indent):
            continue
        block_indent = None
        kept.append(line)
        m = KEY.match(line)
        if m and (m[3] or "").split(" #")[0].strip()[:1] in ("|", ">"):
            block_indent = indent
    return kept


def parse(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(path, description) in file order, and every key path seen."""
    rows: list[tuple[str, str]] = []
    seen: list[str] = []
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in content_lines(text):
        indent = len(line) - len(line.lstrip())
        if m := DOC.match(line):
            pending = [m[1]]
            continue
        if pending is not None and (m := MORE.match(line)):
            pending.append(m[1])
            continue
        m = KEY.match(line)
        if not m:
            if line.strip() and not line.lstrip().startswith(("#", "- ")):
                raise ValueError(f"cannot read values.yaml line: {line!r}")
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [m[2]])
        seen.append(path)
        if pending is not None:
            rows.append((path, " ".join(pending)))
            pending = None
        stack.append((indent, m[2]))
    return rows, seen


def lookup(values: dict, path: str) -> object:
    node: object = values
    for part in path.split("."):
        assert isinstance(node, dict)
        node = node[part]
    return node


def default(value: object) -> str:
    if isinstance(value, str) and "\n" in value:
        return "(see values.yaml)"
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return "`" + text.replace("|", "\\|") + "`"


def table(chart: Path) -> tuple[str, list[str]]:
    text = (chart / "values.yaml").read_text(encoding="utf-8")
    values = yaml.safe_load(text)
    rows, seen = parse(text)
    documented = [path for path, _ in rows]
    problems = []
    for path in seen:
        covered = any(path == d or path.startswith(d + ".") for d in documented)
        node = lookup(values, path)
        if not covered and not (isinstance(node, dict) and node):
            problems.append(f"values.yaml: {path} has no `# --` description")
    lines = ["| Key | Default | Description |", "|---|---|---|"]
    for path, description in rows:
        cell = description.replace("|", "\\|")
        lines.append(f"| `{path}` | {default(lookup(values, path))} | {cell} |")
    return "\n".join(lines), problems


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ("--check", "--write"):
        print(__doc__, file=sys.stderr)
        return 2
    chart = Path(argv[0])
    rendered, problems = table(chart)
    readme_path = chart / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    if START not in readme or END not in readme:
        problems.append(f"{readme_path}: no {START} ... {END} markers")
        current = readme
    else:
        head, rest = readme.split(START, 1)
        _, tail = rest.split(END, 1)
        current = f"{head}{START}\n{rendered}\n{END}{tail}"
    if argv[1] == "--write":
        readme_path.write_text(current, encoding="utf-8")
    elif current != readme:
        problems.append(
            f"{readme_path}: the values table is stale; run "
            f"python .ci/chart-values-table.py {chart} --write"
        )
    for problem in problems:
        print(problem)
    if not problems:
        count = rendered.count("\n") - 1
        print(f"{readme_path}: the values table matches values.yaml ({count} values)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
