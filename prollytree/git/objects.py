"""Git object formats: object ids, tree bodies and entry modes (``gitformat-*``).

Small and exact, because the node store builds thousands of tree objects per commit and
dulwich's object classes cost a Python object per entry.
"""

from __future__ import annotations

import hashlib

MODE_BLOB = 0o100644
MODE_TREE = 0o040000
_MODE_TEXT = {MODE_TREE: b"40000 ", MODE_BLOB: b"100644 "}
_sha1 = hashlib.sha1

#: pack type numbers of the object kinds
TYPE_NUM = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}


def git_object_id(kind: bytes, data: bytes) -> bytes:
    """The 40-hex Git id of an object of ``kind`` (b"blob", b"tree", b"commit") and body."""
    h = _sha1(kind + b" %d\0" % len(data))
    h.update(data)
    return h.hexdigest().encode("ascii")


def git_raw_id(kind: bytes, data: bytes) -> bytes:
    """The 20-byte Git id of an object of ``kind`` and body."""
    h = _sha1(kind + b" %d\0" % len(data))
    h.update(data)
    return h.digest()


def tree_body(entries: list[tuple[bytes, int, bytes]], plain: bool = False) -> bytes:
    """The body of a Git tree object holding ``entries`` ((name, mode, 20-byte id)),
    sorted as Git sorts them (a tree's name compares as if it ended with "/"; ``plain``
    says that no name is a prefix of another, so that bytes order is Git's order)."""
    if plain:
        entries.sort()
    else:
        entries.sort(key=lambda e: e[0] + b"/" if e[1] == MODE_TREE else e[0])
    modes = _MODE_TEXT
    return b"".join([(modes.get(m) or b"%o " % m) + n + b"\0" + s for n, m, s in entries])


def tree_layout(entries: list[tuple[bytes, int, bytes, int]], plain: bool = False
                ) -> tuple[bytes, list[int], int]:
    """Like :func:`tree_body` for entries (name, mode, 20-byte id, index), index -1 for
    one entry and 0..n-1 for the others: returns (body, offset of each indexed entry's
    id in the body, offset of the -1 entry's id)."""
    if plain:
        entries.sort()
    else:
        entries.sort(key=lambda e: e[0] + b"/" if e[1] == MODE_TREE else e[0])
    modes = _MODE_TEXT
    offsets = [0] * (len(entries) - 1)
    special = -1
    parts = []
    pos = 0
    for n, m, s, i in entries:
        head = (modes.get(m) or b"%o " % m) + n + b"\0"
        pos += len(head)
        if i < 0:
            special = pos
        else:
            offsets[i] = pos
        parts.append(head)
        parts.append(s)
        pos += 20
    return b"".join(parts), offsets, special


def parse_tree(body: bytes) -> list[tuple[bytes, int, bytes]]:
    """The entries (name, mode, 20-byte id) of a Git tree object's ``body``, in order.
    ValueError when it is not a well-formed tree body."""
    out = []
    pos, end = 0, len(body)
    find = body.find
    while pos < end:
        sp = find(b" ", pos)
        nul = find(b"\0", sp + 1)
        if sp < 0 or nul < 0 or nul + 21 > end:
            raise ValueError("malformed Git tree")
        out.append((body[sp + 1:nul], int(body[pos:sp], 8), body[nul + 1:nul + 21]))
        pos = nul + 21
    return out
