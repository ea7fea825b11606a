"""History on Git (dulwich): real commits on real branches.

Layout of a dataset at ``<prefix>`` (a directory of the repository, ``""`` for its root)
in every commit's tree::

    <prefix>/.prolly/ROOT     blob  "prollytree-dataset 1\\nroot <64 hex>\\n"
    <prefix>/.prolly/config   blob  TreeConfig bytes
    <prefix>/.prolly/tree     the mirror of the prolly tree (see prollytree.storage.git):
                              a blob for a leaf root, else a tree holding "node" (the
                              node's bytes) and one entry per child

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

import os
import shutil
import subprocess
import time
from urllib.parse import quote

from dulwich.diff_tree import tree_changes
from dulwich.objects import Commit as GitCommit
from dulwich.objects import Tag, Tree
from dulwich.repo import NotGitRepository, Repo

from ..errors import StoreError
from ..storage.git import MODE_BLOB, MODE_TREE, GitNodeStore, git_object_id
from ..tree.codec import EMPTY_ROOT, decode
from ..tree.config import TreeConfig
from ..tree.node_cache import NodeCache
from .backend import HEADS, LEAF_CACHE, TAGS, HistoryBackend
from .lock import DatasetLock
from .objects import Commit, identity, local_tz_offset

DATASET_DIR = b".prolly"
ROOT_ENTRY = b"ROOT"
CONFIG_ENTRY = b"config"
TREE_ENTRY = b"tree"
ROOT_MAGIC = b"prollytree-dataset 1\n"
ZERO = b"0" * 40


def _atomic_write(path: str, data: bytes, fsync: bool = True) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def find_repo(path: str) -> Repo | None:
    """The Git repository containing ``path`` (which need not exist yet), or None."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent
    try:
        return Repo.discover(probe)
    except NotGitRepository:
        return None


