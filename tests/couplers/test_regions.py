"""Regions as isolated clusters: periodic placement independent of atom order, the half-box
limit, charges and spin from formal charges and recognised ions, metal contacts without link
atoms, a topology that is not reused for a different system, and the blend's exact virial."""
import numpy as np
import pytest

from couplers.blend import BlendedCorrection
from couplers.charges import RegionCharges
from couplers.link_atoms import CappedRegion
from couplers.partition import DistancePartitioner, FixedPartitioner, find_bonds, find_molecules
from fdtools import WATER, water_box
from hybrid.errors import InputError
from hybrid.potential import Potential, Result
from hybrid.system import AtomicSystem
from test_blend import mlp

LOW, HIGH = mlp(0), mlp(1)


def permuted(system, order):
    return AtomicSystem(system.numbers[order], system.positions[order], system.cell, system.pbc)


def test_periodic_regions_do_not_depend_on_atom_order():
    """64 waters in a 12.4 Å box, a region of radius 5 Å (> a quarter of the box) around water 0:
    moving water 0 to the end of the atom list must not move any region molecule by a box vector."""
    box = water_box(4, spacing=3.1, seed=0)
    n = len(box)
    order = np.r_[np.arange(3, n), 0, 1, 2]                   # the centre water last
    energies = []
    for system, centre in ((box, [0, 1, 2]), (permuted(box, order), [n - 3, n - 2, n - 1])):
        part = DistancePartitioner(("group", centre), 3.5, 1.5)
        pot = LOW + BlendedCorrection(HIGH, LOW, part, scheme="sorted")
        r = pot.compute(system)
        assert r.info[pot.labels[1]]["n_buffer"] >= 6            # units on opposite sides of the centre
        energies.append(r.energy)
    assert abs(energies[0] - energies[1]) < 1e-9, energies


def test_region_larger_than_half_the_box_is_refused():
    box = water_box(4, spacing=3.1, seed=0)                   # half the box: 6.2 Å
    pot = BlendedCorrection(HIGH, LOW, DistancePartitioner(("group", [0, 1, 2]), 5.8, 1.5), scheme="sorted")
    with pytest.raises(InputError, match="larger than half the box"):
        pot.compute(box)


def test_a_slab_region_may_be_long_along_its_open_directions_but_not_along_its_period():
    """pbc only along z (6 Å): units 20 Å apart in x are placed as they are; three units spread over 4 Å
    of z (2 Å steps) are not: their images are ambiguous."""
    from couplers.partition import place_units
    pos = np.array([[0.0, 0, 1], [20.0, 0, 1], [0.0, 5, 3.0], [0.0, 5, 5.0]])
    slab = AtomicSystem([18] * 4, pos, cell=np.diag([40.0, 40.0, 6.0]), pbc=[False, False, True])
    placed = place_units(slab, [np.array([0]), np.array([1])])
    assert np.allclose(placed[1] - placed[0], [[20.0, 0, 0]])
    with pytest.raises(InputError, match="larger than half the box"):
        place_units(slab, [np.array([0]), np.array([2]), np.array([3])])


class Recorder(Potential):
    """E = 0: records the atoms, charge and multiplicity of every region it is given."""
    name = "recorder"
    min_distance = 0.0

    def __init__(self):
        self.seen = []

    def _compute(self, s):
        self.seen.append((s.symbols, int(s.charge), int(s.multiplicity)))
        return Result(0.0, np.zeros((len(s), 3)))


def mg_water(charge=2):
    """Mg²⁺ with a water O at 2.1 Å (a metal-ligand contact) and a second water 4 Å away."""
    w = np.array(WATER) - np.array(WATER)[0]
    pos = np.vstack([[[0.0, 0.0, 0.0]], w + [0.0, 0.0, 2.1], w + [4.0, 0.0, 0.0]])
    return AtomicSystem([12, 8, 1, 1, 8, 1, 1], pos, charge=charge)


