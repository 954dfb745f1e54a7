"""The house rules, checked on the code's own imports and strings so they stay true.

flows -> tasks -> (kpe, warehouse); warehouse may use kpe's types; kpe imports neither warehouse, duckdb, tasks,
flows nor prefect; tasks never import other tasks; SQL lives in warehouse/ (private SQLite caches aside).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kpe", "warehouse", "tasks", "flows")

#: package -> top-level modules it must not import
FORBIDDEN = {
    "kpe": {"warehouse", "duckdb", "tasks", "flows", "prefect", "prefect_dask"},
    "warehouse": {"tasks", "flows", "prefect"},
    "tasks": {"flows"},
    "flows": set(),
}
#: what SQL looks like in a string literal
SQL = re.compile(r"\b(SELECT\b[\s\S]+\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET|"
                 r"CREATE\s+(TEMP\s+)?(TABLE|VIEW|INDEX|MACRO))\b")


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> list[str]:
    """Every module name a file imports (absolute; relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = path.relative_to(ROOT).parent.parts[: len(path.relative_to(ROOT).parent.parts) - node.level + 1]
                names.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.append(node.module)
    return names


def _uses_sqlite(path: Path) -> bool:
    return any(name == "sqlite3" for name in _imports(path))


@pytest.mark.parametrize("package", PACKAGES)
def test_dependencies_point_one_way(package: str) -> None:
    broken = [f"{path.relative_to(ROOT)} imports {name}" for path in _modules(package)
              for name in _imports(path) if name.split(".")[0] in FORBIDDEN[package]]
    assert broken == []


def test_tasks_never_import_other_tasks() -> None:
    broken = [f"{path.relative_to(ROOT)} imports {name}" for path in _modules("tasks") for name in _imports(path)
              if name.split(".")[0] == "tasks"]
    assert broken == []


@pytest.mark.parametrize("folder", ["kpe", "tasks", "flows", "benchmarks"])
def test_sql_lives_in_the_warehouse_package(folder: str) -> None:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        if _uses_sqlite(path):  # a module's own SQLite cache (embeddings, the S2 abstracts index) is private
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:60]!r}")
    assert found == []


def test_the_rules_catch_a_break(tmp_path: Path) -> None:
    """The checks above can fail: a module that imports duckdb and runs SQL is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text('import duckdb\nfrom warehouse.db import connect\nQ = "SELECT doc_id FROM documents"\n')
    assert {"duckdb", "warehouse.db"} <= set(_imports(bad))
    assert SQL.search('SELECT doc_id FROM documents') and not SQL.search("select the best candidates from a list")
