"""How a value is shown: text, pretty JSON or a hex dump, clipped to what a page holds."""

from __future__ import annotations

import json
from typing import Any

VIEW_BYTES = 64 * 1024    #: bytes of a value shown inline; the rest via the raw download
HEX_VIEW_BYTES = 4096     #: bytes of a binary value shown as a hex dump


def file_size(f: Any) -> int:
    """Length of a seekable file, left at its start."""
    n = f.seek(0, 2)
    f.seek(0)
    return n


def render_value(v: bytes, size: int | None = None) -> dict:
    """How the value viewer shows a value of ``size`` bytes (default ``len(v)``) that
    starts with ``v``: ``kind`` "json" (pretty-printed), "text" or "binary" (a hex
    dump), at most VIEW_BYTES (HEX_VIEW_BYTES for binary) of it."""
    if size is None:
        size = len(v)
    head = v[:VIEW_BYTES]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        # a multi-byte character cut at the view limit is still text
        if size > VIEW_BYTES and e.start >= len(head) - 3:
            text = head[:e.start].decode("utf-8")
        else:
            text = None
    if text is not None and all(ch.isprintable() or ch in "\n\t\r" for ch in text):
        if size <= VIEW_BYTES and text.lstrip()[:1] in ("{", "["):
            try:
                pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
                return {"kind": "json", "view": pretty, "truncated": False}
            except ValueError:
                pass
        return {"kind": "text", "view": text, "truncated": size > VIEW_BYTES}
    return {"kind": "binary", "view": hexdump(v[:HEX_VIEW_BYTES]),
            "truncated": size > HEX_VIEW_BYTES}


def hexdump(data: bytes) -> str:
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off:off + 16]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{off:08x}  {hexpart:<47}  {text}")
    return "\n".join(lines)
