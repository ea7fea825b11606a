"""The file store's own format: torn tails, damage, the index checkpoint, compaction."""

from __future__ import annotations

import os
import shutil
import signal

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from prollytree.errors import CorruptNodeError, StoreError
from prollytree.storage.file import HEADER_SIZE, INDEX_NAME, LOG_NAME, FileNodeStore

from .helpers import OPEN_PRELUDE, node, nodes, popen_python

NODE_PREFIX = 52          # record bytes before a node's value: 16 fixed + 32 address + 4


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "store")


def log_bytes(path: str) -> bytearray:
    with open(os.path.join(path, LOG_NAME), "rb") as f:
        return bytearray(f.read())


def write_log(path: str, data: bytes) -> None:
    with open(os.path.join(path, LOG_NAME), "wb") as f:
        f.write(data)


def drop_index(path: str) -> None:
    try:
        os.remove(os.path.join(path, INDEX_NAME))
    except FileNotFoundError:
        pass


def value_offset(path: str, data: bytes) -> int:
    off = log_bytes(path).find(data)
    assert off > HEADER_SIZE
    return off


def build(path: str, n: int = 200, size: int = 300, flushes: int = 4) -> list:
    """A closed store holding ``n`` nodes written in ``flushes`` flushed batches."""
    items = nodes(n, size=size)
    with FileNodeStore(path) as store:
        step = n // flushes
        for i in range(0, n, step):
            store.put_many(items[i:i + step])
            store.flush()
        store.set_ref("root", items[-1][0])
    return items


def assert_serves(store: FileNodeStore, items: list) -> None:
    for a, d in items:
        assert store.get(a) == d


# -- torn tails -----------------------------------------------------------------------------


def test_torn_tail_after_kill_9_is_cut_off(path):
    """Records written after the last flush, the last one cut short by a crash: the
    complete ones survive, the partial one is dropped and truncated away."""
    proc = popen_python(OPEN_PRELUDE + f"""
store = FileNodeStore({path!r})
store.put_many(nodes(100, size=400))
store.set_ref("root", b"flushed root")
store.flush()
store.put_many(nodes(50, size=400, seed=1))
store.set_ref("root", b"unflushed root")
print("written", flush=True)
time.sleep(60)
""")
    assert proc.stdout.readline().strip() == "written"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    flushed, later = nodes(100, size=400), nodes(50, size=400, seed=1)
    data = log_bytes(path)
    # the process died after its writes returned: they were in the OS, all complete
    with FileNodeStore(path, read_only=True) as ro:
        assert ro.get_ref("root") == b"unflushed root"
        assert_serves(ro, flushed + later)
    # now tear the last record (the ref) and the node before it
    cut = value_offset(path, later[-1][1]) + 100
    write_log(path, data[:cut])
    with FileNodeStore(path) as store:
        assert_serves(store, flushed + later[:-1])
        assert store.get(later[-1][0]) is None                 # torn: gone, not an error
        assert store.get_ref("root") == b"flushed root"         # the ref after it is gone too
        assert store.check() == []
        assert os.path.getsize(os.path.join(path, LOG_NAME)) == cut - 100 - NODE_PREFIX
        store.put(*later[-1])
        store.set_ref("root", b"again")
    with FileNodeStore(path) as store:
        assert_serves(store, flushed + later)
        assert store.get_ref("root") == b"again"
        assert store.check() == []


def test_garbage_after_the_flushed_end_is_ignored(path):
    items = build(path)
    with open(os.path.join(path, LOG_NAME), "ab") as f:
        f.write(b"\xb5\x01" + os.urandom(300))          # looks like a record start
    size = os.path.getsize(os.path.join(path, LOG_NAME))
    with FileNodeStore(path, read_only=True) as ro:          # a reader ignores it...
        assert_serves(ro, items)
        assert ro.check() == []
    assert os.path.getsize(os.path.join(path, LOG_NAME)) == size   # ...and changes nothing
    with FileNodeStore(path) as store:                       # a writer cuts it off
        assert_serves(store, items)
        assert store.check() == []
    assert os.path.getsize(os.path.join(path, LOG_NAME)) == size - 302


