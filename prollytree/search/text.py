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

    def _full_ranks(self, expr: str, rids: list[int]) -> dict[int, float]:
        """FTS5's bm25 (negative: lower is better) of ``expr`` for these documents."""
        out: dict[int, float] = {}
        for i in range(0, len(rids), 500):
            chunk = rids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(self._db.execute(
                f"SELECT rowid, rank FROM fts WHERE fts MATCH ? AND rowid IN ({marks})",
                (expr, *chunk)).fetchall())
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
        # A term in at least half of the documents has BM25 IDF <= 0, which FTS5 floors
        # to 1e-6: it barely moves a score, but makes FTS5 score every document that has
        # it. So rank by the rarer terms, and add the common terms' (bounded) part.
        common = [t for t in present if 2 * dfs[t][0][0] >= n]
        rare = [t for t in present if 2 * dfs[t][0][0] < n]
        full = self._expr(present)
        if not common or not rare:
            yield from self._plain(full, name)
            return
        bound_common = 1e-6 * (1.2 + 1) * len(common)  # idf floor x max tf factor
        yield from self._split(full, self._expr(rare), self._expr(common), bound_common, name)

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

    def _split(self, full: str, rare: str, common: str, bound_common: float,
               name: str | None) -> Iterator[tuple[str, bytes, float]]:
        """Exact BM25 ranking of ``full`` = ``rare`` OR ``common``: candidates come in
        order of their rare-term score; a candidate's full score is at most its rare
        score + ``bound_common``, so the best fetched one is final once it beats the
        next rare score + that bound. Documents with only common terms come last."""
        import heapq
        db = self._db
        heap: list[tuple[float, str, bytes]] = []
        seen: set[int] = set()
        limit = 16
        while True:
            with self._lock:
                rows = db.execute("SELECT rowid, rank FROM fts WHERE fts MATCH ? "
                                  "ORDER BY rank LIMIT ?", (rare, limit)).fetchall()
                new = [r for r, _ in rows if r not in seen]
                seen.update(new)
                docs = self._docs(new, name)
                ranks = self._full_ranks(full, list(docs))
            for rid, (nm, k) in docs.items():
                heapq.heappush(heap, (ranks[rid], nm, k))
            exhausted = len(rows) < limit
            # no unfetched document scores above this (strictly: ties wait, keys order them)
            bound = bound_common + (0.0 if exhausted else -rows[-1][1])
            while heap and -heap[0][0] > bound:
                rank, nm, k = heapq.heappop(heap)
                yield nm, k, -rank
            if exhausted:
                break
            limit *= 4
        # the rest: what is left of the rare matches, and the documents with only
        # common terms (scored by the full expression, like every other)
        with self._lock:
            rids = [r for r, in db.execute(
                "SELECT rowid FROM fts WHERE fts MATCH ?",
                (f"({common}) NOT ({rare})",)).fetchall()]
            docs = self._docs(rids, name)
            ranks = self._full_ranks(full, list(docs))
        for rid, (nm, k) in docs.items():
            heapq.heappush(heap, (ranks[rid], nm, k))
        while heap:
            rank, nm, k = heapq.heappop(heap)
            yield nm, k, -rank

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
