"""Maintenance and proofs: ``stats``, ``proof``, ``verify-proof``, ``fsck``, ``gc``."""

from __future__ import annotations

import sys

import click

from .app import (App, Fail, cli,
                  enc, json_option, pass_app)
from .output import put_bytes, show



# -- stats / proofs / fsck / gc -------------------------------------------------------------------


@cli.command()
@click.argument("ref", required=False, default="HEAD")
@json_option
@pass_app
def stats(app: App, ref: str) -> None:
    """Show the shape of the tree at REF: keys, depth, nodes, node sizes, bytes.

    \b
    Example:
      git-prolly stats main
    """
    store = app.store()
    out = app.out
    cid = store.resolve_ref(ref)
    tree = store.tree_at(cid)
    s = tree.stats()
    nodes = s["num_nodes"]
    doc = {"commit": cid, "root": tree.get_root_hash().hex(),
           "backend": store.storage_backend().name,
           "keys": s["total_key_value_pairs"], "depth": s["depth"], "nodes": nodes,
           "leaves": s["num_leaves"], "internal_nodes": s["num_internal_nodes"],
           "avg_entries_per_node": round(s["avg_node_size"], 2),
           "bytes": s["total_node_bytes"],
           "avg_node_bytes": round(s["total_node_bytes"] / nodes, 1) if nodes else 0.0}
    v = tree.value_stats()  # chunked (large) values: what chunk sharing saves
    doc.update({"chunked_values": v["chunked_values"], "chunked_value_bytes": v["value_bytes"],
                "chunks": v["chunks"], "chunk_bytes": v["chunk_bytes"],
                "dedup_saved_bytes": v["dedup_saved_bytes"]})
    if out.json_mode:
        out.json(doc)
        return
    labels = [("commit", "Commit"), ("root", "Root hash"), ("backend", "Backend"),
              ("keys", "Keys"), ("depth", "Depth"), ("nodes", "Nodes"),
              ("leaves", "Leaf nodes"), ("internal_nodes", "Internal nodes"),
              ("avg_entries_per_node", "Average node size (entries)"),
              ("avg_node_bytes", "Average node size (bytes)"), ("bytes", "Total bytes"),
              ("chunked_values", "Chunked values"),
              ("chunked_value_bytes", "Chunked value bytes"), ("chunks", "Distinct chunks"),
              ("chunk_bytes", "Chunk bytes stored"),
              ("dedup_saved_bytes", "Bytes saved by dedup")]
    out.table(["Statistic", "Value"], ([label, str(doc[k])] for k, label in labels),
              styles=["bold", None], nowrap=(0, 1))


@cli.command()
@click.argument("key")
@click.option("--ref", metavar="REF", default="HEAD", show_default=True,
              help="Prove the value at this branch, tag or commit.")
