"""Workspace: one working copy of a dataset (HEAD, staged changes, the dataset lock).

Writes (``insert``/``update``/``delete``, on any named tree) are *staged* in a crash-safe
journal; ``commit`` applies them to the current branch's root set as one batch per
changed tree (O(changes x depth) nodes) and records a commit through the shared
:class:`~.repository.Repository`. Every version is a root set, so ``checkout`` just moves
to another one, and ``diff``/``merge`` walk only the parts of the trees that differ.

Several workspaces may share one dataset (other processes, other store objects, Git
worktrees): each re-reads the staging journal and HEAD when another one changed them
(the journal's generation counter), and every change of HEAD or a branch is made under
the dataset's exclusive lock. One workspace object may be shared by threads: its
mutating calls hold a per-object lock (``self.mutex``).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from typing import Any, Callable, Iterator

from ..errors import (CorruptRefError, ReadOnlyError,
                      UnknownRefError)
from ..tree import Snapshot, TreeConfig
from ..tree.checks import check_key as _check_key
from ..tree.checks import check_value as _check_value
from ..tree.prolly_tree import value_length
from ..tree.values import (DEFAULT_THRESHOLD, Envelope, open_value, read_value, resolve_items,
                           write_stream)
from ..tree.proof import verify_proof as _verify_proof
from . import refs as _refs
from .backend import HEADS, HistoryBackend
from .merging import MergeMixin
from .reads import ReadsAtRefsMixin
from .repository import BranchMovedError, Repository
from .rootmerge import apply_stages, stage_exists
from .roots import DEFAULT_TREE, RootSet, check_tree_name
from .staging import StagingArea
from .tree_handle import TreeHandle

_CHECKOUT_STAGED = ("error", "carry", "discard")
#: how often a commit that keeps losing its branch's compare-and-swap is rebased and retried
COMMIT_ATTEMPTS = 50




def synchronized(cls: type) -> type:
    """Make every public method of ``cls`` hold the instance's ``mutex`` (an RLock): one
    object may be shared by threads; each call sees and leaves a consistent state, and no
    staged write can slip between a commit's read of the staging area and its clearing.
    Uncontended, the cost is one RLock acquire per call."""
    import functools

    import inspect

    for name in dir(cls):
        fn = inspect.getattr_static(cls, name)
        if name.startswith("_") or not callable(fn) or isinstance(fn, (staticmethod,
                                                                        classmethod)):
            continue

        def wrap(f: Callable) -> Callable:
            @functools.wraps(f)
            def locked(self, *args, **kwargs):
                with self.mutex:
                    return f(self, *args, **kwargs)
            return locked

        setattr(cls, name, wrap(fn))
    return cls


def _flushing(store) -> Callable[[list], None]:
    """put_many that also flushes when the store buffers puts in memory until then
    (Git), so a streamed value is never held whole."""
    if not hasattr(store, "pending_count"):
        return store.put_many

    def put(items: list) -> None:
        store.put_many(items)
        store.flush()
    return put


@synchronized
class Workspace(ReadsAtRefsMixin, MergeMixin):
    """A working copy over ``repo`` (see the module docstring). Thread-safe."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._backend: HistoryBackend = repo.backend
        b = self._backend
        self.mutex = threading.RLock()
        journal = (f"{b.state_dir}/staging.journal" if b.state_dir is not None else None)
        self._staging = StagingArea(journal, b.lock)
        self._gen = self._staging.generation
        self._closed = False
        with b.lock.exclusive():
            branch, commit = b.read_head()
            if branch is not None and b.get_ref(HEADS + branch) is None \
                    and not b.list_refs(HEADS):
                # a brand-new store (or a repository without commits): start history
                try:
                    self.repo.write_commit(branch, None, RootSet(default_config=b.config),
                                           [], "Initial commit")
                except BranchMovedError:
                    pass  # another machine started it at the same moment: use theirs
        self._load_head()

    # -- state ---------------------------------------------------------------------------------

    def _load_head(self) -> None:
        b = self._backend
        self._branch, detached = b.read_head()
        self._head = b.get_ref(HEADS + self._branch) if self._branch is not None else detached
        trees = (b.read_commit(self._head).trees if self._head
                 else RootSet(default_config=b.config))
        self._set_trees(trees)

    def _set_trees(self, trees: RootSet) -> None:
        self._trees = trees
        self._root = trees.default_root
        entry = trees[DEFAULT_TREE]
        self._default = self.repo.snapshot(entry.root, entry.config)
        self._default.node  # noqa: B018 - load now: damage shows at open, not later

    def _sync(self) -> None:
        """Catch up with other writers: their staged changes, and their commits (seen
        through the staging journal's generation, bumped by every commit)."""
        if self._closed:
            raise ValueError("store is closed")
        st = self._staging
        st.sync()
        if st.generation != self._gen:
            self._gen = st.generation
            self._load_head()
        elif self._backend.shared_refs and self._branch is not None:
            # other machines commit without our lock: one ref read per call notices them
            if self._backend.get_ref(HEADS + self._branch) != self._head:
                self._load_head()

    def _moved(self) -> None:
        """After HEAD or the current branch moved (under the exclusive lock): reload, and
        let other store objects on this dataset notice."""
        self._staging.bump()
        self._gen = self._staging.generation
        self._load_head()

    def _writable(self) -> None:
        if self._branch is None:
            raise ReadOnlyError(
                f"HEAD is detached at {self._head[:12]}: the store is read-only; "
                f"create_branch(name) to write from here, or checkout a branch")

    def _committed(self, tree: str) -> Snapshot | None:
        """Tree ``tree`` at the current commit (None when the commit has no such tree)."""
        if tree == DEFAULT_TREE:
            return self._default
        entry = self._trees.get(tree)
        return None if entry is None else self.repo.snapshot(entry.root, entry.config)

    def get(self, key: bytes, *, tree: str = DEFAULT_TREE) -> bytes | None:
        """The value of ``key`` as staged, else as in the current commit; None if absent.
        ``tree`` names the tree (default: the default tree)."""
        _check_key(key)
        if tree:
            check_tree_name(tree)
        self._sync()
        st = self._staging.stage_of(tree)
        if st is not None:
            ch = st.changes
            if key in ch:
                return read_value(self._backend.cache.raw, ch[key])
            if st.reset:
                return None
        snap = self._committed(tree)
        return None if snap is None else snap.get(key)

    def open_value(self, key: bytes, tree: str = DEFAULT_TREE):
        """A read-only, seekable binary file over ``key``'s value in the working view
        (staged, else committed), reading a chunked value chunk by chunk; None when
        absent."""
        _check_key(key)
        if tree:
            check_tree_name(tree)
        self._sync()
        raw = self._backend.cache.raw
        st = self._staging.stage_of(tree)
        if st is not None and key in st.changes:
            v = st.changes[key]
        elif st is not None and st.reset:
            v = None
        else:
            snap = self._committed(tree)
            return None if snap is None else snap.open_value(key)
        return None if v is None else open_value(raw, v)

    def insert_stream(self, key: bytes, fileobj: Any, tree: str = DEFAULT_TREE) -> int:
        """Stage ``key`` = the bytes read from binary ``fileobj`` without holding them: a
        value above the threshold (64 KiB) is chunked into the node store as it is read
        and only its small envelope is staged (chunks of a value never committed are
        reclaimed by ``gc``). Returns the value's length."""
        _check_key(key)
        if tree:
            check_tree_name(tree)
        read = getattr(fileobj, "read", None)
        if not callable(read):
            raise TypeError(f"fileobj must have a read() method, not {type(fileobj).__name__}")
        self._open_check()
        self._writable()
        b = self._backend
        session = getattr(b.store, "write_session", None)
        with b.lock.exclusive():  # node writes, as a commit makes them; gc is excluded
            # Git: one pack streamed per value (write_session); another store that
            # buffers gets 8 MiB per flush (memory bounded)
            with session() if session is not None else contextlib.nullcontext():
                value = write_stream(b.store.put_many if session is not None
                                     else _flushing(b.store), read, DEFAULT_THRESHOLD,
                                     getattr(b.store, "holds", b.store.has),
                                     8 << 20 if hasattr(b.store, "pending_count") else 0)
            b.store.flush()
            self._staging.stage(key, value, tree)
        return value_length(value)

    def list_keys(self) -> list[bytes]:
        """Every key of the current view (current commit plus staged changes), sorted."""
        return [k for k, _ in self.iter_items()]

    def status(self) -> list[tuple[bytes, str]]:
        """Staged changes of the default tree against the current commit, sorted by key:
        (key, "added" | "modified" | "deleted"). Staged writes that change nothing are
        not listed. (:meth:`tree_status` covers every tree.)"""
        return [(k, what) for t, k, what in self.tree_status() if t == DEFAULT_TREE]

    def tree_status(self) -> list[tuple[str, bytes | None, str]]:
        """Staged changes of every tree, sorted by tree then key: ``(tree, key, "added" |
        "modified" | "deleted")``, and ``(tree, None, "created" | "dropped")`` for a tree
        that will appear or disappear at the next commit."""
        self._sync()
        out = []
        for tree in sorted(self._staging.trees, key=lambda n: n.encode("utf-8")):
            st = self._staging.trees[tree]
            if not len(st):
                continue
            committed = tree in self._trees
            if tree != DEFAULT_TREE:
                exists = stage_exists(st, committed)
                if exists and not committed:
                    out.append((tree, None, "created"))
                elif committed and not exists:
                    out.append((tree, None, "dropped"))
                    continue
            snap = None if st.reset else self._committed(tree)
            for key, value in sorted(st.changes.items()):
                old = None if snap is None else snap.get(key)
                if value is None:
                    if old is not None:
                        out.append((tree, key, "deleted"))
                elif old is None:
                    out.append((tree, key, "added"))
                elif old != value:
                    out.append((tree, key, "modified"))
            if st.reset and committed and snap is None:
                base = self._committed(tree)
                if base is not None:
                    for key, _ in base.items():
                        if key not in st.changes:
                            out.append((tree, key, "deleted"))
        out.sort(key=lambda e: (e[0].encode("utf-8"), e[1] or b""))
        return out

    def tree(self, name: str) -> TreeHandle:
        """A handle on the named tree ``name`` in the working copy (staged writes over
        the current commit); see :class:`TreeHandle`. The tree need not exist yet: the
        first write creates it. O(1)."""
        check_tree_name(name)
        return TreeHandle(self, name)

    def list_trees(self) -> list[str]:
        """Names of the trees in the working view (committed, plus staged creations, minus
        staged drops), sorted; always includes the default tree ``""``."""
        self._sync()
        names = set(self._trees)
        for name, st in self._staging.trees.items():
            if not len(st):
                continue
            if stage_exists(st, name in self._trees) or name == DEFAULT_TREE:
                names.add(name)
            else:
                names.discard(name)
        return sorted(names, key=lambda n: n.encode("utf-8"))

    def tree_exists(self, name: str) -> bool:
        """Whether tree ``name`` is in the working view."""
        check_tree_name(name)
        return name in self.list_trees()

    def create_tree(self, name: str, config: TreeConfig | None = None) -> None:
        """Stage the creation of the empty named tree ``name`` (with ``config``, default
        the dataset's): it exists after the next commit even without keys. ValueError
        when it already exists."""
        check_tree_name(name, allow_default=False)
        if config is not None and not isinstance(config, TreeConfig):
            raise TypeError(f"config must be a TreeConfig, not {type(config).__name__}")
        self._open_check()
        self._writable()
        if self.tree_exists(name):
            raise ValueError(f"tree {name!r} already exists")
        cfg = config if config is not None else self._backend.config
        self._staging.stage_tree_op(name, "create", cfg.to_bytes())

    def drop_tree(self, name: str) -> bool:
        """Stage dropping the named tree ``name`` with everything in it; returns whether
        it existed. After the next commit it is gone; a later write to the name starts a
        new, empty tree. The default tree cannot be dropped (ValueError)."""
        check_tree_name(name, allow_default=False)
        self._open_check()
        self._writable()
        if not self.tree_exists(name):
            return False
        self._staging.stage_tree_op(name, "drop")
        return True

    def iter_items(self, start: bytes | None = None, end: bytes | None = None, *,
                   tree: str = DEFAULT_TREE, reverse: bool = False
                   ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs with ``start <= key < end`` of the current view of ``tree``
        (the current commit with the staged changes applied), in key order (or
        reversed), lazily (the committed part streams; the staged changes are read when
        the call is made)."""
        for bound in (start, end):
            if bound is not None:
                _check_key(bound)
        if tree:
            check_tree_name(tree)
        if not isinstance(reverse, bool):
            raise TypeError(f"reverse must be a bool, not {type(reverse).__name__}")
        self._sync()
        st = self._staging.stage_of(tree)
        overlay = [] if st is None else st.in_range(start, end)
        snap = None if st is not None and st.reset else self._committed(tree)
        committed = iter(()) if snap is None else snap.items(start, end, reverse)
        if reverse:
            overlay.reverse()
        return resolve_items(self._backend.cache.raw, _overlay(committed, overlay, reverse))

    def _open_check(self) -> None:
        if self._closed:
            raise ValueError("store is closed")

    def insert(self, key: bytes, value: bytes, *, tree: str = DEFAULT_TREE) -> None:
        """Stage ``key`` = ``value`` (insert or overwrite) in ``tree``."""
        _check_key(key)
        _check_value(value)
        if tree:
            check_tree_name(tree)
        self._open_check()
        self._writable()
        self._staging.stage(key, value, tree)

    def update(self, key: bytes, value: bytes, *, tree: str = DEFAULT_TREE) -> bool:
        """Stage a new value for an existing key; returns False (staging nothing) when the
        key does not exist."""
        _check_key(key)
        _check_value(value)
        self._writable()
        if self.get(key, tree=tree) is None:
            return False
        self._staging.stage(key, value, tree)
        return True

    def delete(self, key: bytes, *, tree: str = DEFAULT_TREE) -> bool:
        """Stage the removal of ``key``; returns whether it existed."""
        _check_key(key)
        self._writable()
        if self.get(key, tree=tree) is None:
            return False
        self._staging.stage(key, None, tree)
        return True

    def insert_batch(self, items: Any, *, tree: str = DEFAULT_TREE) -> int:
        """Stage many ``(key, value)`` pairs (an iterable of pairs, or a mapping) with
        one append to the staging journal; returns how many. Every pair is checked
        first: a bad one raises (TypeError / ValueError) and stages nothing. A later
        pair for the same key wins, as with successive :meth:`insert` calls. A value
        of None stages a delete."""
        self._open_check()
        if tree:
            check_tree_name(tree)
        if isinstance(items, (bytes, str)):
            raise TypeError("items must be an iterable of (key, value) pairs")
        if hasattr(items, "items") and callable(items.items):
            items = items.items()
        pairs = []
        for item in items:
            try:
                key, value = item
            except (TypeError, ValueError):
                raise TypeError(f"items must be (key, value) pairs, not {item!r:.60}") \
                    from None
            _check_key(key)
            if value is not None:
                _check_value(value)
            pairs.append((key, value))
        self._writable()
        self._staging.stage_many(pairs, tree)
        return len(pairs)

    def staged(self) -> list[tuple[bytes, bytes | None]]:
        """Every staged write of the default tree, sorted by key: ``(key, value)`` for
        an insert or update, ``(key, None)`` for a delete (including writes that change
        nothing, which :meth:`status` leaves out)."""
        self._sync()
        return sorted(self._staging.changes.items())

    def commit(self, message: str) -> str:
        """Commit the staged changes of every tree on the current branch, atomically;
        returns the 40-hex commit id. Only the trees with staged changes are rewritten
        (O(changes x depth) each). With nothing staged an (empty) commit is still
        recorded, as the reference implementation does.

        When another writer (another machine, on S3) moves the branch first, the commit
        is *rebased*: the staged edits are applied again onto the branch's new tip and
        the commit is retried (up to ``COMMIT_ATTEMPTS`` times, with a random backoff).
        Staged edits are per key, so for a key both writers changed, this commit's
        staged value (or delete) wins, as a rebase would; every other key of the other
        commit is kept."""
        if not isinstance(message, str):
            raise TypeError(f"message must be a str, not {type(message).__name__}")
        if not message.strip():
            raise ValueError("commit message is empty (Git refuses empty messages too)")
        if self._closed:
            raise ValueError("store is closed")
        b = self._backend
        with b.lock.exclusive():
            delay = 0.01
            for attempt in range(COMMIT_ATTEMPTS):
                self._staging.sync()
                self._load_head()      # re-reads the branch: after a lost race, its new tip
                self._writable()
                tip = self._head
                trees = apply_stages(b.cache, self._trees, self._staging.trees, b.config)
                try:
                    cid = self.repo.write_commit(self._branch, tip, trees,
                                                 [tip] if tip else [], message)
                    break
                except BranchMovedError:
                    if attempt == COMMIT_ATTEMPTS - 1:
                        raise
                    time.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, 0.5)
            self._staging.clear()
            self._gen = self._staging.generation
            self._head = cid
            self._set_trees(trees)
        return cid

    def current_commit(self) -> str:
        """The id (40 hex) of the commit the store is at."""
        self._sync()
        if self._head is None:
            raise UnknownRefError(f"branch {self._branch!r} has no commit yet")
        return self._head

    def current_branch(self) -> str | None:
        """The current branch's name; None when HEAD is detached (after checking out a
        commit, the store is read-only)."""
        self._sync()
        return self._branch

    # -- refs and branches -------------------------------------------------------------------

    def list_branches(self) -> list[str]:
        """Every branch name, sorted."""
        return self.repo.list_branches()

    def list_tags(self) -> list[str]:
        """Every tag name, sorted."""
        return self.repo.list_tags()

    def list_refs(self) -> dict[str, str]:
        """Every branch and tag: ``{"refs/heads/<name>" | "refs/tags/<name>": commit
        id}``, sorted by name (annotated tags peeled to their commit)."""
        self._sync()
        return self.repo.list_refs()

    def resolve_ref(self, ref: str) -> str:
        """The 40-hex id of the commit ``ref`` names: a branch, tag, ``HEAD``, a full or
        abbreviated commit id, with any ``~N``/``^N`` suffixes. UnknownRefError (a
        ValueError) when it names none, or several."""
        self._sync()
        return self.repo.resolve(ref)

    def tag(self, name: str, ref: str = "HEAD") -> str:
        """Create tag ``name`` at ``ref``; returns the commit id tagged."""
        return self.repo.tag(name, ref)

    def branch(self, name: str, start: str | None = None) -> str:
        """Create branch ``name`` at ``start`` (any ref; default the current commit)
        without switching to it; returns the commit id it points at. ValueError when
        the branch exists."""
        _refs.check_branch_name(name)
        if start is not None and not isinstance(start, str):
            raise TypeError(f"start must be a str, not {type(start).__name__}")
        with self._backend.lock.exclusive():
            self._sync()
            self._load_head()
            return self.repo.create_branch_ref(
                name, self._head if start is None else self.repo.resolve(start))

    def create_branch(self, name: str, start: str | None = None, *,
                      staged: str = "error") -> str:
        """Create branch ``name`` at ``start`` (default the current commit) and switch to
        it, in one step under the dataset's lock; returns the commit id. Staged changes
        stay staged when the base does not change; when ``start`` is another commit,
        ``staged`` decides as in :meth:`checkout` ("error", "carry" or "discard"), and
        with "error" nothing is created."""
        _refs.check_branch_name(name)
        if start is not None and not isinstance(start, str):
            raise TypeError(f"start must be a str, not {type(start).__name__}")
        if staged not in _CHECKOUT_STAGED:
            raise ValueError(f"staged must be one of {_CHECKOUT_STAGED}, not {staged!r}")
        b = self._backend
        with b.lock.exclusive():
            self._sync()
            self._load_head()
            if b.get_ref(HEADS + name) is not None:
                raise ValueError(f"branch {name!r} already exists")
            target = self._head if start is None else self.repo.resolve(start)
            if target is None:
                raise UnknownRefError("cannot branch: HEAD has no commit yet")
            what = f"create branch {name!r} at {start!r}"
            self._staged_policy(target, staged, what, check_only=True)
            cid = self.repo.create_branch_ref(name, target)
            self._staged_policy(target, staged, what)
            b.write_head(name)
            self._moved()
            return cid

    def _staged_policy(self, target: str, staged: str, what: str,
                       check_only: bool = False) -> None:
        """Apply the ``staged`` policy before moving HEAD to ``target`` (under the lock):
        refuse ("error"), keep ("carry") or drop ("discard") the staged changes."""
        if len(self._staging) and target != self._head:
            if staged == "error":
                raise ValueError(
                    f"cannot {what}: {len(self._staging)} staged change(s) would be lost; "
                    f"commit them, or pass staged='carry' or staged='discard'")
            if staged == "discard" and not check_only:
                self._staging.clear()
                self._gen = self._staging.generation

    def delete_branch(self, name: str, force: bool = False) -> str:
        """Delete branch ``name``; returns the commit id it pointed at. As ``git branch
        -d``: refuses (ValueError) the store's current branch, the branch checked out in
        the Git repository (or one of its worktrees), and a branch whose commits are not
        all in the current commit's history (``force=True`` deletes it anyway, like
        ``-D``)."""
        _refs.check_branch_name(name)
        if not isinstance(force, bool):
            raise TypeError(f"force must be a bool, not {type(force).__name__}")
        b = self._backend
        with b.lock.exclusive():
            self._load_head()
            if name == self._branch:
                raise ValueError(f"cannot delete the current branch {name!r}")
            if name in b.checked_out_branches():
                raise ValueError(f"cannot delete branch {name!r}: it is checked out in the "
                                 f"Git repository")
            tip = self.repo.branch_commit(name)
            if tip is None:
                raise UnknownRefError(f"unknown branch {name!r}")
            if not force and (self._head is None or not self.repo.is_ancestor(tip, self._head)):
                raise ValueError(f"branch {name!r} is not fully merged into the current "
                                 f"commit; delete it with force=True (git prolly branch -D)")
            return self.repo.delete_branch_ref(name)

    def checkout(self, branch_or_commit: str, *, staged: str = "error") -> None:
        """Switch to a branch, or detach at a commit (any ref expression: abbreviated id,
        ``HEAD~2``, a tag...). No tree is rebuilt: the store just moves to the other root.

        With staged changes, ``staged`` says what to do: ``"error"`` (default) refuses
        with ValueError unless the target is the current commit; ``"carry"`` keeps them
        staged on top of the new commit; ``"discard"`` drops them."""
        if not isinstance(branch_or_commit, str):
            raise TypeError(f"ref must be a str, not {type(branch_or_commit).__name__}")
        if staged not in _CHECKOUT_STAGED:
            raise ValueError(f"staged must be one of {_CHECKOUT_STAGED}, not {staged!r}")
        b = self._backend
        with b.lock.exclusive():
            self._sync()
            name = branch_or_commit
            if name.startswith(HEADS):
                name = name[len(HEADS):]
            target_branch = None
            if b.get_ref(HEADS + name) is not None:
                if name != self._branch and name in b.checked_out_branches(others_only=True):
                    raise ValueError(f"branch {name!r} is checked out in another worktree "
                                     f"(as Git refuses: work there, or check out a commit)")
                target_branch = name
                target = b.get_ref(HEADS + name)
            else:
                target = self.repo.resolve(branch_or_commit)
            self._staged_policy(target, staged, f"checkout {branch_or_commit!r}")
            b.write_head(target_branch, None if target_branch else target)
            self._moved()

    # -- proofs -------------------------------------------------------------------------------

    def root_hash(self) -> bytes:
        """The 32-byte root address of the current commit's tree."""
        self._sync()
        return self._root

    def generate_proof(self, key: bytes) -> bytes:
        """A portable proof of ``key``'s value (or absence) in the current commit's tree;
        check it with :meth:`verify_proof` or ``prollytree.verify_proof(root_hash, ...)``."""
        _check_key(key)
        self._sync()
        return self._default.proof(key)

    def verify_proof(self, proof_bytes: bytes, key: bytes,
                     expected_value: bytes | None = None) -> bool:
        """Whether ``proof_bytes`` proves ``key`` present in the current commit's tree
        (with ``expected_value``, when given)."""
        self._sync()
        return _verify_proof(self._root, proof_bytes, key, expected_value)

    # -- maintenance ------------------------------------------------------------------------------

    def _ref_tips(self) -> dict[str, str]:
        """{label: commit id} of every branch, tag and a detached HEAD."""
        tips = self.repo.ref_tips()
        if self._branch is None and self._head:
            tips["HEAD"] = self._head
        return tips

    def fsck(self, progress: Callable[[int], None] | None = None) -> dict:
        """Check every commit reachable from every branch, tag and (detached) HEAD, and
        every node of every tree of theirs (each distinct node once): present, hashing
        to its address (SHA-256), decodable. ``progress(n)`` is called as nodes are
        checked. Returns ``{"ok", "refs", "commits", "trees", "nodes", "bytes",
        "problems"}``; see ``docs/versioning.md``. A damaged ref or HEAD is reported as a
        "damaged-ref" problem (the walk needs the refs, so it stops there)."""
        try:
            self._sync()
            tips = self._ref_tips()
        except CorruptRefError as e:
            return {"ok": False, "refs": 0, "commits": 0, "trees": 0, "nodes": 0,
                    "bytes": 0, "problems": [{"kind": "damaged-ref", "object": "",
                                              "commit": "", "reached_from": "",
                                              "detail": str(e)}]}
        return self.repo.fsck(tips, progress)

    def gc(self, dry_run: bool = False, progress: Callable[[int], None] | None = None
           ) -> dict:
        """Reclaim what no branch, tag or HEAD reaches, under the dataset's exclusive
        lock (no commit can add nodes between the walk and the removal). On Git, Git's
        own ``git gc`` reclaims objects; see ``docs/versioning.md``. ``dry_run`` counts
        without removing."""
        with self._backend.lock.exclusive():
            self._sync()
            self._load_head()
            staged = [v for st in self._staging.trees.values()
                      for v in st.changes.values() if type(v) is Envelope]
            return self.repo.collect_garbage(self._ref_tips(), dry_run, progress,
                                             keep_values=staged)

    def close(self) -> None:
        """Release files and locks (staged changes stay in the journal)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._staging.close()
        finally:
            self.repo.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _overlay(committed: Iterator[tuple[bytes, bytes]],
             staged: list[tuple[bytes, bytes | None]],
             reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
    """Merge committed (key, value) pairs with staged writes (value None deletes), both
    sorted the same way (descending when ``reverse``)."""
    i, n = 0, len(staged)
    for k, v in committed:
        while i < n and (staged[i][0] > k if reverse else staged[i][0] < k):
            sk, sv = staged[i]
            i += 1
            if sv is not None:
                yield sk, sv
        if i < n and staged[i][0] == k:
            sv = staged[i][1]
            i += 1
            if sv is not None:
                yield k, sv
            continue
        yield k, v
    for sk, sv in staged[i:]:
        if sv is not None:
            yield sk, sv
