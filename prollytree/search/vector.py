"""Nearest-neighbour search (cosine) over embedded tree entries: exact with numpy for
small sets, approximate (usearch HNSW) for large ones."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Sequence

import numpy as np

from .derived import DerivedIndex, Document, utf8_document
from .embedders import check_vectors, embedder_identity

#: below this many vectors search is exact (a matrix product); above it, usearch HNSW
DEFAULT_EXACT_LIMIT = 20_000
#: vectors changed since the HNSW graph was built are searched exactly until they exceed
#: this many (and 1/16 of the index); then they are folded into the graph
FOLD_MIN = 2048


def _dot(m: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``m @ q`` without BLAS: a matrix-vector product is memory-bound, and a threaded
    BLAS spin-waiting on a busy machine made it 10-50x slower (measured)."""
    return np.einsum("ij,j->i", m, q)


class VectorIndex(DerivedIndex):
    """Cosine-similarity search over tree entries embedded by ``embedder`` (see
    :mod:`prollytree.search.embedders`). A derived cache like
    :class:`~prollytree.search.TextIndex`: :meth:`sync` with a tree, then :meth:`search`.

    The vectors live in the SQLite file (so reopening embeds nothing); an entry whose text
    did not change is not embedded again. Search is exact while the index holds at most
    ``exact_limit`` vectors, approximate (usearch HNSW, recall@10 typically > 0.95)
    above. The file records the embedder's id, version and dim, and opening it with
    another embedder raises :class:`~prollytree.search.IndexMismatchError`."""

    KIND = "vector"

    def __init__(self, path: str | os.PathLike | None = None, *, embedder: Any,
                 document: Document = utf8_document,
                 exact_limit: int = DEFAULT_EXACT_LIMIT) -> None:
        self._eid, self._ever, self._dim = embedder_identity(embedder)
        if isinstance(exact_limit, bool) or not isinstance(exact_limit, int):
            raise TypeError(f"exact_limit must be an int, not {type(exact_limit).__name__}")
        if exact_limit < 0:
            raise ValueError(f"exact_limit must be >= 0, got {exact_limit}")
        self.embedder = embedder
        self.exact_limit = exact_limit
        self._loaded_gen: int | None = None
        self._ann: Any = None
        self._fresh: set[int] = set()
        self._stale: set[int] = set()
        self._n = 0
        super().__init__(path, document=document)

    def _identity(self) -> dict[str, Any]:
        return {"embedder_id": self._eid, "embedder_version": self._ever, "dim": self._dim}

    def _create_tables(self) -> None:
        self._db.execute("CREATE TABLE IF NOT EXISTS vecs(id INTEGER PRIMARY KEY, "
                         "name TEXT NOT NULL, key BLOB NOT NULL, th BLOB NOT NULL, "
                         "vec BLOB NOT NULL, UNIQUE(name, key))")

    @property
    def dim(self) -> int:
        return self._dim

    # -- writes ------------------------------------------------------------------------------

    def _apply(self, name: str, changes: dict[bytes, str | None]) -> None:
        db = self._db
        # the in-memory mirror can follow this write only if it reflects the state
        # just before it (another process may have written since it was loaded)
        gen = self.generation()
        fresh = self._loaded_gen is not None and gen == self._loaded_gen
        self._pending_gen = gen + 1  # what sync() makes it
        ops: list[tuple[int, str, bytes, np.ndarray | None]] = []
        todo: list[tuple[int | None, bytes, str, bytes]] = []
        for key, text in changes.items():
            row = db.execute("SELECT id, th FROM vecs WHERE name=? AND key=?",
                             (name, key)).fetchall()
            if text is None:
                if row:
                    db.execute("DELETE FROM vecs WHERE id=?", (row[0][0],))
                    ops.append((row[0][0], name, key, None))
                continue
            th = hashlib.blake2b(text.encode(), digest_size=16).digest()
            if row and row[0][1] == th:
                continue  # same text, same vector: nothing to embed
            todo.append((row[0][0] if row else None, key, text, th))
        for i in range(0, len(todo), 256):
            batch = todo[i:i + 256]
            vecs = check_vectors(self.embedder.embed([t for _, _, t, _ in batch]), len(batch),
                                 self._dim, repr(self._eid))
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            vecs = (vecs / np.where(norms > 0, norms, 1)).astype(np.float32)
            for j, (rid, key, _, th) in enumerate(batch):
                blob = vecs[j].tobytes()
                if rid is None:
                    db.execute("INSERT INTO vecs(name, key, th, vec) VALUES (?, ?, ?, ?)",
                               (name, key, th, blob))
                    rid = db.last_insert_rowid()
                else:
                    db.execute("UPDATE vecs SET th=?, vec=? WHERE id=?", (th, blob, rid))
                ops.append((rid, name, key, vecs[j]))
        self._pending = ops if fresh else None

    def _drop(self, name: str) -> None:
        self._db.execute("DELETE FROM vecs WHERE name=?", (name,))
        self._pending = None  # many rows at once: reload

    def _after_write(self, committed: bool) -> None:
        ops, self._pending = getattr(self, "_pending", None), None
        if not committed or ops is None or self._loaded_gen is None:
            self._loaded_gen = None  # reload the mirror on the next search
            return
        for rid, name, key, vec in ops:
            self._mirror_put(rid, name, key, vec)
        self._loaded_gen = self._pending_gen

    # -- the in-memory mirror: row pos <-> SQLite id; usearch keys are the ids ----------------

    def _mirror_put(self, rid: int, name: str, key: bytes, vec: np.ndarray | None) -> None:
        pos = self._pos.get(rid)
        if self._ann is not None:
            # the HNSW graph is not touched here (an insert there costs milliseconds):
            # its entry for rid is outdated, and the new vector is searched exactly
            # among the "fresh" ones until the next fold (see _fold)
            if pos is not None and rid not in self._fresh:
                self._stale.add(rid)
            self._fresh.discard(rid)
            if vec is not None:
                self._fresh.add(rid)
        if vec is None:
            if pos is None:
                return
            del self._pos[rid]
            last = self._n - 1
            if pos != last:  # move the last row into the hole
                moved = self._ids[last]
                self._mat[pos] = self._mat[last]
                self._ids[pos], self._names[pos], self._keys[pos] = \
                    moved, self._names[last], self._keys[last]
                self._pos[moved] = pos
            self._ids.pop()
            self._names.pop()
            self._keys.pop()
            self._n = last
            return
        if pos is None:
            if self._n == len(self._buf):
                grown = np.zeros((max(64, 2 * len(self._buf)), self._dim), dtype=np.float32)
                grown[:self._n] = self._buf[:self._n]
                self._buf = grown
            pos = self._n
            self._n += 1
            self._ids.append(rid)
            self._names.append(name)
            self._keys.append(key)
            self._pos[rid] = pos
        self._buf[pos] = vec

    @property
    def _mat(self) -> np.ndarray:
        return self._buf[:self._n]

    def _load(self) -> None:
        gen = self.generation()
        if gen == self._loaded_gen:
            if self._ann is None and self._n > self.exact_limit:
                self._build_ann()
            elif self._ann is not None and \
                    len(self._fresh) + len(self._stale) > max(FOLD_MIN, self._n // 16):
                self._fold()
            return
        rows = self._db.execute("SELECT id, name, key, vec FROM vecs ORDER BY id").fetchall()
        self._ids = [r[0] for r in rows]
        self._names = [r[1] for r in rows]
        self._keys = [r[2] for r in rows]
        self._pos = {rid: i for i, rid in enumerate(self._ids)}
        self._n = len(rows)
        self._buf = np.zeros((max(64, self._n + self._n // 4), self._dim), dtype=np.float32)
        if rows:
            self._buf[:self._n] = np.frombuffer(b"".join(r[3] for r in rows),
                                                dtype=np.float32).reshape(self._n, self._dim)
        self._ann = None
        if self._n > self.exact_limit:
            self._build_ann()
        self._loaded_gen = gen

    def _build_ann(self) -> None:
        try:
            from usearch.index import Index
        except ImportError:  # pragma: no cover - depends on the extra
            return  # exact search still answers, only slower
        # int8 quantised graph: several times faster to build than f32 for the same
        # recall once candidates are re-ranked with the exact float32 vectors
        ann = Index(ndim=self._dim, metric="cos", dtype="i8", connectivity=16,
                    expansion_add=64, expansion_search=96)
        if self._n:
            ann.add(np.asarray(self._ids, dtype=np.uint64), self._mat)
        self._ann = ann
        self._fresh: set[int] = set()
        self._stale: set[int] = set()

    def _fold(self) -> None:
        """Move the fresh vectors into the HNSW graph and drop the stale entries
        (amortised: done when they exceed 1/16 of the index)."""
        ann = self._ann
        if self._stale:
            ann.remove(np.fromiter(self._stale, dtype=np.uint64))
        fresh = [rid for rid in self._fresh if rid in self._pos]
        if fresh:
            ann.add(np.asarray(fresh, dtype=np.uint64),
                    self._buf[[self._pos[r] for r in fresh]])
        self._fresh, self._stale = set(), set()

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM vecs").fetchall()[0][0]

    # -- search --------------------------------------------------------------------------------

    def query_vector(self, query: str | Sequence[float] | np.ndarray) -> np.ndarray:
        """``query`` as a unit vector: a text is embedded, a vector checked for ``dim``."""
        if isinstance(query, str):
            v = check_vectors(self.embedder.embed([query]), 1, self._dim, repr(self._eid))[0]
        elif isinstance(query, bytes):
            raise TypeError("query must be a str or a vector, not bytes")
        else:
            try:
                v = np.asarray(query, dtype=np.float32).reshape(-1)
            except (TypeError, ValueError):
                raise TypeError("query must be a str or a sequence of floats") from None
            if v.shape != (self._dim,):
                raise ValueError(f"query vector has {v.size} dimensions, the index {self._dim}")
            if not np.all(np.isfinite(v)):
                raise ValueError("query vector has non-finite values")
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else v

    def search(self, query: str | Sequence[float] | np.ndarray, k: int = 10, *,
               name: str | None = None,
               where: Callable[[str, bytes], bool] | None = None,
               exact: bool | None = None) -> list[tuple[str, bytes, float]]:
        """The ``k`` entries most similar to ``query`` (a text, embedded, or a vector) as
        (tree name, key, cosine similarity), best first. ``name`` restricts to one tree,
        ``where(name, key)`` filters. ``exact`` forces (True) or forbids (False) the
        exact scan; by default it is used up to ``exact_limit`` vectors. Exact: O(n x dim);
        approximate: about O(log n x dim), falling back to exact when filters leave too
        few of the approximate candidates."""
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be an int, not {type(k).__name__}")
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        if where is not None and not callable(where):
            raise TypeError("where must be callable (name, key) -> bool")
        q = self.query_vector(query)
        with self._lock:
            return self._search(q, k, name, where, exact)

    def _search(self, q: np.ndarray, k: int, name: str | None,
                where: Callable[[str, bytes], bool] | None, exact: bool | None
                ) -> list[tuple[str, bytes, float]]:
        self._load()
        n = self._n
        if k == 0 or n == 0:
            return []

        def ok(i: int) -> bool:
            return ((name is None or self._names[i] == name)
                    and (where is None or where(self._names[i], self._keys[i])))

        if exact is not True and self._ann is not None:
            # candidates: the graph's (minus outdated entries) and every fresh vector,
            # re-ranked by their exact float32 scores
            want = max(2 * k, 16) if name is None and where is None else 8 * k
            in_graph = len(self._ann)
            found = self._ann.search(q, min(in_graph, want + len(self._stale)))
            stale, pos = self._stale, self._pos
            cand = {pos[r] for r in map(int, found.keys) if r not in stale and r in pos}
            cand.update(pos[r] for r in self._fresh)
            cand = np.fromiter(cand, dtype=np.int64, count=len(cand))
            cs = _dot(self._buf[cand], q)
            out = []
            for j in np.lexsort((cand, -cs)):
                i = int(cand[j])
                if ok(i):
                    out.append((self._names[i], self._keys[i], float(cs[j])))
                    if len(out) == k:
                        return out
            if len(found.keys) >= in_graph:
                return out  # every vector was a candidate
        scores = _dot(self._mat, q)
        # the best few by a partial sort; all of them (a full sort) only when filters
        # leave too few among those
        head = min(n, max(4 * k, 64))
        order = (np.argpartition(-scores, head - 1)[:head] if head < n
                 else np.arange(n))
        order = order[np.lexsort((order, -scores[order]))]
        out = []
        for i in order:
            i = int(i)
            if ok(i):
                out.append((self._names[i], self._keys[i], float(scores[i])))
                if len(out) == k:
                    return out
        if head < n:
            out = []
            for i in np.lexsort((np.arange(n), -scores)):
                i = int(i)
                if ok(i):
                    out.append((self._names[i], self._keys[i], float(scores[i])))
                    if len(out) == k:
                        break
        return out