@click.option("-o", "--output", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the proof to FILE instead of standard output.")
@pass_app
def proof(app: App, key: str, ref: str, output: str | None) -> None:
    """Print a portable proof of KEY's value (or of its absence) at REF.

    The proof is a JSON document holding the root hash, the key, the claimed value and
    the proof bytes (base64). Anyone holding the root hash can check it with
    'git-prolly verify-proof', without the dataset.

    \b
    Example:
      git-prolly proof user:alice -o alice.proof
    """
    import base64
    import json

    store = app.store()
    out = app.out
    k = enc(key)
    cid = store.resolve_ref(ref)
    tree = store.tree_at(cid)
    value = tree.find(k)
    doc = {"format": "prollytree-proof", "version": 1, "commit": cid,
           "root": tree.get_root_hash().hex()}
    put_bytes(doc, "key", k)
    doc["present"] = value is not None
    put_bytes(doc, "value", value)
    doc["proof"] = base64.b64encode(tree.generate_proof(k)).decode("ascii")
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
        what = f"value of {show(k)}" if value is not None else f"absence of {show(k)}"
        if out.json_mode:
            out.json({"written": output, "root": doc["root"], "present": doc["present"]})
        else:
            out.line(f"Wrote proof of the {what} under root {doc['root'][:16]}... to {output}")
    else:
        out.write(text)


@cli.command("verify-proof")
@click.argument("file", required=False, default="-",
                type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--root", "root_hex", metavar="HASH",
              help="The trusted root hash (64 hex digits) to check against.")
@click.option("--ref", metavar="REF",
              help="Check against the root of REF in the current dataset.")
@click.option("--key", "key_text", metavar="KEY", help="The key to check (default: the "
                                                        "proof's).")
@click.option("--value", "value_text", metavar="VALUE",
              help="The value to check (default: the value the proof claims).")
@json_option
@pass_app
def verify_proof(app: App, file: str, root_hex: str | None, ref: str | None,
                 key_text: str | None, value_text: str | None) -> None:
    """Check a proof (from 'git-prolly proof', in FILE or on standard input) against a
    trusted root hash: --root HASH, --ref REF, or by default the current commit of the
    dataset you are in. Exit code 0 when it verifies, 1 when it does not.

    \b
    Examples:
      git-prolly verify-proof alice.proof --root 3f5a...e1
      git-prolly proof user:alice | git-prolly verify-proof
    """
    import base64
    import binascii
    import json

    from prollytree import ProofError, proven_value

    from .output import get_bytes
    out = app.out
    if root_hex and ref:
        raise click.UsageError("give either --root or --ref")
    try:
        if file == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(file, "rb") as f:
                raw = f.read()
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("format") != "prollytree-proof":
            raise ValueError("not a prollytree proof document")
        proof_bytes = base64.b64decode(doc["proof"], validate=True)
        key = enc(key_text) if key_text is not None else get_bytes(doc, "key")
        claimed_present = bool(doc.get("present", True))
        if value_text is not None:
            expected = enc(value_text)
        else:
            expected = get_bytes(doc, "value") if claimed_present else None
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        detail = f"missing field {e}" if isinstance(e, KeyError) else str(e)
        raise Fail(f"cannot read the proof in {file if file != '-' else 'standard input'}: "
                   f"{detail}", 2) from None
    if root_hex:
        try:
            root = bytes.fromhex(root_hex)
            if len(root) != 32:
                raise ValueError
        except ValueError:
            raise Fail(f"--root must be 64 hex digits, got {root_hex!r}", 2) from None
    else:
        root = app.store().commit_info(ref or "HEAD")["root"]
    reason = None
    try:
        proven = proven_value(root, proof_bytes, key)
    except ProofError as e:
        proven, reason = None, str(e)
    if reason is None and proven != expected:
        if expected is None:
            reason = f"the proof shows {show(key)} present, not absent"
        elif proven is None:
            reason = f"the proof shows {show(key)} absent"
        else:
            reason = f"the proof shows another value for {show(key)}: {show(proven)}"
    valid = reason is None
    if out.json_mode:
        d = {"valid": valid, "root": root.hex()}
        put_bytes(d, "key", key)
        d["present"] = expected is not None
        put_bytes(d, "value", expected)
        d["reason"] = reason
        out.json(d)
    elif valid:
        what = (f"{show(key)} = {show(expected)}" if expected is not None
                else f"{show(key)} is absent")
        out.styled([("OK", "green"), (f": proof verifies: {what} under root {root.hex()}",
                                      None)])
    if not valid:
        raise Fail(f"proof does not verify: {reason}", 1)


@cli.command()
@json_option
@pass_app
def fsck(app: App) -> None:
    """Check every node reachable from every branch, tag and HEAD: present, hashing to its
    address, decodable. Exit code 1 when anything is damaged.

    \b
    Example:
      git-prolly fsck
    """
    from prollytree.errors import CorruptNodeError, MissingNodeError
    out = app.out
    try:
        store = app.store()
    except (CorruptNodeError, MissingNodeError) as e:
        # the current commit's tree cannot even be loaded: that is damage to report
        kind = "damaged-node" if isinstance(e, CorruptNodeError) else "missing-node"
        report = {"ok": False, "refs": 0, "commits": 0, "trees": 0, "nodes": 0, "bytes": 0,
                  "problems": [{"kind": kind, "object": e.address.hex(), "commit": "",
                                "reached_from": "HEAD",
                                "detail": f"the dataset cannot be opened: {e}"}]}
    else:
        with out.progress("checking nodes", None) as advance:
            report = store.fsck(advance)
    if out.json_mode:
        out.json(report)
    else:
        out.line(f"Checked {report['refs']} ref(s), {report['commits']} commit(s), "
                 f"{report['trees']} tree(s), {report['nodes']} node(s), "
                 f"{report['bytes']} bytes")
        if report["ok"]:
            out.line("no damage found", style="green")
        else:
            out.table(["Problem", "Object", "Commit", "Reached from", "Detail"],
                      ([p["kind"], p["object"], p.get("commit", "")[:12],
                        p.get("reached_from", ""), p.get("detail", "")]
                       for p in report["problems"]), styles=["red", None, "yellow", None,
                                                             None])
    if not report["ok"]:
        raise Fail(f"{len(report['problems'])} problem(s) found", 1)


@cli.command()
@click.option("--dry-run", "-n", is_flag=True, help="Count what would be removed; remove "
                                                     "nothing.")
@json_option
@pass_app
def gc(app: App, dry_run: bool) -> None:
    """Remove nodes and commits that no branch, tag or HEAD reaches.

    On a Git dataset the nodes are Git objects: 'git gc' reclaims them, so gc only
    counts the unreachable ones and forgets the ones 'git gc' already deleted.

    \b
    Example:
      git-prolly gc --dry-run
    """
    store = app.store()
    out = app.out
    with out.progress("collecting", None) as advance:
        report = store.gc(dry_run, advance)
    if out.json_mode:
        out.json(report)
        return
    out.line(f"{report['commits']} reachable commit(s), {report['live_nodes']} live node(s)")
    if report["managed_by_git"]:
        out.line(f"{report['unreachable_nodes']} node(s) no branch reaches; on the Git "
                 f"backend Git manages object lifetime, nothing removed ('git gc' "
                 f"reclaims them)")
        if report["map_entries_dropped"]:
            verb = "would drop" if dry_run else "dropped"
            out.line(f"{verb} {report['map_entries_dropped']} node map entries of objects "
                     f"git gc deleted")
    elif dry_run:
        out.line(f"would remove {report['unreachable_nodes']} node(s) and "
                 f"{report['unreachable_commits']} commit(s)")
    else:
        out.line(f"removed {report['removed']} node(s) and {report['removed_commits']} "
                 f"commit(s)")