def test_water_next_to_mg2_is_a_neutral_region():
    s = mg_water()
    rec = Recorder()
    BlendedCorrection(rec, rec, FixedPartitioner([1, 2, 3])).compute(s)
    assert rec.seen[0] == (["O", "H", "H"], 0, 1)             # not a dication, no link atom
    rec.seen.clear()
    BlendedCorrection(rec, rec, FixedPartitioner([0, 1, 2, 3])).compute(s)
    assert rec.seen[0] == (["Mg", "O", "H", "H"], 2, 1)
    # formal charges given by the caller: a mapping, or a callable for charge and multiplicity
    rec.seen.clear()
    BlendedCorrection(rec, rec, FixedPartitioner([1, 2, 3]), charges={0: 2}).compute(s)
    assert rec.seen[0][1:] == (0, 1)
    with pytest.raises(InputError, match="formal charges sum to 1, the system's charge is 2"):
        BlendedCorrection(rec, rec, FixedPartitioner([1, 2, 3]), charges={0: 1}).compute(s)


def test_region_of_unknown_charge_is_an_error_naming_it():
    s = mg_water(charge=3)                                     # Mg²⁺ accounts for +2 only
    rec = Recorder()
    with pytest.raises(InputError, match=r"region of 3 atoms \[4 O, 5 H, 6 H\]: charge unknown"):
        BlendedCorrection(rec, rec, FixedPartitioner([4, 5, 6])).compute(s)
    BlendedCorrection(rec, rec, FixedPartitioner([0])).compute(s)   # the ion alone is known
    assert rec.seen[0] == (["Mg"], 2, 1)
    odd = AtomicSystem([8, 1], [[0, 0, 0], [0, 0, 0.97]])     # OH radical
    with pytest.raises(InputError, match="9 electrons, an odd count"):
        RegionCharges(odd, find_molecules(odd)).state(np.array([0, 1]))
    assert RegionCharges(odd, find_molecules(odd), open_shell="lowest").state(np.array([0, 1])) == (0, 2)
    assert RegionCharges(odd, find_molecules(odd), open_shell="lowest").state(np.array([0]), n_links=1) == (0, 2)
    assert RegionCharges(s, find_molecules(s), open_shell="lowest").state(np.array([0])) == (2, 1)
    doublet = AtomicSystem([8, 1, 8, 1, 1], [[0, 0, 0], [0, 0, 0.97], [5, 0, 0], [5, 0, 0.96], [5, 0.93, 0]],
                           multiplicity=2)                    # OH radical + water: the system is a doublet
    assert RegionCharges(doublet, find_molecules(doublet), open_shell="lowest").state(np.array([2, 3, 4])) == (0, 1)
    with pytest.raises(InputError, match="open-shell"):
        RegionCharges(doublet, find_molecules(doublet)).state(np.array([2, 3, 4]))
    with pytest.raises(InputError, match="open_shell must be"):
        RegionCharges(odd, find_molecules(odd), open_shell="high")


def test_metal_water_contact_gets_no_link_atom():
    s = mg_water()
    bonds = find_bonds(s)
    assert not np.isin(0, bonds)                               # Mg-O at 2.1 Å is not a covalent bond
    assert [m.tolist() for m in find_molecules(s)] == [[0], [1, 2, 3], [4, 5, 6]]
    region = CappedRegion(s, np.array([1, 2, 3]), bonds)
    assert len(region.cuts) == 0 and len(region.system) == 3


def test_a_different_system_with_the_same_atom_count():
    """Other atomic numbers: the topology is found anew (nothing to stay continuous with).
    The same numbers but a bond between two molecules seen before: refused, since a reaction
    cannot be told from a different system and the units of a run are fixed."""
    low, high = mlp(0, (1, 6, 8)), mlp(1, (1, 6, 8))
    waters = AtomicSystem([8, 1, 1, 8, 1, 1], np.vstack([WATER, np.array(WATER) + [2.9, 0.0, 0.0]]))
    from ase.build import molecule
    meoh = AtomicSystem.from_ase(molecule("CH3OH"))             # 6 atoms too
    pot = low + BlendedCorrection(high, low, DistancePartitioner(("atom", 0), 0.5, 1.0))
    pot.compute(waters)
    fresh = low + BlendedCorrection(high, low, DistancePartitioner(("atom", 0), 0.5, 1.0))
    r, ref = pot.compute(meoh), fresh.compute(meoh)
    assert abs(r.energy - ref.energy) < 1e-12 and np.abs(r.forces - ref.forces).max() < 1e-12
    # same numbers, but atom 5 now belongs to the first water and atom 2 to the second
    pot.compute(waters)
    pos = waters.positions.copy()
    pos[[2, 5]] = pos[[5, 2]]
    with pytest.raises(InputError, match="bonded now but belong to different molecules"):
        pot.compute(waters.with_positions(pos))
    # a fixed region, so that only the blend's own topology is in play: refused without given molecules,
    # accepted with them (a reacting system: one unit, the first geometry's bonds kept)
    fixed = low + BlendedCorrection(high, low, FixedPartitioner([0, 1, 2]))
    fixed.compute(waters)
    with pytest.raises(InputError, match="bonded now but belong to different molecules"):
        fixed.compute(waters.with_positions(pos))
    given = low + BlendedCorrection(high, low, FixedPartitioner([0, 1, 2]), molecules=[range(6)])
    given.compute(waters)
    r = given.compute(waters.with_positions(pos))
    assert np.isfinite(r.energy) and r.forces.shape == (6, 3)


