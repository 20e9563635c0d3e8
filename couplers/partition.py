"""Partitioners: which molecules belong to the high-level region, with what weight.

A partitioner maps a system to :class:`Weights`: a list of *units* (atom
index arrays, normally whole molecules, so bonds are never cut by a buffer),
a weight w_u ∈ [0, 1] for each (1: high level, 0: low level) and, for units
inside a buffer (0 < w < 1), the gradient ∂w_u/∂R (N, 3) in 1/Å.

Partitioners here:
* :class:`FixedPartitioner` - index lists, masks, residues or molecules (w ∈ {0, 1});
* :class:`DistancePartitioner` - by the distance of each unit's centre of mass
  from a centre (an atom, the centre of a group of atoms, or a fixed point),
  w_u = s((r_u - r_inner)/width) with a switch s from :mod:`couplers.switching`;
* :class:`ScorePartitioner` - by a per-atom score supplied by the caller
  (a structural descriptor, a model's uncertainty): w_u = s((hi - score_u)/(hi - lo)).

Molecules come from a topology (a list of index arrays) or from covalent
radii (:func:`find_molecules`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hybrid.errors import InputError
from hybrid.system import AtomicSystem

from .switching import Switch, radial_weight


@dataclass
class Weights:
    units: list                      # list of (n_u,) int arrays
    w: np.ndarray                    # (n_units,)
    grad: dict = field(default_factory=dict)   # unit index -> (N, 3) dw/dR, buffer units only

    @property
    def inner(self) -> list[int]:
        return [k for k, w in enumerate(self.w) if w >= 1.0]

    @property
    def buffer(self) -> list[int]:
        return [k for k, w in enumerate(self.w) if 0.0 < w < 1.0]

    def atoms(self, unit_ids) -> np.ndarray:
        return np.sort(np.concatenate([self.units[k] for k in unit_ids])) if len(unit_ids) else np.zeros(0, int)


def find_bonds(system: AtomicSystem, scale: float = 1.2) -> np.ndarray:
    """Bonded pairs (B, 2), i < j, with d_ij < scale · (r_cov,i + r_cov,j) (minimum image)."""
    from ase.data import covalent_radii

    from hybrid.neighbors import neighbor_pairs

    rc = covalent_radii[system.numbers]
    i, j, s = neighbor_pairs(system.positions, system.cell, system.pbc, 2 * scale * rc.max(), full=False)
    d = np.linalg.norm(system.positions[j] + s @ system.cell - system.positions[i], axis=1)
    keep = d < scale * (rc[i] + rc[j])
    pairs = np.sort(np.stack([i[keep], j[keep]], 1), axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), int)


def find_molecules(system: AtomicSystem, scale: float = 1.2) -> list[np.ndarray]:
    """Connected components of the covalent-radius bond graph, as sorted index arrays."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    b = find_bonds(system, scale)
    n = len(system)
    g = coo_matrix((np.ones(len(b)), (b[:, 0], b[:, 1])), shape=(n, n)) if len(b) else coo_matrix((n, n))
    _, label = connected_components(g, directed=False)
    return [np.flatnonzero(label == k) for k in range(label.max() + 1)]


class FixedPartitioner:
    """A fixed high-level region: one unit of weight 1 (a static QM region)."""

    def __init__(self, atoms):
        self.atoms = np.unique(np.asarray(atoms, int))

    @classmethod
    def from_mask(cls, mask):
        return cls(np.flatnonzero(np.asarray(mask, bool)))

    @classmethod
    def from_molecules(cls, molecules, selected):
        """Whole molecules (or residues: any list of index arrays) by their position in the list."""
        return cls(np.concatenate([np.asarray(molecules[k], int) for k in selected]))

    def weights(self, system: AtomicSystem) -> Weights:
        if self.atoms.size and self.atoms.max() >= len(system):
            raise InputError(f"FixedPartitioner: atom {int(self.atoms.max())} is outside a system of {len(system)} atoms")
        return Weights([self.atoms], np.ones(1))


class _MoleculePartitioner:
    def __init__(self, molecules, switch):
        self.molecules = None if molecules is None else [np.asarray(m, int) for m in molecules]
        self.switch = switch if isinstance(switch, Switch) else Switch(switch)

    def units(self, system: AtomicSystem) -> list[np.ndarray]:
        if self.molecules is None:
            self.molecules = find_molecules(system)        # topology is fixed for a run
        n = sum(len(m) for m in self.molecules)
        if n != len(system):
            raise InputError(f"{type(self).__name__}: molecules cover {n} atoms, the system has {len(system)}")
        return self.molecules


