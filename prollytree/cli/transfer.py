"""``import`` and ``export``: JSON Lines and CSV.

JSON Lines: one object per line, ``{"key": ..., "value": ...}``; a key or value that is
not valid UTF-8 is written as ``key_b64``/``value_b64`` (base64) instead. On import a
value may also be any other JSON (a number, an object...): it is stored as its compact
JSON text. Blank lines are skipped.

CSV: a header row naming the columns, ``key,value`` (plus ``key_b64,value_b64`` when some
key or value is not valid UTF-8: each row then fills one of ``key``/``key_b64`` and one of
``value``/``value_b64``). ``import --no-header`` reads the first two columns of every row
as key and value.

Import reads and checks the whole file before staging anything: a bad line stops it with
the line number and stages nothing.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
from typing import IO, Callable, Iterable, Iterator

from .output import get_bytes

FORMATS = ("jsonl", "csv")
_EXT = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}

#: files at least this large get a progress bar (when stderr is a terminal)
PROGRESS_BYTES = 1 << 20
PROGRESS_ITEMS = 20000


def guess_format(path: str, given: str | None) -> str:
    if given:
        return given
    ext = os.path.splitext(path)[1].lower()
    if ext in _EXT:
        return _EXT[ext]
    raise ValueError(f"cannot tell the format of {path!r} from its name; "
                     f"pass --format jsonl or --format csv")


class _CountingReader(io.RawIOBase):
    """A binary reader reporting bytes read to ``advance``."""

    def __init__(self, raw: IO[bytes], advance: Callable[[int], None]) -> None:
        self.raw = raw
        self.advance = advance

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        if n:
            self.advance(n)
        return n


def read_records(stream: IO[bytes], fmt: str, header: bool = True
                 ) -> Iterator[tuple[bytes, bytes]]:
    """Parse (key, value) pairs; ValueError naming the line on bad input."""
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="strict", newline="")
    try:
        if fmt == "jsonl":
            yield from _read_jsonl(text)
        else:
            yield from _read_csv(text, header)
    except UnicodeDecodeError as e:
        raise ValueError(f"the file is not valid UTF-8 ({e.reason} at byte {e.start}); "
                         f"write binary keys and values as key_b64/value_b64") from None


def _read_jsonl(text: IO[str]) -> Iterator[tuple[bytes, bytes]]:
    for n, line in enumerate(text, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"line {n}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"line {n}: expected an object with \"key\" and \"value\"")
        try:
            key = get_bytes(obj, "key")
            value = get_bytes(obj, "value")
        except KeyError as e:
            raise ValueError(f"line {n}: missing field {e.args[0]!r} "
                             f"(or {e.args[0]}_b64)") from None
        except ValueError as e:
            raise ValueError(f"line {n}: {e}") from None
        if not isinstance(obj.get("key", obj.get("key_b64")), str):
            raise ValueError(f"line {n}: the key must be a string")
        if value is None:
            raise ValueError(f"line {n}: the value is null")
        yield key, value


def _cell(row: list, i: int | None) -> str | None:
    if i is None or i >= len(row):
        return None
    return row[i]


def _read_csv(text: IO[str], header: bool) -> Iterator[tuple[bytes, bytes]]:
    reader = csv.reader(text)
    cols = {"key": 0, "value": 1}
    b64 = {"key_b64": None, "value_b64": None}
    if header:
        try:
            first = next(reader)
        except StopIteration:
            return
        names = [c.strip().lower() for c in first]
        if not ({"key", "key_b64"} & set(names)) or not ({"value", "value_b64"} & set(names)):
            raise ValueError("line 1: the CSV header must name a 'key' and a 'value' column "
                             "(or pass --no-header to read the first two columns)")
        cols = {n: (names.index(n) if n in names else None) for n in ("key", "value")}
        b64 = {n: (names.index(n) if n in names else None) for n in ("key_b64", "value_b64")}
    for row in reader:
        n = reader.line_num
        if not row or (len(row) == 1 and not row[0]):
            continue
        out = []
        for name in ("key", "value"):
            enc = _cell(row, b64[name + "_b64"])
            if enc:
                try:
                    out.append(base64.b64decode(enc, validate=True))
                except ValueError:
                    raise ValueError(f"line {n}: column {name}_b64 is not valid base64") \
                        from None
                continue
            plain = _cell(row, cols[name])
            if plain is None:
                raise ValueError(f"line {n}: no {name} (expected at least 2 columns)")
            out.append(plain.encode("utf-8"))
        yield out[0], out[1]


def parse_file(path: str, fmt: str, header: bool, progress) -> list[tuple[bytes, bytes]]:
    """Every record of ``path`` (``-``: stdin), with a progress bar on large files."""
    import sys
    if path == "-":
        return list(read_records(sys.stdin.buffer, fmt, header))
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        with progress(f"reading {os.path.basename(path)}", size, "bytes",
                      size >= PROGRESS_BYTES) as advance:
            src = f if size < PROGRESS_BYTES else io.BufferedReader(
                _CountingReader(f, advance), 1 << 16)
            return list(read_records(src, fmt, header))


# -- export ---------------------------------------------------------------------------------


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def write_records(out: IO[str], fmt: str, items: Iterable[tuple[bytes, bytes]],
                  binary_columns: bool, advance: Callable[[int], None]) -> int:
    """Write pairs to the text stream ``out``; returns how many."""
    n = 0
    if fmt == "jsonl":
        buf = []
        for k, v in items:
            obj: dict = {}
            for name, data in (("key", k), ("value", v)):
                try:
                    obj[name] = data.decode("utf-8")
                except UnicodeDecodeError:
                    obj[name + "_b64"] = base64.b64encode(data).decode("ascii")
            buf.append(json.dumps(obj, ensure_ascii=False))
            n += 1
            if len(buf) >= 4096:
                out.write("\n".join(buf) + "\n")
                advance(len(buf))
                buf = []
        if buf:
            out.write("\n".join(buf) + "\n")
            advance(len(buf))
        return n
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["key", "value", "key_b64", "value_b64"] if binary_columns
               else ["key", "value"])
    for k, v in items:
        if binary_columns:
            row = ["", "", "", ""]
            for i, data in ((0, k), (1, v)):
                try:
                    row[i] = data.decode("utf-8")
                except UnicodeDecodeError:
                    row[i + 2] = base64.b64encode(data).decode("ascii")
            w.writerow(row)
        else:
            w.writerow([k.decode("utf-8"), v.decode("utf-8")])
        n += 1
        if n % 4096 == 0:
            advance(4096)
    advance(n % 4096)
    return n


def needs_binary_columns(items: Iterable[tuple[bytes, bytes]]) -> bool:
    return any(not _is_utf8(k) or not _is_utf8(v) for k, v in items)
