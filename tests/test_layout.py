"""The layout stays as STYLE.md draws it, measured over whatever service/ holds: no module over
300 lines, no function over 50, at most 14 modules at the top, and every subpackage opening with
its rooms (each of its modules and subpackages named in its docstring)."""

from __future__ import annotations

import ast
from pathlib import Path

import service

ROOT = Path(service.__file__).parent
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 50
MAX_TOP_MODULES = 14


def modules() -> list[Path]:
    return sorted(path for path in ROOT.rglob("*.py") if "__pycache__" not in path.parts)


def packages() -> list[Path]:
    return sorted(path.parent for path in ROOT.rglob("__init__.py") if path.parent != ROOT)


def name(path: Path) -> str:
    return str(path.relative_to(ROOT.parent))


def test_no_module_is_over_300_lines() -> None:
    lines = {name(path): len(path.read_text(encoding="utf-8").splitlines()) for path in modules()}
    assert {path: n for path, n in lines.items() if n > MAX_MODULE_LINES} == {}


def test_no_function_is_over_50_lines() -> None:
    long: dict[str, int] = {}
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{name(path)}:{node.lineno} {node.name}"] = length
    assert long == {}


def test_at_most_14_modules_directly_in_service() -> None:
    top = sorted(path.name for path in ROOT.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top


def test_every_subpackage_opens_with_its_rooms() -> None:
    missing: dict[str, list[str]] = {}
    for package in packages():
        docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text("utf-8")))
        rooms = [p.name for p in package.glob("*.py") if p.name != "__init__.py"]
        rooms += [f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()]
        unnamed = [room for room in sorted(rooms) if room not in (docstring or "")]
        if docstring is None or unnamed:
            missing[name(package)] = unnamed or ["(no docstring)"]
    assert missing == {}
