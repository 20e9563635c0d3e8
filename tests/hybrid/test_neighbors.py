"""Neighbour pairs against ASE's list, in particular for boxes periodic along one or two axes only (a
slab, a crack front), which go through a fully periodic box of the same pairs."""
import time

import numpy as np
import pytest
from ase.build import fcc111
from ase.neighborlist import neighbor_list

from continuum.crack_slab import silicon_crack_slab
from hybrid.neighbors import neighbor_pairs


def _same_pairs(atoms, cutoff):
    i, j, s = neighbor_pairs(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    ia, ja, sa = neighbor_list("ijS", atoms, cutoff)
    return set(zip(i, j, map(tuple, s))) == set(zip(ia, ja, map(tuple, sa))) and len(i) == len(ia)


@pytest.mark.parametrize("pbc", [(False, False, True), (True, False, False), (False, True, False),
                                 (True, True, False), (True, True, True), (False, False, False)])
def test_pairs_match_ase_for_any_periodicity(pbc):
    atoms, _ = silicon_crack_slab((3, 2, 2))
    atoms.rattle(0.3, seed=1)
    atoms.positions[:, 0] -= 25.0                       # atoms outside the cell along x
    atoms.pbc = pbc
    for cutoff in (3.0, 5.0):
        assert _same_pairs(atoms, cutoff)


def test_triclinic_slab_and_speed():
    slab = fcc111("Al", (3, 3, 4), vacuum=5.0)
    slab.pbc = (True, True, False)
    assert _same_pairs(slab, 6.0)
    atoms, _ = silicon_crack_slab((4, 3, 3))            # 432 atoms open in x and y
    neighbor_pairs(atoms.positions, atoms.cell.array, atoms.pbc, 3.0)      # load the library
    t = time.perf_counter()
    neighbor_pairs(atoms.positions, atoms.cell.array, atoms.pbc, 3.0)
    assert time.perf_counter() - t < 0.2                # vesin's own mixed path took 0.3-8 s here
    assert np.all(np.asarray(atoms.pbc) == [False, False, True])
