"""Link atoms across a cut C–C bond: placement, chain-rule forces, no double counting."""
import numpy as np
import pytest
from ase.build import molecule

from couplers.blend import BlendedCorrection, blended
from couplers.link_atoms import CappedRegion, link_factor
from couplers.partition import FixedPartitioner, find_bonds
from fdtools import fd_forces
from hybrid.system import AtomicSystem
from test_blend import mlp

LOW, HIGH = mlp(0, (1, 6)), mlp(1, (1, 6))


@pytest.fixture
def propane():
    atoms = molecule("C3H8")
    atoms.rattle(0.02, seed=3)
    return AtomicSystem.from_ase(atoms)


def methyl(system):
    """A terminal carbon and its three hydrogens."""
    bonds = find_bonds(system)
    nbrs = {a: [int(y) for x, y in bonds if x == a] + [int(x) for x, y in bonds if y == a] for a in range(len(system))}
    c = next(a for a in range(len(system)) if system.numbers[a] == 6
             and sum(system.numbers[b] == 6 for b in nbrs[a]) == 1)
    return np.array(sorted([c] + [b for b in nbrs[c] if system.numbers[b] == 1])), bonds


def test_link_atom_placement(propane):
    atoms, bonds = methyl(propane)
    region = CappedRegion(propane, atoms, bonds)
    assert len(region.cuts) == 1 and len(region.system) == 5
    q, m = region.cuts[0]
    g = link_factor(6, 6)
    assert g == pytest.approx((0.76 + 0.31) / (2 * 0.76))
    expect = propane.positions[q] + g * (propane.positions[m] - propane.positions[q])
    assert np.allclose(region.system.positions[-1], expect) and region.system.numbers[-1] == 1


def test_blend_across_a_cut_bond_has_exact_forces(propane):
    atoms, bonds = methyl(propane)
    pot = blended(LOW, HIGH, FixedPartitioner(atoms))
    r = pot.compute(propane)
    assert np.abs(fd_forces(pot, propane, h=1e-5) - r.forces).max() < 1e-5
    assert np.abs(r.forces.sum(0)).max() < 1e-10
    # the correction pushes on the boundary carbon outside the region through its link atom
    corr = BlendedCorrection(HIGH, LOW, FixedPartitioner(atoms)).compute(propane)
    outside_c = [int(m) for m in CappedRegion(propane, atoms, bonds).cuts[:, 1]]
    assert np.abs(corr.forces[outside_c]).max() > 1e-6


def test_no_double_counting(propane):
    atoms, _ = methyl(propane)
    same = blended(LOW, LOW, FixedPartitioner(atoms)).compute(propane)
    assert same.energy == pytest.approx(LOW.compute(propane).energy, abs=1e-12)
    assert np.allclose(same.forces, LOW.compute(propane).forces, atol=1e-12)
