"""Request parameters of the web app: parsing and checking them, and the errors a bad one
raises (:class:`BadRequest`, HTTP 400; :class:`NotFound`, HTTP 404)."""

from __future__ import annotations

from typing import Any

MAX_LIMIT = 1000          #: largest page any endpoint returns


class BadRequest(ValueError):
    """A request parameter is missing or malformed (HTTP 400)."""


class NotFound(ValueError):
    """What the request names does not exist (HTTP 404)."""


# -- parameters -------------------------------------------------------------------------------


def page_limit(raw: str | None, default: int = 50) -> int:
    """A page size from a query parameter: 1..MAX_LIMIT."""
    if raw is None or raw == "":
        return default
    try:
        n = int(raw)
    except ValueError:
        raise BadRequest(f"limit must be an integer, got {raw!r}") from None
    if not 1 <= n <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}, got {n}")
    return n


def key_param(params: Any, name: str = "key", required: bool = True) -> bytes | None:
    """Key bytes from ``name`` (UTF-8 text), ``name_b64`` (base64) or ``name_hex``."""
    import base64
    import binascii
    for field in (name, name + "_b64", name + "_hex"):
        if params.get(field) is not None and not isinstance(params[field], str):
            raise BadRequest(f"{field} must be a string, not {type(params[field]).__name__}")
    if params.get(name + "_b64") is not None:
        try:
            return base64.b64decode(params[name + "_b64"], validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"{name}_b64 is not valid base64") from None
    if params.get(name + "_hex") is not None:
        try:
            return bytes.fromhex(params[name + "_hex"])
        except ValueError:
            raise BadRequest(f"{name}_hex is not valid hex") from None
    if params.get(name) is not None:
        return params[name].encode("utf-8", "surrogateescape")
    if required:
        raise BadRequest(f"missing parameter {name!r} (or {name}_b64 / {name}_hex)")
    return None


def key_query(data: bytes, name: str = "key") -> dict[str, str]:
    """The query parameters naming ``data`` (inverse of :func:`key_param`)."""
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {name + "_hex": data.hex()}


def tree_param(params: Any) -> str:
    """The named tree a request is about ("" - the default tree - when not given)."""
    return params.get("tree") or ""


def ref_param(params: Any, name: str = "ref", default: str | None = "HEAD") -> str:
    value = params.get(name)
    if value is None or value.strip() == "":
        if default is None:
            raise BadRequest(f"missing parameter {name!r}")
        return default
    return value.strip()
