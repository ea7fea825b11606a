"""WordLlamaEmbedder loads the weights shipped in the wordllama wheel, with no network."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("wordllama")

SCRIPT = textwrap.dedent("""
    import socket
    def refuse(*a, **k):
        raise OSError("network access attempted")
    socket.socket.connect = refuse
    socket.create_connection = refuse
    import numpy as np
    from prollytree import ProllyTree
    from prollytree.search import VectorIndex, WordLlamaEmbedder
    e = WordLlamaEmbedder()
    assert (e.dim, e.id) == (256, "wordllama-l2_supercat-256"), (e.dim, e.id)
    v = e.embed(["the weather in Tokyo", "rain forecast for Japan", "python programming"])
    assert v.shape == (3, 256) and v.dtype == np.float32
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    assert WordLlamaEmbedder(64).embed(["x"]).shape == (1, 64)
    t = ProllyTree()
    t.insert_batch([(b"a", b"sunny and warm in Osaka"), (b"b", b"how to sort a list in Python"),
                    (b"c", b"a recipe for banana bread")])
    idx = VectorIndex(embedder=e)
    idx.sync(t)
    assert idx.search("what is the weather like in Japan?", 1)[0][1] == b"a"
    assert idx.search("programming question", 1)[0][1] == b"b"
    print("ok")
""")


def test_wordllama_offline(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert not (tmp_path / "hf").exists()  # nothing was cached or downloaded


def test_wordllama_bad_dim():
    from prollytree.search import WordLlamaEmbedder
    with pytest.raises(ValueError, match="64, 128 or 256"):
        WordLlamaEmbedder(100)
    with pytest.raises(TypeError):
        WordLlamaEmbedder("256")
