import numpy as np
import pytest

from hybrid.errors import InputError
from hybrid.potential import Potential, Result
from hybrid.system import AtomicSystem
from fdtools import WATER


def test_wrong_shape_names_the_array():
    with pytest.raises(InputError, match=r"positions must have shape \(3, 3\)"):
        AtomicSystem([8, 1, 1], np.zeros((2, 3)))
    with pytest.raises(InputError, match="cell"):
        AtomicSystem([1], np.zeros((1, 3)), cell=np.eye(2))


def test_nan_positions_named():
    pos = np.array(WATER)
    pos[1, 2] = np.nan
    with pytest.raises(InputError, match=r"positions contains NaN or inf \(first at index \(1, 2\)\)"):
        AtomicSystem([8, 1, 1], pos)


def test_bad_element_and_pbc():
    with pytest.raises(InputError, match="atom 1: atomic number 0"):
        AtomicSystem([8, 0, 1], WATER)
    with pytest.raises(InputError, match="pbc"):
        AtomicSystem([8, 1, 1], WATER, pbc=True)


def test_spin_check_names_counts():
    w = AtomicSystem([8, 1, 1], WATER, multiplicity=2)
    with pytest.raises(InputError, match="10 electrons .* cannot have multiplicity 2"):
        w.check_spin()
    AtomicSystem([8, 1], WATER[:2], multiplicity=2).check_spin()   # OH radical is fine


def test_close_atoms_rejected_by_potentials():
    class Zero(Potential):
        name = "zero"

        def _compute(self, s):
            return Result(0.0, np.zeros((len(s), 3)))

    pos = np.array(WATER)
    pos[2] = pos[1] + [0.1, 0, 0]
    with pytest.raises(InputError, match=r"atoms 1 \(H\) and 2 \(H\) are 0.100 Å apart"):
        Zero().compute(AtomicSystem([8, 1, 1], pos))
    # periodic images count too
    s = AtomicSystem([1, 1], [[0.05, 0, 0], [2.95, 0, 0]], cell=np.eye(3) * 3, pbc=True)
    with pytest.raises(InputError, match="0.100 Å apart"):
        Zero().compute(s)


def test_ase_round_trip():
    s = AtomicSystem([8, 1], WATER[:2], charge=-1)
    back = AtomicSystem.from_ase(s.to_ase())
    assert back.charge == -1 and np.allclose(back.positions, s.positions)
    assert back.symbols == ["O", "H"]
