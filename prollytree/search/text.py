"""Ranked full-text search (BM25) over the entries of trees, with SQLite FTS5 as engine."""

from __future__ import annotations

import hashlib
import re
from typing import Iterator

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
    FTS5 computes it). Terms found in at least half of the documents have an IDF <= 0;
    when the query also has rarer terms they are left out of the scores, and the
    documents having only them come last (ranked by them)."""

    KIND = "text"

    def _create_tables(self) -> None:
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS docs(id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                   "key BLOB NOT NULL, th BLOB NOT NULL, UNIQUE(name, key))")
        db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(body, "
                   "tokenize='unicode61 remove_diacritics 2')")
        # document frequencies per term (to split a query into rare and common terms)
        db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS fts_v USING fts5vocab(fts, 'row')")
        db.execute("INSERT OR IGNORE INTO meta VALUES ('ndocs', '0')")

    def _apply(self, name: str, changes: dict[bytes, str | None]) -> None:
        db = self._db
        delta = 0
        for key, text in changes.items():
            row = db.execute("SELECT id, th FROM docs WHERE name=? AND key=?",
                             (name, key)).fetchall()
            th = None if text is None else hashlib.blake2b(text.encode(), digest_size=16).digest()
            if row:
                rid = row[0][0]
                if text is None:
                    db.execute("DELETE FROM fts WHERE rowid=?", (rid,))
                    db.execute("DELETE FROM docs WHERE id=?", (rid,))
                    delta -= 1
                elif row[0][1] != th:
                    db.execute("UPDATE fts SET body=? WHERE rowid=?", (text, rid))
                    db.execute("UPDATE docs SET th=? WHERE id=?", (th, rid))
            elif text is not None:
                db.execute("INSERT INTO docs(name, key, th) VALUES (?, ?, ?)", (name, key, th))
                rid = db.last_insert_rowid()
                db.execute("INSERT INTO fts(rowid, body) VALUES (?, ?)", (rid, text))
                delta += 1
        if delta:
            db.execute("UPDATE meta SET v = CAST(v AS INTEGER) + ? WHERE k='ndocs'", (delta,))

    def _drop(self, name: str) -> None:
        db = self._db
        gone = db.execute("SELECT count(*) FROM docs WHERE name=?", (name,)).fetchall()[0][0]
        db.execute("DELETE FROM fts WHERE rowid IN (SELECT id FROM docs WHERE name=?)", (name,))
        db.execute("DELETE FROM docs WHERE name=?", (name,))
        db.execute("UPDATE meta SET v = CAST(v AS INTEGER) - ? WHERE k='ndocs'", (gone,))

    def __len__(self) -> int:
        """How many documents the index holds. O(1)."""
        return int(self._db.execute("SELECT v FROM meta WHERE k='ndocs'").fetchall()[0][0])

    def iter_search(self, query: str, name: str | None = None
                    ) -> Iterator[tuple[str, bytes, float]]:
        """Every matching document as (tree name, key, score), best first (score > 0;
        ties by tree name and key). ``name`` restricts to one tree. Scoring is over all
        documents of the index. Lazy: it asks FTS5 for the best 16 matches, then 64,
        256... (FTS5 scores every match, but sorts only a bounded number)."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        terms = query_terms(query)
        if not terms:
            return iter(())
        return self._ranked(terms, name)

    @staticmethod
    def _expr(terms: list[str]) -> str:
        return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)

    def _docs(self, rids: list[int], name: str | None) -> dict[int, tuple[str, bytes]]:
        out = {}
        for rid in rids:
            doc = self._db.execute("SELECT name, key FROM docs WHERE id=?", (rid,)).fetchall()
            if doc and (name is None or doc[0][0] == name):
                out[rid] = (doc[0][0], doc[0][1])
        return out

    def _ranked(self, terms: list[str], name: str | None
                ) -> Iterator[tuple[str, bytes, float]]:
        with self._lock:
            n = len(self)
            dfs = {t: self._db.execute("SELECT doc FROM fts_v WHERE term=?", (t,)).fetchall()
                   for t in terms}
        present = [t for t in terms if dfs[t] and dfs[t][0][0]]
        if not present:
            return
        # A term in at least half of the documents has a BM25 IDF <= 0 (FTS5 floors it
        # to 1e-6): it cannot tell documents apart, yet it would make FTS5 score every
        # document containing it. With rarer terms in the query, such terms are left out
        # of the scores (IDF clamped to 0), and documents having only them come after
        # all others, ranked by them.
        common = [t for t in present if 2 * dfs[t][0][0] >= n]
        rare = [t for t in present if 2 * dfs[t][0][0] < n]
        if not common or not rare:
            yield from self._plain(self._expr(present), name)
            return
        yield from self._plain(self._expr(rare), name)
        yield from self._plain(f"({self._expr(common)}) NOT ({self._expr(rare)})", name)

    def _plain(self, match: str, name: str | None) -> Iterator[tuple[str, bytes, float]]:
        db = self._db
        limit, done = 16, 0
        while True:
            with self._lock:
                rows = db.execute("SELECT rowid, rank FROM fts WHERE fts MATCH ? "
                                  "ORDER BY rank LIMIT ?", (match, limit)).fetchall()
            exhausted = len(rows) < limit
            if not exhausted:
                # keep whole groups of equal scores only: the rest of the last group may
                # lie beyond the limit, and ties are ordered by key
                last = rows[-1][1]
                cut = len(rows)
                while cut and rows[cut - 1][1] == last:
                    cut -= 1
                if cut == 0:
                    limit *= 4
                    continue
                rows = rows[:cut]
            with self._lock:
                docs = self._docs([r for r, _ in rows], name)
            hits = sorted((rank, *docs[rid]) for rid, rank in rows if rid in docs)
            for rank, nm, k in hits[done:]:
                yield nm, k, -rank
            done = max(done, len(hits))
            if exhausted:
                return
            limit *= 4

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
