"""Printing for ``git-prolly``: escaping of keys and values, JSON, tables and colour.

Rules (documented in ``docs/cli.md``):

* **Text output.** A key or value that is valid UTF-8 made of printable characters is
  printed as it is. Anything else (invalid UTF-8, control characters such as a tab or a
  newline, terminal escape codes) is printed as a bytes literal ``b"..."`` in which
  printable ASCII stands for itself, ``\\t \\n \\r \\\\ \\"`` are escaped as in Python and
  every other byte is ``\\xNN``. ``get`` is the one exception: it prints a UTF-8 value with
  its newlines and tabs as they are (and ``get --raw`` writes the exact bytes).
* **JSON output** (``--json``). A key or value is a JSON string when its bytes are valid
  UTF-8; otherwise the field is renamed with a ``_b64`` suffix (``"key_b64"``,
  ``"value_b64"``, ...) and holds the standard base64 of the bytes. An absent value is
  ``null``.
* **Tables.** On a terminal (or with ``--color always``) tables are drawn with rich,
  coloured unless ``NO_COLOR`` is set or ``--color never`` is given. When stdout is not a
  terminal each row is one line of tab-separated fields without a header, so that
  ``cut -f``/``awk -F'\\t'`` work (fields never contain a raw tab: see the escaping rule).

rich is imported only when a table, a colour or a progress bar is actually drawn.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from typing import Any, Iterable, Sequence

_SIMPLE_ESCAPES = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x5C: "\\\\", 0x22: '\\"'}
_BYTE_TEXT = [
    _SIMPLE_ESCAPES.get(b, chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}") for b in range(256)
]


def bytes_literal(data: bytes) -> str:
    """``b"..."`` form of ``data``: printable ASCII as is, everything else escaped."""
    return 'b"' + "".join(_BYTE_TEXT[b] for b in data) + '"'


def show(data: bytes | None) -> str:
    """A key or value for a table cell or a listing line (see the module rules)."""
    if data is None:
        return ""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return bytes_literal(data)
    if text.isprintable() and not text.startswith('b"'):
        return text
    return bytes_literal(data)


def show_text(data: bytes) -> str:
    """A value printed on its own (``get``): UTF-8 text keeps newlines and tabs."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return bytes_literal(data)
    if all(c.isprintable() or c in "\n\t\r" for c in text) and not text.startswith('b"'):
        return text
    return bytes_literal(data)


def put_bytes(obj: dict, name: str, data: bytes | None) -> dict:
    """Set ``obj[name]`` to the UTF-8 text of ``data`` (None stays None), or
    ``obj[name + "_b64"]`` to its base64 when it is not valid UTF-8."""
    if data is None:
        obj[name] = None
        return obj
    try:
        obj[name] = data.decode("utf-8")
    except UnicodeDecodeError:
        obj[name + "_b64"] = base64.b64encode(data).decode("ascii")
    return obj


def get_bytes(obj: dict, name: str) -> bytes | None:
    """Inverse of :func:`put_bytes`: the bytes of field ``name`` (or ``name_b64``), None
    when the field is null; KeyError when neither field is there."""
    if name + "_b64" in obj and obj[name + "_b64"] is not None:
        raw = obj[name + "_b64"]
        if not isinstance(raw, str):
            raise ValueError(f"field {name}_b64 must be a base64 string")
        try:
            return base64.b64decode(raw, validate=True)
        except ValueError:
            raise ValueError(f"field {name}_b64 is not valid base64") from None
    value = obj[name]
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, (int, float, bool)):
        return json.dumps(value).encode("utf-8")
    # nested JSON (an object or a list) is stored as its compact JSON text
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def timestamp_text(ts: int | float | None, tz_offset: int = 0) -> str:
    """Git-like date: ``2024-05-01 12:34:56 +0200``."""
    if ts is None:
        return ""
    import datetime as _dt
    tz = _dt.timezone(_dt.timedelta(seconds=tz_offset))
    return _dt.datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S %z")


