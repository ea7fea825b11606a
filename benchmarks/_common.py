"""Shared helpers for the benchmark scripts: machine description, seeded data, timing,
and the virtualenv holding the published Rust wheel (``prollytree`` 0.4.1) we compare
against.

Everything here uses only the standard library, so it imports under both our venv and
the wheel's venv.
"""

from __future__ import annotations

import gc
import hashlib
import os
import platform
import random
import statistics
import subprocess
import time

#: The published wheel we measure against, and where its private virtualenv lives.
WHEEL_VERSION = "0.4.1"
WHEEL_ENV = os.environ.get("PROLLY_WHEEL_ENV", "/tmp/wheelenv")
WHEEL_PYTHON = os.path.join(WHEEL_ENV, "bin", "python")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

KEY_SIZE = 16
VALUE_SIZE = 32


# -- machine ------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict:
    return {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "platform": platform.platform(),
        "git": git_revision(),
    }


# -- data -----------------------------------------------------------------------------------

def random_pairs(n: int, seed: int, key_size: int = KEY_SIZE,
                 value_size: int = VALUE_SIZE) -> tuple[list[bytes], list[bytes], str]:
    """``n`` random keys and values from a seeded Mersenne Twister (identical in every
    CPython >= 3.9), plus a fingerprint (sha256 prefix of the raw bytes) so that two
    processes can check they measured the same data."""
    step = key_size + value_size
    blob = random.Random(seed).randbytes(step * n)
    keys = [blob[i:i + key_size] for i in range(0, step * n, step)]
    vals = [blob[i + key_size:i + step] for i in range(0, step * n, step)]
    return keys, vals, hashlib.sha256(blob).hexdigest()[:16]


# -- timing ---------------------------------------------------------------------------------

clock = time.perf_counter


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def settle() -> None:
    """Collect garbage left by the previous run so that it is not billed to the next one.
    (The cyclic GC stays enabled while timing: users pay for it too.)"""
    gc.collect()


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- the wheel's virtualenv -----------------------------------------------------------------

_CHECK = ("import prollytree, sys; "
          "sys.exit(0 if prollytree.__version__ == %r and hasattr(prollytree, 'ProllyTree') "
          "else 3)" % WHEEL_VERSION)


def ensure_wheel_env(log=print) -> str:
    """Path of a python that imports the published ``prollytree`` wheel, creating the
    virtualenv (``python3 -m venv`` + ``pip install prollytree==0.4.1``) when needed."""
    def works() -> bool:
        if not os.path.exists(WHEEL_PYTHON):
            return False
        # cwd outside the repo, so the interpreter cannot pick up our package instead.
        r = subprocess.run([WHEEL_PYTHON, "-c", _CHECK], cwd="/tmp", capture_output=True)
        return r.returncode == 0

    if works():
        return WHEEL_PYTHON
    log(f"creating {WHEEL_ENV} with prollytree=={WHEEL_VERSION} ...")
    if not os.path.exists(WHEEL_PYTHON):
        subprocess.run(["python3", "-m", "venv", WHEEL_ENV], check=True, cwd="/tmp")
    subprocess.run([WHEEL_PYTHON, "-m", "pip", "install", "-q",
                    f"prollytree=={WHEEL_VERSION}"], check=True, cwd="/tmp")
    if not works():
        raise RuntimeError(f"{WHEEL_PYTHON} still cannot import prollytree {WHEEL_VERSION}")
    return WHEEL_PYTHON


def fmt_num(x: float | None) -> str:
    """Human formatting for the tables: 3 significant digits, thousands separators."""
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"