class GitBackend(HistoryBackend):
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
        self._learnt = False
        self.cache = NodeCache(self.store, LEAF_CACHE)
        self._init_common()
        self._roots: dict[str, tuple[bytes, bytes | None]] = {}
        self.head_path = os.path.join(self.state_dir, "HEAD")
        if not os.path.exists(self.head_path):
            with self.lock.exclusive():
                if not os.path.exists(self.head_path):
                    target = repo.refs.read_ref(b"HEAD") or b"ref: refs/heads/main"
                    if target.startswith(b"ref: refs/heads/"):
                        _atomic_write(self.head_path, target.strip() + b"\n")
                    else:  # the repository is detached: the store starts on "main"
                        _atomic_write(self.head_path, b"ref: refs/heads/main\n")
        head = self.head_commit()
        self.config = self._config_at(head) if head else TreeConfig()

    # -- identity ---------------------------------------------------------------------------

    def default_identity(self) -> tuple[str, str]:
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

    def _root_of(self, cid: str, tree_id: bytes) -> tuple[bytes, bytes | None]:
        """(root address, .prolly tree id) of the dataset in a commit's tree."""
        hit = self._roots.get(cid)
        if hit is not None:
            return hit
        ds = self._dataset_tree(tree_id)
        root, ds_id = EMPTY_ROOT, None
        if ds is not None and ROOT_ENTRY in ds:
            ds_id = ds.id
            data = self.store._read_blob(ds[ROOT_ENTRY][1]) or b""
            for line in data.splitlines():
                if line.startswith(b"root "):
                    root = bytes.fromhex(line[5:].decode("ascii"))
        self._roots[cid] = (root, ds_id)
        return root, ds_id

    def _config_at(self, cid: str) -> TreeConfig:
        c = self.repo.object_store[cid.encode()]
        ds = self._dataset_tree(c.tree)
        if ds is not None and CONFIG_ENTRY in ds:
            data = self.store._read_blob(ds[CONFIG_ENTRY][1])
            if data:
                return TreeConfig.from_bytes(data)
        return TreeConfig()

    def _read_commit(self, cid: str) -> Commit | None:
        try:
            obj = self.repo.object_store[cid.encode("ascii")]
        except (KeyError, ValueError, UnicodeEncodeError):
            return None
        if not isinstance(obj, GitCommit):
            return None
        root, _ = self._root_of(cid, obj.tree)
        msg = obj.message.decode("utf-8", "replace")
        if msg.endswith("\n"):
            msg = msg[:-1]
        return Commit(id=cid, root=root, parents=tuple(p.decode() for p in obj.parents),
                      author=obj.author.decode("utf-8", "replace"),
                      committer=obj.committer.decode("utf-8", "replace"), message=msg,
                      timestamp=int(obj.commit_time), tz_offset=int(obj.commit_timezone),
                      extra={"tree": obj.tree})

    def commits_with_prefix(self, prefix: str) -> list[str]:
        out = []
        try:
            it = self.repo.object_store.iter_prefix(prefix.encode("ascii"))
            for sha in it:
                s = sha.decode("ascii") if isinstance(sha, bytes) else sha
                if self._read_commit(s) is not None:
                    out.append(s)
        except (NotImplementedError, AttributeError):
            return super().commits_with_prefix(prefix)
        return sorted(set(out))

    # -- nodes after clone: learn the mirrors ----------------------------------------------

    def _learn_all(self) -> bool:
        """Teach the node store where every mirrored node of every ref lives (run once
        per process on a lookup miss, e.g. in a fresh clone)."""
        if self._learnt:
            return False
        self._learnt = True
        starts = set()
        for ref, sha in self.repo.refs.as_dict().items():
            if ref == b"HEAD" or ref.startswith(b"refs/prollytree/"):
                continue
            obj = self.repo.object_store[sha] if sha in self.repo.object_store else None
            while isinstance(obj, Tag):
                obj = self.repo.object_store[obj.object[1]]
            if isinstance(obj, GitCommit):
                starts.add(obj.id.decode())
        learnt = 0
        known = set(self.store._tree.values())
        seen_ds: set = set()
        for c in self.history.walk(starts):
            ds = self._dataset_tree(c.extra["tree"])
            if ds is None or TREE_ENTRY not in ds or ds.id in seen_ds:
                continue
            seen_ds.add(ds.id)
            mode, sha = ds[TREE_ENTRY]
            learnt += self.store.learn_mirror(mode, sha, decode, known)
        return learnt > 0

    # -- writing commits --------------------------------------------------------------------

    def write_commit(self, root: bytes, parents: list[str], message: str, author: str,
                     committer: str, timestamp: int, tz_offset: int) -> str:
        store = self.store
        mode, mirror_sha, objects, nodes, records = store.mirror(root, self.cache.load,
                                                                self.cache.raw)
        root_blob = ROOT_MAGIC + b"root " + root.hex().encode() + b"\n"
        cfg_blob = self.config.to_bytes()
        ds = Tree()
        for name, m, body in ((ROOT_ENTRY, MODE_BLOB, root_blob),
                              (CONFIG_ENTRY, MODE_BLOB, cfg_blob)):
            sha = git_object_id(b"blob", body)
            objects.append((b"blob", sha, body))
            ds.add(name, m, sha)
        ds.add(TREE_ENTRY, mode, mirror_sha)
        top = self._replace_path(parents[0] if parents else None, ds, objects)
        c = GitCommit()
        c.tree = top
        c.parents = [p.encode("ascii") for p in parents]
        c.author = author.encode("utf-8")
        c.committer = committer.encode("utf-8")
        c.author_time = c.commit_time = int(timestamp)
        c.author_timezone = c.commit_timezone = int(tz_offset)
        c.encoding = None
        c.message = message.encode("utf-8") + (b"" if message.endswith("\n") else b"\n")
        body = c.as_raw_string()
        cid = git_object_id(b"commit", body)
        objects.append((b"commit", cid, body))
        store.write_objects(objects, nodes, records)
        cid_s = cid.decode("ascii")
        self._roots[cid_s] = (root, git_object_id(b"tree", ds.as_raw_string()))
        return cid_s

    def _replace_path(self, parent: str | None, ds: Tree, objects: list) -> bytes:
        """Id of ``parent``'s tree with ``<prefix>/.prolly`` replaced by ``ds``; new tree
        objects are appended to ``objects``."""
        store = self.repo.object_store
        chain: list[Tree] = []
        sha = None
        if parent is not None:
            sha = store[parent.encode("ascii")].tree
        for part in self._path_parts[:-1]:
            t = store[sha] if sha is not None else Tree()
            if not isinstance(t, Tree):
                t = Tree()
            chain.append(t)
            sha = None
            if part in t:
                m, s = t[part]
                if m == MODE_TREE:
                    sha = s
        top = store[sha] if sha is not None else Tree()
        chain.append(top)
        child_mode, child = MODE_TREE, ds
        new = child
        for t, part in zip(reversed(chain), reversed(self._path_parts)):
            body = new.as_raw_string()
            nid = git_object_id(b"tree", body)
            objects.append((b"tree", nid, body))
            t2 = Tree()
            for e in t.iteritems():
                if e.path != part:
                    t2.add(e.path, e.mode, e.sha)
            t2.add(part, child_mode, nid)
            new = t2
        body = new.as_raw_string()
        top_id = git_object_id(b"tree", body)
        objects.append((b"tree", top_id, body))
        return top_id

    # -- refs -------------------------------------------------------------------------------

    def get_ref(self, name: str) -> str | None:
        try:
            sha = self.repo.refs[name.encode("utf-8")]
        except KeyError:
            return None
        if name.startswith(TAGS):
            obj = self.repo.object_store[sha]
            while isinstance(obj, Tag):
                obj = self.repo.object_store[obj.object[1]]
            sha = obj.id
        return sha.decode("ascii")

    def cas_ref(self, name: str, new: str | None, old: str | None) -> bool:
        ref = name.encode("utf-8")
        refs = self.repo.refs
        msg = b"prollytree"
        if new is None:
            if old is None:
                return True
            return bool(refs.remove_if_equals(ref, old.encode("ascii"), message=msg))
        if old is None:
            return bool(refs.add_if_new(ref, new.encode("ascii"), message=msg))
        return bool(refs.set_if_equals(ref, old.encode("ascii"), new.encode("ascii"),
                                       message=msg))

    def list_refs(self, prefix: str) -> dict[str, str]:
        out = {}
        for name in self.repo.refs.keys(base=prefix.encode("utf-8")):
            n = name.decode("utf-8")
            sha = self.get_ref(prefix + n)
            if sha is not None:
                out[n] = sha
        return out

    def read_head(self) -> tuple[str | None, str | None]:
        with open(self.head_path, "rb") as f:
            data = f.read().strip()
        if data.startswith(b"ref: refs/heads/"):
            return data[len(b"ref: refs/heads/"):].decode("utf-8"), None
        return None, data.decode("ascii")

    def write_head(self, branch: str | None, commit: str | None = None) -> None:
        data = (f"ref: refs/heads/{branch}\n" if branch is not None else f"{commit}\n")
        # atomic (rename) but not fsynced: a checkout lost to power failure is harmless
        _atomic_write(self.head_path, data.encode("utf-8"), fsync=False)

    # -- the Git index ------------------------------------------------------------------------

    def after_branch_update(self, branch: str, old: str | None, new: str) -> None:
        if self.bare:
            return
        target = self.repo.refs.read_ref(b"HEAD") or b""
        if target.strip() != b"ref: refs/heads/" + branch.encode("utf-8"):
            return
        self.sync_index(new)

    def _synced(self) -> str | None:
        try:
            with open(os.path.join(self.state_dir, "index-synced"), "rb") as f:
                return f.read().strip().decode("ascii") or None
        except OSError:
            return None

    def sync_index(self, commit: str, full: bool = False) -> None:
        """Make the Git index list exactly the dataset files of ``commit`` (other paths
        untouched): incrementally from the last synced commit, or in full."""
        synced_path = os.path.join(self.state_dir, "index-synced")
        old = None if full else self._synced()
        new_ds = self._root_of(commit, self.read_commit(commit).extra["tree"])[1]
        changes: list[tuple[str, int, bytes | None]] = []  # (path, mode, sha or None)
        if old is not None and self.has_commit(old):
            old_ds = self._root_of(old, self.read_commit(old).extra["tree"])[1]
            if old_ds == new_ds:
                _atomic_write(synced_path, commit.encode() + b"\n", fsync=False)
                return
            for ch in tree_changes(self.repo.object_store, old_ds, new_ds):
                if ch.old is not None and ch.old.path is not None and (
                        ch.new is None or ch.new.path != ch.old.path):
                    changes.append((ch.old.path.decode(), 0, None))
                if ch.new is not None and ch.new.path is not None:
                    changes.append((ch.new.path.decode(), ch.new.mode, ch.new.sha))
        else:
            for p in self._indexed_paths():
                changes.append((p, 0, None))
            if new_ds is not None:
                for ch in tree_changes(self.repo.object_store, None, new_ds):
                    changes.append((ch.new.path.decode(), ch.new.mode, ch.new.sha))
        pre = self.index_prefix
        if shutil.which("git"):
            self._update_index_git([(pre + p, m, s) for p, m, s in changes])
        else:  # pragma: no cover - exercised only without a git executable
            self._update_index_dulwich([(pre + p, m, s) for p, m, s in changes])
        _atomic_write(synced_path, commit.encode() + b"\n", fsync=False)

    def _indexed_paths(self) -> list[str]:
        idx = self.repo.open_index()
        pre = self.index_prefix.encode()
        return [p.decode()[len(self.index_prefix):] for p in idx.paths() if p.startswith(pre)]

    def _git(self, args: list[str], data: bytes) -> None:
        env = dict(os.environ)
        env["GIT_DIR"] = self.repo.controldir()
        env["GIT_WORK_TREE"] = self.repo.path
        env.pop("GIT_INDEX_FILE", None)
        r = subprocess.run(["git", *args], input=data, capture_output=True, env=env,
                           cwd=self.repo.path)
        if r.returncode:
            raise StoreError(f"git {' '.join(args)} failed: "
                             f"{r.stderr.decode('utf-8', 'replace').strip()}")

    def _update_index_git(self, changes: list) -> None:
        if not changes:
            return
        lines = []
        keep = []
        for path, mode, sha in changes:
            if sha is None:
                lines.append(b"0 " + ZERO + b"\t" + path.encode() + b"\0")
            else:
                lines.append(b"%o %s\t%s\0" % (mode, sha, path.encode()))
                keep.append(path.encode())
        self._git(["update-index", "-z", "--index-info"], b"".join(lines))
        if keep:
            self._git(["update-index", "-z", "--skip-worktree", "--stdin"],
                      b"\0".join(keep) + b"\0")

    def _update_index_dulwich(self, changes: list) -> None:  # pragma: no cover
        from dulwich.index import IndexEntry
        idx = self.repo.open_index()
        for path, mode, sha in changes:
            p = path.encode()
            if sha is None:
                if p in idx:
                    del idx[p]
            else:
                idx[p] = IndexEntry(ctime=(0, 0), mtime=(0, 0), dev=0, ino=0, mode=mode,
                                    uid=0, gid=0, size=0, sha=sha, flags=0,
                                    extended_flags=0x4000)
        idx.write()

    def close(self) -> None:
        try:
            self.store.discard_pending()
            self.repo.close()
        finally:
            super().close()
