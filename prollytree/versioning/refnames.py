"""Git's rules for branch, tag and ref names, as ``git check-ref-format`` applies them.

:func:`check_ref_name` accepts exactly the names Git accepts (checked against the ``git``
binary in ``tests/versioning/test_refnames.py``) and raises
:class:`~prollytree.errors.InvalidRefNameError` naming the rule a bad name breaks. Rules
(``gitcheck-ref-format(1)``), applied to the full ref (``refs/heads/<name>`` for a branch):

1. no component (the parts between ``/``) begins with ``.`` or ends with ``.lock``;
2. no ``..`` anywhere;
3. no ASCII control character (below 0x20, or DEL), space, ``~``, ``^`` or ``:``;
4. no ``?``, ``*`` or ``[``;
5. does not begin or end with ``/``, and no ``//`` (no empty component);
6. does not end with ``.``;
7. no ``@{``;
8. is not the single character ``@``;
9. no ``\\``.

Branch names also may not start with ``-`` nor be ``HEAD`` (``git check-ref-format
--branch``); tag names may not start with ``-`` (``git tag``).

Two limits Git leaves to the file system are enforced here, so that a name that Git would
accept but could not store fails early with a clear message instead of an OS error:
each component is at most :data:`MAX_COMPONENT_BYTES` bytes in UTF-8 (a ref is a file
named after its last component, and Git writes ``<name>.lock`` beside it, within the
255-byte file-name limit of common file systems), and the full ref at most
:data:`MAX_REF_BYTES` bytes. Names must be valid Unicode (no lone surrogates).

Cost: one pass over the name, O(len(name)).
"""

from __future__ import annotations

import re

from ..errors import InvalidRefNameError

__all__ = ["check_ref_name", "ref_path", "MAX_COMPONENT_BYTES", "MAX_REF_BYTES"]

#: Longest component (between slashes) in UTF-8 bytes: 255 (NAME_MAX) minus ".lock".
MAX_COMPONENT_BYTES = 250
#: Longest full ref (``refs/heads/<name>``) in UTF-8 bytes: well inside PATH_MAX (4096)
#: even below a deep repository directory.
MAX_REF_BYTES = 1024

_PREFIX = {"branch": "refs/heads/", "tag": "refs/tags/", "ref": ""}
_FORBIDDEN = {" ": "a space", "~": "'~'", "^": "'^'", ":": "':'", "?": "'?'", "*": "'*'",
              "[": "'['", "\\": "'\\'"}
_BAD_CHAR = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def ref_path(name: str, what: str = "branch") -> str:
    """The full ref a ``what`` ("branch", "tag", "ref") called ``name`` lives at."""
    return _PREFIX[what] + name


def check_ref_name(name: object, what: str = "branch") -> str:
    """Return ``name`` if Git accepts it as a ``what`` name, else raise.

    ``what`` is "branch" (as ``git check-ref-format --branch``), "tag" (as ``git tag``)
    or "ref" (a full ref such as ``refs/heads/main``, as ``git check-ref-format``).
    Raises TypeError for a non-str, InvalidRefNameError (a ValueError) naming the broken
    rule otherwise.
    """
    if what not in _PREFIX:
        raise ValueError(f"what must be one of {sorted(_PREFIX)}, got {what!r}")
    if not isinstance(name, str):
        raise TypeError(f"{what} name must be a str, not {type(name).__name__}")

    def bad(rule: str) -> InvalidRefNameError:
        return InvalidRefNameError(f"invalid {what} name {name!r}: {rule}")

    if not name:
        raise bad("it is empty")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise bad("it is not valid Unicode (lone surrogate)") from None
    if what in ("branch", "tag") and name.startswith("-"):
        raise bad("it starts with '-'")
    if what == "branch" and name == "HEAD":
        raise bad("'HEAD' is not a valid branch name")
    full = _PREFIX[what] + name
    m = _BAD_CHAR.search(full)
    if m:
        c = m.group()
        what_c = _FORBIDDEN.get(c) or f"the control character {c!r}"
        raise bad(f"it contains {what_c}")
    if ".." in full:
        raise bad("it contains '..'")
    if "@{" in full:
        raise bad("it contains '@{'")
    if full == "@":
        raise bad("it is the single character '@'")
    if full.startswith("/"):
        raise bad("it starts with '/'")
    if full.endswith("/"):
        raise bad("it ends with '/'")
    if "//" in full:
        raise bad("it contains '//' (an empty component)")
    if full.endswith("."):
        raise bad("it ends with '.'")
    components = full.split("/")
    if what == "ref" and len(components) < 2:
        raise bad("a full ref needs at least one '/' (e.g. refs/heads/<name>)")
    for comp in components:
        if comp.startswith("."):
            raise bad(f"component {comp!r} starts with '.'")
        if comp.endswith(".lock"):
            raise bad(f"component {comp!r} ends with '.lock'")
        n = len(comp.encode("utf-8"))
        if n > MAX_COMPONENT_BYTES:
            raise bad(f"component {comp[:20]!r}... is {n} bytes in UTF-8; the limit is "
                      f"{MAX_COMPONENT_BYTES} (file names are limited to 255 bytes)")
    n = len(full.encode("utf-8"))
    if n > MAX_REF_BYTES:
        raise bad(f"the ref {full[:30]!r}... is {n} bytes in UTF-8; the limit is "
                  f"{MAX_REF_BYTES}")
    return name
