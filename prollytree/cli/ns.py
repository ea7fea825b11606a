"""``git-prolly ns``: namespaces of the dataset (see docs/namespaces.md).

Each subcommand works on the dataset found as for every other command; writes are staged
and committed with ``git-prolly commit`` like any other change.
"""

from __future__ import annotations

import sys

import click

from .app import Fail, App, enc, json_option, pass_app
from .output import put_bytes, show, show_text


def _ns(app: App):
    from prollytree.versioning import NamespacedKvStore
    return NamespacedKvStore.from_store(app.store())


@click.group("ns")
def ns_group() -> None:
    """Namespaces: named key spaces committed, branched and merged together.

    \b
    Examples:
      git-prolly ns set users alice "Alice"
      git-prolly commit -m "add alice"
      git-prolly ns list
      git-prolly ns get users alice
      git-prolly ns list users --values
      git-prolly ns drop users
    """


@ns_group.command("list")
@click.argument("namespace", required=False)
@click.option("--values", is_flag=True, help="With NAMESPACE: print values next to keys.")
@click.option("--ref", metavar="REF", help="At a branch, tag or commit instead of the "
                                            "working view.")
@json_option
@pass_app
def ns_list(app: App, namespace: str | None, values: bool, ref: str | None) -> None:
    """List the namespaces, or with NAMESPACE its keys (exit code 1 when it does not
    exist).

    \b
    Examples:
      git-prolly ns list
      git-prolly ns list users --values
      git-prolly ns list --ref HEAD~1 --json
    """
    from prollytree.versioning.namespaced import namespace_tree, tree_namespace
    s = _ns(app)
    out = app.out
    if namespace is None:
        if ref is None:
            names = s.list_namespaces()
        else:
            names = sorted({"default"} | {n for n in map(tree_namespace,
                                                        s.store.list_trees_at(ref)) if n},
                           key=lambda n: n.encode("utf-8"))
        if out.json_mode:
            out.json(names)
        else:
            out.lines(names)
        return
    tree = namespace_tree(namespace)
    exists = (s.namespace_exists(namespace) if ref is None
              else tree == "" or s.store.tree_root(tree, ref) is not None)
    if not exists:
        raise Fail(f"no namespace {namespace!r}{' at ' + ref if ref else ''}", 1)
    items = (s.store.iter_items(tree=tree) if ref is None
             else s.store.iter_items_at(ref, tree=tree))
    if out.json_mode:
        out.json([put_bytes(put_bytes({}, "key", k), "value", v) if values
                  else put_bytes({}, "key", k) for k, v in items])
    elif values:
        out.table(["Key", "Value"], ([show(k), show(v)] for k, v in items),
                  styles=["cyan", None])
    else:
        out.lines(show(k) for k, _ in items)


@ns_group.command("get")
@click.argument("namespace")
@click.argument("key")
@click.option("--ref", metavar="REF", help="Read at a branch, tag or commit.")
@json_option
@pass_app
def ns_get(app: App, namespace: str, key: str, ref: str | None) -> None:
    """Print the value of KEY in NAMESPACE (exit code 1 when absent).

    \b
    Examples:
      git-prolly ns get users alice
      git-prolly ns get users alice --ref v1
    """
    from prollytree.versioning.namespaced import namespace_tree
    s = _ns(app)
    k = enc(key)
    value = (s.ns_get(namespace, k) if ref is None
             else s.store.get_at(ref, k, namespace_tree(namespace)))
    if value is None:
        raise Fail(f"key not found in namespace {namespace!r}"
                   f"{' at ' + ref if ref else ''}: {show(k)}", 1)
    out = app.out
    if out.json_mode:
        out.json(put_bytes(put_bytes({"namespace": namespace}, "key", k), "value", value))
    else:
        out.write(show_text(value) + "\n")


@ns_group.command("set")
@click.argument("namespace")
@click.argument("key")
@click.argument("value", required=False)
@pass_app
def ns_set(app: App, namespace: str, key: str, value: str | None) -> None:
    """Stage KEY = VALUE in NAMESPACE (VALUE from standard input when omitted).

    \b
    Examples:
      git-prolly ns set users alice "Alice"
      cat alice.json | git-prolly ns set users alice
    """
    if value is not None:
        data = enc(value)
    elif sys.stdin is not None and not sys.stdin.isatty():
        data = sys.stdin.buffer.read()
    else:
        raise click.UsageError("missing VALUE (or a value on standard input)")
    _ns(app).ns_insert(namespace, enc(key), data)


@ns_group.command("delete")
@click.argument("namespace")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@pass_app
def ns_delete(app: App, namespace: str, keys: tuple[str, ...]) -> None:
    """Stage the deletion of each KEY from NAMESPACE (exit code 1, deleting nothing,
    when one is absent).

    \b
    Example:
      git-prolly ns delete users alice bob
    """
    s = _ns(app)
    ks = [enc(k) for k in keys]
    missing = [k for k in ks if s.ns_get(namespace, k) is None]
    if missing:
        raise Fail(f"key not found in namespace {namespace!r}: "
                   + ", ".join(show(k) for k in missing) + "; nothing was deleted", 1)
    for k in ks:
        s.ns_delete(namespace, k)


@ns_group.command("drop")
@click.argument("namespace")
@pass_app
def ns_drop(app: App, namespace: str) -> None:
    """Stage deleting NAMESPACE with all its keys (exit code 1 when it does not exist;
    'default' cannot be dropped).

    \b
    Example:
      git-prolly ns drop sessions
    """
    if not _ns(app).delete_namespace(namespace):
        raise Fail(f"no namespace {namespace!r}", 1)
