"""The SQL console: read-only queries at any ref through :class:`ProllySQLStore`'s public
API (``query_at_commit``, ``tables``), and the ``prolly_*`` system tables (``execute`` of
a fixed ``SELECT`` on the working copy, by name from an allow-list).

Only queries run: statements starting with SELECT, WITH, VALUES or EXPLAIN (a past
version is read-only anyway, but ATTACH or VACUUM INTO would touch files outside the
dataset). A single SELECT/WITH/VALUES statement is wrapped as ``SELECT * FROM (query)
LIMIT n+1 OFFSET m`` so SQLite stops after the page; with several statements the last
one's rows are paged in Python.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from .params import BadRequest

_QUERY = re.compile(r"^\s*(select|with|values)\b", re.I)
ALLOWED = ("select", "with", "values", "explain")
SYSTEM_TABLES = ("prolly_log", "prolly_branches", "prolly_status")


def cell(v: Any) -> Any:
    """A result cell as JSON: bytes (a BLOB) as ``{"b64": ...}``."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"b64": base64.b64encode(bytes(v)).decode("ascii")}
    return v


def cell_text(v: Any) -> str:
    """A JSON cell (see :func:`cell`) for the HTML table."""
    from prollytree.cli.output import show
    if v is None:
        return "NULL"
    if isinstance(v, dict):
        raw = base64.b64decode(v["b64"])
        return "x'" + raw[:64].hex() + ("…' (" + str(len(raw)) + " bytes)"
                                        if len(raw) > 64 else "'")
    if isinstance(v, str):
        return show(v.encode("utf-8", "surrogatepass"))
    return str(v)


class SqlConsole:
    """Queries over ``sql`` (an open ProllySQLStore sharing the app's dataset)."""

    def __init__(self, sql: Any) -> None:
        self.sql = sql

    def tables(self, ref: str) -> list[str]:
        return self.sql.tables(ref)

    def system_tables(self) -> list[str]:
        names = list(SYSTEM_TABLES)
        for t in self.sql.tables():
            names += [f"prolly_history_{t}", f"prolly_diff_{t}"]
        return names

    def query(self, ref: str, query: str, offset: int, limit: int) -> dict:
        """A page of the result of the read-only ``query`` at ``ref``."""
        from prollytree.sql.statements import kind_of, split
        if not query.strip():
            raise BadRequest("the query is empty")
        stmts = split(query)
        for st in stmts:
            if kind_of(st) not in ALLOWED:
                raise BadRequest(f"the console runs queries only (statements starting with "
                                 f"{', '.join(a.upper() for a in ALLOWED)}), not "
                                 f"{st.strip()[:60]!r}")
        paged = len(stmts) == 1 and _QUERY.match(stmts[0]) is not None
        if paged:
            body = stmts[0].rstrip().rstrip(";")
            labels, rows = self.sql.query_at_commit(
                ref, f"SELECT * FROM ({body}) LIMIT {limit + 1} OFFSET {offset}",
                format="tuples")
        else:
            labels, rows = self.sql.query_at_commit(ref, query, format="tuples") \
                if stmts else ([], [])
            rows = rows[offset:offset + limit + 1]
        return self._page(labels, rows, offset, limit,
                          {"ref": ref, "q": query, "commit": self.sql.kv.resolve_ref(ref)})

    def system(self, name: str, offset: int, limit: int) -> dict:
        """A page of the system table ``name`` (of the working copy)."""
        if name not in self.system_tables():
            raise BadRequest(f"no system table {name!r}; there are: "
                             + ", ".join(self.system_tables()))
        labels, rows = self.sql.execute(f"SELECT * FROM {name} LIMIT ? OFFSET ?",
                                        format="tuples", params=[limit + 1, offset])
        return self._page(labels, rows, offset, limit, {"system": name})

    @staticmethod
    def _page(labels: list, rows: list, offset: int, limit: int, base: dict) -> dict:
        more = len(rows) > limit
        rows = rows[:limit]
        out = dict(base, columns=list(labels), rows=[[cell(v) for v in r] for r in rows],
                   offset=offset, limit=limit)
        out["next"] = dict(base, offset=offset + limit, limit=limit) if more else None
        out["prev"] = dict(base, offset=max(0, offset - limit), limit=limit) \
            if offset > 0 else None
        return out

