"""Keeping the Git index in step with the dataset (a mixin of :class:`GitBackend`).

When the store commits to the branch the repository has checked out, the dataset's entries
in the Git index are updated (only those, flagged skip-worktree so that ``git status``
stays clean without writing the blobs into the working tree); otherwise the user's next
``git commit`` would record the dataset as deleted. The edit is incremental (from the
commit the index was last synced to) and done in process by :mod:`prollytree.git.index`;
index formats that module does not edit go through ``git update-index``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings

from .._fs import atomic_write
from ..errors import StoreError
from ..git.index import IndexFile, IndexLocked, UnsupportedIndex
from .git_layout import NO_DATASET, TREE_ENTRY, TREES_DIR, mirror_path

SYNCED_FILE = "index-synced"
ZERO = b"0" * 40


class GitIndexMixin:
    """Index syncing for :class:`~.git_backend.GitBackend` (which provides ``repo``,
    ``state_dir``, ``index_prefix``, ``cache``, ``store``, ``dataset_of``,
    ``has_commit``, ``bare`` and the lock-file recovery)."""

    # -- the Git index ------------------------------------------------------------------------

    def after_branch_update(self, branch: str, old: str | None, new: str) -> None:
        if self.bare:
            return
        target = self.repo.refs.read_ref(b"HEAD") or b""
        if target.strip() != b"ref: refs/heads/" + branch.encode("utf-8"):
            return
        self.sync_index(new)

    def _synced(self) -> tuple[str | None, str | None, str | None]:
        """(commit, block digest, index checksum) of the Git index as this store last
        wrote it: ``<commit> <sha1 of the dataset's entries> <index trailer>``."""
        try:
            with open(os.path.join(self.state_dir, SYNCED_FILE), "rb") as f:
                parts = f.read().decode("ascii").split()
        except (OSError, UnicodeDecodeError):
            return None, None, None
        parts = [None if p == "-" else p for p in parts] + [None, None, None]
        return parts[0], parts[1], parts[2]

    def _write_synced(self, commit: str | None, digest: str | None = None,
                      trailer: bytes | None = None) -> None:
        path = os.path.join(self.state_dir, SYNCED_FILE)
        if commit is None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            return
        text = f"{commit} {digest or '-'} {trailer.hex() if trailer else '-'}\n"
        atomic_write(path, text.encode(), fsync=False)

    def _level(self, root: bytes) -> int:
        return self.cache.load(root).level

    def index_changes(self, old: str | None, new: str) -> list:
        """Changes to the Git index entries under the dataset from commit ``old`` (None:
        no entries) to ``new``: (path, mode, 20-byte id) to set, (path, 0, None) to
        remove."""
        pre = self.index_prefix.encode()
        o = self.dataset_of(old) if old is not None else NO_DATASET
        n = self.dataset_of(new)
        if o.tree_id == n.tree_id:
            return []
        out = []
        for name in sorted(set(o.files) | set(n.files)):
            if name in (TREE_ENTRY, TREES_DIR):
                continue
            before, after = o.files.get(name), n.files.get(name)
            if after is None:
                if before is not None:
                    out.append((pre + name, 0, None))
            elif after != before:
                out.append((pre + name, after[0], after[1]))
        for name in sorted(set(o.mirrors) | set(n.mirrors)):
            if o.mirrors.get(name) == n.mirrors.get(name):
                continue
            ro, rn = o.trees.root_of(name), n.trees.root_of(name)
            before = (ro, self._level(ro)) if name in o.mirrors else None
            after = (rn, self._level(rn)) if name in n.mirrors else None
            out.extend(self.store.index_changes(before, after, self.cache.load,
                                                pre + mirror_path(name), self._raw,
                                                self._leaf_chunks))
        return out

    def sync_index(self, commit: str, full: bool = False) -> None:
        """Make the Git index list exactly the dataset files of ``commit`` (other paths
        untouched): incrementally from the commit it was last synced to when the index
        still holds what this store wrote then, else by rewriting the dataset's entries.
        If the index cannot be written (another process holds ``index.lock``) a warning
        is issued: the commit stands, and the next sync rewrites the entries."""
        synced, digest, trailer = (None, None, None) if full else self._synced()
        pre = self.index_prefix.encode()
        written = None
        index = self.repo.index_path()
        self.recover_locks()
        self._lock_intent([index + ".lock"])
        try:
            try:
                with IndexFile(index) as idx:
                    changes = None
                    # the entries are as this store wrote them if the file is (same checksum)
                    # or if they are (same digest of their bytes: another program changed
                    # other entries since)
                    if synced is not None and digest is not None and (
                            (trailer is not None and idx.trailer is not None
                             and idx.trailer.hex() == trailer)
                            or idx.block_digest(pre) == digest) and self.has_commit(synced):
                        if synced == commit:
                            return
                        try:
                            changes = self.index_changes(synced, commit)
                        except (KeyError, ValueError):  # the old tree cannot be read
                            changes = None
                    if changes is None:
                        new_digest = idx.edit(pre, None, self.index_changes(None, commit))
                    else:
                        new_digest = idx.edit(pre, changes)
                    idx.write()
                    written = idx.written_trailer
            except UnsupportedIndex:
                self._sync_index_fallback(commit, synced)
                new_digest = None
            except IndexLocked as e:
                self._write_synced(None)
                warnings.warn(f"prollytree: the Git index was not updated: {e}; the dataset's "
                              f"entries will be rewritten at the next commit", RuntimeWarning,
                              stacklevel=4)
                return
            self._write_synced(commit, new_digest, written)
        finally:
            self._lock_done()

    def _sync_index_fallback(self, commit: str, synced: str | None) -> None:
        """Sync through ``git update-index`` (or dulwich) for an index format
        :mod:`prollytree.git.index` does not edit."""
        pre = self.index_prefix
        if synced is not None and self.has_commit(synced):
            changes = self.index_changes(synced, commit)
        else:
            new = self.index_changes(None, commit)
            keep = {p for p, _, _ in new}
            changes = [((pre + p).encode(), 0, None) for p in self._indexed_paths()
                       if (pre + p).encode() not in keep]
            changes.extend(new)
        items = [(p.decode(), m, None if s is None else s.hex().encode("ascii"))
                 for p, m, s in changes]
        if shutil.which("git"):
            self._update_index_git(items)
        else:  # pragma: no cover - exercised only without a git executable
            self._update_index_dulwich(items)

    def _indexed_paths(self) -> list[str]:
        """Paths (relative to the dataset's ``.prolly/``) the index lists."""
        pre = self.index_prefix
        if shutil.which("git"):  # reads every index format (split, sparse, v4)
            out = self._git(["ls-files", "-z", "--", pre], b"")
            paths = [p.decode() for p in out.split(b"\0") if p]
        else:  # pragma: no cover - exercised only without a git executable
            paths = [p.decode() for p in self.repo.open_index().paths()]
        return [p[len(pre):] for p in paths if p.startswith(pre)]

    def _git(self, args: list[str], data: bytes) -> bytes:
        env = dict(os.environ)
        env["GIT_DIR"] = self.repo.controldir()
        env["GIT_WORK_TREE"] = self.repo.path
        env.pop("GIT_INDEX_FILE", None)
        r = subprocess.run(["git", *args], input=data, capture_output=True, env=env,
                           cwd=self.repo.path)
        if r.returncode:
            raise StoreError(f"git {' '.join(args)} failed: "
                             f"{r.stderr.decode('utf-8', 'replace').strip()}")
        return r.stdout

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

