"""A local web UI over a dataset: history with the commit graph, commits, browsing keys
at any ref, values, a key's history, diffs and merge previews, proofs, live updates,
and (with ``write``) commit/branch/checkout/merge actions. Every page has a JSON twin
under ``/api`` (see ``docs/web.md``).

Start it with ``git prolly ui [PATH]`` or ``python -m prollytree.web [PATH]``; in code::

    from prollytree.web import create_app   # an ASGI app over an open VersionedKvStore

Needs the ``web`` extra (Starlette, uvicorn, Jinja2).
"""

from .app import create_app, serve

__all__ = ["create_app", "serve"]
