"""A hypothesis state machine runs random operation sequences against every store and a
dict model side by side: nodes, refs with compare-and-swap, remove, flush, reopen."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    Bundle, RuleBasedStateMachine, invariant, multiple, rule, run_state_machine_as_test,
)

from prollytree.storage import ANY

from .helpers import KINDS, make_factory

POOL = [hashlib.sha256(b"%d" % i).digest()[: i % 40] * (i % 3 + 1) for i in range(24)]
payloads = st.one_of(st.sampled_from(POOL), st.binary(max_size=48))
REF_NAMES = ["root", "config", "branches/main"]
ref_values = st.sampled_from([b"", b"a" * 32, b"b" * 32, b"cfg"])


def addr(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def machine_for(kind: str) -> type[RuleBasedStateMachine]:
    class StoreMachine(RuleBasedStateMachine):
        # Payloads written so far: reads and removes draw from them half of the time, so
        # that they mostly hit stored (and recently written, unflushed) nodes.
        written = Bundle("written")
        known = st.one_of(written, payloads)
        def __init__(self) -> None:
            super().__init__()
            self.tmp = tempfile.mkdtemp(prefix=f"prolly-model-{kind}-")
            self.factory = make_factory(kind, Path(self.tmp))
            self.store = self.factory()
            self.nodes: dict[bytes, bytes] = {}
            self.refs: dict[str, bytes] = {}

        def teardown(self) -> None:
            self.factory.close_all()
            shutil.rmtree(self.tmp, ignore_errors=True)

        @rule(target=written, batch=st.lists(payloads, max_size=8))
        def put_many(self, batch):
            self.store.put_many([(addr(d), d) for d in batch])
            self.nodes.update((addr(d), d) for d in batch)
            return multiple(*batch)

        @rule(data=known)
        def get_and_has(self, data):
            a = addr(data)
            assert self.store.get(a) == self.nodes.get(a)
            assert self.store.has(a) == (a in self.nodes)

        @rule(batch=st.lists(known, max_size=8))
        def get_many(self, batch):
            want = [addr(d) for d in batch]
            assert self.store.get_many(want) == {a: self.nodes[a] for a in want
                                                 if a in self.nodes}

        @rule(batch=st.lists(known, max_size=6))
        def remove(self, batch):
            doomed = {addr(d) for d in batch}
            expected = sum(1 for a in doomed if a in self.nodes)
            assert self.store.remove([addr(d) for d in batch]) == expected
            for a in doomed:
                self.nodes.pop(a, None)

        @rule(name=st.sampled_from(REF_NAMES), value=st.one_of(st.none(), ref_values),
              how=st.sampled_from(["any", "absent", "current", "other"]),
              other=ref_values)
        def set_ref(self, name, value, how, other):
            current = self.refs.get(name)
            expected = {"any": ANY, "absent": None, "current": current, "other": other}[how]
            should = expected is ANY or expected == current
            assert self.store.set_ref(name, value, expected=expected) is should
            if should:
                if value is None:
                    self.refs.pop(name, None)
                else:
                    self.refs[name] = value

        @rule(name=st.sampled_from(REF_NAMES))
        def get_ref(self, name):
            assert self.store.get_ref(name) == self.refs.get(name)

        @rule()
        def flush(self):
            self.store.flush()

        @rule(how=st.sampled_from(["close", "crash", "lose index"]))
        def reopen(self, how):
            """Close and open again. For the file store also: "crash" drops the
            descriptors without flush, index checkpoint or close, as if the process died
            (every write had reached the OS, so nothing may be lost); "lose index"
            reopens from the log alone."""
            if kind != "file" or how == "close":
                self.store = self.factory.reopen(self.store)
            elif how == "crash":
                self.store._closed = True
                self.store._release()
                self.store = self.factory()
            else:
                self.store.close()
                (self.factory.path / "nodes.idx").unlink(missing_ok=True)
                self.store = self.factory()

        @rule()
        def read_only_view(self):
            if kind == "memory":
                return
            self.store.flush()
            with self.factory(read_only=True) as ro:
                assert sorted(ro.addresses()) == sorted(self.nodes)
                assert dict(ro.refs()) == self.refs

        @invariant()
        def same_contents(self):
            assert sorted(self.store.addresses()) == sorted(self.nodes)
            assert dict(self.store.refs()) == self.refs

    StoreMachine.__name__ = f"StoreMachine_{kind}"
    return StoreMachine


@pytest.mark.parametrize("kind", KINDS)
def test_store_matches_dict_model(kind):
    run_state_machine_as_test(
        machine_for(kind),
        settings=settings(max_examples=40, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]))
