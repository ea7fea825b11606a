"""The Starlette application: HTML pages and the JSON API over one dataset.

Every page has a JSON twin under ``/api`` returning the same dict the page renders (see
``docs/web.md``). Requests run on the event loop one at a time (the store is used from
one thread). Safety:

* only ``Host`` names of the loopback interface are answered when bound to loopback
  (a DNS-rebinding page cannot read the dataset);
* writes exist only with ``write=True`` and need the per-process CSRF token (form field
  ``csrf`` or header ``X-CSRF-Token``) and, when the browser sends one, an ``Origin``
  equal to the app's own;
* templates escape every key and value (Jinja2 autoescape); static files come from the
  package's ``static/`` directory only.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (HTMLResponse, JSONResponse, PlainTextResponse,
                                 RedirectResponse, Response, StreamingResponse)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from prollytree.cli.output import get_bytes, show
from prollytree.errors import MergeConflictError, ProllyError, ReadOnlyError, UnknownRefError

from . import data as D
from . import params as P
from . import render as R
from .memoryview import MemoryView
from .sqlview import SqlConsole, cell_text

HERE = Path(__file__).resolve().parent
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _field(obj: dict | None, name: str) -> str:
    """Display text of a put_bytes field (``name`` or ``name_b64``) for a template."""
    if obj is None:
        return ""
    try:
        v = get_bytes(obj, name)
    except KeyError:
        return ""
    return "" if v is None else show(v)


def _keyq(obj: dict, name: str = "key", param: str = "key") -> str:
    """Query string naming the key held in ``obj``'s ``name`` field."""
    v = get_bytes(obj, name)
    return urlencode(P.key_query(v, param))


def _q(**kw: Any) -> str:
    return urlencode({k: v for k, v in kw.items() if v is not None and v != ""})


def _templates():
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["field"] = _field
    env.filters["keyq"] = _keyq
    env.filters["keyparams"] = lambda obj: P.key_query(get_bytes(obj, "key")).items()
    env.filters["short"] = lambda cid: (cid or "")[:12]
    env.filters["firstline"] = lambda m: (m.splitlines() or [""])[0]
    env.filters["qs"] = lambda d: urlencode(d or {})
    env.globals["q"] = _q
    env.filters["sqlcell"] = cell_text
    return env


