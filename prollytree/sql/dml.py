"""What SQLite does not do on virtual tables, done around the statement: column defaults for
the columns an INSERT leaves out, and UPSERT (``INSERT ... ON CONFLICT ... DO NOTHING | DO
UPDATE``)."""

from __future__ import annotations

import re

import apsw

from .schema import TableSchema, quote_ident

__all__ = ["insert_target", "split_upsert", "run_upsert"]

_NAME = r'(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][A-Za-z_0-9$]*)'
_INSERT = re.compile(
    rf"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(?:INSERT|REPLACE)\s+(?:OR\s+\w+\s+)?INTO\s+"
    rf"(?:({_NAME})\s*\.\s*)?({_NAME})(?:\s+AS\s+{_NAME})?\s*(\(([^()]*)\))?\s*"
    rf"(DEFAULT\s+VALUES)?", re.I | re.S)


def unquote(name: str) -> str:
    name = name.strip()
    if name[:1] in ('"', "`", "["):
        inner = name[1:-1]
        return inner.replace('""', '"') if name[0] == '"' else inner
    return name


def insert_target(sql: str) -> tuple[str, list[str] | None, bool, int] | None:
    """(table, listed columns or None, DEFAULT VALUES?, end offset) of an INSERT, or None."""
    m = _INSERT.match(sql)
    if not m:
        return None
    cols = None
    if m.group(4) is not None:
        cols = [unquote(c) for c in m.group(4).split(",") if c.strip()]
    return unquote(m.group(2)), cols, bool(m.group(5)), m.end()


def _top_level(sql: str, pattern: re.Pattern) -> list[re.Match]:
    """Matches of ``pattern`` outside parentheses, strings and quoted names."""
    out, depth = [], 0
    tok = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|--[^\n]*|"
                     r"/\*.*?\*/|\(|\)|" + pattern.pattern, re.I | re.S)
    for m in tok.finditer(sql):
        t = m.group(0)
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        elif depth == 0 and pattern.fullmatch(t):
            out.append(m)
    return out


_ON_CONFLICT = re.compile(r"\bON\s+CONFLICT\b", re.I)
_DO = re.compile(r"\bDO\s+(?:NOTHING|UPDATE\s+SET)\b", re.I)
_WHERE = re.compile(r"\bWHERE\b", re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)
_EXCLUDED = re.compile(rf"\bexcluded\s*\.\s*({_NAME})", re.I)


def split_upsert(sql: str) -> tuple[str, list[str] | None, str | None, str | None] | None:
    """(the INSERT without its upsert clause, conflict target columns or None, the SET
    assignments (None for DO NOTHING), the DO UPDATE's WHERE or None) of an UPSERT."""
    ons = _top_level(sql, _ON_CONFLICT)
    if not ons:
        return None
    if len(ons) > 1:
        raise apsw.SQLError("more than one ON CONFLICT clause is not supported here")
    if _top_level(sql, _RETURNING):
        raise apsw.SQLError("RETURNING with ON CONFLICT is not supported on these tables")
    head, clause = sql[:ons[0].start()], sql[ons[0].end():].rstrip().rstrip(";")
    m = _DO.search(clause)
    if not m:
        raise apsw.SQLError("ON CONFLICT needs DO NOTHING or DO UPDATE SET")
    target_sql = clause[:m.start()].strip()
    target = None
    if target_sql:
        tm = re.fullmatch(r"\((.*?)\)\s*(?:WHERE\s+.*)?", target_sql, re.S | re.I)
        if not tm:
            raise apsw.SQLError(f"cannot read the conflict target {target_sql!r}")
        target = [unquote(re.split(r"\s+COLLATE\s+|\s+ASC\b|\s+DESC\b", c, flags=re.I)[0])
                  for c in tm.group(1).split(",")]
    if m.group(0).upper().startswith("DO NOTHING") or \
            re.match(r"DO\s+NOTHING", m.group(0), re.I):
        return head, target, None, None
    body = clause[m.end():]
    wh = _top_level(body, _WHERE)
    if wh:
        return head, target, body[:wh[-1].start()], body[wh[-1].end():]
    return head, target, body, None


def run_upsert(session, schema: TableSchema, head: str, target, sets, where, params) -> int:
    """Run an UPSERT row by row: insert each row, and on a uniqueness conflict with the
    target (default: any unique key) either skip it or apply the DO UPDATE to the existing
    row with ``excluded.*`` bound to the proposed row. Returns rows inserted + updated."""
    conn = session.conn
    cols = [c.name for c in schema.columns]
    t = insert_target(head)
    listed = t[1] if t else None
    qcols = ", ".join(quote_ident(c) for c in cols)
    conn.execute("DROP TABLE IF EXISTS temp.prolly_excluded")
    conn.execute(f"CREATE TEMP TABLE prolly_excluded ({qcols})")
    try:
        # the proposed rows: the INSERT's own source, run into a scratch table
        rest = head[t[3]:] if t else head
        into = ", ".join(quote_ident(c) for c in (listed or cols))
        conn.execute(f"INSERT INTO temp.prolly_excluded ({into}) {rest}", params)
        proposed = list(conn.execute(f"SELECT {qcols} FROM temp.prolly_excluded "
                                     f"ORDER BY rowid"))
        conn.execute("DELETE FROM temp.prolly_excluded")
        lower = [c.lower() for c in cols]
        keys = [[lower[i] for i in schema.pk]] if schema.pk else []
        keys += [[lower[i] for i in idx.columns] for idx in schema.indexes if idx.unique]
        if target is not None:
            keys = [[c.lower() for c in target]]
            if sorted(keys[0]) not in [sorted(k) for k in
                                        [[lower[i] for i in schema.pk]] +
                                        [[lower[i] for i in x.columns]
                                         for x in schema.indexes if x.unique]]:
                raise apsw.SQLError("ON CONFLICT clause does not match any PRIMARY KEY or "
                                    "UNIQUE constraint")
        q = quote_ident(schema.name)
        ins = f"INSERT INTO {q} ({qcols}) VALUES ({', '.join('?' * len(cols))})"
        upd = None
        if sets is not None:
            sets_sql = _EXCLUDED.sub(
                lambda m: f"(SELECT {quote_ident(unquote(m.group(1)))} FROM "
                          f"temp.prolly_excluded)", sets)
            cond = _EXCLUDED.sub(
                lambda m: f"(SELECT {quote_ident(unquote(m.group(1)))} FROM "
                          f"temp.prolly_excluded)", where) if where else None
            upd = (sets_sql, cond)
        n = 0
        for row in proposed:
            clash = None
            for k in keys:
                vals = [row[lower.index(c)] for c in k]
                if any(v is None for v in vals):
                    continue
                w = " AND ".join(f"{quote_ident(c)} = ?" for c in k)
                r = list(conn.execute(f"SELECT rowid FROM {q} WHERE {w}", vals))
                if r:
                    clash = r[0][0]
                    break
            if clash is None:
                session.changes = 0
                conn.execute(ins, row)
                n += session.changes
                continue
            if upd is None:
                continue
            conn.execute(f"INSERT INTO temp.prolly_excluded VALUES "
                         f"({', '.join('?' * len(cols))})", row)
            sql = f"UPDATE {q} SET {upd[0]} WHERE rowid = ?"
            if upd[1]:
                sql += f" AND ({upd[1]})"
            session.changes = before = 0
            conn.execute(sql, [clash])
            n += session.changes - before
            conn.execute("DELETE FROM temp.prolly_excluded")
        return n
    finally:
        conn.execute("DROP TABLE IF EXISTS temp.prolly_excluded")
