"""Neighbour lists (vesin: cell lists, linear scaling, periodic or not)."""
from __future__ import annotations

import numpy as np


def neighbor_pairs(positions: np.ndarray, cell: np.ndarray, pbc, cutoff: float, full: bool = True):
    """Pairs (i, j, shift) with |r_j + shift @ cell - r_i| < cutoff.

    positions (N, 3) Å, cell (3, 3) Å rows = lattice vectors, pbc (3,) bool.
    Returns i (P,), j (P,) int64 and shifts (P, 3) int64 (lattice-vector counts).
    ``full`` lists both (i, j) and (j, i).
    """
    from vesin import NeighborList

    pbc = np.asarray(pbc, bool)
    box = np.asarray(cell, float) if pbc.any() else np.zeros((3, 3))
    nl = NeighborList(cutoff=float(cutoff), full_list=full)
    i, j, s = nl.compute(points=np.asarray(positions, float), box=box,
                         periodic=[bool(p) for p in pbc], quantities="ijS")
    return i.astype(np.int64), j.astype(np.int64), s.astype(np.int64)


def min_pair_distance(positions, cell, pbc, cutoff: float):
    """The closest pair (i, j, d) within ``cutoff`` Å, or None (a k-d tree when not periodic)."""
    if not np.any(pbc):
        from scipy.spatial import cKDTree
        pairs = cKDTree(positions).query_pairs(cutoff, output_type="ndarray")
        if len(pairs) == 0:
            return None
        d = np.linalg.norm(positions[pairs[:, 1]] - positions[pairs[:, 0]], axis=1)
        k = int(np.argmin(d))
        return int(pairs[k, 0]), int(pairs[k, 1]), float(d[k])
    i, j, s = neighbor_pairs(positions, cell, pbc, cutoff, full=False)
    if len(i) == 0:
        return None
    d = np.linalg.norm(positions[j] + s @ np.asarray(cell, float) - positions[i], axis=1)
    k = int(np.argmin(d))
    return int(i[k]), int(j[k]), float(d[k])
