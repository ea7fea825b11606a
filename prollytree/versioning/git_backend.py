"""History on Git (dulwich): real commits on real branches.

Layout of a dataset at ``<prefix>`` (a directory of the repository, ``""`` for its root)
in every commit's tree::

    <prefix>/.prolly/ROOT     blob  "prollytree-dataset 2\nroot <64 hex>\nrootset <64 hex>\n"
                              (the default tree's root and the root set's SHA-256)
    <prefix>/.prolly/rootset  blob  the root set's canonical bytes (see ..roots)
    <prefix>/.prolly/config   blob  the default tree's TreeConfig bytes
    <prefix>/.prolly/tree     the mirror of the default tree (see prollytree.storage.git):
                              a blob for a leaf root, else a tree holding "node" (the
                              node's bytes) and one entry per child
    <prefix>/.prolly/trees/<name, %-quoted>   the mirror of every other named tree

Version 1 (written before root sets) has ``prollytree-dataset 1``, no ``rootset`` and no
``trees``: it reads as a root set holding only the default tree, and the next commit
writes version 2.

A commit's tree is its first parent's tree with only ``<prefix>/.prolly`` replaced, so
the user's other files are carried over untouched. Local state lives in
``.git/prollytree/datasets/<prefix>/``: the store's ``HEAD`` (which branch the store is on;
independent of the repository's HEAD), the staging journal, the lock file and
``index-synced`` (the commit whose dataset entries the Git index lists).

When the store commits to the branch the repository's HEAD is on, the dataset's entries
in the Git index are updated (only those, flagged skip-worktree so that ``git status``
stays clean without writing the blobs into the working tree); otherwise the user's next
``git commit`` would record the dataset as deleted.
"""

from __future__ import annotations

import fcntl
import os
import hashlib
import re
from urllib.parse import quote

from dulwich.objects import Commit as GitCommit
from dulwich.objects import Tag, Tree
from dulwich.pack import PackFileDisappeared
from dulwich.file import FileLocked
from dulwich.repo import NotGitRepository, Repo

from ..errors import CorruptRefError, StoreError, StoreLockedError
from .._fs import atomic_write
from ..git.objects import MODE_BLOB, MODE_TREE, git_raw_id, parse_tree, tree_body
from ..git.pack import merge_small_packs
from ..git.repo import find_repo, work_tree_of
from ..storage.git import GitNodeStore
from ..tree.codec import EMPTY_NODE_BYTES, EMPTY_ROOT, decode, encode
from ..tree.config import TreeConfig
from ..tree.node_cache import NodeCache
from ..tree.values import Envelope, chunk_refs
from .backend import TAGS, HistoryBackend
from .lock import DatasetLock
from .git_layout import (CONFIG_ENTRY, DATASET_DIR, NO_DATASET, ROOT_ENTRY, ROOT_MAGIC,
                         ROOT_MAGIC_V1, ROOTSET_ENTRY, TREE_ENTRY, TREES_DIR, Dataset,
                         mirror_path)
from .git_worktree_index import GitIndexMixin
from .objects import Commit, identity
from .refnames import check_ref_name
from .roots import DEFAULT_TREE, RootSet

#: packs beyond which a commit consolidates them (git's gc.autoPackLimit default)
AUTO_PACK_LIMIT = 50
_HEX40 = re.compile(rb"[0-9a-f]{40}")


def probe(path: str) -> bool:
    """Whether ``path`` is a dataset directory of a Git work tree: a store was opened
    there (its state directory exists) or the checked-out commit has the dataset's
    ``.prolly/ROOT`` (e.g. in a fresh clone). Reads only."""
    path = os.path.realpath(path)
    if not os.path.isdir(path):
        return False
    found = work_tree_of(path)
    if found is None:
        return False
    workdir, gitdir = found
    rel = os.path.relpath(path, os.path.realpath(workdir))
    if rel.startswith("..") or rel.split(os.sep)[0] == ".git":
        return False
    prefix = "" if rel == "." else rel.replace(os.sep, "/")
    state = os.path.join(gitdir, "prollytree", "datasets", quote(prefix, safe="") or "_root")
    if os.path.isdir(state):
        return True
    try:
        repo = Repo(workdir)
    except NotGitRepository:
        return False
    try:
        try:
            tree = repo[repo.head()].tree
        except (KeyError, ValueError):
            return False
        parts = [p.encode() for p in prefix.split("/") if p] + [DATASET_DIR, ROOT_ENTRY]
        store = repo.object_store
        sha = tree
        for i, part in enumerate(parts):
            try:
                t = store[sha]
            except KeyError:
                return False
            if not isinstance(t, Tree) or part not in t:
                return False
            mode, sha = t[part]
            if (mode == MODE_TREE) != (i < len(parts) - 1):
                return False
        return True
    finally:
        repo.close()


