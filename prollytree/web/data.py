"""What every page shows, as JSON-ready dicts, computed from :class:`VersionedKvStore`'s
public methods only. The HTML pages render these same dicts (``app.py``), so the JSON API
and the pages never disagree.

Shapes follow ``git-prolly --json`` (``prollytree/cli``): a commit is ``commit_json``, a
change is ``diff_json``; a key or value is a UTF-8 string field (``"key"``) or, when its
bytes are not UTF-8, a base64 field with a ``_b64`` suffix (``"key_b64"``).

Costs: listing keys is a range scan from a start key (O(depth + page)), never a scan
of every key; diffs stream the structural diff (cost grows with the differences read).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any, Iterator

from prollytree.cli.dataset import ref_labels
from prollytree.cli.app import commit_json, diff_json
from prollytree.cli.output import put_bytes, show
from prollytree.errors import ProofError, UnknownRefError
from prollytree.tree import prefix_end, proven_value

from .graph import layout, topo_order
from .params import MAX_LIMIT, BadRequest, NotFound, key_query
from .render import VIEW_BYTES, file_size, render_value

COUNT_CAP = 2_000         #: changes counted inline on a commit page before deferring
SCAN_BUDGET = 2_000       #: keys a later diff page may walk before the structural diff


# -- the dataset ------------------------------------------------------------------------------


class Dataset:
    """The store a web app serves, with a small cache of read-only trees per commit id
    (commits are immutable, so a cached tree never goes stale)."""

    def __init__(self, store: Any, write: bool = False) -> None:
        self.store = store
        self.write = write
        self._trees: OrderedDict[str, Any] = OrderedDict()
        self._counts: OrderedDict[tuple, dict] = OrderedDict()    # exact counts
        self._partial: OrderedDict[tuple, dict] = OrderedDict()   # counted to the cap
        self._ids: OrderedDict[str, bool] = OrderedDict()         # full ids seen

    def resolve(self, ref: str) -> str:
        """The commit id ``ref`` names; NotFound (404) when it names none. A full commit
        id resolved once is remembered (commits are immutable): pages link to commits by
        full id, and resolving one can walk the history."""
        if ref in self._ids:
            return ref
        try:
            cid = self.store.resolve_ref(ref)
        except UnknownRefError as e:
            raise NotFound(str(e)) from None
        if ref == cid:
            self._ids[cid] = True
            if len(self._ids) > 4096:
                self._ids.popitem(last=False)
        return cid

    def tree(self, cid: str, name: str = ""):
        """The read-only tree ``name`` of commit ``cid`` (empty when absent there)."""
        t = self._trees.get((cid, name))
        if t is None:
            t = self.store.tree_at(cid, name)
            self._trees[(cid, name)] = t
            if len(self._trees) > 16:
                self._trees.popitem(last=False)
        else:
            self._trees.move_to_end((cid, name))
        return t

    def trees(self, cid: str) -> list[str]:
        """Names of the named trees of commit ``cid`` (always with the default "")."""
        names = self.store.list_trees_at(cid)
        return names if "" in names else [""] + names

    def changed_trees(self, old: str | None, new: str) -> list[str]:
        """Trees whose root differs from commit ``old`` (None: nothing) to ``new``."""
        s = self.store
        names = set(self.store.list_trees_at(new))
        if old is not None:
            names |= set(s.list_trees_at(old))
        out = []
        for n in sorted(names, key=lambda n: n.encode("utf-8")):
            a = s.tree_root(n, old) if old is not None else None
            if a != s.tree_root(n, new) and not (a is None and _empty(self.tree(new, n))):
                out.append(n)
        return out

    def changes(self, old: str | None, new: str, name: str = "",
                after: bytes | None = None
                ) -> Iterator[tuple[bytes, bytes | None, bytes | None]]:
        """Key-ordered (key, old value, new value) of tree ``name`` from commit ``old``
        (None: the empty dataset) to commit ``new``, lazily. When either side is empty
        (a commit that added every key of a tree, or removed them all), the stream is a
        range scan starting after ``after``: a deep page of a commit that added a
        million keys costs what the first page does. A diff of two non-empty trees
        streams from its first difference (callers skip up to ``after``)."""
        start = None if after is None else after + b"\x00"
        if old is None or _empty(self.tree(old, name)):
            return ((k, None, v) for k, v in self.tree(new, name).items(start))
        if _empty(self.tree(new, name)):
            return ((k, v, None) for k, v in self.tree(old, name).items(start))
        return self.tree(old, name).changes(self.tree(new, name))

    def page_of_changes(self, old: str | None, new: str, name: str, after: bytes | None,
                        limit: int, prefix: bytes = b"") -> dict:
        """``{"rows", "next"}``: the first ``limit`` changes of tree ``name`` from commit
        ``old`` to ``new`` with key > ``after`` (and starting with ``prefix``), and the
        query parameters of the next page (None at the end).

        A later page of a diff of two non-empty trees first walks both trees side by side
        from ``after`` (a range scan, at most ``SCAN_BUDGET`` keys a page): when the
        differences there are dense - a commit that rewrote a million keys - the page
        costs what the first one does. When they are sparse, the structural diff (which
        skips identical subtrees) streams from the first difference instead."""
        if after is not None and old is not None:
            t_old, t_new = self.tree(old, name), self.tree(new, name)
            if not _empty(t_old) and not _empty(t_new):
                start = after + b"\x00"
                if prefix and start < prefix:
                    start = prefix
                end = prefix_end(prefix) if prefix else None
                rows = _scan_changes(t_old, t_new, start, end, limit + 1,
                                     SCAN_BUDGET + 20 * limit)
                if rows is not None:
                    return {"rows": rows[:limit],
                            "next": _enc(rows[limit - 1][0]) if len(rows) > limit else None}
        stream = self.changes(old, new, name, after)
        if prefix:
            stream = _within(stream, prefix)
        return _page(stream, after, limit)

    # -- state for live updates -------------------------------------------------------------

    def state(self) -> dict:
        """The refs, HEAD and staged-change count, with a short token that changes when
        any of them does (pages compare tokens to know when to refresh)."""
        s = self.store
        refs = s.list_refs()
        head = s.current_commit()
        branch = s.current_branch()
        staged = len(s.tree_status())
        text = json.dumps([refs, head, branch, staged], sort_keys=True)
        token = hashlib.sha256(text.encode()).hexdigest()[:16]
        return {"token": token, "head": head, "branch": branch, "staged": staged,
                "refs": refs}

    # -- history ----------------------------------------------------------------------------

    def refs(self) -> dict:
        s = self.store
        refs = s.list_refs()
        branches = [{"name": r[len("refs/heads/"):], "id": c} for r, c in refs.items()
                    if r.startswith("refs/heads/")]
        tags = [{"name": r[len("refs/tags/"):], "id": c} for r, c in refs.items()
                if r.startswith("refs/tags/")]
        return {"current_branch": s.current_branch(), "head": s.current_commit(),
                "branches": branches, "tags": tags}

    def graph(self, limit: int) -> dict:
        """The newest ``limit`` commits reachable from any branch, tag or HEAD, children
        before parents, each with its lane (column) and the edges drawn to the next row."""
        s = self.store
        tips = [s.current_commit()] + list(s.list_refs().values())
        seen: dict[str, dict] = {}
        order = 0
        for tip in dict.fromkeys(tips):
            for c in s.log(tip, limit):
                if c["id"] not in seen:
                    seen[c["id"]] = dict(c, _seq=order)
                    order += 1
        commits = topo_order(seen, limit)
        labels = ref_labels(s)
        rows = layout(commits)
        for row in rows:
            row["labels"] = labels.get(row["commit"]["id"], [])
        return {"commits": rows, "limit": limit, "more": len(seen) > len(commits),
                "width": max((row["width"] for row in rows), default=1)}

    def log(self, ref: str, limit: int) -> list[dict]:
        cid = self.resolve(ref)
        return [commit_json(c) for c in self.store.log(cid, limit)]

    # -- a commit ---------------------------------------------------------------------------

    def commit(self, ref: str, after: bytes | None, limit: int, tree: str | None = ""
               ) -> dict:
        """A commit with the counts of keys it changed per named tree (against its first
        parent) and a page of the changed keys of tree ``tree`` (None: the default tree,
        or when the commit left it alone, the first tree it changed)."""
        cid = self.resolve(ref)
        c = self.store.commit_info(cid)
        doc = commit_json(c)
        doc["root"] = c["root"].hex()
        doc["labels"] = ref_labels(self.store).get(cid, [])
        parent = c["parents"][0] if c["parents"] else None
        changed = self.changed_trees(parent, cid)
        doc["trees"] = {n: self._counts.get((cid, n)) or self._partial.get((cid, n))
                        or self.counts(cid, n, cap=COUNT_CAP) for n in changed}
        doc["counts"] = doc["trees"].get("") or dict(_zero(), complete=True)
        if tree is None:
            tree = "" if "" in changed or not changed else changed[0]
        doc["tree"] = tree
        page = self.page_of_changes(parent, cid, tree, after, limit)
        doc["changes"] = [diff_json(_Change(*x)) for x in page["rows"]]
        doc["next"] = _with_tree(page["next"], tree)
        if doc["next"] is not None:
            doc["next"]["limit"] = limit
        return doc

    def counts(self, ref: str, tree: str = "", cap: int | None = None) -> dict:
        """{"added", "modified", "deleted", "complete"} of the keys of tree ``tree`` a
        commit changed against its first parent; with ``cap``, counting stops after
        ``cap`` changes (``complete`` False). Complete counts are cached per commit."""
        cid = self.resolve(ref)
        if (cid, tree) in self._counts:
            return self._counts[(cid, tree)]
        c = self.store.commit_info(cid)
        parent = c["parents"][0] if c["parents"] else None
        counts = dict(_zero(), complete=True)
        new_tree = self.tree(cid, tree)
        old_tree = None if parent is None else self.tree(parent, tree)
        if old_tree is None or _empty(old_tree) or _empty(new_tree):
            # every key added (or removed): the count is the tree's size, which the
            # root node holds (O(1)), so a commit that imported a million keys gets
            # exact counts on its page without reading them
            if old_tree is None or _empty(old_tree):
                counts["added"] = len(new_tree)
            else:
                counts["deleted"] = len(old_tree)
            self._counts[(cid, tree)] = counts
            return counts
        for n, (_, old, new) in enumerate(self.changes(parent, cid, tree)):
            if cap is not None and n >= cap:
                counts["complete"] = False
                # kept, so the commit's next pages do not count the same changes again
                self._partial[(cid, tree)] = counts
                if len(self._partial) > 256:
                    self._partial.popitem(last=False)
                return counts
            counts["added" if old is None else "deleted" if new is None else "modified"] += 1
        self._counts[(cid, tree)] = counts
        if len(self._counts) > 256:
            self._counts.popitem(last=False)
        return counts

    # -- browsing ---------------------------------------------------------------------------

    def keys(self, ref: str, prefix: bytes, after: bytes | None, before: bytes | None,
             limit: int, tree: str = "") -> dict:
        """A page of (key, value preview) at ``ref`` among keys starting with ``prefix``:
        the first ``limit`` keys greater than ``after``, or the last ``limit`` keys less
        than ``before``. A range scan: O(depth + limit) whatever the dataset size."""
        cid = self.resolve(ref)
        name = tree
        tree = self.tree(cid, name)
        lo = prefix or None
        hi = prefix_end(prefix) if prefix else None
        if before is not None:
            end = before if hi is None or before < hi else hi
            got = _take(tree.items(lo, end, reverse=True), limit + 1)
            has_prev = len(got) > limit
            rows = list(reversed(got[:limit]))
            has_next = True
        else:
            start = lo
            if after is not None:
                nxt = after + b"\x00"
                start = nxt if lo is None or nxt > lo else lo
            got = _take(tree.items(start, hi), limit + 1)
            has_next = len(got) > limit
            rows = got[:limit]
            has_prev = after is not None
        items = []
        for k, v in rows:
            d = put_bytes({}, "key", k)
            d["size"] = len(v)
            d["preview"] = show(v[:120]) + ("…" if len(v) > 120 else "")
            items.append(d)
        out = {"ref": ref, "commit": cid, "tree": name, "trees": self.trees(cid),
               "items": items}
        put_bytes(out, "prefix", prefix)
        base = {"ref": ref, "limit": limit}
        if name:
            base["tree"] = name
        if prefix:
            base.update(key_query(prefix, "prefix"))
        # query parameters of the neighbouring pages (None at either end)
        out["prev"] = dict(base, **key_query(rows[0][0], "before")) \
            if rows and has_prev else None
        out["next"] = dict(base, **key_query(rows[-1][0], "after")) \
            if rows and has_next else None
        return out

    def value(self, ref: str, key: bytes, tree: str = "") -> dict:
        """The value viewer's document: size, kind and view of ``key``'s value. Reads
        only the part shown (a chunked value's first chunks), whatever its size."""
        cid = self.resolve(ref)
        with self.raw(ref, key, tree) as r:
            size = file_size(r)
            head = r.read(VIEW_BYTES + 1)
        d = {"ref": ref, "commit": cid, "tree": tree}
        put_bytes(d, "key", key)
        d["size"] = size
        d.update(render_value(head, size))
        return d

    def raw(self, ref: str, key: bytes, tree: str = ""):
        """A seekable binary file of ``key``'s value at ``ref`` (:func:`file_size`),
        read chunk by chunk (:meth:`ProllyTree.open_value`): a large value is streamed,
        never held whole. NotFound when the key is absent."""
        cid = self.resolve(ref)
        try:
            return self.tree(cid, tree).open_value(key)
        except KeyError:
            raise NotFound(f"key {show(key)} is not in {_where(tree)}{ref} ({cid[:12]})") \
                from None

    def key_history(self, key: bytes, limit: int, tree: str = "", ref: str = "HEAD") -> dict:
        """Commits reachable from ``ref`` that changed ``key`` (newest first), with the
        value before (first parent) and after each. A commit changed the key when its
        value differs from the value in every parent (a root commit: when the key
        exists), as :meth:`VersionedKvStore.get_commits_for_key` counts it. Costs one
        commit read per commit reachable from ``ref`` and one lookup per distinct root
        of the tree."""
        s = self.store
        cid = self.resolve(ref)
        commits = s.log(cid)
        roots: dict[str, bytes | None] = {}
        values: dict[bytes | None, bytes | None] = {None: None}

        def value(commit: str) -> bytes | None:
            root = roots.get(commit, b"")
            if root == b"":
                root = roots[commit] = s.tree_root(tree, commit)
            if root not in values:
                # not through self.tree: a long history would flush that cache
                values[root] = s.tree_at(commit, tree).find(key)
            return values[root]

        changed = []
        for c in commits:
            v = value(c["id"])
            if c["parents"]:
                if all(value(p) != v for p in c["parents"]):
                    changed.append(c)
            elif v is not None:
                changed.append(c)
        rows = []
        for c in changed[:limit]:
            new = value(c["id"])
            old = value(c["parents"][0]) if c["parents"] else None
            d = commit_json(c)
            d["change"] = "added" if old is None else "deleted" if new is None else "modified"
            put_bytes(d, "old", _clip(old))
            put_bytes(d, "new", _clip(new))
            d["old_size"] = None if old is None else len(old)
            d["new_size"] = None if new is None else len(new)
            rows.append(d)
        out = put_bytes({}, "key", key)
        out.update({"ref": ref, "commit": cid, "tree": tree, "commits": rows,
                    "total": len(changed)})
        return out

    # -- diff and merge ---------------------------------------------------------------------

    def diff(self, from_ref: str, to_ref: str, prefix: bytes, after: bytes | None,
             limit: int, tree: str = "") -> dict:
        """A page of the structural diff of tree ``tree`` between two refs, and the
        names of every tree that differs."""
        a, b = self.resolve(from_ref), self.resolve(to_ref)
        page = self.page_of_changes(a, b, tree, after, limit, prefix)
        out = {"from": from_ref, "to": to_ref, "from_id": a, "to_id": b, "tree": tree,
               "changed_trees": self.changed_trees(a, b),
               "changes": [diff_json(_Change(*x)) for x in page["rows"]]}
        put_bytes(out, "prefix", prefix)
        nxt = None
        if page["next"] is not None:
            nxt = {"from": from_ref, "to": to_ref, "limit": limit}
            if tree:
                nxt["tree"] = tree
            if prefix:
                nxt.update(key_query(prefix, "prefix"))
            nxt.update(page["next"])
        out["next"] = nxt
        return out

    def merge_preview(self, source: str, dest: str, limit: int) -> dict:
        """What merging ``source`` into ``dest`` would do, without doing it: the kind
        (up to date, fast-forward, merge), the changes it brings to ``dest`` and the
        conflicting keys, in every named tree the source changed. Computed from the
        structural diff merge-base..source and a lookup of each of its keys in
        ``dest``."""
        s = self.store
        src, dst = self.resolve(source), self.resolve(dest)
        base = s.merge_base(src, dst)
        out = {"source": source, "dest": dest, "source_id": src, "dest_id": dst,
               "base_id": base}
        if src == dst or base == src:
            out.update(kind="up-to-date", changes=[], conflicts=[], counts=_zero())
            return out
        changes, conflicts = [], []
        counts = _zero()
        counts["conflicts"] = 0
        for name in self.changed_trees(base, src):
            self._merge_tree(name, base, dst, src, changes, conflicts, counts, limit)
        out.update(kind="fast-forward" if base == dst else "merge", changes=changes,
                   conflicts=conflicts, counts=counts)
        return out

    def _merge_tree(self, name: str, base: str | None, dst: str, src: str, changes: list,
                    conflicts: list, counts: dict, limit: int) -> None:
        """Classify each key the source changed since the base by its value in the
        destination: unchanged there (the merge applies the source's change), changed
        the same way (nothing to do), or changed otherwise (a conflict). Costs one lookup
        per source change, whatever the destination changed."""
        dest = self.tree(dst, name)
        for key, old, new in self.changes(base, src, name):
            d = dest.find(key)
            if d == new:
                continue
            if d == old:
                counts["added" if old is None else "deleted" if new is None
                       else "modified"] += 1
                if len(changes) < limit:
                    changes.append(dict(diff_json(_Change(key, old, new)), tree=name))
                continue
            counts["conflicts"] += 1
            if len(conflicts) < limit:
                c = put_bytes({"tree": name}, "key", key)
                put_bytes(c, "base", _clip(old))
                put_bytes(c, "source", _clip(new))
                put_bytes(c, "dest", _clip(d))
                conflicts.append(c)

    # -- proofs -----------------------------------------------------------------------------

    def proof(self, ref: str, key: bytes, tree: str = "") -> dict:
        """The CLI's proof document (``git-prolly proof``) plus the proof as hex; the
        root is the root of tree ``tree`` at ``ref``."""
        import base64
        cid = self.resolve(ref)
        name = tree
        tree = self.tree(cid, name)
        value = tree.find(key)
        proof = tree.generate_proof(key)
        doc = {"format": "prollytree-proof", "version": 1, "commit": cid,
               "root": tree.get_root_hash().hex(), "tree": name}
        put_bytes(doc, "key", key)
        doc["present"] = value is not None
        put_bytes(doc, "value", _clip(value))
        doc["proof"] = base64.b64encode(proof).decode("ascii")
        doc["proof_hex"] = proof.hex()
        doc["size"] = len(proof)
        return doc

    def verify(self, root_hex: str, proof_text: str, key: bytes,
               expected: bytes | None) -> dict:
        """Check a proof (hex, base64, or the JSON document of ``git-prolly proof``)
        against a root hash with :func:`prollytree.proven_value`."""
        root_hex = root_hex.strip()
        try:
            root = bytes.fromhex(root_hex)
            if len(root) != 32:
                raise ValueError
        except ValueError:
            raise BadRequest(f"root must be 64 hex digits, got {root_hex[:80]!r}") from None
        proof = _proof_bytes(proof_text)
        reason = None
        try:
            proven = proven_value(root, proof, key)
        except ProofError as e:
            proven, reason = None, str(e)
        if reason is None and expected is not None and proven != expected:
            reason = ("the proof shows the key absent" if proven is None
                      else f"the proof shows another value: {show(_clip(proven))}")
        d = {"valid": reason is None, "root": root.hex()}
        put_bytes(d, "key", key)
        d["present"] = proven is not None if reason is None else None
        put_bytes(d, "value", _clip(proven) if reason is None else None)
        d["reason"] = reason
        return d

    # -- staged changes (write mode) ---------------------------------------------------------

    def status(self) -> dict:
        """The staged changes of every tree (at most MAX_LIMIT), with the staged value."""
        s = self.store
        rows = []
        for tree, k, what in s.tree_status()[:MAX_LIMIT]:
            d = {"tree": tree, "change": what}
            if k is None:           # a named tree created or dropped
                d.update(key=None, value=None)
                rows.append(d)
                continue
            put_bytes(d, "key", k)
            v = None if what == "deleted" else (s.tree(tree).get(k) if tree else s.get(k))
            put_bytes(d, "value", _clip(v))
            rows.append(d)
        return {"branch": s.current_branch(), "head": s.current_commit(),
                "staged": rows, "write": self.write}


# -- helpers ----------------------------------------------------------------------------------


class _Change:
    """Adapter: (key, old, new) with the attributes ``diff_json`` reads."""
    __slots__ = ("key", "old_value", "new_value")

    def __init__(self, key: bytes, old: bytes | None, new: bytes | None) -> None:
        self.key, self.old_value, self.new_value = key, _clip(old), _clip(new)


def _within(stream: Iterator[tuple], prefix: bytes) -> Iterator[tuple]:
    """The items of a key-ordered stream whose key starts with ``prefix``."""
    hi = prefix_end(prefix)
    for x in stream:
        if hi is not None and x[0] >= hi:
            return
        if x[0] >= prefix:
            yield x


def _page(stream: Iterator[tuple], after: bytes | None, limit: int) -> dict:
    """The first ``limit`` items of a key-ordered stream with key > ``after``, and the
    key to continue after (None at the end)."""
    rows = []
    for x in stream:
        if after is not None and x[0] <= after:
            continue
        if len(rows) == limit:
            return {"rows": rows, "next": _enc(rows[-1][0])}
        rows.append(x)
    return {"rows": rows, "next": None}


def _scan_changes(old: Any, new: Any, start: bytes, end: bytes | None, n: int,
                  budget: int) -> list | None:
    """The first ``n`` (key, old, new) differences between two trees in [start, end),
    found by walking both trees' items side by side; None when that reads more than
    ``budget`` keys first (the differences are sparse: the structural diff is cheaper)."""
    a, b = old.items(start, end), new.items(start, end)
    x, y = next(a, None), next(b, None)
    rows: list = []
    read = 0
    while (x is not None or y is not None) and len(rows) < n:
        read += 1
        if read > budget:
            return None
        if y is None or (x is not None and x[0] < y[0]):
            rows.append((x[0], x[1], None))
            x = next(a, None)
        elif x is None or y[0] < x[0]:
            rows.append((y[0], None, y[1]))
            y = next(b, None)
        else:
            if x[1] != y[1]:
                rows.append((x[0], x[1], y[1]))
            x, y = next(a, None), next(b, None)
    return rows


def _take(it: Iterator, n: int) -> list:
    out = []
    for x in it:
        out.append(x)
        if len(out) >= n:
            break
    return out


def _enc(key: bytes) -> dict:
    """A key as query parameters (``key`` text or ``key_hex``), for "next page" links."""
    return key_query(key, "after")


def _clip(v: bytes | None, n: int = VIEW_BYTES) -> bytes | None:
    return v if v is None or len(v) <= n else v[:n]


def _where(tree: str) -> str:
    return f"tree {tree!r} of " if tree else ""


def _with_tree(params: dict | None, tree: str) -> dict | None:
    return params if params is None or not tree else dict(params, tree=tree)



def _empty(tree: Any) -> bool:
    # the size the root node holds (O(1)); not first(), which reads the first value
    # (a 5 MB value read and hashed on every commit page)
    return len(tree) == 0


def _zero() -> dict:
    return {"added": 0, "modified": 0, "deleted": 0}


def _proof_bytes(text: str) -> bytes:
    import base64
    import binascii
    text = text.strip()
    if not text:
        raise BadRequest("the proof is empty")
    if text.startswith("{"):
        try:
            doc = json.loads(text)
            return base64.b64decode(doc["proof"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise BadRequest("the proof document is not a git-prolly proof "
                             "(JSON with a base64 'proof' field)") from None
    compact = "".join(text.split())
    try:
        return bytes.fromhex(compact)
    except ValueError:
        pass
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("the proof must be hex, base64 or a git-prolly proof "
                         "document") from None
