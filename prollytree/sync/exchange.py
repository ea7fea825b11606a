"""Objects exchanged with a peer over a transport that is not Git's
(:mod:`.http_server`, :mod:`.http_client`), and what a fetch brought: verifying received
objects before any is stored, writing them as one pack, choosing which objects to send,
and teaching the node store where the received datasets' nodes are."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import RemoteError
from ..tree.codec import decode
from ..versioning.git_backend import GitBackend

if TYPE_CHECKING:
    from .transports import Progress


def learn_commits(backend: GitBackend, tips: list[bytes], old: list[bytes],
               progress: Progress | None) -> int:
    """Teach the node store where the nodes of the datasets of the commits ``tips``
    reach and ``old`` do not are (the node map only knows what this repository wrote or
    learnt)."""
    if not tips:
        return 0
    repo = backend.repo
    from dulwich.objects import Commit as GitCommit
    from dulwich.objects import Tag
    starts = []
    for sha in tips:
        obj = repo.object_store[sha]
        while isinstance(obj, Tag):
            obj = repo.object_store[obj.object[1]]
        if isinstance(obj, GitCommit):
            starts.append(obj.id)
    exclude = [s for s in old if s in repo.object_store]
    n = 0
    store = backend.store
    for entry in repo.get_walker(include=starts, exclude=exclude or None):
        cid = entry.commit.id.decode("ascii")
        info = backend.dataset_of(cid, entry.commit.tree)
        for mode, sha in info.mirrors.values():      # every named tree's mirror
            store.learn_mirror(mode, sha, decode)
        n += 1
        if progress is not None:
            progress("Learning dataset", n, None)
    return n



def _reachability(repo, tips: list[bytes]):
    """A function telling whether a commit id is reachable from ``tips`` (walks the
    history lazily, remembering what it saw)."""
    from dulwich.objects import Commit as GitCommit
    from dulwich.objects import Tag
    store = repo.object_store
    seen: set = set()
    frontier = [t for t in tips if t in store]

    def reachable(cid: bytes) -> bool:
        if cid in seen:
            return True
        while frontier:
            sha = frontier.pop()
            if sha in seen:
                continue
            seen.add(sha)
            try:
                obj = store[sha]
            except KeyError:
                continue
            if isinstance(obj, Tag):
                frontier.append(obj.object[1])
            elif isinstance(obj, GitCommit):
                frontier.extend(obj.parents)
            if sha == cid:
                return True
        return cid in seen
    return reachable


def _entries_by_name(store, trees) -> dict[bytes, set[bytes]]:
    """``{entry name: {ids}}`` of the entries of ``trees`` (ids of trees; ones missing from
    ``store``, or not trees, are passed over)."""
    from dulwich.objects import Tree
    found: dict[bytes, set[bytes]] = {}
    for t in trees:
        try:
            obj = store[t]
        except KeyError:
            continue
        if isinstance(obj, Tree):
            for e in obj.iteritems():
                found.setdefault(e.path, set()).add(e.sha)
    return found


def verify_received(repo, objects: dict, tips: list[bytes], trusted_tips: list[bytes]
                    ) -> list:
    """Check objects received from a peer before any is stored; returns the
    (kind, 20-byte id, body) triples to write (those the tips reach and the repository
    lacks). Raises :class:`RemoteError` naming the first problem.

    ``objects`` maps 40-hex ids *computed here* from the received bytes (so no object
    can be misnamed) to ``(type number, body)``. Checks: every object parses and passes
    dulwich's format checks (tree entry names without ``/``, ``.``, ``..``, sorted
    entries, well-formed commits); every object a tip needs is either received or in the
    repository; a commit not received must be reachable from ``trusted_tips`` (the
    receiver's refs: everything they reach is complete), and an existing tree or blob a
    received tree names must be the same entry of a trusted commit's tree at the same
    path, or be complete itself (walked)."""
    from dulwich.errors import ObjectFormatException
    from dulwich.objects import Blob, ShaFile, Tag, Tree
    from dulwich.objects import Commit as GitCommit

    store = repo.object_store
    parsed: dict = {}
    kinds = {1: GitCommit, 2: Tree, 3: Blob, 4: Tag}

    def get_new(sha: bytes):
        obj = parsed.get(sha)
        if obj is None:
            num, body = objects[sha]
            try:
                obj = ShaFile.from_raw_string(num, body, sha=sha)
                obj.check()
            except (ObjectFormatException, ValueError, KeyError, TypeError) as e:
                raise RemoteError(f"received object {sha.decode()} is malformed: {e}") \
                    from None
            parsed[sha] = obj
        return obj

    reachable = _reachability(repo, trusted_tips)
    used: set = set()
    trusted_roots: list = []
    new_roots: list = []
    todo = [(t, None) for t in tips]
    seen: set = set()
    while todo:
        sha, want = todo.pop()
        if sha in seen:
            continue
        seen.add(sha)
        if sha in objects:
            obj = get_new(sha)
            if want is not None and not isinstance(obj, want):
                raise RemoteError(f"received object {sha.decode()} is a "
                                  f"{obj.type_name.decode()}, not a {want.type_name.decode()}")
            used.add(sha)
            if isinstance(obj, Tag):
                todo.append((obj.object[1], kinds.get(obj.object[0].type_num)))
            elif isinstance(obj, GitCommit):
                todo.extend((p, GitCommit) for p in obj.parents)
                new_roots.append(obj.tree)
            elif isinstance(obj, Tree):
                new_roots.append(sha)
            continue
        if sha not in store:
            raise RemoteError(f"object {sha.decode()} is neither received nor present")
        obj = store[sha]
        if want is not None and not isinstance(obj, want):
            raise RemoteError(f"object {sha.decode()} is not a {want.type_name.decode()}")
        if isinstance(obj, GitCommit):
            if not reachable(sha):
                raise RemoteError(f"commit {sha.decode()} is not reachable from the "
                                  f"receiver's refs (it may be incomplete)")
            trusted_roots.append(obj.tree)
        elif isinstance(obj, Tree):
            new_roots.append(sha)
    complete: set = set()

    def walk_complete(start: bytes) -> None:
        stack = [start]
        while stack:
            s = stack.pop()
            if s in complete:
                continue
            try:
                o = store[s]
            except KeyError:
                raise RemoteError(f"object {s.decode()} is missing") from None
            complete.add(s)
            if isinstance(o, Tree):
                stack.extend(e.sha for e in o.iteritems() if e.mode != 0o160000)

    done: set = set()
    stack = [(r, trusted_roots) for r in new_roots]
    while stack:
        tree_id, refs = stack.pop()
        if tree_id in done:
            continue
        done.add(tree_id)
        if tree_id not in objects:
            if tree_id not in refs:
                walk_complete(tree_id)
            continue
        t = get_new(tree_id)
        if not isinstance(t, Tree):
            raise RemoteError(f"received object {tree_id.decode()} is not a tree")
        used.add(tree_id)
        here = _entries_by_name(store, refs)  # the trusted trees' entries at this path
        for e in t.iteritems():
            if e.path.lower() == b".git":  # dulwich refuses ".git" only; Git any case
                raise RemoteError(f"received tree {tree_id.decode()} has an entry "
                                  f"{e.path!r}")
            if e.mode == 0o160000:  # a submodule: not ours to carry
                continue
            is_tree = e.mode == 0o040000
            if e.sha in objects:
                o = get_new(e.sha)
                if is_tree:
                    if not isinstance(o, Tree):
                        raise RemoteError(f"tree entry {e.path!r} is not a tree")
                    stack.append((e.sha, here.get(e.path, set())))
                else:
                    if not isinstance(o, Blob):
                        raise RemoteError(f"tree entry {e.path!r} is not a blob")
                    used.add(e.sha)
            elif e.sha not in here.get(e.path, ()):
                walk_complete(e.sha)
    # into an empty repository (a clone) everything is new: skip the presence checks,
    # which cost a pack-index lookup and a stat each
    fresh = not trusted_tips
    return [(kinds[objects[s][0]].type_name, bytes.fromhex(s.decode()), objects[s][1])
            for s in used if fresh or s not in store]


def write_received(repo, triples: list) -> None:
    """Store verified objects ((kind, 20-byte id, body) triples) durably as one pack."""
    if triples:
        from ..git.pack import write_pack
        write_pack(os.path.join(repo.controldir(), "objects", "pack"), triples)


def objects_to_send(repo, wants: list[bytes], haves: list[bytes]) -> list[bytes]:
    """Ids of the objects ``wants`` reach that the holder of ``haves`` (the receiver's
    ref tips; ids unknown here are ignored) may lack, parents before children.

    Commits: those ``wants`` reach and ``haves`` do not (a walk of the commit graph).
    Trees and blobs: each new commit's tree is compared, path by path, with the trees
    of the commits the receiver has that border the new ones (and of ``haves``): an
    entry whose id is the same there is skipped with everything under it — the receiver
    has it, since its refs reach complete trees. The cost is proportional to the
    changed paths (times the fan-out), not to the dataset as a whole-closure walk
    (dulwich's ``MissingObjectFinder``) would be; an object moved to another path may be
    sent although the receiver has it (harmless)."""
    from dulwich.objects import Commit as GitCommit
    from dulwich.objects import Tag, Tree
    store = repo.object_store
    had = _reachability(repo, haves)  # commits (and tags) the receiver has
    out: list[bytes] = []
    sent: set = set()
    roots: list[bytes] = []          # trees of the new commits
    border: set = set()              # commits the receiver has next to the new ones
    todo = list(wants)
    while todo:
        sha = todo.pop()
        if sha in sent:
            continue
        if had(sha):
            border.add(sha)
            continue
        obj = store[sha]
        sent.add(sha)
        out.append(sha)
        if isinstance(obj, Tag):
            todo.append(obj.object[1])
        elif isinstance(obj, GitCommit):
            roots.append(obj.tree)
            todo.extend(obj.parents)
        elif isinstance(obj, Tree):
            roots.append(sha)
            out.pop()
            sent.discard(sha)
    for h in haves:
        if h in store and isinstance(store[h], GitCommit):
            border.add(h)
    ref_roots = [store[c].tree for c in border if isinstance(store[c], GitCommit)]
    have_roots = set(ref_roots)

    stack2 = [(r, ref_roots) for r in roots]
    trees_out: list[bytes] = []
    while stack2:
        tree_id, refs = stack2.pop()
        if tree_id in sent or tree_id in have_roots:
            continue
        sent.add(tree_id)
        trees_out.append(tree_id)
        t = store[tree_id]
        theirs = _entries_by_name(store, refs)
        for e in t.iteritems():
            if e.mode == 0o160000 or e.sha in sent or e.sha in theirs.get(e.path, ()):
                continue
            if e.mode == 0o040000:
                stack2.append((e.sha, list(theirs.get(e.path, ()))))
            else:
                sent.add(e.sha)
                trees_out.append(e.sha)
    return out + trees_out


def pack_bytes(repo) -> int:
    """Bytes of pack files in the repository (to report what a fetch received)."""
    d = os.path.join(repo.controldir(), "objects", "pack")
    try:
        return sum(e.stat().st_size for e in os.scandir(d) if e.name.endswith(".pack"))
    except OSError:
        return 0