class WebApp:
    """Holds the dataset, the settings and the CSRF token; builds the Starlette app."""

    def __init__(self, store: Any, write: bool = False,
                 allowed_hosts: set[str] | None = None, poll_seconds: float = 1.0,
                 sql: Any = None) -> None:
        self.ds = D.Dataset(store, write)
        self.sqlc = SqlConsole(sql) if sql is not None else None
        self.mem = MemoryView(store)
        self.write = write
        self.csrf = secrets.token_urlsafe(32)
        self.allowed_hosts = allowed_hosts    # None: any Host
        self.poll_seconds = poll_seconds
        self.env = _templates()

    # -- plumbing ---------------------------------------------------------------------------

    def render(self, request: Request, name: str, ctx: dict, status: int = 200) -> Response:
        state = ctx.get("state") or self.ds.state()
        html = self.env.get_template(name).render(
            request=request, write=self.write, csrf=self.csrf, state=state,
            path=request.url.path, has_sql=self.sqlc is not None,
            has_memory=self.mem.present(), **ctx)
        return HTMLResponse(html, status_code=status)

    def error(self, request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message, "status": status}, status_code=status)
        try:
            state = self.ds.state()
        except Exception:  # noqa: BLE001 - the error page must render anyway
            state = {"token": "", "branch": None, "head": "", "staged": 0, "refs": {}}
        html = self.env.get_template("error.html").render(
            request=request, write=self.write, csrf=self.csrf, state=state,
            path=request.url.path, status=status, message=message,
            has_sql=self.sqlc is not None, has_memory=False)
        return HTMLResponse(html, status_code=status)

    def page(self, template: str, fn: Callable[[Request], dict]) -> Callable:
        """An HTML route rendering ``fn(request)`` with ``template``."""
        async def endpoint(request: Request) -> Response:
            return self.render(request, template, fn(request))
        return endpoint

    def api(self, fn: Callable[[Request], Any]) -> Callable:
        async def endpoint(request: Request) -> Response:
            return JSONResponse(fn(request))
        return endpoint

    # -- guards -----------------------------------------------------------------------------

    def check_host(self, request: Request) -> None:
        if self.allowed_hosts is None:
            return
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in self.allowed_hosts:
            raise HTTPException(421, f"unexpected Host header {host!r}: this server answers "
                                     f"only {', '.join(sorted(self.allowed_hosts))}")

    async def check_write(self, request: Request) -> dict:
        """The form (or JSON body) of a write request, after the CSRF and Origin checks."""
        if not self.write:
            raise HTTPException(403, "read-only: start the server with --write to change "
                                     "the dataset")
        origin = request.headers.get("origin")
        if origin is not None:
            own = f"{request.url.scheme}://{request.headers.get('host', '')}"
            if origin != own:
                raise HTTPException(403, f"cross-origin request refused (Origin {origin!r})")
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError:
                raise HTTPException(400, "the body is not valid JSON") from None
            if not isinstance(body, dict):
                raise HTTPException(400, "the body must be a JSON object")
        else:
            body = dict(await request.form())
        token = request.headers.get("x-csrf-token") or body.get("csrf")
        if not isinstance(token, str) or not secrets.compare_digest(token, self.csrf):
            raise HTTPException(403, "missing or wrong CSRF token (reload the page)")
        return body

    # -- read views -------------------------------------------------------------------------

    def v_history(self, r: Request) -> dict:
        limit = P.page_limit(r.query_params.get("limit"), 100)
        return {"refs": self.ds.refs(), "graph": self.ds.graph(limit)}

    def v_commit(self, r: Request) -> dict:
        p = r.query_params
        return {"commit": self.ds.commit(r.path_params["ref"],
                                         P.key_param(p, "after", False),
                                         P.page_limit(p.get("limit"), 100),
                                         p.get("tree"))}

    def v_counts(self, r: Request) -> dict:
        return self.ds.counts(r.path_params["ref"], P.tree_param(r.query_params))

    def v_browse(self, r: Request) -> dict:
        p = r.query_params
        prefix = P.key_param(p, "prefix", False) or b""
        res = self.ds.keys(P.ref_param(p), prefix, P.key_param(p, "after", False),
                           P.key_param(p, "before", False), P.page_limit(p.get("limit")),
                           P.tree_param(p))
        return {"keys": res, "refs": self.ds.refs()}

    def v_value(self, r: Request) -> dict:
        p = r.query_params
        return {"value": self.ds.value(P.ref_param(p), P.key_param(p), P.tree_param(p))}

    def v_key_history(self, r: Request) -> dict:
        p = r.query_params
        return {"history": self.ds.key_history(P.key_param(p),
                                               P.page_limit(p.get("limit"), 100),
                                               P.tree_param(p), P.ref_param(p)),
                "refs": self.ds.refs()}

    def v_diff(self, r: Request) -> dict:
        p = r.query_params
        refs = self.ds.refs()
        if p.get("from") is None and p.get("to") is None:
            return {"diff": None, "refs": refs}
        res = self.ds.diff(P.ref_param(p, "from", None), P.ref_param(p, "to", None),
                           P.key_param(p, "prefix", False) or b"",
                           P.key_param(p, "after", False), P.page_limit(p.get("limit"), 100),
                           P.tree_param(p))
        return {"diff": res, "refs": refs}

    def v_merge(self, r: Request) -> dict:
        p = r.query_params
        refs = self.ds.refs()
        if p.get("source") is None:
            return {"merge": None, "refs": refs}
        res = self.ds.merge_preview(P.ref_param(p, "source", None),
                                    P.ref_param(p, "dest", "HEAD"),
                                    P.page_limit(p.get("limit"), 200))
        return {"merge": res, "refs": refs}

    def v_proof(self, r: Request) -> dict:
        p = r.query_params
        key = P.key_param(p, "key", False)
        proof = self.ds.proof(P.ref_param(p), key, P.tree_param(p)) \
            if key is not None else None
        return {"proof": proof, "verify": None, "refs": self.ds.refs()}

    def v_sql(self, r: Request) -> dict:
        p = r.query_params
        if self.sqlc is None:
            raise HTTPException(404, "no SQL console: the sql layer (apsw) is not installed, "
                                     "or the app was created without a ProllySQLStore")
        offset = _offset(p.get("offset"))
        limit = P.page_limit(p.get("limit"), 100)
        ref = P.ref_param(p)
        if p.get("system"):
            res = self.sqlc.system(p["system"], offset, limit)
        elif p.get("q"):
            res = self.sqlc.query(ref, p["q"], offset, limit)
        else:
            res = None
        return {"sql": res, "ref": ref, "tables": self.sqlc.tables(ref),
                "system_tables": self.sqlc.system_tables(), "refs": self.ds.refs()}

    def v_memory(self, r: Request) -> dict:
        p = r.query_params
        return {"memory": self.mem.page(p.get("q", ""), p.get("kind", ""),
                                        p.get("namespace", ""), p.get("tag", ""),
                                        P.page_limit(p.get("limit"), 50))}

    def v_state(self, r: Request) -> dict:
        return self.ds.state()

    def v_refs(self, r: Request) -> dict:
        return self.ds.refs()

    def v_log(self, r: Request) -> list:
        p = r.query_params
        return self.ds.log(P.ref_param(p), P.page_limit(p.get("limit"), 100))

    def v_status(self, r: Request) -> dict:
        return {"status": self.ds.status(), "refs": self.ds.refs()}

    def _verify_args(self, body: dict) -> tuple:
        for name in ("root", "proof"):
            if not isinstance(body.get(name), str):
                raise P.BadRequest(f"missing parameter {name!r}")
        key = P.key_param(body)
        expected = P.key_param(body, "value", False) if body.get("value") not in ("",) \
            else None
        return body["root"], body["proof"], key, expected

    async def verify_page(self, request: Request) -> Response:
        # a pasted proof of a key in a large leaf can be a few MB
        body = dict(await request.form(max_part_size=64 * 1024 * 1024))
        res = self.ds.verify(*self._verify_args(body))
        return self.render(request, "proof.html", {"proof": None, "verify": res,
                                                   "form": body, "refs": self.ds.refs()})

    async def verify_api(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise P.BadRequest("the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise P.BadRequest("the body must be a JSON object")
        return JSONResponse(self.ds.verify(*self._verify_args(body)))

    async def raw(self, request: Request) -> Response:
        p = request.query_params
        key = P.key_param(p)
        f = self.ds.raw(P.ref_param(p), key, P.tree_param(p))
        size = R.file_size(f)
        name = "".join(ch if ch.isalnum() or ch in "-_." else "_"
                       for ch in show(key))[:80] or "value"

        async def chunks():
            # chunk by chunk from the store: a large value is never held whole
            with f:
                while True:
                    block = f.read(65536)
                    if not block:
                        return
                    yield block

        return StreamingResponse(chunks(), media_type="application/octet-stream", headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{name}.bin"',
            "X-Content-Type-Options": "nosniff"})

    async def events(self, request: Request) -> Response:
        """Server-sent events: a ``state`` event now and whenever the refs, HEAD or the
        staged changes change; the stream ends after ``seconds`` (default 30, the browser
        reconnects)."""
        try:
            seconds = float(request.query_params.get("seconds", "30"))
        except ValueError:
            raise P.BadRequest("seconds must be a number") from None
        seconds = max(0.0, min(seconds, 300.0))

        async def stream():
            last = None
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            while True:
                st = self.ds.state()
                if st["token"] != last:
                    last = st["token"]
                    yield f"event: state\ndata: {json.dumps(st)}\n\n"
                if loop.time() >= end or await request.is_disconnected():
                    return
                await asyncio.sleep(self.poll_seconds)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    # -- write actions ----------------------------------------------------------------------

    def _do(self, action: str, body: dict) -> dict:
        s = self.ds.store

        def text(name: str) -> str:
            v = body.get(name)
            if not isinstance(v, str) or not v.strip():
                raise P.BadRequest(f"missing parameter {name!r}")
            return v.strip()

        if action == "set":
            key = P.key_param(body)
            value = P.key_param(body, "value")
            s.insert(key, value)
            return {"staged": len(s.tree_status())}
        if action == "delete":
            existed = s.delete(P.key_param(body))
            return {"deleted": existed, "staged": len(s.tree_status())}
        if action == "commit":
            if not s.tree_status():
                raise P.BadRequest("nothing to commit: no staged changes")
            cid = s.commit(text("message"))
            return {"id": cid, "branch": s.current_branch()}
        if action == "branch":
            name = text("name")
            cid = s.branch(name, body.get("start") or None)
            return {"branch": name, "id": cid}
        if action == "checkout":
            s.checkout(text("ref"))
            return {"branch": s.current_branch(), "head": s.current_commit()}
        if action == "merge":
            from prollytree import ConflictResolution
            how = body.get("resolution") or "refuse"
            if how == "refuse":
                ok, conflicts = s.try_merge(text("source"))
                if not ok:
                    raise MergeConflictError(
                        f"merge stopped on {len(conflicts)} conflict(s); nothing changed: "
                        + ", ".join(show(c.key) for c in conflicts[:20]), conflicts)
                return {"id": s.current_commit(), "branch": s.current_branch()}
            res = {"source": ConflictResolution.TakeSource,
                   "dest": ConflictResolution.TakeDestination}.get(how)
            if res is None:
                raise P.BadRequest(f"resolution must be refuse, source or dest, not {how!r}")
            cid = s.merge(text("source"), res)
            return {"id": cid, "branch": s.current_branch()}
        raise HTTPException(404, f"no action {action!r}")

    async def action_api(self, request: Request) -> Response:
        body = await self.check_write(request)
        return JSONResponse(self._do(request.path_params["action"], body))

    async def action_form(self, request: Request) -> Response:
        body = await self.check_write(request)
        res = self._do(request.path_params["action"], body)
        back = body.get("next") or "/status"
        # only a path of this app: "//host" and "/\\host" would send the browser away
        if not isinstance(back, str) or not back.startswith("/") or back[1:2] in ("/", "\\") \
                or any(ch in back for ch in "\\\r\n\t "):
            back = "/status"
        sep = "&" if "?" in back else "?"
        return RedirectResponse(back + sep + urlencode({"done": json.dumps(res)}), 303)

    # -- assembly ---------------------------------------------------------------------------

    def safe(self, endpoint: Callable) -> Callable:
        """Answer any error raised by ``endpoint`` with a 4xx/5xx page or JSON error
        (never a traceback to the client; internal errors are logged)."""
        async def wrapped(request: Request) -> Response:
            try:
                return await endpoint(request)
            except HTTPException as e:
                return self.error(request, e.status_code, e.detail)
            except Exception as e:  # noqa: BLE001 - turned into an error page
                status, message = _status_of(e)
                if status >= 500:
                    import logging
                    logging.getLogger("prollytree.web").exception("error answering %s",
                                                                  request.url.path)
                return self.error(request, status, message)
        return wrapped

    async def raw_proof(self, request: Request) -> Response:
        p = request.query_params
        key = P.key_param(p)
        proof = self.ds.tree(self.ds.resolve(P.ref_param(p)),
                             P.tree_param(p)).generate_proof(key)
        return Response(proof, media_type="application/octet-stream", headers={
            "Content-Disposition": 'attachment; filename="proof.bin"'})

    def build(self) -> Starlette:
        P, A = self.page, self.api
        routes = [
            Route("/", P("history.html", self.v_history)),
            Route("/commit/{ref:path}", P("commit.html", self.v_commit)),
            Route("/browse", P("browse.html", self.v_browse)),
            Route("/value", P("value.html", self.v_value)),
            Route("/raw", self.raw),
            Route("/key-history", P("key_history.html", self.v_key_history)),
            Route("/diff", P("diff.html", self.v_diff)),
            Route("/merge", P("merge.html", self.v_merge)),
            Route("/proof", P("proof.html", self.v_proof)),
            Route("/proof/verify", self.verify_page, methods=["POST"]),
            Route("/proof/raw", self.raw_proof),
            Route("/status", P("status.html", self.v_status)),
            Route("/sql", P("sql.html", self.v_sql)),
            Route("/memory", P("memory.html", self.v_memory)),
            Route("/actions/{action}", self.action_form, methods=["POST"]),
            Route("/api/state", A(self.v_state)),
            Route("/api/events", self.events),
            Route("/api/refs", A(self.v_refs)),
            Route("/api/log", A(self.v_log)),
            Route("/api/graph", A(lambda r: self.v_history(r)["graph"])),
            Route("/api/commit/{ref:path}/counts", A(self.v_counts)),
            Route("/api/commit/{ref:path}", A(lambda r: self.v_commit(r)["commit"])),
            Route("/api/keys", A(lambda r: self.v_browse(r)["keys"])),
            Route("/api/value", A(lambda r: self.v_value(r)["value"])),
            Route("/api/raw", self.raw),
            Route("/api/key-history", A(lambda r: self.v_key_history(r)["history"])),
            Route("/api/diff", A(self._api_diff)),
            Route("/api/merge-preview", A(self._api_merge)),
            Route("/api/proof", A(self._api_proof)),
            Route("/api/verify-proof", self.verify_api, methods=["POST"]),
            Route("/api/status", A(lambda r: self.v_status(r)["status"])),
            Route("/api/sql", A(self._api_sql)),
            Route("/api/memory", A(lambda r: self.v_memory(r)["memory"])),
            Route("/api/actions/{action}", self.action_api, methods=["POST"]),
        ]
        routes = [Route(r.path, self.safe(r.endpoint), methods=r.methods) for r in routes]
        routes.append(Mount("/static", StaticFiles(directory=str(HERE / "static")),
                            name="static"))

        app = Starlette(routes=routes, exception_handlers={HTTPException: self._http_error})
        outer = self

        class Guard:
            """The Host check, before anything else: a refused request learns nothing
            about the dataset (a plain-text answer, no page with its refs)."""

            def __init__(self, inner):
                self.inner = inner

            async def __call__(self, scope, receive, send):
                if scope["type"] != "http":
                    return await self.inner(scope, receive, send)
                request = Request(scope, receive)
                try:
                    outer.check_host(request)
                except HTTPException as e:
                    return await PlainTextResponse(e.detail, e.status_code)(
                        scope, receive, send)
                return await self.inner(scope, receive, send)

        app.add_middleware(_HeadersMiddleware)
        self.starlette = app
        return Guard(app)

    def _api_diff(self, r: Request) -> dict:
        if r.query_params.get("from") is None or r.query_params.get("to") is None:
            raise P.BadRequest("give both 'from' and 'to'")
        return self.v_diff(r)["diff"]

    def _api_merge(self, r: Request) -> dict:
        if r.query_params.get("source") is None:
            raise P.BadRequest("missing parameter 'source'")
        return self.v_merge(r)["merge"]

    def _api_sql(self, r: Request) -> dict:
        if not r.query_params.get("q") and not r.query_params.get("system"):
            raise P.BadRequest("give a query 'q' (with 'ref') or a system table 'system'")
        res = self.v_sql(r)
        return dict(res["sql"], tables=res["tables"])

    def _api_proof(self, r: Request) -> dict:
        P.key_param(r.query_params)
        return self.v_proof(r)["proof"]

    async def _http_error(self, request: Request, exc: HTTPException) -> Response:
        return self.error(request, exc.status_code, exc.detail)


def _offset(raw: str | None) -> int:
    try:
        n = int(raw or 0)
    except ValueError:
        raise P.BadRequest(f"offset must be an integer, got {raw!r}") from None
    if n < 0:
        raise P.BadRequest(f"offset must be >= 0, got {n}")
    return n


def _status_of(exc: Exception) -> tuple[int, str]:
    """HTTP status and message for an exception raised while answering."""
    if type(exc).__module__ == "apsw":          # an SQL error in a query: the user's
        return 400, f"SQL error: {exc}"
    if isinstance(exc, (P.NotFound, UnknownRefError)):
        return 404, str(exc)
    if isinstance(exc, MergeConflictError):
        return 409, str(exc)
    if isinstance(exc, ReadOnlyError):
        return 409, str(exc)
    if isinstance(exc, (P.BadRequest, ValueError, TypeError)):
        return 400, str(exc) or type(exc).__name__
    if isinstance(exc, ProllyError):
        return 500, f"{type(exc).__name__}: {exc}"
    return 500, f"internal error: {type(exc).__name__}: {exc}"


class _HeadersMiddleware:
    """Security headers on every response: no framing, no sniffing, a same-origin
    content policy (the pages use only their own CSS and JS); dataset views are not
    cached (they change with the dataset). ``Server-Timing`` gives the wall-clock and
    CPU milliseconds the app spent before answering (``benchmarks/bench_web.py`` reads
    it: CPU time does not grow with other load on the machine)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        wall0, cpu0 = time.perf_counter(), time.process_time()

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                wall = (time.perf_counter() - wall0) * 1000
                cpu = (time.process_time() - cpu0) * 1000
                headers = list(message.get("headers", []))
                headers += [
                    (b"server-timing", f"app;dur={wall:.2f}, cpu;dur={cpu:.2f}".encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"cache-control", b"no-store" if not scope["path"].startswith(
                        "/static/") else b"max-age=300"),
                    (b"content-security-policy",
                     b"default-src 'self'; img-src 'self' data:; style-src 'self'; "
                     b"script-src 'self'; frame-ancestors 'none'"),
                ]
                message = dict(message, headers=headers)
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def create_app(store: Any, write: bool = False, allowed_hosts: set[str] | None = None,
               poll_seconds: float = 1.0, sql: Any = None):
    """An ASGI app serving ``store`` (an open :class:`VersionedKvStore`). ``write``
    enables the actions; ``allowed_hosts`` limits the Host header (None: any); ``sql``
    (a :class:`prollytree.sql.ProllySQLStore` whose ``kv`` is ``store``) enables the SQL
    console."""
    return WebApp(store, write, allowed_hosts, poll_seconds, sql).build()


def serve(path: str | os.PathLike = ".", host: str = "127.0.0.1", port: int = 8765,
          write: bool = False, on_ready: Callable[[str], None] | None = None) -> None:
    """Open the dataset at or above ``path`` and serve it until interrupted."""
    import uvicorn

    from prollytree.cli.dataset import locate, open_store
    loc = locate(os.fspath(path))
    sql = None
    try:
        # the SQL layer opens the dataset itself; the app then uses its store (one store
        # object per dataset: the File and RocksDB backends admit one open writer)
        from prollytree.sql import ProllySQLStore
        from prollytree.versioning import StorageBackend
        sql = ProllySQLStore.open(loc.path, StorageBackend[loc.backend])
        store = sql.kv
    except ImportError:
        store = open_store(loc)
    web = None
    try:
        allowed = LOOPBACK_HOSTS if host in LOOPBACK_HOSTS else None
        web = WebApp(store, write, allowed, sql=sql)
        app = web.build()
        # bind before saying where: a port in use or an unknown host is an error here
        # (OSError with the address), not a URL printed for a server that never starts;
        # --port 0 prints the port the system picked
        sock = _listen(host, port)
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
        server = uvicorn.Server(config)
        if on_ready is not None:
            shown = f"[{host}]" if ":" in host else host
            on_ready(f"http://{shown}:{sock.getsockname()[1]}/")
        server.run(sockets=[sock])
    finally:
        if web is not None:
            web.mem.close()
        (sql or store).close()


def _listen(host: str, port: int):
    """A socket bound to ``host``:``port``; OSError naming the address when it cannot
    be (port in use, unknown host, no permission)."""
    import socket
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as e:
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        # listening already: a client that connects as soon as the URL is printed
        # waits in the backlog until the server loop starts, instead of being refused
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock
