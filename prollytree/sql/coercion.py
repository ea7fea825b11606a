"""SQLite's type affinity applied in Python: the value a column of a given affinity stores
for a value (text that looks numeric becomes a number, and so on), as SQLite would."""

from __future__ import annotations

import re
from typing import Any, Callable

_NUM = re.compile(r"\s*[+-]?(?:(\d+)|(\d+\.\d*|\.\d+|\d+(?:\.\d*)?[eE][+-]?\d+|"
                  r"\.\d+[eE][+-]?\d+))\s*\Z")
_I64 = 1 << 63


def _numeric(v: str):
    """The number a text converts to under numeric affinity, or None when it stays text."""
    m = _NUM.match(v)
    if not m:
        return None
    if m.group(1) is not None:
        i = int(v)
        return i if -_I64 <= i < _I64 else float(i)
    return float(v)


def coerce(aff: str, v: Any, cast_text: Callable[[float], str] | None = None) -> Any:
    """Apply SQLite's column affinity ``aff`` to value ``v`` (datatype3.html section 3)."""
    if v is None or isinstance(v, bytes):
        return v
    if aff == "INTEGER" or aff == "NUMERIC":
        if isinstance(v, str):
            n = _numeric(v)
            if n is None:
                return v
            v = n
        if isinstance(v, float) and v.is_integer() and -_I64 <= v < _I64:
            return int(v)
        return v
    if aff == "REAL":
        if isinstance(v, str):
            n = _numeric(v)
            return v if n is None else float(n)
        return float(v) if isinstance(v, int) else v
    if aff == "TEXT":
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            return cast_text(v) if cast_text else repr(v)
        return v
    return v
