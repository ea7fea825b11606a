"""``git-prolly ui`` and ``python -m prollytree.web`` start a real server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

EXE = shutil.which("git-prolly", path=os.path.dirname(sys.executable))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, headers: dict | None = None):
    req = urllib.request.Request(url, headers=headers or {})
    for _ in range(100):
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"no answer from {url}")


@pytest.mark.skipif(EXE is None, reason="git-prolly is not installed in this environment")
def test_git_prolly_ui_serves_the_dataset(dataset, tmp_path):
    port = free_port()
    sub = tmp_path / "inside"
    # a directory below the dataset is found like git-prolly finds it
    shutil.copytree(dataset["path"], tmp_path / "ds")
    (tmp_path / "ds" / "sub").mkdir()
    proc = subprocess.Popen([EXE, "-C", str(tmp_path / "ds" / "sub"), "ui", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith(f"prollytree web UI at http://127.0.0.1:{port}/")
        status, body = get(f"http://127.0.0.1:{port}/api/refs")
        assert status == 200
        assert {b["name"] for b in json.loads(body)["branches"]} == {"main", "feature", "side"}
        # bound to loopback: a foreign Host name is refused
        status, body = get(f"http://127.0.0.1:{port}/api/refs", {"Host": "evil.example"})
        assert status == 421
        # read-only without --write
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/actions/set",
                                     data=b'{"key": "a", "value": "b"}', method="POST",
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        assert e.value.code == 403
    finally:
        proc.terminate()
        proc.wait(10)
    assert not sub.exists()


def test_help_and_bad_path(tmp_path):
    if EXE is not None:
        r = subprocess.run([EXE, "ui", "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "--write" in r.stdout and "127.0.0.1" in r.stdout
    r = subprocess.run([sys.executable, "-m", "prollytree.web", "--help"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "--write" in r.stdout
    r = subprocess.run([sys.executable, "-m", "prollytree.web", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not a prollytree dataset" in r.stderr
    assert "Traceback" not in r.stderr


def test_port_in_use_is_an_error_and_port_0_prints_the_real_port(dataset, tmp_path):
    """The URL is printed only once the socket is bound: a port in use fails with the
    address named (no URL, no traceback); --port 0 prints the port the system picked."""
    shutil.copytree(dataset["path"], tmp_path / "ds")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmds = [[sys.executable, "-m", "prollytree.web", str(tmp_path / "ds"), "--port",
                 str(port)]]
        if EXE is not None:
            cmds.append([EXE, "-C", str(tmp_path / "ds"), "ui", "--port", str(port)])
        for cmd in cmds:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            assert r.returncode in (1, 2), (cmd, r)
            assert f"cannot listen on 127.0.0.1:{port}" in r.stderr
            assert "web UI at" not in r.stdout and "Traceback" not in r.stderr
    proc = subprocess.Popen([sys.executable, "-m", "prollytree.web", str(tmp_path / "ds"),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("prollytree web UI at http://127.0.0.1:"), line
        url = line.split(" at ")[1].split()[0]
        assert not url.endswith(":0/")
        status, body = get(url + "api/refs")
        assert status == 200 and json.loads(body)["current_branch"] == "main"
    finally:
        proc.terminate()
        proc.wait(10)
