"""Periodic regions (``periodic_regions=True``): a region that spans a periodic direction, such as a QM
cylinder along a crack front, stays periodic instead of being cut out as an isolated cluster. Two
different random MLIPs that know H and Si stand in for the levels, so the test is about the region."""
import numpy as np
import pytest
import torch

from continuum.crack_slab import silicon_crack_slab
from couplers.blend import BlendedCorrection, blended
from couplers.link_atoms import cut_bonds
from couplers.partition import FixedPartitioner, find_bonds
from hybrid.errors import InputError
from hybrid.ml.model import AtomicMLP
from hybrid.ml.potential import MLPotential
from hybrid.system import AtomicSystem
from fdtools import fd_forces


@pytest.fixture(scope="module")
def levels():
    pots = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        pots.append(MLPotential(AtomicMLP((1, 14), cutoff=3.0, n_radial=3, hidden=(8,)), name=f"m{seed}"))
    return pots


@pytest.fixture(scope="module")
def slab():
    atoms, _ = silicon_crack_slab((3, 2, 1))                 # 72 atoms, periodic along a 3.84 Å front
    rng = np.random.default_rng(3)
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
    s = AtomicSystem.from_ase(atoms)
    centre = atoms.positions[:, :2].mean(axis=0)
    cylinder = np.flatnonzero(np.linalg.norm(atoms.positions[:, :2] - centre, axis=1) < 4.0)
    return s, cylinder


def test_a_region_covering_the_periodic_system_is_the_high_level_itself(levels, slab):
    """Every atom in the region: E_low + [E_high − E_low](region) = E_high of the periodic system, to round-off
    (1e-10 eV: the same numbers summed in another order). An isolated cut would lose the bonds across the
    cell boundary (and its caps would add their own energy)."""
    s, _ = slab
    low, high = levels
    e_high = high.compute(s).energy
    pot = blended(low, high, FixedPartitioner(np.arange(len(s))), periodic_regions=True, open_shell="lowest")
    assert abs(pot.compute(s).energy - e_high) < 1e-10
    isolated = blended(low, high, FixedPartitioner(np.arange(len(s))), open_shell="lowest").compute(s).energy
    assert abs(isolated - e_high) > 0.05             # 0.23 eV with these random models


def test_a_cylinder_along_the_front_is_capped_only_where_it_is_cut_and_its_forces_are_exact(levels, slab):
    s, cyl = slab
    low, high = levels
    corr = BlendedCorrection(high, low, FixedPartitioner(cyl), periodic_regions=True, open_shell="lowest")
    region = corr.region_system(s, cyl)
    cuts = cut_bonds(find_bonds(s), cyl)
    assert len(cuts) > 0
    assert len(region) == len(cyl) + len(cuts)                # bonds across the cell boundary inside: no caps
    assert region.pbc.tolist() == [False, False, True]
    np.testing.assert_allclose(region.cell, s.cell)
    pot = blended(low, high, FixedPartitioner(cyl), periodic_regions=True, open_shell="lowest")
    res = pot.compute(s)
    z = s.positions[cyl, 2]
    check = [int(cyl[np.argmin(z)]), int(cyl[np.argmax(z)]), int(cuts[0][1])]   # both ends, an outside atom
    fd = fd_forces(pot, s, h=1e-4, atoms=check)
    assert np.abs(fd[check] - res.forces[check]).max() < 1e-4
    assert np.abs(res.forces.sum(axis=0)).max() < 1e-8


def test_the_virial_of_a_periodic_region_is_the_strain_derivative(levels, slab):
    """W_zz = −dE/dε_zz along the periodic front (positions and cell strained together), by central
    differences with ε = 1e-5 (error ~ε² W''' ≪ 1e-5 eV)."""
    s, cyl = slab
    low, high = levels
    pot = blended(low, high, FixedPartitioner(cyl), periodic_regions=True, open_shell="lowest")
    W = pot.compute(s).virial
    assert W is not None

    def energy(eps):
        F = np.eye(3)
        F[2, 2] += eps
        return pot.compute(AtomicSystem(s.numbers, s.positions @ F, s.cell @ F, s.pbc)).energy
    h = 1e-5
    assert abs(-(energy(h) - energy(-h)) / (2 * h) - W[2, 2]) < 1e-5


def test_periodic_regions_refuse_electrostatic_embedding(levels):
    from couplers.embedding import Embedding
    with pytest.raises(InputError, match="periodic_regions"):
        BlendedCorrection(levels[1], levels[0], FixedPartitioner([0]), periodic_regions=True,
                          embedding=Embedding({"Si": 0.0}))