# -- damage inside flushed data ----------------------------------------------------------


@pytest.mark.parametrize("with_index", [True, False])
def test_bit_flip_in_a_value_is_reported_for_that_node(path, with_index):
    items = build(path)
    victim = items[123]
    data = log_bytes(path)
    data[value_offset(path, victim[1]) + 10] ^= 0x01
    write_log(path, data)
    if not with_index:
        drop_index(path)
    with FileNodeStore(path) as store:
        with pytest.raises(CorruptNodeError) as err:
            store.get(victim[0])
        assert err.value.address == victim[0]
        assert_serves(store, items[:123] + items[124:])
        problems = store.check()
        assert victim[0] in [p.address for p in problems]
        assert all(p.address in (victim[0], None) for p in problems)
        # gc must not launder or drop the damage: remove() fails and changes nothing
        with pytest.raises(StoreError):
            store.remove([items[0][0]])
        assert store.get(items[0][0]) == items[0][1]
        # writing the node again repairs it
        store.put(*victim)
        assert store.get(victim[0]) == victim[1]


def test_damaged_record_header_is_skipped_and_reported(path):
    items = build(path)
    victim = items[60]
    data = log_bytes(path)
    data[value_offset(path, victim[1]) - NODE_PREFIX + 5] ^= 0x40      # the length field
    write_log(path, data)
    drop_index(path)
    with FileNodeStore(path) as store:
        # the scan resynchronized on the next intact record: everything else is there
        assert_serves(store, items[:60] + items[61:])
        assert store.get_ref("root") == items[-1][0]
        with pytest.raises(CorruptNodeError, match="unreadable"):
            store.get(victim[0])
        # a store that knows it lost records cannot claim any node is simply absent...
        with pytest.raises(CorruptNodeError):
            store.get(node(b"never stored")[0])
        assert not store.has(victim[0])                   # ...but has() stays a cheap probe
        problems = store.check()
        assert any("unreadable bytes" in str(p) for p in problems)
        store.put(*victim)
        assert store.get(victim[0]) == victim[1]


def test_truncation_inside_flushed_data_is_an_error_not_a_torn_tail(path):
    items = build(path)
    cut = value_offset(path, items[150][1]) + 20
    write_log(path, log_bytes(path)[:cut])
    drop_index(path)
    with FileNodeStore(path, read_only=True) as ro:
        assert_serves(ro, items[:150])
        for a, _ in items[150:]:
            with pytest.raises(CorruptNodeError):
                ro.get(a)
        assert any("truncated" in str(p) for p in ro.check())
    # a writer keeps the loss visible instead of writing over it
    with FileNodeStore(path) as store:
        store.put_many(nodes(10, seed=9))
    with FileNodeStore(path) as store:
        assert_serves(store, items[:150] + nodes(10, seed=9))
        with pytest.raises(CorruptNodeError):
            store.get(items[199][0])
        assert store.check() != []


def test_damaged_log_header_refuses_to_open(path):
    build(path)
    data = log_bytes(path)
    data[12] ^= 0xFF                                       # inside the log id
    write_log(path, data)
    for read_only in (True, False):
        with pytest.raises(StoreError, match="header is damaged"):
            FileNodeStore(path, read_only=read_only)


def test_not_a_log_refuses_to_open(path):
    os.makedirs(path)
    write_log(path, b"hello" * 2000)
    with pytest.raises(StoreError, match="not a prollytree log"):
        FileNodeStore(path)
    write_log(path, b"")
    with pytest.raises(StoreError, match="too short"):
        FileNodeStore(path)


