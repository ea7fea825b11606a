"""Content-defined chunking of large values (FastCDC 2020, via ``pyfastcdc``).

Where a large value is cut is part of the format: the same bytes must give the same
chunks (and so the same envelope and root hash) on every machine. The cuts are those of
``pyfastcdc.FastCDC(AVG, min_size=MIN, max_size=MAX)`` with its default gear table and
normalized chunking 1; ``pyfastcdc`` ships a compiled chunker and a pure-Python one that
cut identically. Measured against ``fastcdc`` (PyPI, FastCDC 2016) and a pure-Python gear
chunker of ours (``benchmarks/bench_values.py``): pyfastcdc was the fastest.

A chunk's cut depends only on the bytes from the chunk's start, so cutting a stream in
windows (keeping each window's last, possibly unfinished, chunk for the next one) gives
the cuts of the whole value: :func:`stream_chunks` never holds more than one window.
"""

from __future__ import annotations

from typing import Callable, Iterator

#: chunk size bounds (bytes); the mean chunk is about AVG + MIN (FastCDC skips MIN bytes)
MIN = 16 * 1024
AVG = 64 * 1024
MAX = 256 * 1024

#: bytes read from a stream per window (a multiple of MAX keeps windows aligned to work)
WINDOW = 2 * 1024 * 1024

_chunker = None


def cut(data) -> list[int]:
    """Lengths of the chunks of ``data`` (bytes-like), in order; [] for empty data."""
    global _chunker
    if _chunker is None:  # imported on first use: `import prollytree` stays cheap
        import pyfastcdc
        _chunker = pyfastcdc.FastCDC(AVG, min_size=MIN, max_size=MAX)
    return [c.length for c in _chunker.cut_buf(data)]


def stream_chunks(read: Callable[[int], bytes], window: int = WINDOW) -> Iterator[memoryview]:
    """The chunks of the byte stream ``read(n)`` returns (b"" at its end), in order, as
    memoryviews valid until the next one is taken; holds one buffer of ``window + MAX``
    bytes. Same chunks as ``cut`` of the whole."""
    buf = bytearray(window + MAX)
    view = memoryview(buf)
    have = 0  # bytes of buf in use (the carried, unfinished chunk first)
    end = False
    while True:
        while not end and have < window:
            block = read(window + MAX - have)
            if block is None:  # a non-blocking stream with nothing ready
                raise ValueError("the stream returned None (non-blocking streams are not "
                                 "supported)")
            if not isinstance(block, (bytes, bytearray, memoryview)):
                raise TypeError(f"read() must return bytes, not {type(block).__name__}")
            if not block:
                end = True
                break
            n = len(block)
            view[have:have + n] = block
            have += n
        if not have:
            return
        lengths = cut(view[:have])
        pos = 0
        last = len(lengths) - 1
        for i, n in enumerate(lengths):
            if i == last and not end:
                break  # may be unfinished: cut again with the next window
            yield view[pos:pos + n]
            pos += n
        if end:
            return
        buf[:have - pos] = view[pos:have]  # carry the unfinished chunk to the front
        have -= pos
