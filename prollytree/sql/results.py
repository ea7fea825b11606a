"""Statement results as the caller asked for them: dicts, ``(labels, rows)``, JSON or CSV."""

from __future__ import annotations

import io
import json
from typing import Any

FORMATS = ("dict", "dicts", "tuples", "json", "csv")


def format_rows(labels: list[str], rows: list[tuple], format: str):
    """Rows as ``format``: dicts, ``(labels, rows)``, a JSON string or CSV text."""
    if format in ("dict", "dicts"):
        return [dict(zip(labels, r)) for r in rows]
    if format == "tuples":
        return labels, [list(r) for r in rows]
    if format == "json":
        return json.dumps([dict(zip(labels, [jsonable(v) for v in r])) for r in rows],
                          indent=2)
    out = io.StringIO()
    out.write(",".join(labels) + "\n")
    for r in rows:
        out.write(",".join(csv_cell(v) for v in r) + "\n")
    return out.getvalue()


def jsonable(v):
    return v.hex() if isinstance(v, bytes) else v


def csv_cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, bytes):
        v = v.hex()
    return '"' + str(v).replace('"', '""') + '"'



def check_format(format: Any) -> None:
    if not isinstance(format, str):
        raise TypeError(f"format must be a str, not {type(format).__name__}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")