class Output:
    """Where and how a command prints. One per invocation (``ctx.obj``)."""

    def __init__(self, color: str = "auto", json_mode: bool = False) -> None:
        self.json_mode = json_mode
        self.color_mode = color
        self.stdout_tty = _isatty(sys.stdout)
        self.stderr_tty = _isatty(sys.stderr)
        no_color = bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"
        #: draw rich tables (a terminal, or forced with --color always)
        self.rich = (self.stdout_tty and color != "never") or color == "always"
        #: use colour in what is drawn
        self.colour = color == "always" or (self.rich and color == "auto" and not no_color)
        self.err_colour = color == "always" or (self.stderr_tty and color == "auto"
                                                 and not no_color)
        self._console = None

    # -- low level ---------------------------------------------------------------------

    def console(self):
        if self._console is None:
            from rich.console import Console
            self._console = Console(
                force_terminal=self.rich, no_color=not self.colour, highlight=False,
                soft_wrap=True, emoji=False, markup=False)
        return self._console

    def write(self, text: str) -> None:
        """Write ``text`` to stdout as UTF-8 (whatever the locale)."""
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))
        sys.stdout.buffer.flush()

    def write_bytes(self, data: bytes) -> None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    def line(self, text: str = "", style: str | None = None) -> None:
        """One line of human text, in ``style`` (a rich style) when colour is on."""
        if style and self.colour:
            from rich.text import Text
            self.console().print(Text(text, style=style))
        else:
            self.write(text + "\n")

    def lines(self, texts: Iterable[str]) -> None:
        buf: list[str] = []
        for t in texts:
            buf.append(t)
            if len(buf) >= 1024:
                self.write("\n".join(buf) + "\n")
                buf = []
        if buf:
            self.write("\n".join(buf) + "\n")

    def styled(self, parts: Sequence[tuple[str, str | None]]) -> None:
        """One line made of (text, style) parts."""
        if self.colour:
            from rich.text import Text
            t = Text()
            for text, style in parts:
                t.append(text, style=style or "")
            self.console().print(t)
        else:
            self.write("".join(text for text, _ in parts) + "\n")

    # -- structured --------------------------------------------------------------------

    def json(self, obj: Any) -> None:
        """The JSON document of a ``--json`` command: indented on a terminal, one line
        otherwise."""
        if self.stdout_tty:
            text = json.dumps(obj, indent=2, ensure_ascii=False)
        else:
            text = json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))
        self.write(text + "\n")

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[str]],
              title: str | None = None, styles: Sequence[str | None] | None = None,
              empty: str | None = None, nowrap: Sequence[int] = ()) -> int:
        """Print rows: a rich table when drawing, tab-separated lines otherwise. Returns
        the number of rows."""
        if not self.rich:
            n = 0
            buf: list[str] = []
            for row in rows:
                buf.append("\t".join(row))
                n += 1
                if len(buf) >= 1024:
                    self.write("\n".join(buf) + "\n")
                    buf = []
            if buf:
                self.write("\n".join(buf) + "\n")
            return n
        from rich.table import Table
        table = Table(title=title, show_header=True, header_style="bold" if self.colour else "",
                      box=_box(), title_justify="left", highlight=False)
        for i, col in enumerate(columns):
            style = styles[i] if styles and self.colour else None
            table.add_column(col, style=style or "", overflow="fold", no_wrap=i in nowrap)
        n = 0
        for row in rows:
            table.add_row(*row)
            n += 1
        if n == 0 and empty is not None:
            self.line(empty)
            return 0
        self.console().print(table)
        return n

    # -- stderr ------------------------------------------------------------------------

    def error(self, message: str) -> None:
        _err("error", message, "red", self.err_colour)

    def warn(self, message: str) -> None:
        _err("warning", message, "yellow", self.err_colour)

    def note(self, message: str) -> None:
        """A human note on stderr (never mixed into data on stdout)."""
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    # -- progress ----------------------------------------------------------------------

    def progress(self, description: str, total: int | None, unit: str = "items",
                 enabled: bool = True):
        """A context manager yielding ``advance(n)``; draws a rich progress bar on stderr
        when ``enabled`` and stderr is a terminal, and does nothing otherwise. ``unit`` is
        "bytes" or "items"; ``total`` None draws an open-ended bar."""
        return _Progress(self, description, total, unit, enabled)


class _Progress:
    def __init__(self, out: Output, description: str, total: int | None,
                 unit: str = "items", enabled: bool = True) -> None:
        self.enabled = enabled
        self.out = out
        self.description = description
        self.total = total
        self.unit = unit
        self._progress = None
        self._task = None

    def __enter__(self):
        if self.enabled and self.out.stderr_tty and not os.environ.get(
                "GIT_PROLLY_NO_PROGRESS"):
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn,
                                       Progress, TextColumn, TimeRemainingColumn,
                                       TransferSpeedColumn)
            console = Console(stderr=True, no_color=not self.out.err_colour)
            if self.unit == "bytes":
                counts = [DownloadColumn(), TransferSpeedColumn()]
            else:
                counts = [MofNCompleteColumn()]
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), *counts,
                TimeRemainingColumn(), console=console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total)
        return self.advance

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _err(label: str, message: str, colour: str, use_colour: bool) -> None:
    message = " ".join(str(message).splitlines()) or label
    if use_colour:
        prefix = f"\x1b[{'31' if colour == 'red' else '33'}m{label}:\x1b[0m"
    else:
        prefix = f"{label}:"
    sys.stderr.write(f"{prefix} {message}\n")
    sys.stderr.flush()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _box():
    from rich import box
    return box.SIMPLE_HEAD
