"""A read-only view of a node store, for trees opened at an old commit."""

from __future__ import annotations

from ..errors import ReadOnlyError
from ..storage import NodeStore


class ReadOnlyNodes(NodeStore):
    """Reads go to ``store``; every write raises ReadOnlyError."""

    kind = "read-only view"
    read_only = True

    def __init__(self, store: NodeStore) -> None:
        self._inner = store
        self.kind = f"read-only view of {store.kind}"

    def _get(self, address: bytes) -> bytes | None:
        return self._inner.get(address)

    def _put_many(self, items: list) -> None:  # pragma: no cover - put_many refuses first
        raise ReadOnlyError("a snapshot tree is read-only")

    def _has(self, address: bytes) -> bool:
        return self._inner.has(address)

    def _get_ref(self, name: str) -> bytes | None:
        return None

    def _set_ref(self, name: str, value: bytes | None, expected: object) -> bool:  # pragma: no cover
        raise ReadOnlyError("a snapshot tree is read-only")

    def close(self) -> None:
        """Nothing to release: the store owns the nodes."""