def test_damaged_ref_is_an_error_until_rewritten(path):
    items = build(path)
    with FileNodeStore(path) as store:
        store.set_ref("branch", b"BRANCH-VALUE-0123456789")
    data = log_bytes(path)
    pos = data.find(b"BRANCH-VALUE-0123456789")
    data[pos + 3] ^= 0x01
    write_log(path, data)
    drop_index(path)
    with FileNodeStore(path) as store:
        assert store.get_ref("root") == items[-1][0]
        with pytest.raises(StoreError, match="branch"):
            store.get_ref("branch")
        with pytest.raises(StoreError, match="damaged"):
            store.refs()                                   # gc must not see "no such ref"
        assert store.set_ref("branch", b"x", expected=b"BRANCH-VALUE-0123456789") is False
        assert store.set_ref("branch", b"fixed") is True
        assert store.get_ref("branch") == b"fixed"
        assert dict(store.refs()) == {"root": items[-1][0], "branch": b"fixed"}
    with FileNodeStore(path) as store:
        assert store.get_ref("branch") == b"fixed"


# -- the index checkpoint -----------------------------------------------------------------


def test_open_with_and_without_the_index_agree(path):
    items = build(path)
    idx = os.path.join(path, INDEX_NAME)
    assert os.path.exists(idx)
    with FileNodeStore(path) as store:
        with_index = (sorted(store.addresses()), dict(store.refs()))
    drop_index(path)
    with FileNodeStore(path) as store:
        assert (sorted(store.addresses()), dict(store.refs())) == with_index
    assert with_index == (sorted(a for a, _ in items), {"root": items[-1][0]})


def test_stale_index_covers_a_prefix_and_the_tail_is_scanned(path):
    items = build(path)
    idx = os.path.join(path, INDEX_NAME)
    shutil.copy(idx, idx + ".old")
    more = nodes(50, seed=3)
    with FileNodeStore(path) as store:
        store.put_many(more)
        store.set_ref("root", b"newer")
        store.set_ref("config", None)
    os.replace(idx + ".old", idx)
    with FileNodeStore(path) as store:
        assert_serves(store, items + more)
        assert dict(store.refs()) == {"root": b"newer"}
        assert store.check() == []


def test_damaged_or_foreign_index_is_ignored(path):
    items = build(path)
    idx = os.path.join(path, INDEX_NAME)
    with open(idx, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with FileNodeStore(path) as store:
        assert_serves(store, items)
    # an index of another log (same directory, before a compaction) is not applied
    shutil.copy(idx, idx + ".before")
    with FileNodeStore(path) as store:
        store.remove([a for a, _ in items[:100]])
    os.replace(idx + ".before", idx)
    with FileNodeStore(path) as store:
        assert sorted(store.addresses()) == sorted(a for a, _ in items[100:])
        assert_serves(store, items[100:])


# -- compaction ---------------------------------------------------------------------------


def test_remove_compacts_the_log(path):
    items = build(path, n=400, size=1000)
    before = os.path.getsize(os.path.join(path, LOG_NAME))
    with FileNodeStore(path) as store:
        reader = FileNodeStore(path, read_only=True)
        assert store.remove([a for a, _ in items[:300]]) == 300
        assert_serves(store, items[300:])
        assert store.get_ref("root") == items[-1][0]
        # a reader opened before the compaction still reads its snapshot
        assert_serves(reader, items)
        reader.close()
        store.put(*node(b"after compaction"))
    assert os.path.getsize(os.path.join(path, LOG_NAME)) < before * 0.3
    drop_index(path)
    with FileNodeStore(path) as store:
        assert sorted(store.addresses()) == sorted(
            [a for a, _ in items[300:]] + [node(b"after compaction")[0]])
        assert store.check() == []


def test_leftover_of_a_crashed_compaction_is_discarded(path):
    items = build(path)
    with open(os.path.join(path, "nodes.log.compact"), "wb") as f:
        f.write(b"partial" * 1000)
    with FileNodeStore(path) as store:
        assert_serves(store, items)
    assert not os.path.exists(os.path.join(path, "nodes.log.compact"))


def test_reader_sees_the_log_as_of_its_open(path):
    items = build(path, n=40)
    with FileNodeStore(path) as writer:
        reader = FileNodeStore(path, read_only=True)
        writer.put(*node(b"later"))
        writer.set_ref("root", b"later")
        writer.flush()
        assert writer.get(node(b"later")[0]) == b"later"
        assert reader.get(node(b"later")[0]) is None
        assert reader.get_ref("root") == items[-1][0]
        reader.close()
        with FileNodeStore(path, read_only=True) as fresh:
            assert fresh.get(node(b"later")[0]) == b"later"


def test_compaction_stops_on_a_damaged_node_and_changes_nothing(path):
    items = build(path)
    data = log_bytes(path)
    data[value_offset(path, items[10][1]) + 1] ^= 0x08
    write_log(path, data)                                  # the index still vouches for it
    before = bytes(log_bytes(path))
    with FileNodeStore(path) as store:
        with pytest.raises(CorruptNodeError) as err:
            store.remove([a for a, _ in items[100:]])
        assert err.value.address == items[10][0]
        assert bytes(log_bytes(path)) == before
        assert_serves(store, items[:10] + items[11:])
        assert not os.path.exists(os.path.join(path, "nodes.log.compact"))


# -- fuzzing: any single damage, never a wrong answer ---------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A small store written in several flushes, with refs, to copy and damage."""
    path = str(tmp_path_factory.mktemp("template") / "store")
    items = nodes(40, size=120, seed=5)
    with FileNodeStore(path) as store:
        for i in range(0, 40, 10):
            store.put_many(items[i:i + 10])
            store.set_ref("root", items[i][0])
            store.flush()
        store.set_ref("config", b"the config")
    return path, items


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from([LOG_NAME, INDEX_NAME]),
       how=st.sampled_from(["flip", "truncate"]),
       where=st.floats(min_value=0, max_value=1, exclude_max=True),
       bit=st.integers(0, 7), read_only=st.booleans())
