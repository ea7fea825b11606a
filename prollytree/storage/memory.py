"""The in-memory node store: a dict of address -> bytes. Volatile, fast, not shared."""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping

import threading

from .base import ANY, NodeStore
from .checks import check_address


class MemoryNodeStore(NodeStore):
    """Nodes and refs in plain dicts; nothing survives the process."""

    kind = "memory"

    def __init__(self) -> None:
        self._nodes: dict[bytes, bytes] = {}
        self._refs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def _get(self, address: bytes) -> bytes | None:
        return self._nodes.get(address)

    def get_many(self, addresses: Iterable[bytes]) -> dict[bytes, bytes]:
        nodes = self._nodes
        return {a: nodes[a] for a in map(check_address, addresses) if a in nodes}

    def _put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        self._nodes.update(items)

    def _has(self, address: bytes) -> bool:
        return address in self._nodes

    def _get_ref(self, name: str) -> bytes | None:
        return self._refs.get(name)

    def _set_ref(self, name: str, value: bytes | None, expected: object) -> bool:
        with self._lock:  # compare-and-swap must be atomic between threads
            return self._swap(name, value, expected)

    def _swap(self, name: str, value: bytes | None, expected: object) -> bool:
        if expected is not ANY and self._refs.get(name) != expected:
            return False
        if value is None:
            self._refs.pop(name, None)
        else:
            self._refs[name] = value
        return True

    def refs(self) -> Mapping[str, bytes]:
        return dict(self._refs)

    def addresses(self) -> Iterator[bytes]:
        return iter(list(self._nodes))

    def remove(self, addresses: Iterable[bytes]) -> int:
        n = 0
        for a in [check_address(a) for a in addresses]:
            if self._nodes.pop(a, None) is not None:
                n += 1
        return n

    def __len__(self) -> int:
        return len(self._nodes)
