"""Embedders: turn texts into vectors for :class:`~prollytree.search.VectorIndex`.

An embedder is any object with ``id`` (str), ``version`` (str), ``dim`` (int) and
``embed(texts) -> numpy array of shape (len(texts), dim)``, batched. An index records the
embedder's identity and refuses another one (vectors from two models are not comparable).
None of these embedders touches the network.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)


@runtime_checkable
class Embedder(Protocol):
    """What an index needs from an embedding model."""

    id: str
    version: str
    dim: int

    def embed(self, texts: Sequence[str]) -> Any:  # pragma: no cover - protocol
        """One float32 row of length ``dim`` per text."""
        ...


def check_texts(texts: Any) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a sequence of str, not a single string")
    texts = list(texts)
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"texts must be str, not {type(t).__name__}")
    return texts


def check_vectors(out: Any, n: int, dim: int, who: str) -> np.ndarray:
    """The embedder's output as a C-contiguous float32 (n, dim) array, or ValueError."""
    arr = np.asarray(out, dtype=np.float32)
    if arr.ndim == 1 and n == 1:
        arr = arr.reshape(1, -1)
    if arr.shape != (n, dim):
        raise ValueError(f"embedder {who} returned shape {arr.shape}, expected {(n, dim)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"embedder {who} returned non-finite values")
    return np.ascontiguousarray(arr)


def embedder_identity(embedder: Any) -> tuple[str, str, int]:
    """(id, version, dim) of ``embedder``, checked."""
    for attr in ("id", "version", "dim", "embed"):
        if not hasattr(embedder, attr):
            raise TypeError(f"embedder lacks {attr!r}: it must have id, version, dim and embed()")
    eid, ver, dim = embedder.id, embedder.version, embedder.dim
    if not isinstance(eid, str) or not isinstance(ver, str):
        raise TypeError("embedder id and version must be str")
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"embedder dim must be an int, not {type(dim).__name__}")
    if dim <= 0:
        raise ValueError(f"embedder dim must be > 0, got {dim}")
    return eid, ver, dim


class HashEmbedder:
    """Deterministic bag-of-words embedder with no model and no dependency beyond numpy:
    every lowercased word (and word bigram) is hashed, with ``seed``, to a signed
    coordinate; the vector is L2-normalised. Texts sharing words get similar vectors,
    which is enough for tests, benchmarks and keyword-ish recall. O(words) per text."""

    version = "1"

    def __init__(self, dim: int = 256, seed: int = 0) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be an int, not {type(dim).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, not {type(seed).__name__}")
        if dim <= 0:
            raise ValueError(f"dim must be > 0, got {dim}")
        self.dim = dim
        self.seed = seed
        self.id = f"hash-{dim}-{seed}"
        self._salt = seed.to_bytes(8, "little", signed=True)
        self._memo: dict[str, tuple[int, float]] = {}

    def _slot(self, token: str) -> tuple[int, float]:
        hit = self._memo.get(token)
        if hit is None:
            h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8,
                                               salt=self._salt.ljust(16, b"\0")).digest(),
                               "little")
            hit = (h % self.dim, 1.0 if (h >> 63) & 1 else -1.0)
            if len(self._memo) < 1_000_000:
                self._memo[token] = hit
        return hit

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows of norm 1 (all-zero for a text without words)."""
        texts = check_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            row = out[i]
            for w in words:
                j, s = self._slot(w)
                row[j] += s
            for a, b in zip(words, words[1:]):
                j, s = self._slot(a + " " + b)
                row[j] += 0.5 * s
            n = float(np.linalg.norm(row))
            if n > 0:
                row /= n
        return out

    def __repr__(self) -> str:
        return f"HashEmbedder(dim={self.dim}, seed={self.seed})"


class CallableEmbedder:
    """Wrap any function ``fn(list[str]) -> (n, dim) array-like`` as an embedder with the
    given identity (change ``version`` whenever the model behind ``fn`` changes)."""

    def __init__(self, id: str, version: str, dim: int,
                 fn: Callable[[list[str]], Any]) -> None:
        if not isinstance(id, str) or not isinstance(version, str):
            raise TypeError("id and version must be str")
        if not id:
            raise ValueError("id must not be empty")
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be an int, not {type(dim).__name__}")
        if dim <= 0:
            raise ValueError(f"dim must be > 0, got {dim}")
        if not callable(fn):
            raise TypeError("fn must be callable")
        self.id, self.version, self.dim, self._fn = id, version, dim, fn

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return check_vectors(self._fn(texts), len(texts), self.dim, repr(self.id))

    def __repr__(self) -> str:
        return f"CallableEmbedder(id={self.id!r}, version={self.version!r}, dim={self.dim})"


class WordLlamaEmbedder:
    """Static word embeddings from the ``wordllama`` package (extra ``search``), whose
    wheel ships its weights and tokenizer: they are loaded from the installed package
    folder with Hugging Face downloads disabled, so this never touches the network.
    The wheel ships the 256-dimensional ``l2_supercat`` model; ``dim`` 64 or 128 truncates
    it (Matryoshka-trained, so truncation keeps most of the quality)."""

    def __init__(self, dim: int = 256, config: str = "l2_supercat") -> None:
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be an int, not {type(dim).__name__}")
        if not isinstance(config, str):
            raise TypeError(f"config must be a str, not {type(config).__name__}")
        if dim not in (64, 128, 256):
            raise ValueError(f"dim must be 64, 128 or 256, got {dim}")
        # no hub access, whatever the environment says
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            import wordllama
            from wordllama import WordLlama
        except ImportError as e:  # pragma: no cover - depends on the extra
            raise ImportError("WordLlamaEmbedder needs the 'wordllama' package: "
                              "pip install 'prollytree-py[search]'") from e
        # the package folder holds weights/ and tokenizers/ (looked up there first)
        pkg = os.path.dirname(wordllama.__file__)
        self._wl = WordLlama.load(config=config, cache_dir=pkg, dim=256,
                                  trunc_dim=None if dim == 256 else dim,
                                  disable_download=True)
        self.dim = dim
        self.id = f"wordllama-{config}-{dim}"
        self.version = getattr(wordllama, "__version__", "0")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._wl.embed(texts, norm=True)
        return check_vectors(vecs, len(texts), self.dim, repr(self.id))

    def __repr__(self) -> str:
        return f"WordLlamaEmbedder(dim={self.dim})"
