"""The key encoding orders tuples exactly as SQLite orders them (SQLite is the oracle)."""

import apsw
from hypothesis import given, settings, strategies as st

from prollytree.sql.keys import decode_key, encode_key, prefix_end

values = st.one_of(
    st.none(),
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, width=64),
    st.text(max_size=6),
    st.binary(max_size=6),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(values, values), min_size=1, max_size=30))
def test_order_matches_sqlite(rows):
    db = apsw.Connection(":memory:")
    db.execute("CREATE TABLE t (i INTEGER PRIMARY KEY, a, b)")
    db.executemany("INSERT INTO t (a, b) VALUES (?, ?)", rows)
    got = [(a, b) for _, a, b in db.execute("SELECT i, a, b FROM t ORDER BY a, b, i")]
    # SQLite sorts equal tuples in rowid order: so does a stable sort by key
    ours = sorted(db.execute("SELECT i, a, b FROM t ORDER BY i"),
                  key=lambda r: encode_key((r[1], r[2])))
    assert [(a, b) for _, a, b in ours] == got
    for _, a, b in ours:
        k = encode_key((a, b))
        assert decode_key(k) == (a, b)
        assert encode_key((a,)) == k[:len(encode_key((a,)))]   # prefix property
        end = prefix_end(encode_key((a,)))
        assert end is None or k < end


def test_integers_and_reals_interleave():
    vals = [-(1 << 63), -2.5, -2, 0, 0.5, 1, 1.5, (1 << 53) + 1, float((1 << 53) + 2),
            (1 << 63) - 1, float("inf"), "", "a", b""]
    assert sorted(vals, key=lambda v: encode_key((v,))) == vals
