"""The commit graph's layout: commits in topological order (newest first), each given a
lane (column) so that merge edges can be drawn without crossing a commit."""

from __future__ import annotations

import heapq

from prollytree.cli.app import commit_json


def layout(commits: list[dict]) -> list[dict]:
    """Lanes of a commit graph drawn top to bottom: ``commits`` (``log`` entries) are in
    display order, children before parents. Each row gets ``col`` (the column of its
    dot), ``after`` (the commit each column waits for below it) and ``edges``: [from
    column, to column] lines to the next row. A lane keeps its column while it lives."""
    rows = []
    lanes: list[str | None] = []
    for c in commits:
        cid = c["id"]
        before = list(lanes)
        if cid in lanes:
            col = lanes.index(cid)
        else:
            col = _free_lane(lanes)
            lanes[col] = cid
        # other lanes waiting for this commit end here (a branch joins it); a lane
        # keeps its index while it lives, so passing lanes are drawn straight down
        for i, x in enumerate(lanes):
            if x == cid and i != col:
                lanes[i] = None
        links = [(i, i) for i, x in enumerate(before) if x is not None and x != cid]
        parents = c["parents"]
        lanes[col] = parents[0] if parents else None
        if parents:
            links.append((col, col))
        for p in parents[1:]:
            if p in lanes:
                links.append((col, lanes.index(p)))
            else:
                k = _free_lane(lanes)
                lanes[k] = p
                links.append((col, k))
        while lanes and lanes[-1] is None:
            lanes.pop()
        rows.append({"commit": commit_json(c), "col": col, "after": list(lanes),
                     "_links": links})
    # edges from each row to the next: [from column, to column]; a lane reaching the
    # next row's commit ends at its dot; lanes open after the last row run off the
    # bottom (their commits are on a later page)
    for r, row in enumerate(rows):
        nxt = rows[r + 1] if r + 1 < len(rows) else None
        edges = []
        for src, lane in row.pop("_links"):
            x = row["after"][lane]
            to = nxt["col"] if nxt is not None and x == nxt["commit"]["id"] else lane
            edges.append([src, to])
        row["edges"] = edges
        row["width"] = max(len(row["after"]), row["col"] + 1)
    return rows


def _free_lane(lanes: list) -> int:
    for i, x in enumerate(lanes):
        if x is None:
            return i
    lanes.append(None)
    return len(lanes) - 1


def topo_order(commits: dict[str, dict], limit: int) -> list[dict]:
    """Children before parents; among the commits ready to show, the newest first (then
    the order the logs gave them)."""
    pending = {cid: 0 for cid in commits}
    for c in commits.values():
        for p in c["parents"]:
            if p in pending:
                pending[p] += 1
    ready = [(-c["timestamp"], c["_seq"], cid) for cid, c in commits.items()
             if pending[cid] == 0]
    heapq.heapify(ready)
    out = []
    while ready and len(out) < limit:
        _, _, cid = heapq.heappop(ready)
        c = commits[cid]
        out.append(c)
        for p in c["parents"]:
            if p in pending:
                pending[p] -= 1
                if pending[p] == 0:
                    q = commits[p]
                    heapq.heappush(ready, (-q["timestamp"], q["_seq"], p))
    for c in out:
        c.pop("_seq", None)
    return out
