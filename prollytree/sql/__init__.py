"""SQL over versioned prolly trees: the full SQLite dialect (through apsw virtual tables).

Modules: :mod:`.keys` (order-preserving key encoding), :mod:`.rows` (row encoding),
:mod:`.schema` (schemas read from SQLite), :mod:`.statements` (splitting and classifying SQL),
:mod:`.trees` (the named trees a database lives in), :mod:`.vtable` (the virtual table module),
:mod:`.system` (version control from SQL) and :mod:`.store` (:class:`ProllySQLStore`).
Needs the ``sql`` extra (apsw).
"""

from .store import ProllySQLStore

__all__ = ["ProllySQLStore"]
