"""Mirror trees: a prolly tree laid out as Git trees, so a commit reaches every node
(a mixin of :class:`~.git.GitNodeStore`).

A leaf is a blob (or, when it holds chunked large values, a tree of its bytes and its
chunks); an internal node is a Git tree holding a blob named ``node`` (the node's own
bytes) and one entry per child, named by a short hash of the child's first key.
Unchanged subtrees keep their Git tree ids, so a new root costs O(changed nodes) new
objects, and a Git index listing the blobs changes in a few entries per commit
(:meth:`MirrorMixin.index_changes`). :meth:`MirrorMixin.learn_mirror` teaches the node map
where the nodes of a mirror already in Git are (after ``git clone``).
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable, NamedTuple

from ..errors import StoreError
from ..git.objects import MODE_BLOB, MODE_TREE, git_raw_id, tree_layout
from ..git.pack import zlib_level

#: record kinds in the node map: the node's bytes as a blob / the node's mirror Git tree
KIND_BLOB = b"B"
KIND_TREE = b"T"
NODE_ENTRY = b"node"
#: entry names of this many internal nodes are kept (they cost a hash per child to make)
NAME_CACHE = 8192
#: tree bodies of this many mirror trees built are kept, to patch into the next version
LAYOUT_CACHE = 2048
_sha256 = hashlib.sha256
_blake2b = hashlib.blake2b


def child_entry_name(first_key: bytes, used: set) -> bytes:
    """Name of a child's entry in its parent's mirror tree: a short hash of the child's
    first key (stable while the first key is), de-duplicated within the parent."""
    name = _blake2b(first_key, digest_size=8).hexdigest().encode("ascii")
    if name in used:
        i = 1
        while name + b"-%d" % i in used:
            i += 1
        name = name + b"-%d" % i
    used.add(name)
    return name


def mirror_node_entry(body: bytes) -> bytes | None:
    """The 20-byte id of the ``node`` blob entry of a tree body, if it has one."""
    pos = 0
    n = len(body)
    while pos < n:
        sp = body.find(b" ", pos)
        nul = body.find(b"\0", sp + 1)
        if sp < 0 or nul < 0 or nul + 21 > n:
            return None
        if body[sp + 1:nul] == NODE_ENTRY and body[pos:sp] in (b"100644", b"644"):
            return body[nul + 1:nul + 21]
        pos = nul + 21
    return None


class Mirror(NamedTuple):
    """What :meth:`GitNodeStore.mirror` made: the top entry and the objects to write."""

    mode: int          #: MODE_TREE (internal root) or MODE_BLOB (leaf root)
    sha: bytes         #: 20-byte id of the top object
    objects: list      #: (kind, 20-byte id, body) of every object to write
    records: list      #: node-map records for them


class MirrorMixin:
    """Laying trees out as Git objects, and learning mirrors already in Git."""

    # -- mirror -----------------------------------------------------------------------------

    def entry_names(self, address: bytes, node) -> tuple:
        """Names of the children's entries in the mirror tree of internal node
        ``address`` (decoded as ``node``), in child order."""
        names = self._names.get(address)
        if names is None:
            used: set = set()
            names = tuple(child_entry_name(k, used) for k in node.keys)
            self._cache_names(address, names)
        return names

    def _cache_layout(self, address: bytes, layout: tuple) -> None:
        cache = self._layouts
        cache[address] = layout
        if len(cache) > LAYOUT_CACHE:
            cache.popitem(last=False)

    def _cache_names(self, address: bytes, names: tuple) -> None:
        cache = self._names
        cache[address] = names
        if len(cache) > NAME_CACHE:
            cache.popitem(last=False)

    def mirror(self, root: bytes, load: Callable[[bytes], object],
               raw: Callable[[bytes], bytes] | None = None,
               bases: Iterable[tuple[bytes, int]] = (),
               extra: Callable[[bytes], list | None] | None = None) -> Mirror:
        """Lay the tree under ``root`` out as Git objects.

        ``load(address)`` returns the decoded node (anything with ``level``, ``keys`` and
        ``vals``); ``raw(address)`` its bytes when the store lacks them (e.g. the empty
        tree, which a node cache knows without storing). ``bases`` are (root address,
        level) of trees whose mirrors are *in Git with everything under them* — the
        mirrors of the commits the new commit names as parents — and whose ids the node
        map holds (check with :meth:`known_id`).

        An entry is reused without writing only when it is the very entry a base has at
        the same path, so everything the result names is either in a base's mirror or
        in the returned objects: an object the map knows but that ``git gc`` deleted is
        written again. The work and the output grow with the nodes that differ from the
        bases along their paths.

        ``extra(leaf address)`` names the chunks a leaf's chunked values need (sorted),
        or None: such a leaf is laid out as a Git tree (see the module doc). A chunk
        already in Git (by the map, checked present) is named without being written
        again: the new commit then keeps it."""
        tree, blob, pending = self._tree, self._blob, self._pending
        present = self.present
        objects: list = []
        records: list = []
        made_blob: dict[bytes, bytes] = {}
        made_tree: dict[bytes, bytes] = {}
        names_of = self.entry_names
        layouts = self._layouts

        def base_load(addr: bytes):
            try:
                return load(addr)
            except (KeyError, ValueError):  # a base node we cannot read: not a base here
                return None

        def write_blob(addr: bytes, level: int = 1) -> bytes:
            # level: zlib level; 0 (stored) for internal nodes, whose bytes are mostly
            # addresses that deflate cannot shrink much (~0.8) but spends most time on
            sha = made_blob.get(addr)
            if sha is None:
                data = pending.get(addr)
                if data is None:
                    data = self._get(addr)
                    if data is None and raw is not None:
                        data = raw(addr)
                    if data is None:
                        raise StoreError(f"node {addr.hex()} is missing from the store")
                sha = git_raw_id(b"blob", data)
                objects.append((b"blob", sha, data, level and zlib_level(data, level)))
                records.append((KIND_BLOB, addr, sha))
                made_blob[addr] = sha
            return sha

        def chunk_blob(addr: bytes) -> bytes:
            sha = made_blob.get(addr)
            if sha is None and addr not in pending:
                known = blob.get(addr)
                if known is not None and present(known):
                    made_blob[addr] = sha = known
            return sha if sha is not None else write_blob(addr, 1)

        def leaf_tree(addr: bytes, chunks: list) -> bytes:
            sha = made_tree.get(addr)
            if sha is not None:
                return sha
            entries = [(NODE_ENTRY, MODE_BLOB, write_blob(addr), -1)]
            entries += [(c.hex().encode("ascii"), MODE_BLOB, chunk_blob(c), i)
                        for i, c in enumerate(chunks)]
            body = tree_layout(entries, True)[0]
            sha = git_raw_id(b"tree", body)
            objects.append((b"tree", sha, body, 0))
            records.append((KIND_TREE, addr, sha))
            made_tree[addr] = sha
            return sha

        def visit(addr: bytes, level: int, olds: list) -> bytes:
            # olds: (address, level) of the node each base has at this path
            if not level and extra is not None:
                chunks = extra(addr)
                if chunks:
                    for oaddr, olevel in olds:
                        if oaddr == addr and not olevel:
                            sha = tree.get(addr)
                            if sha is not None:
                                return sha
                    return leaf_tree(addr, chunks)
            for oaddr, _ in olds:
                if oaddr == addr:
                    sha = (tree if level else blob).get(addr)
                    if sha is not None:
                        return sha
                    break  # in a base but not mapped: build it (a duplicate is harmless)
            if not level:
                return write_blob(addr)
            sha = made_tree.get(addr)
            if sha is not None:
                return sha
            node = load(addr)
            names = None
            subs = []        # (names, child addresses, child level) of each base here
            like = None      # a base node with the same keys and level, its tree cached
            for oaddr, olevel in olds:
                if olevel:
                    on = base_load(oaddr)
                    if on is not None:
                        onames = names_of(oaddr, on)
                        if on.keys == node.keys:
                            if names is None:
                                names = onames  # names depend on the keys only
                            if like is None and olevel == level:
                                layout = layouts.get(oaddr)
                                if layout is not None:
                                    like = (on, layout)
                        subs.append((onames, on.vals, olevel - 1))
            if names is None:
                names = names_of(addr, node)
            else:
                self._cache_names(addr, names)
            clevel = level - 1
            dicts: list = []

            def olds_of(i: int, name: bytes) -> list:
                # the children the bases have at this child's path
                if not dicts:
                    dicts.extend((dict(zip(n, v)), lv) for n, v, lv in subs)
                out = []
                for d, lv in dicts:
                    oc = d.get(name)
                    if oc is not None:
                        out.append((oc, lv))
                return out

            leaf_trees = not clevel and extra is not None
            if leaf_trees:
                like = None  # a leaf's entry may be a blob or a tree: build the body
            if like is not None:
                # same names and modes as a base node whose tree this process built: copy
                # its body (entries equal to the base's are in Git) and patch the ids of
                # the children that differ, and of the node's own blob
                on, (obody, offsets, node_off) = like
                body = bytearray(obody)
                body[node_off:node_off + 20] = write_blob(addr, 0)
                for i, (child, oc) in enumerate(zip(node.vals, on.vals)):
                    if child != oc:
                        o = offsets[i]
                        body[o:o + 20] = visit(child, clevel, olds_of(i, names[i]))
                body = bytes(body)
            else:
                entries = [(NODE_ENTRY, MODE_BLOB, write_blob(addr, 0), -1)]
                cmode = MODE_TREE if clevel else MODE_BLOB
                known = tree if clevel else blob
                for i, (name, child) in enumerate(zip(names, node.vals)):
                    if leaf_trees:
                        csha = visit(child, 0, olds_of(i, name))
                        istree = child in made_tree or tree.get(child) == csha
                        entries.append((name, MODE_TREE if istree else MODE_BLOB, csha, i))
                        continue
                    csha = None
                    for n, v, lv in subs:
                        if len(v) > i and v[i] == child and n[i] == name:
                            csha = known.get(child)  # the very entry a base has here
                            break
                    else:
                        for oc, lv in olds_of(i, name):
                            if oc == child:
                                csha = known.get(child)
                                break
                    if csha is None:
                        csha = visit(child, clevel, olds_of(i, name))
                    entries.append((name, cmode, csha, i))
                # bytes order is Git's unless a tree entry's name is a prefix of another's
                body, offsets, node_off = tree_layout(
                    entries, (not clevel and not (leaf_trees and any(
                        e[1] == MODE_TREE for e in entries)))
                    or not any(len(n) != 16 for n in names))
            self._cache_layout(addr, (body, offsets, node_off))
            sha = git_raw_id(b"tree", body)
            objects.append((b"tree", sha, body, 0))
            records.append((KIND_TREE, addr, sha))
            made_tree[addr] = sha
            return sha

        level = load(root).level
        sha = visit(root, level, [(a, lv) for a, lv in bases])
        is_tree = level or made_tree.get(root) == sha or tree.get(root) == sha
        return Mirror(MODE_TREE if is_tree else MODE_BLOB, sha, objects, records)

    def blob_sha(self, address: bytes, raw: Callable[[bytes], bytes] | None = None) -> bytes:
        """20-byte blob id of node ``address`` (from the map, else from its bytes)."""
        sha = self._blob.get(address)
        if sha is None:
            data = self._get(address)
            if data is None and raw is not None:
                data = raw(address)
            if data is None:
                raise StoreError(f"node {address.hex()} is missing from the store")
            sha = git_raw_id(b"blob", data)
        return sha

    def index_changes(self, old: tuple[bytes, int] | None, new: tuple[bytes, int] | None,
                      load: Callable[[bytes], object], top: bytes = b"tree",
                      raw: Callable[[bytes], bytes] | None = None,
                      extra: Callable[[bytes], list | None] | None = None) -> list:
        """How the list of blobs (the files a Git index lists) changes from the mirror of
        ``old`` to that of ``new`` ((root address, level) or None), both laid out at
        path ``top``: a list of (path, MODE_BLOB, 20-byte id) to add or replace and
        (path, 0, None) to remove. Identical subtrees at the same path are skipped, so
        the cost grows with the differences."""
        out: list = []
        names_of = self.entry_names

        def blob_id(addr: bytes) -> bytes:
            return self.blob_sha(addr, raw)

        def leaf_files(path: bytes, addr: bytes) -> dict:
            chunks = extra(addr) if extra is not None else None
            if not chunks:
                return {path: blob_id(addr)}
            files = {path + b"/node": blob_id(addr)}
            for c in chunks:
                files[path + b"/" + c.hex().encode("ascii")] = blob_id(c)
            return files

        def listing(path: bytes, addr: bytes, level: int, add: bool) -> None:
            if not level:
                for p, sha in leaf_files(path, addr).items():
                    out.append((p, MODE_BLOB, sha) if add else (p, 0, None))
                return
            node = load(addr)
            out.append((path + b"/node", MODE_BLOB, blob_id(addr)) if add
                       else (path + b"/node", 0, None))
            for name, child in zip(names_of(addr, node), node.vals):
                listing(path + b"/" + name, child, level - 1, add)

        def diff(path: bytes, o, n) -> None:
            if o == n:
                return
            if n is None:
                listing(path, o[0], o[1], False)
                return
            if o is None:
                listing(path, n[0], n[1], True)
                return
            (oa, ol), (na, nl) = o, n
            if extra is not None and not ol and not nl:
                old_files, new_files = leaf_files(path, oa), leaf_files(path, na)
                out.extend((p, 0, None) for p in old_files if p not in new_files)
                out.extend((p, MODE_BLOB, sha) for p, sha in new_files.items()
                           if old_files.get(p) != sha)
                return
            if extra is not None and (not nl or not ol):
                # a leaf on one side (maybe a tree of chunks): compare the file lists
                mark = len(out)
                listing(path, oa, ol, True)
                old_files = {p: sha for p, _, sha in out[mark:]}
                del out[mark:]
                listing(path, na, nl, True)
                new_files = {p: sha for p, _, sha in out[mark:]}
                del out[mark:]
                out.extend((p, 0, None) for p in old_files if p not in new_files)
                out.extend((p, MODE_BLOB, sha) for p, sha in new_files.items()
                           if old_files.get(p) != sha)
                return
            if not nl:
                if ol:
                    listing(path, oa, ol, False)
                out.append((path, MODE_BLOB, blob_id(na)))
                return
            if not ol:
                out.append((path, 0, None))
                listing(path, na, nl, True)
                return
            on, nn = load(oa), load(na)
            onames = dict(zip(names_of(oa, on), on.vals))
            out.append((path + b"/node", MODE_BLOB, blob_id(na)))
            ocl, ncl = ol - 1, nl - 1
            for name, child in zip(names_of(na, nn), nn.vals):
                oc = onames.pop(name, None)
                if oc == child and ocl == ncl:
                    continue
                diff(path + b"/" + name, None if oc is None else (oc, ocl), (child, ncl))
            for name, oc in onames.items():
                listing(path + b"/" + name, oc, ocl, False)

        diff(top, old, new)
        return out

    def learn_mirror(self, mode: int, sha: bytes, decode: Callable[[bytes], object],
                     known_trees: set | None = None) -> int:
        """Learn the nodes of a mirror (as laid out by :meth:`mirror`) already in Git, e.g.
        after ``git clone``; ``sha`` is the 20-byte (or 40-hex) id of its top object.
        ``decode(data)`` decodes node bytes. Returns records learnt."""
        if len(sha) == 40:
            sha = bytes.fromhex(sha.decode("ascii"))
        records: list = []
        seen = known_trees if known_trees is not None else set(self._tree.values())
        stack = [(mode, sha)]
        while stack:
            mode, sha = stack.pop()
            if mode != MODE_TREE:
                data = self._read_blob(sha)
                if data is not None:
                    records.append((KIND_BLOB, _sha256(data).digest(), sha))
                continue
            if sha in seen:
                continue
            seen.add(sha)
            try:
                t = self.object_store[sha.hex().encode("ascii")]
                items = list(t.iteritems())
            except Exception:       # absent, or damaged: nothing to learn from it
                continue
            entries = {e.path: (e.mode, bytes.fromhex(e.sha.decode("ascii")))
                       for e in items}
            node_sha = entries.get(NODE_ENTRY, (None, None))[1]
            data = self._read_blob(node_sha) if node_sha else None
            if data is None:
                continue
            addr = _sha256(data).digest()
            records.append((KIND_BLOB, addr, node_sha))
            records.append((KIND_TREE, addr, sha))
            node = decode(data)
            if not node.level:  # a leaf with chunked values: its chunks, named by address
                for name, (m, s) in entries.items():
                    if name != NODE_ENTRY and m != MODE_TREE and len(name) == 64:
                        try:
                            records.append((KIND_BLOB, bytes.fromhex(name.decode("ascii")), s))
                        except ValueError:
                            pass  # not ours
                continue
            for name, child in zip(self.entry_names(addr, node), node.vals):
                e = entries.get(name)
                if e is None:
                    continue
                if e[0] == MODE_TREE:
                    stack.append(e)
                elif self._blob.get(child) != e[1]:
                    records.append((KIND_BLOB, child, e[1]))
        with self._lock:
            self._remember(records)
        return len(records)
