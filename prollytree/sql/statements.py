"""Splitting SQL text into statements and telling what kind each one is."""

from __future__ import annotations

import re

import apsw

__all__ = ["split", "words", "kind_of"]

_WORD = re.compile(r'\s*(?:--[^\n]*(?:\n|\Z)|/\*.*?(?:\*/|\Z))*\s*'
                   r'([A-Za-z_][A-Za-z_0-9$]*|"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|\(|;)?', re.S)


def split(sql: str) -> list[str]:
    """The complete statements of ``sql``, each with its ``;`` (comment-only parts dropped);
    an incomplete last statement is kept as it is (SQLite reports its error)."""
    out, start = [], 0
    i = sql.find(";")
    while i != -1:
        chunk = sql[start:i + 1]
        if apsw.complete(chunk):
            if _has_statement(chunk):
                out.append(chunk)
            start = i + 1
        i = sql.find(";", i + 1)
    rest = sql[start:]
    if _has_statement(rest):
        out.append(rest)
    return out


def _has_statement(chunk: str) -> bool:
    w = words(chunk, 1)
    return bool(w) and w[0] != ";"


def words(sql: str, n: int) -> list[str]:
    """The first ``n`` tokens of ``sql`` (keywords upper-cased, comments skipped)."""
    out, pos = [], 0
    while len(out) < n:
        m = _WORD.match(sql, pos)
        if not m or not m.group(1):
            break
        w = m.group(1)
        out.append(w.upper() if w[0].isalpha() or w[0] == "_" else w)
        pos = m.end()
    return out


def kind_of(sql: str) -> str:
    """One of: create_table, create_temp, create_index, create_view, drop_table, drop_index,
    drop_view, alter_table, ctas (CREATE TABLE ... AS SELECT), or the first keyword lower-cased
    (select, insert, update, delete, with, begin, ...)."""
    w = words(sql, 8)
    if not w:
        return ""
    if w[0] == "CREATE":
        rest = w[1:]
        if rest and rest[0] in ("TEMP", "TEMPORARY"):
            return "create_temp"
        if rest and rest[0] == "UNIQUE":
            rest = rest[1:]
        if rest and rest[0] == "TABLE":
            # CREATE TABLE [IF NOT EXISTS] [schema.]name AS ...
            tail = rest[1:]
            if tail[:3] == ["IF", "NOT", "EXISTS"]:
                tail = tail[3:]
            if len(tail) >= 2 and tail[1] == "AS":
                return "ctas"
            return "create_table"
        if rest and rest[0] in ("INDEX", "VIEW", "TRIGGER"):
            return "create_" + rest[0].lower()
        if rest and rest[0] == "VIRTUAL":
            return "create_virtual"
        return "create"
    if w[0] == "DROP" and len(w) > 1 and w[1] in ("TABLE", "INDEX", "VIEW", "TRIGGER"):
        return "drop_" + w[1].lower()
    if w[0] == "ALTER":
        return "alter_table"
    return w[0].lower()


def dml_kind(sql: str) -> str:
    """insert / update / delete for a DML statement (also after WITH ...)."""
    k = kind_of(sql)
    if k in ("insert", "replace"):
        return "insert"
    if k in ("update", "delete"):
        return k
    depth = 0
    for m in re.finditer(r"\(|\)|'(?:[^']|'')*'|\b(INSERT|REPLACE|UPDATE|DELETE)\b", sql, re.I):
        t = m.group(0)
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        elif m.group(1) and depth == 0:
            g = m.group(1).upper()
            return "insert" if g == "REPLACE" else g.lower()
    return k
