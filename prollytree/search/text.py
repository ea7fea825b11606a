"""Ranked full-text search (BM25) over the entries of trees, with SQLite FTS5 as engine."""

from __future__ import annotations

import hashlib
import re
from typing import Any, Iterator

from .derived import DerivedIndex

# FTS5's unicode61 tokenizer splits on everything that is not a letter or a digit
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def query_terms(text: str) -> list[str]:
    """The distinct lowercased words of ``text``, in order (what a text query matches)."""
    seen: dict[str, None] = {}
    for w in _TOKEN.findall(text.lower()):
        seen.setdefault(w, None)
    return list(seen)


class TextIndex(DerivedIndex):
    """BM25-ranked search over tree entries (``document(key, value)`` gives the text, the
    value as UTF-8 by default). A derived cache: :meth:`sync` it with a tree (see
    :class:`~prollytree.search.derived.DerivedIndex`), then :meth:`search`.

    A query is a plain text: each distinct word is a term, a document matches when it
    has any of them, and documents are ranked by Okapi BM25 (k1 = 1.2, b = 0.75, as
    FTS5 computes it)."""

    KIND = "text"

    def _create_tables(self) -> None:
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS docs(id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                   "key BLOB NOT NULL, th BLOB NOT NULL, UNIQUE(name, key))")
        db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(body, "
                   "tokenize='unicode61 remove_diacritics 2')")

    def _apply(self, name: str, changes: dict[bytes, str | None]) -> None:
        db = self._db
        for key, text in changes.items():
            row = db.execute("SELECT id, th FROM docs WHERE name=? AND key=?",
                             (name, key)).fetchall()
            th = None if text is None else hashlib.blake2b(text.encode(), digest_size=16).digest()
            if row:
                rid = row[0][0]
                if text is None:
                    db.execute("DELETE FROM fts WHERE rowid=?", (rid,))
                    db.execute("DELETE FROM docs WHERE id=?", (rid,))
                elif row[0][1] != th:
                    db.execute("UPDATE fts SET body=? WHERE rowid=?", (text, rid))
                    db.execute("UPDATE docs SET th=? WHERE id=?", (th, rid))
            elif text is not None:
                db.execute("INSERT INTO docs(name, key, th) VALUES (?, ?, ?)", (name, key, th))
                rid = db.last_insert_rowid()
                db.execute("INSERT INTO fts(rowid, body) VALUES (?, ?)", (rid, text))

    def _drop(self, name: str) -> None:
        self._db.execute("DELETE FROM fts WHERE rowid IN (SELECT id FROM docs WHERE name=?)",
                         (name,))
        self._db.execute("DELETE FROM docs WHERE name=?", (name,))

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM docs").fetchall()[0][0]

    def iter_search(self, query: str, name: str | None = None
                    ) -> Iterator[tuple[str, bytes, float]]:
        """Every matching document as (tree name, key, score), best first (score > 0;
        ties by key). ``name`` restricts to one tree. Scoring is over all documents of
        the index. The ranking is computed when iteration starts (O(matches))."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        terms = query_terms(query)
        if not terms:
            return iter(())
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        sql = ("SELECT docs.name, docs.key, -bm25(fts) AS s FROM fts JOIN docs ON "
               "docs.id = fts.rowid WHERE fts MATCH ?")
        args: tuple[Any, ...] = (match,)
        if name is not None:
            sql += " AND docs.name = ?"
            args += (name,)
        sql += " ORDER BY s DESC, docs.key"
        return iter(self._db.execute(sql, args))

    def search(self, query: str, limit: int = 10, name: str | None = None
               ) -> list[tuple[str, bytes, float]]:
        """The ``limit`` best matches as (tree name, key, BM25 score), best first."""
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"limit must be an int, not {type(limit).__name__}")
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        out = []
        if limit == 0:
            return out
        for hit in self.iter_search(query, name):
            out.append(hit)
            if len(out) >= limit:
                break
        return out
