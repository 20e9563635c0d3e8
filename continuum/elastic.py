"""The inputs of fracture mechanics from an atomistic model: cubic elastic constants and the (111)
cleavage energy of a diamond-structure crystal.

Any ASE calculator (``hybrid``'s potentials through :class:`couplers.ase_calculator.HybridCalculator`,
tblite, matscipy). Units: Å, eV; constants in eV/Å³ (÷ :data:`continuum.crack_slab.GPA` for GPa),
surface energies in eV/Å² (× 16.0218 for J/m²).

* :func:`equilibrium_lattice_constant`: a₀ minimising the energy of the cubic cell (Brent on a).
* :func:`cubic_elastic_constants`: C11, C12 from the stress under ±δ uniaxial strain, C44 from ±δ
  engineering shear (σ_yz), with the atoms relaxed inside the strained cell (the internal relaxation
  that makes C44 of diamond smaller than its unrelaxed value C44⁰, also returned):
  C_ij = [σ_i(+δ) − σ_i(−δ)] / 2δ.
* :func:`cleavage_energy_111`: γ = (E_slab − E_bulk)/2A for the (111) surface made by cutting the wide
  ("shuffle") gap, one bond per surface atom, from a slab and a bulk cell with the same in-plane
  supercell (so a Γ-point method's sampling error largely cancels); unrelaxed, or with the atoms relaxed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .crack_slab import SI_FRAME
from .fracture import surface_energy


def _energy(atoms, calculator):
    atoms.calc = calculator
    return float(atoms.get_potential_energy())


def _relax(atoms, calculator, fmax: float, steps: int = 200):
    from ase.optimize import BFGS
    atoms.calc = calculator
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
    return atoms


def equilibrium_lattice_constant(calculator, symbol: str = "Si", guess: float = 5.431, repeat: int = 2,
                                 span: float = 0.05) -> float:
    """a₀ (Å) of the diamond structure: the minimum of E(a) for the cubic cell repeated ``repeat`` times,
    searched within guess·(1 ± span)."""
    from ase.build import bulk
    from scipy.optimize import minimize_scalar

    def energy(a):
        return _energy(bulk(symbol, "diamond", a, cubic=True).repeat(repeat), calculator)

    res = minimize_scalar(energy, bounds=(guess * (1 - span), guess * (1 + span)), method="bounded",
                          options={"xatol": 1e-4})
    if abs(res.x - guess) > 0.99 * span * guess:
        raise RuntimeError(f"lattice constant search hit its bound ({res.x:.4f} Å): widen span")
    return float(res.x)


@dataclass
class CubicConstants:
    """C11, C12, C44 (relaxed) and C44⁰ (unrelaxed) in eV/Å³; a0 in Å."""
    C11: float
    C12: float
    C44: float
    C44_unrelaxed: float
    a0: float


def cubic_elastic_constants(calculator, a0: float, symbol: str = "Si", repeat: int = 2, delta: float = 0.005,
                            fmax: float = 0.005) -> CubicConstants:
    """Stress–strain constants of the diamond cubic cell (module docstring); fmax: eV/Å of the internal
    relaxation under shear."""
    from ase.build import bulk
    ref = bulk(symbol, "diamond", a0, cubic=True).repeat(repeat)

    def stress(deformation, relax=False):
        atoms = ref.copy()
        atoms.set_cell(ref.cell @ deformation.T, scale_atoms=True)
        if relax:
            _relax(atoms, calculator, fmax)
        atoms.calc = calculator
        return atoms.get_stress()                      # Voigt xx yy zz yz xz xy, eV/Å³

    uni = [stress(np.diag([1 + s * delta, 1.0, 1.0])) for s in (1, -1)]
    C11 = (uni[0][0] - uni[1][0]) / (2 * delta)
    C12 = (uni[0][1] - uni[1][1]) / (2 * delta)
    shears = {}
    for relax in (False, True):
        out = []
        for s in (1, -1):
            F = np.eye(3)
            F[1, 2] = F[2, 1] = s * delta / 2            # engineering shear γ_yz = ±δ
            out.append(stress(F, relax)[3])
        shears[relax] = (out[0] - out[1]) / (2 * delta)
    return CubicConstants(float(C11), float(C12), float(shears[True]), float(shears[False]), float(a0))


def _frame_cell(symbol, a0, size):
    """Diamond in the crack frame (x [11-2], y [111], z [1-10]), periodic, shifted so that the cell's y
    boundary lies in the middle of a wide (111) gap."""
    from ase.lattice.cubic import Diamond
    atoms = Diamond(directions=[list(v) for v in SI_FRAME], size=size, symbol=symbol, latticeconstant=a0,
                    pbc=True)
    y = np.unique(np.round(atoms.positions[:, 1] % atoms.cell[1, 1], 4))
    gaps = np.diff(np.concatenate([y, [y[0] + atoms.cell[1, 1]]]))
    k = int(np.argmax(gaps))
    atoms.positions[:, 1] -= y[k] + gaps[k] / 2
    atoms.wrap()
    return atoms


def cleavage_energy_111(calculator, a0: float, symbol: str = "Si", size=(2, 2, 2), vacuum: float = 12.0,
                        relax: bool = False, fmax: float = 0.01) -> float:
    """γ(111) in eV/Å² (module docstring): ``size`` repeats the 12-atom frame cell (x, y, z), y normal to
    the surfaces; ``vacuum`` Å is added along y; relax: relax the slab's atoms (fmax eV/Å)."""
    bulk = _frame_cell(symbol, a0, size)
    e_bulk = _energy(bulk, calculator)
    slab = bulk.copy()
    slab.set_cell(bulk.cell.array + np.diag([0.0, vacuum, 0.0]), scale_atoms=False)
    slab.positions[:, 1] += vacuum / 2
    if relax:
        _relax(slab, calculator, fmax)
    e_slab = _energy(slab, calculator)
    area = float(np.linalg.norm(np.cross(slab.cell[0], slab.cell[2])))
    return surface_energy(e_slab, len(slab), e_bulk / len(bulk), area)
