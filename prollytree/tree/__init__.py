"""Tree layer: chunker, node codec, ProllyTree, cursors, diff, proofs and merge."""

from .codec import EMPTY_ROOT, Node
from .config import TreeConfig
from .merge import ConflictResolution, MergeConflict, three_way_merge
from .node_cache import NodeCache
from .prolly_tree import ProllyTree, prefix_end
from .proof import proven_value, verify_absence, verify_proof
from .snapshot import Snapshot

__all__ = [
    "EMPTY_ROOT", "Node", "TreeConfig", "ConflictResolution", "MergeConflict",
    "three_way_merge", "NodeCache", "ProllyTree", "prefix_end", "proven_value",
    "verify_absence", "verify_proof", "Snapshot",
]