class GitBackend(GitIndexMixin, HistoryBackend):
    name = "Git"

    def __init__(self, path: str, create: bool = True) -> None:
        path = os.path.abspath(path)
        repo = find_repo(path)
        if repo is None:
            if not create:
                raise StoreError(f"no Git repository at or above {path}")
            os.makedirs(path, exist_ok=True)
            repo = Repo.init(path, default_branch=b"main")
        else:
            os.makedirs(path, exist_ok=True)
        self.repo = repo
        self.bare = repo.bare
        workdir = os.path.realpath(repo.path)
        rel = os.path.relpath(os.path.realpath(path), workdir)
        if rel.startswith(".."):
            raise StoreError(f"{path} is outside the repository at {workdir}")
        self.prefix = "" if rel == "." else rel.replace(os.sep, "/")
        if self.prefix.split("/")[0] == ".git":
            raise StoreError(f"{path} is inside the .git directory")
        self._path_parts = [p.encode() for p in self.prefix.split("/") if p] + [DATASET_DIR]
        self.index_prefix = (self.prefix + "/" if self.prefix else "") + ".prolly/"
        self.state_dir = os.path.join(repo.controldir(), "prollytree", "datasets",
                                      quote(self.prefix, safe="") or "_root")
        os.makedirs(self.state_dir, exist_ok=True)
        self.lock = DatasetLock(os.path.join(self.state_dir, "lock"))
        self.store = GitNodeStore(repo=repo)
        self.store.miss_handler = self._learn_all
        self._learnt_tips: frozenset = frozenset()
        self._learnt_commits: set = set()
        self.cache = NodeCache(self.store)
        self._init_common()
        self._datasets: dict[str, Dataset] = {}
        self.head_path = os.path.join(self.state_dir, "HEAD")
        if not os.path.exists(self.head_path):
            with self.lock.exclusive():
                if not os.path.exists(self.head_path):
                    target = (repo.refs.read_ref(b"HEAD") or b"ref: refs/heads/main").strip()
                    if target.startswith(b"ref: refs/heads/") and not repo.refs.keys(
                            base=b"refs/heads/"):
                        # a repository without commits: start on "main" whatever
                        # init.defaultBranch says (and point the unborn HEAD there, so
                        # that git log shows the dataset's commits)
                        if target != b"ref: refs/heads/main" and not self.bare:
                            repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/main")
                        target = b"ref: refs/heads/main"
                    if target.startswith(b"ref: refs/heads/"):
                        atomic_write(self.head_path, target + b"\n")
                    else:  # the repository is detached: the store starts on "main"
                        atomic_write(self.head_path, b"ref: refs/heads/main\n")
        head = self.head_commit()
        self.config = self._config_at(head) if head else TreeConfig()

    # -- identity ---------------------------------------------------------------------------

    def default_identity(self) -> tuple[str, str]:
        env = os.environ
        if all(env.get(f"GIT_{r}_{k}") for r in ("AUTHOR", "COMMITTER")
               for k in ("NAME", "EMAIL")):
            # the environment decides everything: skip parsing the config stack
            # (~10% of a small commit)
            return identity("AUTHOR", None, None), identity("COMMITTER", None, None)
        cfg = self.repo.get_config_stack()

        def get(key: bytes) -> str | None:
            try:
                v = cfg.get((b"user",), key)
            except KeyError:
                return None
            return v.decode("utf-8", "replace") if v else None

        name, email = get(b"name"), get(b"email")
        return identity("AUTHOR", name, email), identity("COMMITTER", name, email)

    # -- reading commits ------------------------------------------------------------------

    def _dataset_tree(self, tree_id: bytes) -> Tree | None:
        store = self.repo.object_store
        sha = tree_id
        for part in self._path_parts:
            try:
                t = store[sha]
            except KeyError:
                return None
            if not isinstance(t, Tree) or part not in t:
                return None
            mode, sha = t[part]
            if mode != MODE_TREE:
                return None
        t = store[sha]
        return t if isinstance(t, Tree) else None

    def dataset_of(self, cid: str, tree_id: bytes | None = None) -> Dataset:
        """The dataset in commit ``cid``'s tree (memoised: commits are immutable)."""
        hit = self._datasets.get(cid)
        if hit is not None:
            return hit
        if tree_id is None:
            tree_id = self.read_commit(cid).extra["tree"]
        ds = self._dataset_tree(tree_id)
        info = NO_DATASET
        if ds is not None and ROOT_ENTRY in ds:
            info = self._read_dataset(ds)
        self._datasets[cid] = info
        return info

    def _read_dataset(self, ds: Tree) -> Dataset:
        read = self.store.read_blob
        files = {e.path: (e.mode, bytes.fromhex(e.sha.decode("ascii"))) for e in ds.iteritems()}
        data = read(files[ROOT_ENTRY][1]) or b""
        lines = data.splitlines()
        fields = dict(ln.split(b" ", 1) for ln in lines[1:] if b" " in ln)
        try:
            root = bytes.fromhex(fields.get(b"root", b"").decode("ascii"))
        except ValueError:
            root = b""
        if data.startswith(ROOT_MAGIC_V1):
            config = TreeConfig()
            if CONFIG_ENTRY in files:
                raw = read(files[CONFIG_ENTRY][1])
                if raw:
                    config = TreeConfig.from_bytes(raw)
            if len(root) != 32:
                raise StoreError(f"the dataset's {DATASET_DIR.decode()}/ROOT is damaged")
            trees = RootSet.single(root, config)
        else:
            raw = read(files[ROOTSET_ENTRY][1]) if ROOTSET_ENTRY in files else None
            want = fields.get(b"rootset", b"").decode("ascii", "replace")
            if raw is None or hashlib.sha256(raw).hexdigest() != want:
                raise StoreError("the dataset's root set (.prolly/rootset) is missing or "
                                 "does not match .prolly/ROOT")
            trees = RootSet.decode(raw)
        mirrors = {}
        if TREE_ENTRY in files:
            mirrors[DEFAULT_TREE] = files[TREE_ENTRY]
        if TREES_DIR in files and len(trees) > 1:
            sub = {e[0]: e[1:] for e in self._tree_entries(files[TREES_DIR][1])}
            for name in trees:
                if name != DEFAULT_TREE:
                    e = sub.get(mirror_path(name)[len(TREES_DIR) + 1:])
                    if e is not None:
                        mirrors[name] = e
        return Dataset(trees, bytes.fromhex(ds.id.decode("ascii")), files, mirrors)

    def _config_at(self, cid: str) -> TreeConfig:
        return self.dataset_of(cid).trees[DEFAULT_TREE].config

    def _read_commit(self, cid: str) -> Commit | None:
        try:
            obj = self.repo.object_store[cid.encode("ascii")]
        except (KeyError, ValueError, UnicodeEncodeError):
            return None
        if not isinstance(obj, GitCommit):
            return None
        trees = self.dataset_of(cid, obj.tree).trees
        msg = obj.message.decode("utf-8", "replace")
        if msg.endswith("\n"):
            msg = msg[:-1]
        return Commit(id=cid, trees=trees, parents=tuple(p.decode() for p in obj.parents),
                      author=obj.author.decode("utf-8", "replace"),
                      committer=obj.committer.decode("utf-8", "replace"), message=msg,
                      timestamp=int(obj.commit_time), tz_offset=int(obj.commit_timezone),
                      extra={"tree": obj.tree})

    def commits_with_prefix(self, prefix: str) -> list[str]:
        for _attempt in range(3):
            out = []
            try:
                it = self.repo.object_store.iter_prefix(prefix.encode("ascii"))
                for sha in it:
                    s = sha.decode("ascii") if isinstance(sha, bytes) else sha
                    if self._read_commit(s) is not None:
                        out.append(s)
            except (NotImplementedError, AttributeError):
                return super().commits_with_prefix(prefix)
            except PackFileDisappeared:
                # a concurrent `git gc`/repack replaced the packs: rescan and retry
                self.repo.object_store.packs  # noqa: B018 - the property rescans
                continue
            return sorted(set(out))
        return super().commits_with_prefix(prefix)

    # -- automatic pack consolidation ----------------------------------------------------------

    def consolidate_packs(self, limit: int | None = None) -> bool:
        """Merge the small packs when there are more than ``limit`` (default
        :data:`AUTO_PACK_LIMIT`, as ``git gc --auto``'s ``gc.autoPackLimit``): every commit
        writes one pack, and lookups slow down with the number of packs. The few largest
        packs are left alone (:func:`prollytree.git.pack.merge_small_packs`), so the cost
        is bounded by the recent small packs, not the repository. Best effort, under the
        dataset's exclusive lock after a commit; readers are not blocked. Returns whether
        packs were merged."""
        limit = AUTO_PACK_LIMIT if limit is None else limit
        store = self.repo.object_store
        try:
            if store.count_pack_files() <= limit:
                return False
        except OSError:
            return False
        # One consolidation at a time per repository: the stores of several worktrees
        # (each with its own dataset lock) share the object directory. Busy: skip, the
        # other one consolidates.
        lock_dir = os.path.join(os.path.normpath(self.repo.commondir()), "prollytree")
        os.makedirs(lock_dir, exist_ok=True)
        fd = os.open(os.path.join(lock_dir, "repack.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            try:
                merged = merge_small_packs(os.path.join(store.path, "pack"), store.get_raw,
                                           keep_largest=max(1, limit // 6))
            except (OSError, ValueError, KeyError):
                return False    # a writer is landing packs right now: next time
        finally:
            os.close(fd)  # releases the flock
        store.packs  # noqa: B018 - rescan: the merged packs are gone
        return merged > 0

    # -- nodes after clone: learn the mirrors ----------------------------------------------

    def _learn_all(self) -> bool:
        """Teach the node store where every mirrored node of every ref lives (run on a
        lookup miss, e.g. in a fresh clone, or after another process fetched or pushed
        commits into the repository: only commits not learnt before are walked)."""
        starts = set()
        for ref, sha in self.repo.refs.as_dict().items():
            if ref == b"HEAD" or ref.startswith(b"refs/prollytree/"):
                continue
            obj = self.repo.object_store[sha] if sha in self.repo.object_store else None
            while isinstance(obj, Tag):
                obj = self.repo.object_store[obj.object[1]]
            if isinstance(obj, GitCommit):
                starts.add(obj.id.decode())
        tips = frozenset(starts)
        if tips <= self._learnt_tips:
            return False
        self._learnt_tips = self._learnt_tips | tips
        learnt = 0
        known = self.store.known_tree_ids()
        seen_ds: set = set()
        done = self._learnt_commits
        stack = [c for c in starts if c not in done]
        while stack:
            cid = stack.pop()
            if cid in done:
                continue
            done.add(cid)
            try:
                c = self.read_commit(cid)
            except (KeyError, ValueError):
                continue
            stack.extend(p for p in c.parents if p not in done)
            info = self.dataset_of(c.id, c.extra["tree"])
            if info.tree_id is None or info.tree_id in seen_ds:
                continue
            seen_ds.add(info.tree_id)
            for mode, sha in info.mirrors.values():
                learnt += self.store.learn_mirror(mode, sha, decode, known)
        return learnt > 0

    # -- writing commits --------------------------------------------------------------------

    def _leaf_chunks(self, addr: bytes) -> list | None:
        """Addresses of the chunks and chunk indexes the chunked values of leaf
        ``addr`` need, sorted (None: it holds none); the mirror lists them under it."""
        node = self.cache.load(addr)
        if getattr(node, "env", None) is None:
            return None
        refs: set = set()
        for v in node.vals:
            if type(v) is Envelope:
                refs.update(chunk_refs(self._raw, v))
        return sorted(refs)

    def _raw(self, addr: bytes) -> bytes:
        """A node's bytes, re-encoded from the decoded node when the store lost them
        (the canonical encoding makes that exact)."""
        if addr == EMPTY_ROOT:
            return EMPTY_NODE_BYTES
        data = self.store.get(addr)
        if data is None:
            data = encode(self.cache.load(addr))
        return data

    def _mirror_bases(self, parents: list[Dataset], name: str) -> list[tuple[bytes, int]]:
        """(root, level) of the parents' trees ``name`` whose mirrors the node map names
        correctly: the new commit may reuse any entry of those (they are in Git, with
        everything under them, for as long as the parents are)."""
        bases = []
        store, load = self.store, self.cache.load
        for info in parents:
            mirror = info.mirrors.get(name)
            if mirror is None:
                continue
            root = info.trees.root_of(name)
            try:
                level = load(root).level
            except (KeyError, ValueError):
                continue  # the parent's tree cannot be read: reuse nothing of it
            mode, sha = mirror
            if store.known_id(root, level) != sha:
                # the map lacks this mirror (e.g. commits fetched since the map was
                # learnt): learn the subtrees it does not know yet
                store.learn_mirror(mode, sha, decode)
                if store.known_id(root, level) != sha:
                    continue
            bases.append((root, level))
        return bases

    def write_commit(self, trees: RootSet, parents: list[str], message: str, author: str,
                     committer: str, timestamp: int, tz_offset: int) -> str:
        store = self.store
        infos = [self.dataset_of(p) for p in parents]
        objects: list = []
        records: list = []
        mirrors: dict = {}
        for name, entry in trees.items():
            # a tree a parent has unchanged keeps the parent's mirror (in Git with
            # everything under it for as long as the parent is)
            for info in infos:
                if info.trees.root_of(name) == entry.root and name in info.mirrors:
                    mirrors[name] = info.mirrors[name]
                    break
            else:
                m = store.mirror(entry.root, self.cache.load, self._raw,
                                 self._mirror_bases(infos, name), self._leaf_chunks)
                objects.extend(m.objects)
                records.extend(m.records)
                mirrors[name] = (m.mode, m.sha)
        rs_bytes = trees.encode()
        root_blob = (ROOT_MAGIC + b"root " + trees.default_root.hex().encode() + b"\n"
                     + b"rootset " + hashlib.sha256(rs_bytes).hexdigest().encode() + b"\n")
        files = {}
        for fname, body in ((ROOT_ENTRY, root_blob), (ROOTSET_ENTRY, rs_bytes),
                            (CONFIG_ENTRY, trees[DEFAULT_TREE].config.to_bytes())):
            sha = git_raw_id(b"blob", body)
            objects.append((b"blob", sha, body))
            files[fname] = (MODE_BLOB, sha)
        files[TREE_ENTRY] = mirrors[DEFAULT_TREE]
        named = [(mirror_path(n)[len(TREES_DIR) + 1:], md, sh)
                 for n, (md, sh) in mirrors.items() if n != DEFAULT_TREE]
        if named:
            body = tree_body(named)
            sha = git_raw_id(b"tree", body)
            objects.append((b"tree", sha, body))
            files[TREES_DIR] = (MODE_TREE, sha)
        body = tree_body([(n, md, sh) for n, (md, sh) in files.items()])
        ds_id = git_raw_id(b"tree", body)
        objects.append((b"tree", ds_id, body))
        top = self._replace_path(parents[0] if parents else None, ds_id, objects)
        c = GitCommit()
        c.tree = top.hex().encode("ascii")
        c.parents = [p.encode("ascii") for p in parents]
        c.author = author.encode("utf-8")
        c.committer = committer.encode("utf-8")
        c.author_time = c.commit_time = int(timestamp)
        c.author_timezone = c.commit_timezone = int(tz_offset)
        c.encoding = None
        c.message = message.encode("utf-8") + (b"" if message.endswith("\n") else b"\n")
        body = c.as_raw_string()
        cid = git_raw_id(b"commit", body)
        objects.append((b"commit", cid, body))
        store.write_objects(objects, records)
        self.consolidate_packs()
        cid_s = cid.hex()
        self._datasets[cid_s] = Dataset(trees, ds_id, files, mirrors)
        return cid_s

    def _tree_entries(self, sha: bytes | None) -> list[tuple[bytes, int, bytes]]:
        if sha is None:
            return []
        raw = sha if len(sha) == 20 else bytes.fromhex(sha.decode("ascii"))
        got = self.store.read_object(raw)
        if got is None or got[0] != 2:
            return []
        try:
            return parse_tree(got[1])
        except ValueError as e:
            raise StoreError(f"Git tree {raw.hex()} is damaged ({e}); run 'git fsck'"
                             ) from None

    def _replace_path(self, parent: str | None, ds_id: bytes, objects: list) -> bytes:
        """20-byte id of ``parent``'s tree with ``<prefix>/.prolly`` replaced by the tree
        ``ds_id``; new tree objects are appended to ``objects``."""
        chain: list[list] = []
        sha = None
        if parent is not None:
            got = self.store.read_object(bytes.fromhex(parent))
            if got is None or got[0] != 1 or not got[1].startswith(b"tree "):
                raise StoreError(f"commit {parent} cannot be read; run 'git fsck'")
            sha = got[1][5:45]
        for part in self._path_parts[:-1]:
            entries = self._tree_entries(sha)
            chain.append(entries)
            sha = None
            for name, mode, s in entries:
                if name == part and mode == MODE_TREE:
                    sha = s.hex().encode("ascii")
        chain.append(self._tree_entries(sha))
        child = ds_id
        for entries, part in zip(reversed(chain), reversed(self._path_parts)):
            new = [e for e in entries if e[0] != part]
            new.append((part, MODE_TREE, child))
            body = tree_body(new)
            child = git_raw_id(b"tree", body)
            objects.append((b"tree", child, body))
        return child

    # -- refs -------------------------------------------------------------------------------

    def get_ref(self, name: str) -> str | None:
        try:
            sha = self.repo.refs[name.encode("utf-8")]
        except KeyError:
            return None
        except (ValueError, UnicodeDecodeError, OSError) as e:
            raise CorruptRefError(f"ref {name} cannot be read: {e}") from None
        if not isinstance(sha, bytes) or not _HEX40.fullmatch(sha):
            path = os.path.join(self.repo.commondir(), *name.split("/"))
            raise CorruptRefError(
                f"ref {name} is damaged ({path} holds {str(sha)[:60]}); restore it from "
                f"'git reflog {name}' or delete it") from None
        if name.startswith(TAGS):
            try:
                obj = self.repo.object_store[sha]
                while isinstance(obj, Tag):
                    obj = self.repo.object_store[obj.object[1]]
            except KeyError:
                raise CorruptRefError(f"tag {name} names a missing object {sha!r}") from None
            sha = obj.id
        return sha.decode("ascii")

    # -- Git lock files left by a killed writer ------------------------------------------------
    #
    # Git's lock files (``refs/heads/x.lock``, ``index.lock``) outlive a process killed while
    # it held them, and block every later writer. Before creating one, this store records
    # the paths in ``<state dir>/git-locks`` (under the dataset's exclusive flock, which the
    # kernel releases when the process dies) and removes the record afterwards. Whoever
    # next holds the exclusive flock and finds the record knows its writer died in the
    # middle: the lock files it names are left over and are removed.

    def _intent_path(self) -> str:
        return os.path.join(self.state_dir, "git-locks")

    def _lock_intent(self, paths: list[str]) -> None:
        atomic_write(self._intent_path(), "\n".join(paths).encode("utf-8"), fsync=False)

    def _lock_done(self) -> None:
        try:
            os.unlink(self._intent_path())
        except FileNotFoundError:
            pass

    def recover_locks(self) -> list[str]:
        """Remove Git lock files a killed writer of this dataset left (call under the
        dataset's exclusive lock); returns the paths removed."""
        try:
            with open(self._intent_path(), encoding="utf-8") as f:
                paths = [p for p in f.read().splitlines() if p.endswith(".lock")]
        except (OSError, UnicodeDecodeError):
            return []
        removed = []
        for p in paths:
            try:
                os.unlink(p)
                removed.append(p)
            except FileNotFoundError:
                pass
            except OSError:
                continue
        self._lock_done()
        return removed

    def _ref_lock_paths(self, name: str) -> list[str]:
        common = self.repo.commondir()
        return [os.path.join(common, *name.split("/")) + ".lock",
                os.path.join(common, "packed-refs.lock")]

    def cas_ref(self, name: str, new: str | None, old: str | None) -> bool:
        ref = name.encode("utf-8")
        refs = self.repo.refs
        msg = b"prollytree"
        self.recover_locks()
        self._lock_intent(self._ref_lock_paths(name))
        try:
            if new is None:
                if old is None:
                    return True
                return bool(refs.remove_if_equals(ref, old.encode("ascii"), message=msg))
            if old is None:
                return bool(refs.add_if_new(ref, new.encode("ascii"), message=msg))
            return bool(refs.set_if_equals(ref, old.encode("ascii"), new.encode("ascii"),
                                           message=msg))
        except FileLocked as e:
            raise StoreLockedError(
                f"cannot update {name}: {getattr(e, 'lockfilename', e)} exists, held by "
                f"another Git process (if none is running, delete that file)") from None
        finally:
            self._lock_done()

    def list_refs(self, prefix: str) -> dict[str, str]:
        out = {}
        for name in self.repo.refs.keys(base=prefix.encode("utf-8")):
            n = name.decode("utf-8")
            sha = self.get_ref(prefix + n)
            if sha is not None:
                out[n] = sha
        return out

    def read_head(self) -> tuple[str | None, str | None]:
        try:
            with open(self.head_path, "rb") as f:
                data = f.read().strip()
        except FileNotFoundError:
            raise CorruptRefError(
                f"{self.head_path} is missing; write 'ref: refs/heads/main' into it (or "
                f"the branch the store should be on)") from None
        if data.startswith(b"ref: refs/heads/"):
            try:
                name = data[len(b"ref: refs/heads/"):].decode("utf-8")
                check_ref_name(name)
                return name, None
            except (UnicodeDecodeError, ValueError):
                pass
        elif _HEX40.fullmatch(data):
            return None, data.decode("ascii")
        raise CorruptRefError(
            f"{self.head_path} is damaged ({data[:60]!r}); write 'ref: refs/heads/main' "
            f"into it (or the branch the store should be on)")

    def write_head(self, branch: str | None, commit: str | None = None) -> None:
        data = (f"ref: refs/heads/{branch}\n" if branch is not None else f"{commit}\n")
        # atomic (rename) but not fsynced: a checkout lost to power failure is harmless
        atomic_write(self.head_path, data.encode("utf-8"), fsync=False)

    def checked_out_branches(self, others_only: bool = False) -> set[str]:
        """The branch the repository's HEAD is on and those of its linked worktrees
        (``others_only``: leave out the worktree this store works in)."""
        out = set()
        common = self.repo.commondir()
        heads = [os.path.join(common, "HEAD")]
        wt = os.path.join(common, "worktrees")
        if os.path.isdir(wt):
            heads.extend(os.path.join(wt, d, "HEAD") for d in os.listdir(wt))
        own = os.path.realpath(os.path.join(self.repo.controldir(), "HEAD"))
        for path in heads:
            if others_only and os.path.realpath(path) == own:
                continue
            try:
                with open(path, "rb") as f:
                    data = f.read().strip()
            except OSError:
                continue
            if data.startswith(b"ref: refs/heads/"):
                out.add(data[len(b"ref: refs/heads/"):].decode("utf-8", "replace"))
        return out

    # -- garbage collection -------------------------------------------------------------------

    def collect(self, commits: set, live: set, dry_run: bool, progress=None) -> dict:
        """Git reclaims objects itself (``git gc``): count the nodes the node map names
        that ``live`` lacks, and drop map entries whose objects Git already deleted."""
        store = self.store
        dead = sum(1 for a in store.addresses() if a not in live)
        dropped = store.prune_map(progress, dry_run=dry_run)["dropped"]
        return {"unreachable_nodes": dead, "unreachable_commits": 0, "removed": 0,
                "removed_commits": 0, "map_entries_dropped": dropped, "managed_by_git": True}

    def close(self) -> None:
        try:
            self.store.discard_pending()
            self.repo.close()
        finally:
            super().close()
