"""A cracked strip under uniaxial strain: an energy release rate that is exact for any potential.

Geometry (:func:`crack_strip`): the crack-frame silicon crystal of :mod:`continuum.crack_slab`, periodic
along y (height Y) and along the front z, open along x (length L, free ends). The crack plane is the wide
(111) gap nearest mid-height; the crack runs along x from the left end to ``tip``.

Load (:meth:`CrackStrip.loaded`): the cell is stretched along y by (1 + ε). Ahead of the tip the crystal
is at uniaxial strain, ε_yy = ε, ε_xx = ε_zz = 0, and the atoms within ``r_fix`` Å of the right end are held
there; behind it the crystal between the crack faces is unstrained and the crack has opened by εY.

Energy release rate: in the steady state (the tip at least about Y from either end) an advance da turns
Y da L_z of strained crystal ahead into unstrained crystal behind, so

    G = Y W(ε),

with W(ε) the energy per reference volume of the crystal homogeneously strained by ε, its internal
coordinates relaxed (:func:`uniaxial_strain_energy_density`). No elastic constant enters: G is exact at any
strain, and a J-integral that equals it on several contours is right beyond linear elasticity. Its linear
limit is ½ M ε² Y (:func:`continuum.fracture.thin_strip_energy_release_rate`, M = C'_yy in the crack frame).

Units: Å, eV; G and J in eV/Å² (1 J/m² = 0.0624151 eV/Å²).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .crack_ramp import CrackPlane, plane_bonds
from .crack_slab import SI_FRAME


@dataclass
class CrackStrip(CrackPlane):
    """A strip (module docstring); ``tip`` = (x, y_plane), where the crack ends in :meth:`loaded`."""

    @property
    def height(self) -> float:
        """Y (Å), the reference period along y."""
        return float(self.reference.cell[1, 1])

    def cell(self, strain: float) -> np.ndarray:
        """(3, 3) Å: the reference cell stretched along y by 1 + ``strain``."""
        cell = self.reference.cell.array.copy()
        cell[1] *= 1.0 + strain
        return cell

    def loaded(self, strain: float) -> np.ndarray:
        """(N, 3) Å: uniaxial ``strain`` about the crack plane ahead of the tip, y → y_plane + (1 + ε)(y −
        y_plane), and behind it the two arms moved apart rigidly by ± ε Y/2 (the crack opened by ε Y), in
        :meth:`cell` (strain); both maps are periodic in that cell."""
        X = self.reference.positions
        Y = self.height
        s = X[:, 1] - self.y_plane                # height above the plane; the atoms lie inside the cell
        ahead = X[:, 0] > self.tip[0]
        out = X.copy()
        out[:, 1] = self.y_plane + np.where(ahead, (1.0 + strain) * s, s + np.sign(s) * 0.5 * strain * Y)
        return out


def crack_strip(a0: float, size=(29, 8, 1), crack_fraction: float = 0.45, r_fix: float = 6.0,
                vacuum: float = 10.0, r_break: float | None = None) -> CrackStrip:
    """A silicon strip of ``size`` 12-atom crack-frame cells (x, y, z; 0.5√6 a0 × √3 a0 × 0.5√2 a0 each)
    at lattice constant ``a0`` Å, ``vacuum`` Å beyond each x end, its crack ending ``crack_fraction`` of the
    way along; atoms within ``r_fix`` Å of the right end are fixed; r_break: default 1.3 × the bond length."""
    from ase.lattice.cubic import Diamond
    if not 0 < crack_fraction < 1:
        raise ValueError(f"crack_strip: crack_fraction must lie in (0, 1), got {crack_fraction}")
    atoms = Diamond(directions=[list(v) for v in SI_FRAME], size=tuple(int(n) for n in size), symbol="Si",
                    latticeconstant=a0, pbc=(False, True, True))
    length = atoms.cell[0, 0]
    if not 0 < r_fix < (1 - crack_fraction) * length:
        raise ValueError(f"crack_strip: r_fix {r_fix} Å must be positive and shorter than the uncracked "
                         f"{(1 - crack_fraction) * length:.1f} Å")
    cell = atoms.cell.array.copy()
    cell[0, 0] += 2 * vacuum
    atoms.set_cell(cell)
    atoms.translate([vacuum, 0.0, 0.0])
    atoms.wrap()
    y = np.unique(np.round(atoms.positions[:, 1], 4))
    gaps = np.diff(y)
    wide = np.flatnonzero(gaps > 0.6 * gaps.max())
    mids = 0.5 * (y[wide] + y[wide + 1])
    y_plane = float(mids[np.argmin(np.abs(mids - 0.5 * cell[1, 1]))])
    bonds, bond_length = plane_bonds(atoms, y_plane)
    x = atoms.positions[:, 0]
    return CrackStrip(reference=atoms, tip=np.array([vacuum + crack_fraction * length, y_plane]),
                      fixed=x > vacuum + length - r_fix, bonds=bonds,
                      r_break=float(r_break if r_break is not None else 1.3 * bond_length), y_plane=y_plane)


def uniaxial_strain_energy_density(calculator, a0: float, strain: float, fmax: float = 1e-4) -> float:
    """W(ε) (eV/Å³ per reference volume): the energy of the 12-atom crack-frame cell of silicon at lattice
    constant a0 stretched by ``strain`` along y = [111] (ε_xx = ε_zz = 0), its atoms relaxed by FIRE to
    ``fmax`` eV/Å, less that of the unstrained cell, over the unstrained volume."""
    from ase.lattice.cubic import Diamond
    from ase.optimize import FIRE
    bulk = Diamond(directions=[list(v) for v in SI_FRAME], size=(1, 1, 1), symbol="Si", latticeconstant=a0,
                   pbc=True)
    bulk.calc = calculator
    e0, v0 = bulk.get_potential_energy(), bulk.get_volume()
    strained = bulk.copy()
    strained.set_cell(bulk.cell.array @ np.diag([1.0, 1.0 + strain, 1.0]), scale_atoms=True)
    strained.calc = calculator
    if not FIRE(strained, logfile=None).run(fmax=fmax, steps=2000):
        raise RuntimeError(f"uniaxial_strain_energy_density: the internal relaxation at strain {strain} did "
                           f"not reach fmax {fmax} eV/Å in 2000 FIRE steps")
    return float((strained.get_potential_energy() - e0) / v0)


def strip_energy_release_rate(strip: CrackStrip, calculator, a0: float, strain: float) -> float:
    """G = Y W(ε) (eV/Å²) of ``strip`` at ``strain`` for the potential of ``calculator`` (module docstring)."""
    return strip.height * uniaxial_strain_energy_density(calculator, a0, strain)
