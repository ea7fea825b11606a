"""Offline search over prolly trees: BM25 full-text and vector (semantic) indexes that are
derived caches of a tree, kept up to date from the structural diff between the root they
reflect and the tree's current root (extra ``search``: apsw, numpy, usearch, wordllama).

```python
from prollytree.search import TextIndex, VectorIndex, HashEmbedder
text = TextIndex("cache/text.db")            # or TextIndex() in memory
text.sync(tree)                              # O(changes since the last sync)
text.search("tokyo weather", limit=5)        # [(tree name, key, score), ...]
vec = VectorIndex("cache/vec.db", embedder=HashEmbedder(256))
vec.sync(tree); vec.search("rain in Japan", k=10)
```
"""

from .derived import DerivedIndex, Document, IndexMismatchError, utf8_document
from .embedders import CallableEmbedder, Embedder, HashEmbedder, WordLlamaEmbedder
from .text import TextIndex, query_terms
from .vector import DEFAULT_EXACT_LIMIT, VectorIndex

__all__ = [
    "DerivedIndex", "Document", "IndexMismatchError", "utf8_document",
    "Embedder", "HashEmbedder", "CallableEmbedder", "WordLlamaEmbedder",
    "TextIndex", "query_terms", "VectorIndex", "DEFAULT_EXACT_LIMIT",
]
