"""git-prolly with large values: set --file / stdin stream, get > FILE, stats (issue 14)."""

import random

from .conftest import Runner


def test_set_file_get_redirect_and_stats(ds: Runner, tmp_path, repo):
    big = random.Random(1).randbytes(2_500_000)
    f = tmp_path / "big.bin"
    f.write_bytes(big)
    ds.ok("set", "doc", "--file", str(f))
    assert ds.ok("get", "doc").out == big           # staged, streamed raw
    ds.ok("set", "copy", input=big)                 # from standard input
    ds.ok("set", "small", "hi")
    ds.ok("commit", "-m", "big values")
    assert ds.ok("get", "doc").out == big
    assert ds.ok("get", "copy", "--ref", "HEAD").out == big
    assert ds.ok("get", "small").out == b"hi\n"
    st = ds.ok("stats", "HEAD", "--json").json()
    assert st["chunked_values"] == 2 and st["chunked_value_bytes"] == 2 * len(big)
    assert st["chunk_bytes"] == len(big) and st["dedup_saved_bytes"] == len(big)
    # the Git index matches the commit through shape changes (leaf root <-> tree)
    ds.ok("delete", "copy")
    ds.ok("delete", "small")
    ds.ok("commit", "-m", "one left")
    assert ds.git("status", "--porcelain", cwd=repo) == ""
    r = ds.git("fsck", "--strict", cwd=repo)
    assert "missing" not in r
