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
  (a structural descriptor, a model's uncertainty): w_u = s((hi - score_u)/(hi - lo)),
  the score a fixed field (no gradient: not Hamiltonian; the conservative
  uncertainty-driven partitioner is :class:`hybrid.ml.promotion.UncertaintyPartitioner`).

Molecules come from a topology (a list of index arrays) or from covalent
radii (:func:`find_molecules`); metals are never bonded by radii (:data:`METALS`),
so a metal ion is its own unit and its contacts get no link atoms. Molecules
found from the atoms are kept for a run and checked at every call
(:class:`Topology`).

In a periodic system a region is an isolated cluster: :func:`place_units`
makes each unit whole and puts it at its minimum image relative to the
region's centre, and refuses a region larger than half the box.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hybrid.errors import InputError
from hybrid.system import AtomicSystem, symbol

from .switching import Switch, radial_weight


@dataclass
class Weights:
    units: list                      # list of (n_u,) int arrays
    w: np.ndarray                    # (n_units,)
    grad: dict = field(default_factory=dict)   # unit index -> (N, 3) dw/dR, buffer units only
    strain: dict = field(default_factory=dict)  # unit index -> (3, 3) dw/dε (positions and cell -> R @ (1 + ε))
    centre: np.ndarray | None = None            # (3,) Å, the point the units were placed around, or None

    @property
    def inner(self) -> list[int]:
        return [k for k, w in enumerate(self.w) if w >= 1.0]

    @property
    def buffer(self) -> list[int]:
        return [k for k, w in enumerate(self.w) if 0.0 < w < 1.0]

    def atoms(self, unit_ids) -> np.ndarray:
        return np.sort(np.concatenate([self.units[k] for k in unit_ids])) if len(unit_ids) else np.zeros(0, int)


#: elements never bonded by covalent radii: alkali, alkaline-earth (Mg-Ba), d-block and lanthanide
#: metals. Their contacts with ligands (Mg-O 2.1 Å) are ionic or dative, not bonds to cap.
METALS = frozenset([3, 11, 19, 37, 55, 87, 12, 20, 38, 56, 88] + list(range(21, 31)) + list(range(39, 49))
                   + list(range(57, 81)))


def find_bonds(system: AtomicSystem, scale: float = 1.2) -> np.ndarray:
    """Bonded pairs (B, 2), i < j, with d_ij < scale · (r_cov,i + r_cov,j) (minimum image),
    neither atom a metal (:data:`METALS`)."""
    from ase.data import covalent_radii

    from hybrid.neighbors import neighbor_pairs

    rc = covalent_radii[system.numbers]
    i, j, s = neighbor_pairs(system.positions, system.cell, system.pbc, 2 * scale * rc.max(), full=False)
    d = np.linalg.norm(system.positions[j] + s @ system.cell - system.positions[i], axis=1)
    metal = np.isin(system.numbers, list(METALS))
    keep = (d < scale * (rc[i] + rc[j])) & ~metal[i] & ~metal[j]
    pairs = np.sort(np.stack([i[keep], j[keep]], 1), axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), int)


def find_molecules(system: AtomicSystem, scale: float = 1.2, bonds=None) -> list[np.ndarray]:
    """Connected components of the bond graph (default :func:`find_bonds`), as sorted index arrays."""
    b = find_bonds(system, scale) if bonds is None else np.asarray(bonds, int).reshape(-1, 2)
    return _components(len(system), b)


def _components(n: int, b: np.ndarray) -> list[np.ndarray]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(len(b)), (b[:, 0], b[:, 1])), shape=(n, n)) if len(b) else coo_matrix((n, n))
    _, label = connected_components(g, directed=False)
    return [np.flatnonzero(label == k) for k in range(label.max() + 1)]


