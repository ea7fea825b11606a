"""The web UI in a real browser: Debian's headless Chromium driven by Selenium, against
the app served by real uvicorn (``python -m prollytree.web``) on 127.0.0.1.

Walks history -> a commit -> a diff between two branches -> a key's history, checks
escaping, the merge preview, proof verification, and that an open page reloads by
itself when another process commits. Screenshots go to a temporary artifacts directory
(printed), or to $PROLLYTREE_ARTIFACTS/ui-screenshots; with
PROLLYTREE_UPDATE_SCREENSHOTS=1 the history page is also saved as docs/ui-history.png
for the README.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from prollytree import StorageBackend, VersionedKvStore

from .conftest import build

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DOCS = Path(__file__).resolve().parents[2] / "docs"

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip("Chromium is not installed (apt-get install chromium chromium-driver; "
                ".ci/run installs it)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.common.exceptions import (  # noqa: E402
    NoAlertPresentException, StaleElementReferenceException)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

IDENTITY = {"GIT_AUTHOR_NAME": "Ann Author", "GIT_AUTHOR_EMAIL": "ann@example.com",
            "GIT_COMMITTER_NAME": "Ann Author", "GIT_COMMITTER_EMAIL": "ann@example.com"}


def start_server(tmp_path, monkeypatch, *extra: str):
    for k, v in IDENTITY.items():
        monkeypatch.setenv(k, v)
    path = str(tmp_path / "repo" / "ds")
    info = build(path, StorageBackend.Git)
    env = dict(os.environ, **IDENTITY, PYTHONUNBUFFERED="1")
    # port 0: the server binds a free port and prints it (no race for a port picked
    # here and bound there)
    proc = subprocess.Popen([sys.executable, "-m", "prollytree.web", path, "--port", "0",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    line = proc.stdout.readline().decode()
    assert line.startswith("prollytree web UI at http://127.0.0.1:"), line
    base = line.split(" at ")[1].split()[0].rstrip("/")
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/api/state", timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    return proc, dict(info, base=base, path=path)


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def server(tmp_path, monkeypatch):
    proc, info = start_server(tmp_path, monkeypatch)
    try:
        yield info
    finally:
        stop_server(proc)


@pytest.fixture
def write_server(tmp_path, monkeypatch):
    proc, info = start_server(tmp_path, monkeypatch, "--write")
    try:
        yield info
    finally:
        stop_server(proc)


@pytest.fixture
def browser(tmp_path):
    os.environ.setdefault("SE_OFFLINE", "true")     # selenium-manager must not download
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1280,800", f"--user-data-dir={tmp_path / 'chrome-profile'}"]:
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def artifacts(tmp_path_factory):
    """Where screenshots go: $PROLLYTREE_ARTIFACTS/ui-screenshots when set (a CI job
    keeps that directory), else a temporary directory (printed)."""
    root = os.environ.get("PROLLYTREE_ARTIFACTS")
    if root:
        d = Path(root) / "ui-screenshots"
        d.mkdir(parents=True, exist_ok=True)
    else:
        d = tmp_path_factory.mktemp("ui-screenshots")
    print(f"screenshots in {d}")
    return d


def wait(driver, seconds: float = 10) -> WebDriverWait:
    """A wait that retries through page loads (elements of the old page go stale)."""
    return WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,))


def text(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def rows(driver, css: str) -> list[list[str]]:
    return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in driver.find_elements(By.CSS_SELECTOR, css + " tbody tr")]


def test_walk_history_commit_diff_key_history(server, browser, artifacts):
    d, base, ids = browser, server["base"], server["ids"]
    d.get(base + "/")
    assert d.title.startswith("History")
    commit_rows = d.find_elements(By.CSS_SELECTOR, "#commits li")
    assert len(commit_rows) == 7            # initial + c1, c2, f1, s1, c3, merge
    assert "Merge branch 'side' into main" in commit_rows[0].text
    assert "HEAD -> main" in commit_rows[0].text
    # the graph: one dot per commit, the merge drawn with two lines leaving its dot
    assert len(d.find_elements(By.CSS_SELECTOR, "svg.lanes circle")) == 7
    assert len(d.find_elements(By.CSS_SELECTOR, "svg.lanes circle.merge")) == 1
    assert len(d.find_elements(By.CSS_SELECTOR, "svg.lanes line")) >= 7
    assert [e.text for e in d.find_elements(By.CSS_SELECTOR, "#branches a.branch")] == [
        "feature", "main", "side"]
    d.save_screenshot(str(artifacts / "history.png"))
    if os.environ.get("PROLLYTREE_UPDATE_SCREENSHOTS"):
        shutil.copy(artifacts / "history.png", DOCS / "ui-history.png")

    # -> a commit
    d.find_element(By.LINK_TEXT, "feature: alice, carol, no bob").click()
    assert ids["f1"] in text(d, "h1")
    assert text(d, "#message") == "feature: alice, carol, no bob"
    counts = {r[0]: r[1] for r in rows(d, "#tree-counts")}
    assert counts == {"(default)": "1 added, 1 modified, 1 removed",
                      "ns/people": "1 added, 0 modified, 0 removed",
                      "ns/places": "1 added, 0 modified, 0 removed"}
    changed = rows(d, "#changes")
    assert [(r[0], r[1], r[2], r[3]) for r in changed] == [
        ("~", "user:alice", "Alice v1", "Alice on feature"),
        ("−", "user:bob", "Bob v1", ""),
        ("+", "user:carol", "", "Carol")]
    d.save_screenshot(str(artifacts / "commit.png"))

    # -> a diff between two branches, typed into the form
    d.find_element(By.LINK_TEXT, "Diff").click()
    d.find_element(By.NAME, "from").send_keys("main")
    d.find_element(By.NAME, "to").send_keys("feature")
    d.find_element(By.CSS_SELECTOR, "form.bar button").click()
    wait(d, 10).until(lambda drv: drv.find_elements(By.ID, "changes"))
    diff = {r[1]: (r[0], r[2], r[3]) for r in rows(d, "#changes")}
    assert diff == {"main:2": ("−", "main again", ""), "side:1": ("−", "from side", ""),
                    "user:alice": ("~", "Alice on main", "Alice on feature"),
                    "user:bob": ("−", "Bob v1", ""), "user:carol": ("+", "", "Carol"),
                    "user:dave": ("−", "Dave", "")}
    assert "ns/places" in text(d, "#changed-tree-list")
    d.save_screenshot(str(artifacts / "diff.png"))

    # -> the key's history, from the diff's "to" side (feature)
    row = [tr for tr in d.find_elements(By.CSS_SELECTOR, "#changes tbody tr")
           if "user:alice" in tr.text][0]
    row.find_element(By.LINK_TEXT, "history").click()
    assert text(d, "#key") == "user:alice"
    assert ids["f1"][:12] in text(d, "#history-summary")
    hist = rows(d, "#key-history")
    assert [(r[0], r[2], r[3], r[4]) for r in hist] == [
        (ids["f1"][:12], "modified", "Alice v1", "Alice on feature"),
        (ids["c1"][:12], "added", "(absent)", "Alice v1")]
    d.save_screenshot(str(artifacts / "key-history.png"))
    # the same key from main, typed into the page's ref field
    ref = d.find_element(By.NAME, "ref")
    ref.clear()
    ref.send_keys("main")
    d.find_element(By.CSS_SELECTOR, "form.bar button").click()
    wait(d).until(lambda drv: "reachable from main" in text(drv, "#history-summary"))
    assert [(r[0], r[2], r[3], r[4]) for r in rows(d, "#key-history")] == [
        (ids["c2"][:12], "modified", "Alice v1", "Alice on main"),
        (ids["c1"][:12], "added", "(absent)", "Alice v1")]


def test_escaping_merge_preview_and_proofs(server, browser, artifacts):
    d, base = browser, server["base"]
    d.get(base + "/browse")
    keys = [r[0] for r in rows(d, "#keys")]
    assert "<script>alert('k')</script>" in keys       # shown as text
    values = [r[2] for r in rows(d, "#keys")]
    assert "<img src=x onerror=alert('v')>" in values
    with pytest.raises(NoAlertPresentException):
        d.switch_to.alert.text
    assert d.execute_script("return document.querySelectorAll('main script, main img')"
                            ".length") == 0

    d.get(base + "/merge?source=feature&dest=main")
    assert "Three-way merge" in text(d, "#merge-kind")
    conflicts = {(r[0], r[1]) for r in rows(d, "#conflicts")}
    assert conflicts == {("", "user:alice"), ("ns/people", "p:1")}
    d.save_screenshot(str(artifacts / "merge.png"))

    d.get(base + "/proof")
    d.find_element(By.NAME, "key").send_keys("user:alice")
    d.find_element(By.CSS_SELECTOR, "form.bar button").click()
    assert len(text(d, "#proof-hex")) > 64
    # paste the whole proof document (the page shows a large proof's first part only;
    # typing it key by key would take minutes, so paste it like a clipboard would)
    link = d.find_element(By.LINK_TEXT, "JSON document").get_attribute("href")
    document = urllib.request.urlopen(link, timeout=10).read().decode()
    d.execute_script("arguments[0].value = arguments[1]", d.find_element(By.NAME, "proof"),
                     document)
    d.find_element(By.CSS_SELECTOR, "form.stack button").click()
    assert text(d, "#verify-result").startswith("Valid: the proof shows user:alice = "
                                                "Alice on main")
    d.save_screenshot(str(artifacts / "proof.png"))

    d.get(base + "/commit/no-such-ref")
    assert "unknown ref" in text(d, "#error-message")


def test_page_reloads_when_another_process_commits(server, browser):
    d, base = browser, server["base"]
    d.get(base + "/")
    wait(d, 10).until(
        lambda drv: "on" in drv.find_element(By.ID, "live").get_attribute("class"))
    before = d.find_element(By.CSS_SELECTOR, "meta[name=prolly-state]").get_attribute(
        "content")
    with VersionedKvStore.open(server["path"]) as other:
        other.insert(b"live", b"update")
        other.commit("a commit made elsewhere")
    wait(d, 15).until(lambda drv: "a commit made elsewhere" in drv.find_element(
        By.ID, "commits").text)
    after = d.find_element(By.CSS_SELECTOR, "meta[name=prolly-state]").get_attribute("content")
    assert after != before


def test_write_mode_forms_stage_and_commit(write_server, browser, artifacts):
    """With --write the status page's forms (CSRF token in a hidden field, the browser's
    own Origin) stage a key and commit it; the history then shows the commit."""
    d, base = browser, write_server["base"]
    d.get(base + "/status")
    assert "write" in text(d, "header .head")
    form = d.find_element(By.CSS_SELECTOR, "form[action='/actions/set']")
    form.find_element(By.NAME, "key").send_keys("from:browser")
    form.find_element(By.NAME, "value").send_keys("<b>typed</b>")
    form.find_element(By.TAG_NAME, "button").click()
    wait(d, 10).until(lambda drv: "from:browser" in drv.find_element(
        By.ID, "staged").text)
    assert rows(d, "#staged") == [["added", "", "from:browser", "<b>typed</b>"]]
    form = d.find_element(By.CSS_SELECTOR, "form[action='/actions/commit']")
    form.find_element(By.NAME, "message").send_keys("committed in the browser")
    form.find_element(By.TAG_NAME, "button").click()
    wait(d, 10).until(lambda drv: "nothing staged" in drv.find_element(
        By.ID, "staged").text)
    d.save_screenshot(str(artifacts / "status.png"))
    d.get(base + "/")
    assert "committed in the browser" in d.find_elements(By.CSS_SELECTOR, "#commits li")[0].text
    with VersionedKvStore.open(write_server["path"]) as s:
        assert s.get_at("main", b"from:browser") == b"<b>typed</b>"


def test_sql_console_query_at_head_1(server, browser, artifacts):
    """Another process adds a table in two commits; the console runs a query at HEAD~1."""
    apsw = pytest.importorskip("apsw")
    assert apsw
    from prollytree.sql import ProllySQLStore
    d, base = browser, server["base"]
    with ProllySQLStore.open(server["path"]) as sql:
        sql.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        sql.execute("INSERT INTO users VALUES (1, 'ann'), (2, '<i>bob</i>')")
        sql.commit("users")
        sql.execute("UPDATE users SET name = 'ann 2' WHERE id = 1")
        sql.execute("INSERT INTO users VALUES (3, 'cy')")
        sql.commit("users again")
    d.get(base + "/sql")
    ref = d.find_element(By.NAME, "ref")
    ref.clear()
    ref.send_keys("HEAD~1")
    d.find_element(By.ID, "sql-query").send_keys("SELECT id, name FROM users ORDER BY id")
    d.find_element(By.ID, "run").click()
    wait(d).until(lambda drv: drv.find_elements(By.ID, "sql-result"))
    assert [th.text for th in d.find_elements(By.CSS_SELECTOR, "#sql-result th")] == [
        "id", "name"]
    assert rows(d, "#sql-result") == [["1", "ann"], ["2", "<i>bob</i>"]]
    d.save_screenshot(str(artifacts / "sql.png"))
    ref = d.find_element(By.NAME, "ref")
    ref.clear()
    ref.send_keys("HEAD")
    d.find_element(By.ID, "run").click()
    wait(d).until(lambda drv: len(rows(drv, "#sql-result")) == 3)
    assert rows(d, "#sql-result")[0] == ["1", "ann 2"]


def test_memory_view_and_value_viewer(server, browser, artifacts, monkeypatch):
    """Another process stores agent memory: the Memory tab appears, shows the kinds
    and finds a memory by text (escaped); a second batch of memories shows on reload.
    The value viewer shows a binary value as a hex dump and cuts a large one."""
    pytest.importorskip("prollytree.memory")
    from prollytree.memory import AgentMemorySystem
    d, base = browser, server["base"]
    d.get(base + "/value?key_hex=" + b"bin:\x00\xff\x80".hex())
    assert "binary" in d.find_element(By.TAG_NAME, "main").text
    assert text(d, "#value").startswith("00000000  00 01 02 03 04 05 06 07")
    d.get(base + "/value?key=big")
    assert "320000 bytes" in text(d, "#size") and d.find_elements(By.ID, "truncated")
    assert not d.find_elements(By.LINK_TEXT, "Memory")

    m = AgentMemorySystem(server["path"], "agent-7")
    try:
        m.semantic.store_fact("city", "tokyo", {"name": "Tokyo"}, 0.9, "api")
        m.episodic.store_episode("Talked about <script>alert('m')</script> travel", {})
        m.checkpoint("memories")
        d.get(base + "/")
        d.find_element(By.LINK_TEXT, "Memory").click()
        assert {r[0]: r[1] for r in rows(d, "#memory-kinds")}["total"] == "2"
        d.find_element(By.ID, "memory-q").send_keys("travel")
        d.find_element(By.CSS_SELECTOR, "form.bar button").click()
        found = rows(d, "#memory-results")
        assert len(found) == 1 and found[0][1] == "episodic"
        assert "<script>alert('m')</script>" in found[0][4]
        with pytest.raises(NoAlertPresentException):
            d.switch_to.alert.text
        d.save_screenshot(str(artifacts / "memory.png"))
        m.procedural.store_procedure("deploy", "How to deploy", ["build", "ship"])
        m.checkpoint("one more")
    finally:
        m.close()
    d.get(base + "/memory")
    kinds = {r[0]: r[1] for r in rows(d, "#memory-kinds")}
    assert kinds["total"] == "3" and kinds["procedural"] == "1"