class DistancePartitioner(_MoleculePartitioner):
    """w_u = s((|c_u - c| - r_inner)/width), c_u a unit's centre of mass.

    center : ("atom", i) | ("group", [i, ...]) (mass-weighted centre) | ("point", (x, y, z)) Å.
    A centre that moves with the atoms keeps the Hamiltonian translation
    invariant (zero net force); a fixed point does not.
    Gradient: ∂w_u/∂R_a = w'(r_u) r̂_u (m_a/M_u [a ∈ u] - m_a/M_c [a ∈ centre group]).
    """

    def __init__(self, center, r_inner: float, width: float, switch="quintic", molecules=None):
        super().__init__(molecules, switch)
        kind, value = center
        if kind not in ("atom", "group", "point"):
            raise InputError(f"DistancePartitioner: centre kind {kind!r} must be 'atom', 'group' or 'point'")
        self.center_kind = kind
        self.center = np.asarray([value] if kind == "atom" else value, float if kind == "point" else int)
        if r_inner < 0 or width < 0:
            raise InputError(f"DistancePartitioner: r_inner {r_inner} and width {width} must be >= 0")
        self.r_inner, self.width = float(r_inner), float(width)

    def _centre(self, system, masses):
        if self.center_kind == "point":
            return self.center, None
        idx = self.center
        if idx.max() >= len(system):
            raise InputError(f"DistancePartitioner: centre atom {int(idx.max())} outside {len(system)} atoms")
        m = masses[idx]
        return (m[:, None] * _unwrap(system, idx)).sum(0) / m.sum(), (idx, m / m.sum())

    def weights(self, system: AtomicSystem) -> Weights:
        from ase.data import atomic_masses
        masses = atomic_masses[system.numbers]
        units = self.units(system)
        c, cgrad = self._centre(system, masses)
        w = np.zeros(len(units))
        grads = {}
        for k, u in enumerate(units):
            mu = masses[u] / masses[u].sum()
            com = (mu[:, None] * _unwrap(system, u)).sum(0)
            d = _mic(system, com - c)
            r = np.linalg.norm(d)
            w[k], dw = radial_weight(self.switch, r, self.r_inner, self.width)
            if 0.0 < w[k] < 1.0:
                g = np.zeros((len(system), 3))
                rhat = d / r
                np.add.at(g, u, dw * mu[:, None] * rhat)
                if cgrad is not None:
                    np.add.at(g, cgrad[0], -dw * cgrad[1][:, None] * rhat)
                grads[k] = g
        return Weights(units, w, grads)


class ScorePartitioner(_MoleculePartitioner):
    """Weights from a caller's per-atom score (e.g. committee force disagreement, eV/Å).

    score_u = max over the unit's atoms; w_u = s((hi - score_u)/(hi - lo)):
    1 at score >= hi, 0 at score <= lo. ``score_fn(system) -> (N,)``.
    The score is treated as a given field of each step (no ∂score/∂R), so a
    run whose membership follows a changing score is not Hamiltonian; use it
    for uncertainty-driven promotion, not for energy-conserving NVE.
    """

    def __init__(self, score_fn, lo: float, hi: float, switch="quintic", molecules=None):
        super().__init__(molecules, switch)
        if not hi > lo:
            raise InputError(f"ScorePartitioner: need hi > lo, got lo={lo}, hi={hi}")
        self.score_fn, self.lo, self.hi = score_fn, float(lo), float(hi)

    def weights(self, system: AtomicSystem) -> Weights:
        units = self.units(system)
        score = np.asarray(self.score_fn(system), float)
        if score.shape != (len(system),):
            raise InputError(f"ScorePartitioner: score has shape {score.shape}, expected ({len(system)},)")
        su = np.array([score[u].max() for u in units])
        w, _, _ = self.switch((self.hi - su) / (self.hi - self.lo))
        return Weights(units, np.asarray(w, float))


def _mic(system: AtomicSystem, d: np.ndarray) -> np.ndarray:
    if not system.periodic:
        return d
    from ase.geometry import find_mic
    v, _ = find_mic(d[None], system.cell, system.pbc)
    return v[0]


def _unwrap(system: AtomicSystem, idx) -> np.ndarray:
    """Positions of ``idx`` made whole by minimum image relative to the first."""
    p = system.positions[idx]
    if not system.periodic or len(idx) == 1:
        return p
    from ase.geometry import find_mic
    v, _ = find_mic(p - p[0], system.cell, system.pbc)
    return p[0] + v