class Topology:
    """Bonds (B, 2) and molecules of the system a model is applied to.

    Given ``bonds``/``molecules`` are fixed (checked against the system's
    size; bonds not given are found once per set of atomic numbers).
    Otherwise both are found from covalent radii at the first call and kept
    while the atomic numbers stay the same, so a bond stretched in a hot step
    does not split a unit (which would make the energy jump). Without given
    bonds or molecules, the bonds of the current geometry are found again at
    every call (one neighbour list):

    * other atomic numbers (a different system): found anew;
    * the same numbers but a bond between two kept molecules: refused
      (InputError naming the atoms): either a different system with the same
      atoms in another order, or a reaction, which units fixed for a run
      cannot follow. Use a new model object, or give ``molecules``.
    """

    def __init__(self, bonds=None, molecules=None, scale: float = 1.2):
        self.given_bonds = None if bonds is None else np.asarray(bonds, int).reshape(-1, 2)
        self.given_molecules = None if molecules is None else [np.asarray(m, int) for m in molecules]
        self.scale = scale
        self._key = self._bonds = self._molecules = self._label = None

    def get(self, system: AtomicSystem):
        """(bonds (B, 2), molecules: list of index arrays) of ``system``."""
        n = len(system)
        if self.given_molecules is not None:
            covered = sum(len(m) for m in self.given_molecules)
            if covered != n:
                raise InputError(f"molecules cover {covered} atoms, the system has {n}")
        if self.given_bonds is not None and len(self.given_bonds) and self.given_bonds.max() >= n:
            raise InputError(f"bond to atom {int(self.given_bonds.max())} outside a system of {n} atoms")
        if self.given_bonds is not None:
            if self._molecules is None:
                self._molecules = self.given_molecules or _components(n, self.given_bonds)
            return self.given_bonds, self._molecules
        key = (system.numbers.tobytes(), tuple(system.pbc))
        if self.given_molecules is not None:         # the caller's units (residues may be bonded)
            if key != self._key:
                self._key, self._bonds = key, find_bonds(system, self.scale)
            return self._bonds, self.given_molecules
        bonds = find_bonds(system, self.scale)
        if key != self._key:
            mols = _components(n, bonds)
            self._key, self._bonds, self._molecules = key, bonds, mols
            self._label = np.empty(n, int)
            for k, m in enumerate(mols):
                self._label[m] = k
            return self._bonds, self._molecules
        joined = self._label[bonds[:, 0]] != self._label[bonds[:, 1]] if len(bonds) else np.zeros(0, bool)
        if joined.any():
            i, j = (int(a) for a in bonds[np.flatnonzero(joined)[0]])
            raise InputError(
                f"atoms {i} ({symbol(system.numbers[i])}) and {j} ({symbol(system.numbers[j])}) are bonded now "
                "but belong to different molecules of the system this model first saw: a different system with "
                "the same atoms (use a new model object) or a reaction (units are fixed for a run; give molecules=)")
        return self._bonds, self._molecules


def place_units(system: AtomicSystem, units, centre=None) -> list[np.ndarray]:
    """Cluster positions of ``units`` (list of index arrays) cut from a periodic ``system``.

    Each unit is made whole (minimum image relative to its first atom) and
    shifted by a lattice vector so that its centre of mass c_u sits at its
    minimum image relative to ``centre`` (3,) Å. The image is unique, whatever
    the order of the atoms, when |P(c_u - centre)| < h/2 (h: the smallest height
    of the cell over its periodic directions; P: the projection onto the span of
    the periodic cell vectors, the identity for a fully periodic cell, so that a
    slab or a wire may hold regions longer than half the box along its open
    directions); a region with a unit at h/2 or
    beyond is larger than half the box and refused (InputError). Without a
    centre the units are placed around the first unit's c_u, then around the
    mass-weighted centre of the placed c_u, and the c_u must lie within h/2 of
    each other, so the result does not depend on the order of the units.
    Returns one (n_u, 3) array (Å) per unit; non-periodic systems unchanged.
    """
    if not system.periodic:
        return [system.positions[u] for u in units]
    from ase.data import atomic_masses
    masses = atomic_masses[system.numbers]
    whole = [_unwrap(system, u) for u in units]
    coms = np.array([(masses[u][:, None] * p).sum(0) / masses[u].sum() for u, p in zip(units, whole)])
    half = 0.5 * _min_height(system)
    given = centre is not None
    if not given:
        first = coms[0] + np.array([_mic(system, c - coms[0]) for c in coms])
        m = np.array([masses[u].sum() for u in units])
        centre = (m[:, None] * first).sum(0) / m.sum()
    centre = np.asarray(centre, float)
    d = np.array([_mic(system, c - centre) for c in coms])
    per = np.array([system.cell[k] for k in range(3) if system.pbc[k]])
    d_per = d @ (per.T @ np.linalg.solve(per @ per.T, per))    # P d: the part along the periodic directions
    if given:
        size, what = np.linalg.norm(d_per, axis=1).max(), "a molecule's centre of mass lies"
    else:
        from scipy.spatial.distance import pdist
        size, what = (pdist(d_per).max() if len(d) > 1 else 0.0), "two molecules' centres of mass lie"
    if size >= half:
        raise InputError(f"a region of {len(units)} molecules is larger than half the box: {what} {size:.2f} Å "
                         f"apart (half the box: {half:.2f} Å), so its periodic image is ambiguous; use a larger "
                         "box or a smaller region")
    return [p + (centre + dk - c) for p, c, dk in zip(whole, coms, d)]


