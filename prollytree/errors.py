"""Exceptions raised by prollytree.

Every error a caller can provoke with bad input is a ``TypeError`` (wrong type) or a
``ValueError`` subclass (bad value, unknown ref, damaged data), so ``except ValueError``
catches all of them. Storage problems that are not the caller's fault (a damaged file,
a node missing from a store) derive from :class:`StoreError`.
"""

from __future__ import annotations


class ProllyError(Exception):
    """Base class of every exception defined by prollytree."""


class StoreError(ProllyError, ValueError):
    """A node store cannot serve what was asked of it."""


class MissingNodeError(StoreError, KeyError):
    """A node the tree refers to is not in the store."""

    def __init__(self, address: bytes, detail: str = "") -> None:
        self.address = address
        msg = f"node {address.hex()} is missing from the store"
        super().__init__(msg + (f" ({detail})" if detail else ""))

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class CorruptNodeError(StoreError):
    """A node's bytes do not hash to its address, or cannot be decoded."""

    def __init__(self, address: bytes, detail: str) -> None:
        self.address = address
        super().__init__(f"node {address.hex()} is damaged: {detail}")


class StoreLockedError(StoreError):
    """Another writer holds the store's write lock."""


class ReadOnlyError(StoreError):
    """A write was attempted on a store or tree opened read-only."""


class ProofError(ProllyError, ValueError):
    """A proof is malformed or does not match the root hash it is checked against."""


class UnknownRefError(ProllyError, ValueError):
    """A branch, tag or commit reference does not resolve."""


class InvalidRefNameError(ProllyError, ValueError):
    """A branch, tag or ref name breaks one of Git's ref-name rules (``git
    check-ref-format``); the message names the rule."""


class MergeConflictError(ProllyError, ValueError):
    """A merge stopped on conflicts that the chosen resolution did not settle."""

    def __init__(self, message: str, conflicts: list) -> None:
        self.conflicts = conflicts
        super().__init__(message)


class RevertConflictError(MergeConflictError):
    """``VersionedKvStore.revert`` stopped: keys the reverted commit changed were changed
    again since. ``conflicts`` are MergeConflict objects with ``base_value`` = the value
    the commit made, ``source_value`` = the value before it (what the revert would
    restore) and ``destination_value`` = the current value."""


class WorktreeLockedError(StoreError):
    """A write or commit through a handle that does not hold a worktree's lock (see
    :class:`prollytree.versioning.worktree_store.WorktreeVersionedKvStore`); also raised when
    removing a locked worktree."""

    def __init__(self, message: str, worktree_id: str | None = None,
                 reason: str | None = None) -> None:
        self.worktree_id = worktree_id
        self.reason = reason
        super().__init__(message)
class RemoteError(ProllyError, ValueError):
    """A remote (another repository, a Git server, a prollytree HTTP server) cannot be
    reached, or refused or failed a fetch or a push; nothing changed locally."""


class NonFastForwardError(RemoteError):
    """A push would move a remote branch to a commit that does not descend from its
    current one (it would lose the remote's commits): fetch and merge (``pull``) first,
    or push with ``force=True``."""


class AuthenticationError(RemoteError):
    """A server refused a request for a missing or wrong token (HTTP 401 / 403)."""


class CorruptRefError(StoreError):
    """A ref or HEAD cannot be read: its file (or record) is damaged. The message names
    it and says how to repair it; nothing is served from a damaged ref."""
