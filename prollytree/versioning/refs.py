"""Ref names and ref expressions.

A *ref expression* names a commit the way Git does: a branch name (``main``,
``refs/heads/main``), a tag (``v1``, ``refs/tags/v1``), ``HEAD``, a full or abbreviated
(at least 4 hex digits) commit id, followed by any number of ``~N`` (N-th first-parent
ancestor, ``~`` alone meaning ``~1``) and ``^``/``^N`` (N-th parent, ``^0`` the commit
itself) suffixes. Resolution order for a bare name is Git's: ``HEAD``, then branch, then
tag, then remote-tracking branch (``origin/main``, backends that have remotes), then
commit id prefix. Anything that does not resolve raises
:class:`~prollytree.errors.UnknownRefError` (a ``ValueError``) naming the expression.
"""

from __future__ import annotations

import re
from typing import Protocol

from ..errors import UnknownRefError
from .refnames import check_ref_name

_HEX = re.compile(r"[0-9a-f]{4,40}\Z")
_SUFFIX = re.compile(r"(~\d*|\^\d*)+\Z")


def check_branch_name(name: object, what: str = "branch") -> str:
    """``name`` if it is a valid Git branch/tag name: exactly ``git check-ref-format``'s
    rules (see :mod:`.refnames`); TypeError for non-str, InvalidRefNameError (a
    ValueError) naming the rule broken otherwise. Every backend checks names here."""
    # other names that become one ref component (a remote's name) follow branch rules
    return check_ref_name(name, what if what in ("branch", "tag", "ref") else "branch")


class RefSource(Protocol):
    """What ref resolution needs from a history backend."""

    def head_commit(self) -> str | None: ...
    def branch_commit(self, name: str) -> str | None: ...
    def tag_commit(self, name: str) -> str | None: ...
    def commits_with_prefix(self, prefix: str) -> list[str]: ...
    def parents(self, commit_id: str) -> tuple: ...


def split_suffixes(expr: str) -> tuple[str, list[tuple[str, int]]]:
    """Split ``"main~2^"`` into ``("main", [("~", 2), ("^", 1)])``."""
    m = _SUFFIX.search(expr)
    if not m or m.start() == 0:
        return expr, []
    base, tail = expr[:m.start()], expr[m.start():]
    steps = [(t[0], int(t[1:]) if len(t) > 1 else 1) for t in re.findall(r"[~^]\d*", tail)]
    return base, steps


def resolve(source: RefSource, expr: object) -> str:
    """The commit id ``expr`` names in ``source``."""
    if not isinstance(expr, str):
        raise TypeError(f"ref must be a str, not {type(expr).__name__}")
    base, steps = split_suffixes(expr.strip())
    commit = _resolve_base(source, base, expr)
    for op, n in steps:
        if op == "~":
            for _ in range(n):
                parents = source.parents(commit)
                if not parents:
                    raise UnknownRefError(f"unknown ref {expr!r}: history is too short")
                commit = parents[0]
        elif n:
            parents = source.parents(commit)
            if len(parents) < n:
                raise UnknownRefError(f"unknown ref {expr!r}: commit {commit[:12]} has "
                                      f"{len(parents)} parent(s)")
            commit = parents[n - 1]
    return commit


def _resolve_base(source: RefSource, base: str, expr: str) -> str:
    if base in ("HEAD", "@"):
        c = source.head_commit()
        if c is None:
            raise UnknownRefError(f"unknown ref {expr!r}: HEAD has no commit yet")
        return c
    remote = getattr(source, "remote_commit", None) or (lambda name: None)
    for prefix, lookup in (("refs/heads/", source.branch_commit),
                           ("refs/tags/", source.tag_commit),
                           ("refs/remotes/", remote)):
        if base.startswith(prefix):
            c = lookup(base[len(prefix):])
            if c is None:
                raise UnknownRefError(f"unknown ref {expr!r}")
            return c
    if base:
        # Git's order: branch, tag, then remote-tracking branch ("origin/main")
        for lookup in (source.branch_commit, source.tag_commit, remote):
            c = lookup(base)
            if c is not None:
                return c
    low = base.lower()
    if _HEX.match(low):
        found = source.commits_with_prefix(low)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise UnknownRefError(f"ambiguous ref {expr!r}: matches commits "
                                  f"{', '.join(sorted(c[:12] for c in found))}")
    raise UnknownRefError(f"unknown ref {expr!r}: not a branch, tag or commit")