def _min_height(system: AtomicSystem) -> float:
    """Smallest distance between opposite faces of the cell along its periodic directions (Å):
    the part of each periodic lattice vector normal to the other periodic ones."""
    per = [system.cell[k] for k in range(3) if system.pbc[k]]
    heights = []
    for k, a in enumerate(per):
        others = np.array([b for m, b in enumerate(per) if m != k]).reshape(-1, 3)
        if len(others):
            a = a - others.T @ np.linalg.lstsq(others.T, a, rcond=None)[0]
        heights.append(np.linalg.norm(a))
    return min(heights)


class FixedPartitioner:
    """A fixed high-level region: one unit of weight 1 (a static QM region)."""

    def __init__(self, atoms):
        self.atoms = np.unique(np.asarray(atoms, int))

    @property
    def core_atoms(self) -> np.ndarray:
        """Atoms whose units have weight 1 by construction (all of them): the expansion scheme's core."""
        return self.atoms

    @classmethod
    def from_mask(cls, mask):
        return cls(np.flatnonzero(np.asarray(mask, bool)))

    @classmethod
    def from_molecules(cls, molecules, selected):
        """Whole molecules (or residues: any list of index arrays) by their position in the list."""
        return cls(np.concatenate([np.asarray(molecules[k], int) for k in selected]))

    def weights(self, system: AtomicSystem) -> Weights:
        if self.atoms.size and self.atoms.max() >= len(system):
            raise InputError(f"FixedPartitioner: atom {int(self.atoms.max())} is outside a system of {len(system)} "
                             "atoms")
        return Weights([self.atoms], np.ones(1))


class _MoleculePartitioner:
    def __init__(self, molecules, switch):
        self.topology = Topology(molecules=molecules)
        self.switch = switch if isinstance(switch, Switch) else Switch(switch)

    @property
    def molecules(self):
        return self.topology.given_molecules or self.topology._molecules

    def units(self, system: AtomicSystem) -> list[np.ndarray]:
        try:
            return self.topology.get(system)[1]
        except InputError as exc:
            raise InputError(f"{type(self).__name__}: {exc}") from None


class DistancePartitioner(_MoleculePartitioner):
    """w_u = s((|c_u - c| - r_inner)/width), c_u a unit's centre of mass.

    center : ("atom", i) | ("group", [i, ...]) (mass-weighted centre) | ("point", (x, y, z)) Å.
    A centre that moves with the atoms keeps the Hamiltonian translation
    invariant (zero net force); a fixed point does not.
    Gradient: ∂w_u/∂R_a = w'(r_u) r̂_u (m_a/M_u [a ∈ u] - m_a/M_c [a ∈ centre group]).
    Strain (positions and cell -> R (1 + ε), rows): ∂w_u/∂ε_αβ = w'(r_u) y_α d_β / r_u with
    d = c_u - c (minimum image) and y = d for a centre that moves with the atoms, y = c_u for a fixed point.
    ``Weights.centre`` is c, so the regions are placed in the geometry the weights saw.
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

    @property
    def core_atoms(self) -> np.ndarray:
        """The centre's atoms (none for a fixed point): their units form the expansion scheme's core
        (:mod:`couplers.expansion`), of weight 1 whenever r_inner exceeds their distance from the centre."""
        return self.center.astype(int) if self.center_kind != "point" else np.zeros(0, int)

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
        grads, strain = {}, {}
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
                strain[k] = dw * np.outer(d if cgrad is not None else c + d, rhat)
        return Weights(units, w, grads, strain, np.array(c, float))


class ScorePartitioner(_MoleculePartitioner):
    """Weights from a caller's per-atom score (e.g. committee force disagreement, eV/Å).

    score_u = max over the unit's atoms; w_u = s((hi - score_u)/(hi - lo)):
    1 at score >= hi, 0 at score <= lo. ``score_fn(system) -> (N,)``.
    The score is treated as a given field of each step (no ∂score/∂R), so a
    run whose membership follows a changing score is not Hamiltonian (its
    forces miss the switching term wherever a unit is in the buffer); it is
    the ``promote="fixed_field"`` comparison mode of
    :class:`hybrid.ml.active.ActiveLearner`. For energy-conserving
    uncertainty-driven regions use
    :class:`hybrid.ml.promotion.UncertaintyPartitioner`, whose weights carry ∂w/∂R.
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