def test_any_single_damage_never_yields_a_wrong_answer(template, tmp_path, target, how,
                                                       where, bit, read_only):
    src, items = template
    path = str(tmp_path / f"case{os.urandom(4).hex()}")
    shutil.copytree(src, path)
    victim = os.path.join(path, target)
    with open(victim, "rb") as f:
        data = bytearray(f.read())
    pos = int(where * len(data))
    if how == "flip":
        data[pos] ^= 1 << bit
    else:
        del data[pos:]
    with open(victim, "wb") as f:
        f.write(data)
    try:
        store = FileNodeStore(path, read_only=read_only)
    except StoreError:
        return                                             # a clear refusal is allowed
    refs = {"root": items[30][0], "config": b"the config"}
    with store:
        failed = False
        for a, d in items:
            try:
                got = store.get(a)
            except StoreError:
                failed = True
                continue
            assert got == d                                # never wrong bytes, never None
        for name, value in refs.items():
            try:
                assert store.get_ref(name) == value
            except StoreError:
                failed = True
        if failed:
            assert store.check() != []                     # and check() explains it


def test_power_loss_keeps_a_prefix_of_the_unflushed_writes(path):
    """After a power loss the pages written since the last flush may have reached the
    disk in any order. Simulated here by a hole in the middle of the unflushed writes:
    recovery keeps exactly the records before the hole, so the ref written after the
    hole (and after the nodes in it) is not kept either."""
    proc = popen_python(OPEN_PRELUDE + f"""
store = FileNodeStore({path!r})
store.put_many(nodes(50, size=300))
store.set_ref("root", b"flushed")
store.flush()
store.put_many(nodes(50, size=300, seed=1))
store.set_ref("root", b"unflushed")
print("written", flush=True)
time.sleep(60)
""")
    assert proc.stdout.readline().strip() == "written"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    flushed, later = nodes(50, size=300), nodes(50, size=300, seed=1)
    data = log_bytes(path)
    hole = value_offset(path, later[20][1])
    data[hole:hole + 4096] = bytes(4096)                   # a page that never made it
    write_log(path, data)
    with FileNodeStore(path) as store:
        assert_serves(store, flushed + later[:20])
        for a, _ in later[20:]:
            assert store.get(a) is None                    # unflushed, lost: not an error
        assert store.get_ref("root") == b"flushed"
        assert store.check() == []
