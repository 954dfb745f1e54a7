"""Small read helpers shared by the warehouse modules."""

from __future__ import annotations

from typing import Any

import duckdb


def fetch_dicts(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """Rows of a query as dictionaries (through Arrow, so nested lists and structs keep their shape)."""
    return con.sql(sql, params=params).to_arrow_table().to_pylist()


def fetch_scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The first column of the first row, or ``None``."""
    row = con.execute(sql, params or []).fetchone()
    return None if row is None else row[0]
