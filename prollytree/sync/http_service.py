"""What the two sync servers share: their options, refusals, JSON replies, bounded request
bodies, the push token check and the app's assembly.

``git prolly serve`` runs :func:`prollytree.sync.http_server.create_app` for a Git-backed
dataset and :func:`prollytree.sync.http_store.create_store_app` for a store-backed one;
both speak the same conventions (protocol header, ``{"error": ...}`` bodies, Bearer
token), written once here. Starlette is imported when an app is made, not before.
"""

from __future__ import annotations

import hmac
from typing import Any, Awaitable, Callable

from .http_client import PROTOCOL_HEADER

#: headers on every reply: the protocol version, and never cached
REPLY_HEADERS = {PROTOCOL_HEADER: "1", "Cache-Control": "no-store"}


class Refused(Exception):
    """A request refused with HTTP ``status`` and a message for the client."""

    def __init__(self, status: int, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def check_server_options(allow_push: object, token: object, **limits: object) -> bytes | None:
    """Validate a server's options (TypeError/ValueError); returns the token as bytes.
    ``allow_push`` needs a non-empty token; every limit must be a positive int."""
    if not isinstance(allow_push, bool):
        raise TypeError(f"allow_push must be a bool, not {type(allow_push).__name__}")
    if token is not None and not isinstance(token, str):
        raise TypeError(f"token must be a str, not {type(token).__name__}")
    if allow_push and not token:
        raise ValueError("allow_push needs a token (clients authenticate with it)")
    for name, v in limits.items():
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{name} must be a positive int, not {v!r}")
    return token.encode("utf-8") if token else None


def reply(data: Any, status: int = 200, headers: dict | None = None):
    """A JSON response with the protocol headers."""
    from starlette.responses import JSONResponse
    return JSONResponse(data, status_code=status, headers={**REPLY_HEADERS, **(headers or {})})


async def read_body(request: Any, limit: int,
                    feed: Callable[[bytes], None] | None = None) -> bytes:
    """The request body, refused (413) past ``limit`` bytes whether declared or streamed,
    without reading more than that. With ``feed``, chunks go to it as they arrive (and
    b"" is returned)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Refused(400, "bad Content-Length")
        if int(declared) > limit:
            raise Refused(413, f"request body larger than {limit} bytes")
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise Refused(413, f"request body larger than {limit} bytes")
        if feed is not None:
            feed(chunk)
        else:
            chunks.append(chunk)
    return b"".join(chunks)


def authorize(request: Any, allow_push: bool, token: bytes | None, what: str) -> None:
    """Refuse a write unless the server allows pushes (403) and the request carries the
    token as ``Authorization: Bearer <token>`` (401 without one, 403 for a wrong one;
    compared in constant time). ``what`` names the write in the messages."""
    if not allow_push:
        raise Refused(403, "this server is read-only (start it with --allow-push "
                           "--token T to accept pushes)")
    auth = request.headers.get("authorization", "")
    if not auth:
        raise Refused(401, f"{what} needs a token (Authorization: Bearer <token>)",
                      {"WWW-Authenticate": 'Bearer realm="prollytree"'})
    scheme, _, given = auth.partition(" ")
    if scheme.lower() != "bearer" or token is None or not hmac.compare_digest(
            given.strip().encode("utf-8", "replace"), token):
        raise Refused(403, "wrong token")


def guarded(handler: Callable[[Any], Awaitable[Any]],
            bad_input: tuple[type[BaseException], ...] = ()):
    """``handler`` with its refusals (and exceptions of the ``bad_input`` types, as 400)
    turned into JSON error replies."""
    async def endpoint(request: Any):
        try:
            return await handler(request)
        except Refused as e:
            return reply({"error": e.message}, e.status, e.headers)
        except bad_input as e:
            return reply({"error": str(e)}, 400)
    return endpoint


def assemble(routes: list, close: Callable[[], None]):
    """The Starlette app of ``routes``: unknown paths are a JSON 404, and ``close`` runs
    when the server shuts down."""
    import contextlib

    from starlette.applications import Starlette

    async def not_found(request: Any, exc: Exception):
        return reply({"error": "not found"}, 404)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):
        try:
            yield
        finally:
            close()

    return Starlette(routes=routes, exception_handlers={404: not_found}, lifespan=lifespan)
