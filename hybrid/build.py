"""Small starting structures for examples, benchmarks and model training."""
from __future__ import annotations

import numpy as np

from .system import AtomicSystem

#: gas-phase water geometry (Å): O, H, H
WATER = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])


def _rotated_water(rng) -> np.ndarray:
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return (WATER - WATER[0]) @ rot.T


def water_cluster(n: int, spacing: float = 3.1, seed: int = 0) -> AtomicSystem:
    """``n`` randomly oriented waters on a cubic lattice, the n nearest its centre.

    Atoms are ordered molecule by molecule (O, H, H); molecule 0 sits at the centre.
    """
    rng = np.random.default_rng(seed)
    k = int(np.ceil(n ** (1 / 3))) + 2
    grid = np.array([(i, j, l) for i in range(k) for j in range(k) for l in range(k)], float) * spacing
    grid -= grid.mean(0)
    sites = grid[np.argsort(np.linalg.norm(grid, axis=1), kind="stable")[:n]]
    pos = np.vstack([_rotated_water(rng) + s for s in sites])
    return AtomicSystem([8, 1, 1] * n, pos)


def water_box(n_side: int, spacing: float = 3.1, seed: int = 0) -> AtomicSystem:
    """n_side³ randomly oriented waters on a cubic lattice in a periodic box of n_side·spacing Å."""
    rng = np.random.default_rng(seed)
    sites = np.array([(i, j, l) for i in range(n_side) for j in range(n_side) for l in range(n_side)], float)
    pos = np.vstack([_rotated_water(rng) + spacing * (s + 0.5) for s in sites])
    return AtomicSystem([8, 1, 1] * n_side**3, pos, cell=np.eye(3) * spacing * n_side, pbc=True)
