"""Atomistic crack geometries loaded by continuum K-fields.

A (111)[1-10] cleavage crack in diamond-structure silicon: crack frame x = [11-2] (propagation),
y = [111] (plane normal), z = [1-10] (front, periodic). The crack plane lies in the middle of a wide
(2.35 Å, "shuffle") gap between (111) layers, so opening it breaks one bond per surface atom.
Positions are displaced by the anisotropic plane-strain K_I field of :class:`continuum.fracture.AnisotropicCrack`
about the tip, which also opens the faces behind it.

Units: Å for positions, eV/Å³ for stiffness and eV/Å^{5/2} for K (1 MPa√m = :data:`MPA_SQRT_M` eV/Å^{5/2}).
"""
from __future__ import annotations

import numpy as np

from .fracture import AnisotropicCrack, crack_frame, cubic_stiffness

#: 1 MPa√m in eV/Å^{5/2}: 10⁶ Pa × 6.241509e-12 (eV/Å³)/Pa × 10⁵ √Å/√m
MPA_SQRT_M = 1e6 * 6.241509074e-12 * 1e5
#: 1 GPa in eV/Å³
GPA = 6.241509074e-3
SI_FRAME = ((1, 1, -2), (1, 1, 1), (1, -1, 0))


def silicon_crack_slab(size=(6, 4, 1), lattice_constant: float = 5.431, vacuum: float = 10.0):
    """(atoms, y_plane): a bulk-terminated Si slab in the crack frame, open in x and y with ``vacuum`` Å on
    each side, periodic along the front; size: repeats of the 12-atom cell (6.65 × 9.41 × 3.84 Å at 5.431
    Å). y_plane: the crack plane, the middle of the wide (111) gap nearest the slab's centre (Å)."""
    from ase.lattice.cubic import Diamond
    atoms = Diamond(directions=[list(v) for v in SI_FRAME], size=tuple(int(s) for s in size), symbol="Si",
                    latticeconstant=lattice_constant, pbc=(False, False, True))
    cell = atoms.cell.lengths()
    atoms.set_cell([cell[0] + 2 * vacuum, cell[1] + 2 * vacuum, cell[2]])
    atoms.translate([vacuum, vacuum, 0.0])
    y = np.unique(np.round(atoms.positions[:, 1], 4))
    gaps = np.diff(y)
    wide = np.flatnonzero(gaps > 0.6 * gaps.max())
    mids = 0.5 * (y[wide] + y[wide + 1])
    y_plane = float(mids[np.argmin(np.abs(mids - atoms.positions[:, 1].mean()))])
    return atoms, y_plane


def silicon_crack(C11: float, C12: float, C44: float) -> AnisotropicCrack:
    """The (111)[1-10] crack field of a cubic crystal with these constants (eV/Å³)."""
    return AnisotropicCrack(cubic_stiffness(C11, C12, C44), crack_frame(*SI_FRAME[:2], SI_FRAME[2]))


def k_field_positions(reference, crack: AnisotropicCrack, K: float, tip) -> np.ndarray:
    """(N, 3) reference positions (Å) displaced by the K_I field (K in eV/Å^{5/2}) about ``tip`` = (x, y) Å."""
    r = np.asarray(getattr(reference, "positions", reference), dtype=float)
    u = crack.displacement(r[:, 0] - tip[0], r[:, 1] - tip[1], K)
    out = r.copy()
    out[:, :2] += u
    return out
