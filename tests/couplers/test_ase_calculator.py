"""The ASE bridge: optimisers, MD and NEB run on any Potential."""
import numpy as np
import pytest
import torch
from ase.build import add_adsorbate, fcc100
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from ase.mep import NEB
from ase.optimize import BFGS, FIRE
from ase import units

from couplers.ase_calculator import HybridCalculator
from fdtools import water_box
from hybrid.ml.adapters import ASECalculatorPotential
from hybrid.ml.model import AtomicMLP
from hybrid.ml.potential import MLPotential


def _mlp():
    torch.manual_seed(0)
    return MLPotential(AtomicMLP((1, 8), cutoff=3.5, n_radial=5, hidden=(16,)))


def test_properties_and_stress():
    atoms = water_box(2, spacing=2.9).to_ase()
    atoms.calc = HybridCalculator(_mlp())
    e = atoms.get_potential_energy()
    assert atoms.get_forces().shape == (24, 3)
    num = atoms.calc.calculate_numerical_stress(atoms, d=1e-5)
    assert np.abs(atoms.get_stress() - num).max() < 1e-7
    # the calculator reports the energy of its last Result (the same number, not a recomputation)
    assert atoms.calc.result.contributions and atoms.get_potential_energy() == atoms.calc.result.energy
    # the numerical stress scaled the cell there and back: positions agree only to round-off,
    # so the energy there is compared with e to 1e-9 eV, not bit for bit
    assert atoms.calc.result.energy == pytest.approx(e, abs=1e-9)


def test_nve_conserves_energy():
    atoms = water_box(2, spacing=3.0).to_ase()
    atoms.calc = HybridCalculator(_mlp())
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    md = VelocityVerlet(atoms, timestep=0.1 * units.fs)
    etot = []
    for _ in range(40):
        md.run(1)
        etot.append(atoms.get_total_energy())
    assert np.ptp(etot) < 2e-3 * max(1.0, np.abs(atoms.get_kinetic_energy()))


def _slab(site):
    slab = fcc100("Al", size=(2, 2, 2), vacuum=4.0)
    add_adsorbate(slab, "Al", 1.7, site)
    slab.set_constraint(FixAtoms(mask=[a.tag > 1 for a in slab]))
    slab.calc = HybridCalculator(ASECalculatorPotential(EMT()))
    BFGS(slab, logfile=None).run(fmax=0.05)
    return slab


def test_optimiser_and_neb():
    initial, final = _slab("hollow"), _slab("hollow")
    final[-1].x += initial.get_cell()[0, 0] / 2
    final.calc = HybridCalculator(ASECalculatorPotential(EMT()))
    BFGS(final, logfile=None).run(fmax=0.05)
    assert np.abs(final.get_forces()[~np.array([a.tag > 1 for a in final])]).max() < 0.05
    images = [initial] + [initial.copy() for _ in range(3)] + [final]
    for im in images[1:-1]:
        im.calc = HybridCalculator(ASECalculatorPotential(EMT()))
    neb = NEB(images)
    neb.interpolate()
    FIRE(neb, logfile=None).run(fmax=0.1, steps=200)
    energies = [im.get_potential_energy() for im in images]
    assert max(energies) - energies[0] > 0.05          # a barrier between two equivalent minima
    assert abs(energies[-1] - energies[0]) < 1e-3