def test_virial_is_the_strain_derivative_with_switching_terms():
    """W = -dE/dε for E(R (1 + ε), cell (1 + ε)) of a periodic box with waters in the buffer."""
    box = water_box(3, spacing=3.1, seed=4, jitter=0.15)
    part = DistancePartitioner(("group", [0, 1, 2]), 2.9, 0.6)
    corr = BlendedCorrection(HIGH, LOW, part)
    pot = LOW + corr
    r = pot.compute(box)
    assert r.virial is not None
    W = corr.last_weights
    assert 1 <= len(W.buffer) <= 6
    assert max(np.abs(W.strain[k]).max() for k in W.buffer) > 0.1      # switching terms matter
    h = 1e-5
    worst = 0.0
    for a, b in [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]:
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h
        e = [pot.compute(AtomicSystem(box.numbers, box.positions @ (np.eye(3) + s * eps),
                                      box.cell @ (np.eye(3) + s * eps), True)).energy for s in (1, -1)]
        fd = -(e[0] - e[1]) / (2 * h)
        want = r.virial[a, b] if a == b else r.virial[a, b] + r.virial[b, a]
        worst = max(worst, abs(fd - want))
    assert worst < 1e-5, worst


def test_pdb_formal_charges_reach_the_regions(tmp_path):
    from hybrid.md.structure import load_structure
    pdb = tmp_path / "mg.pdb"
    pdb.write_text(
        "HETATM    1 MG    MG A   1       0.000   0.000   0.000  1.00  0.00          MG2+\n"
        "HETATM    2  O   HOH A   2       0.000   0.000   2.100  1.00  0.00           O  \n"
        "HETATM    3  H1  HOH A   2       0.757   0.000   2.686  1.00  0.00           H  \n"
        "HETATM    4  H2  HOH A   2      -0.757   0.000   2.686  1.00  0.00           H  \n"
        "HETATM    5  OW  HOH A   3       0.000   0.000   5.100  1.00  0.00           O  \n"
        "HETATM    6  HW1 HOH A   3       0.757   0.000   5.686  1.00  0.00           H  \n"
        "HETATM    7  HW2 HOH A   3      -0.757   0.000   5.686  1.00  0.00           H  \nEND\n")
    st = load_structure(pdb)
    assert st.charges.tolist() == [2, 0, 0, 0, 0, 0, 0] and st.system.charge == 2
    assert len(st.bonds) == 4                                  # O-H only: no Mg-O bond
    rec = Recorder()
    BlendedCorrection(rec, rec, FixedPartitioner([0, 1, 2, 3]), bonds=st.bonds, charges=st.charges).compute(st.system)
    assert rec.seen[0] == (["Mg", "O", "H", "H"], 2, 1)


def test_virial_of_a_fixed_point_centre_is_not_symmetric_but_exact():
    """A fixed point breaks rotation invariance: every component of W (not only W + Wᵀ) is -dE/dε."""
    from test_blend import CONFIGS, cluster
    s = cluster(CONFIGS[2])
    corr = BlendedCorrection(HIGH, LOW, DistancePartitioner(("point", (0.2, 0.1, 0.0)), 2.5, 2.0))
    r = corr.compute(s)
    assert len(corr.last_weights.buffer) == 2 and np.abs(r.virial - r.virial.T).max() > 1e-3
    h = 1e-5
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = h
            e = [corr.compute(s.with_positions(s.positions @ (np.eye(3) + k * eps))).energy for k in (1, -1)]
            assert abs(-(e[0] - e[1]) / (2 * h) - r.virial[a, b]) < 1e-7, (a, b)
