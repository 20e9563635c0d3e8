"""Hydrogen link atoms for regions that cut covalent bonds.

For a cut bond Q–M (Q inside the region, M outside) a hydrogen L is placed on
the bond,  R_L = R_Q + g (R_M - R_Q),  g = (r_cov(Q) + r_cov(H)) / (r_cov(Q) + r_cov(M)),
so R_L depends linearly on R_Q and R_M. The chain rule carries the force on L
back onto the real atoms:  F_Q += (1 - g) F_L,  F_M += g F_L.
In a subtractive blend E_low(all) + E_high(Q+L) - E_low(Q+L) the link atoms
appear in both region terms, and the Q–M bond itself is counted once, by the
low level over the whole system.
"""
from __future__ import annotations

import numpy as np

from hybrid.system import AtomicSystem


def link_factor(z_q: int, z_m: int) -> float:
    from ase.data import covalent_radii
    return float((covalent_radii[z_q] + covalent_radii[1]) / (covalent_radii[z_q] + covalent_radii[z_m]))


def cut_bonds(bonds: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    """Bonds (C, 2) as (inside, outside) pairs that cross the boundary of ``atoms``."""
    if len(bonds) == 0:
        return np.zeros((0, 2), int)
    inside = np.zeros(int(bonds.max()) + 1, bool)
    inside[atoms[atoms <= bonds.max()]] = True
    a, b = inside[bonds[:, 0]], inside[bonds[:, 1]]
    return np.concatenate([bonds[a & ~b], bonds[~a & b][:, ::-1]])


class CappedRegion:
    """The atoms ``atoms`` of ``system`` plus one H per cut bond in ``bonds``.

    ``system`` is the capped subsystem (real atoms first, then link atoms), an
    isolated cluster with the given ``charge``/``multiplicity`` (default: the
    whole system's). In a periodic system its atoms sit at ``positions``
    ((n, 3) Å, in the order of ``atoms``: whole units at their minimum image
    relative to the region's centre, see :func:`couplers.partition.place_units`);
    without them the region's bonded fragments are placed so. Each atom moves
    by a lattice vector, so forces carry over unchanged and, as the
    translations strain with the cell, the cluster's virial Σ_i r_i ⊗ f_i is
    the strain derivative. Link atoms sit on the minimum-image bond vector.
    :meth:`scatter` maps its forces (n + n_links, 3) back to (N, 3).

    ``periodic=True`` keeps the region periodic instead: the atoms where they are, with the system's
    cell and pbc (a QM cylinder along a periodic crack front, a layer of a slab); a bond that crosses the
    cell boundary inside the region is kept, and only bonds to atoms outside the region are capped. Its
    strain derivative is then the levels' own virial, not Σ_i r_i ⊗ f_i (:meth:`virial` refuses).
    """

    def __init__(self, system: AtomicSystem, atoms: np.ndarray, bonds: np.ndarray,
                 charge: int | None = None, multiplicity: int | None = None, positions=None,
                 periodic: bool = False):
        self.atoms = np.asarray(atoms, int)
        self.cuts = cut_bonds(bonds, self.atoms)
        self.g = np.array([link_factor(system.numbers[q], system.numbers[m]) for q, m in self.cuts])
        self.periodic = bool(periodic and system.periodic)
        sub = system.subset(self.atoms, charge, multiplicity)
        if self.periodic:
            full = system.positions
        elif system.periodic:
            if positions is None:
                from .partition import _components, place_units
                inside = np.zeros(len(system), bool)
                inside[self.atoms] = True
                b = np.asarray(bonds, int).reshape(-1, 2)
                b = np.searchsorted(self.atoms, b[inside[b[:, 0]] & inside[b[:, 1]]]) if len(b) else b
                frags = _components(len(self.atoms), b)
                placed = place_units(system, [self.atoms[f] for f in frags])
                positions = np.zeros((len(self.atoms), 3))
                for f, p in zip(frags, placed):
                    positions[f] = p
            sub = AtomicSystem(sub.numbers, positions, charge=sub.charge, multiplicity=sub.multiplicity)
            full = system.positions.copy()
            full[self.atoms] = sub.positions
        else:
            full = system.positions
        if len(self.cuts):
            q, m = self.cuts[:, 0], self.cuts[:, 1]
            d = system.positions[m] - system.positions[q]
            if system.periodic:
                from ase.geometry import find_mic
                d, _ = find_mic(d, system.cell, system.pbc)
            link = full[q] + self.g[:, None] * d
            sub = AtomicSystem(np.concatenate([sub.numbers, np.ones(len(q), int)]),
                               np.vstack([sub.positions, link]), sub.cell, sub.pbc, sub.charge, sub.multiplicity)
        self.system = sub
        self.n_total = len(system)

    def virial(self, f_sub: np.ndarray) -> np.ndarray:
        """W_αβ = Σ_i r_iα f_iβ (eV) of forces (n + n_links, 3) on the cluster: -dE/dε of a
        translation-invariant cluster energy when positions strain as R (1 + ε)."""
        if self.periodic:
            raise ValueError("a periodic region's strain derivative is its levels' virial, not Σ r ⊗ f")
        return self.system.positions.T @ f_sub

    def scatter(self, f_sub: np.ndarray) -> np.ndarray:
        out = np.zeros((self.n_total, 3))
        n = len(self.atoms)
        out[self.atoms] = f_sub[:n]
        if len(self.cuts):
            fl = f_sub[n:]
            np.add.at(out, self.cuts[:, 0], (1 - self.g)[:, None] * fl)
            np.add.at(out, self.cuts[:, 1], self.g[:, None] * fl)
        return out
