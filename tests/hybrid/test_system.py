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


def test_values_written_after_construction_are_refused_before_any_engine_runs():
    """Positions and external charges are plain arrays: NaN/inf written into them later is caught by
    Potential.compute, naming the array, the atoms or charges and their elements."""
    class Zero(Potential):
        name = "zero"
        min_distance = 0      # the finite check must not rely on the distance check's neighbour list

        def _compute(self, s):
            return Result(0.0, np.zeros((len(s), 3)))

    s = AtomicSystem([8, 1, 1], WATER, ext_charges=[0.4, -0.8], ext_positions=[[3, 0, 0], [4, 0, 0]],
                     ext_radii=[0.3, 0.3])
    Zero().compute(s)
    s.positions[1, 0] = np.nan
    s.positions[2, 2] = np.inf
    with pytest.raises(InputError, match=r"^zero: positions of atoms 1, 2 \(H, H\) are not finite "
                                         r"\(NaN or inf\): atom 1 has \[nan, 0.7572, -0.4692\]"):
        Zero().compute(s)
    s.positions[:] = WATER
    s.ext_positions[1, 1] = np.nan
    with pytest.raises(InputError, match=r"^zero: ext_positions of external charge 1 are not finite"):
        Zero().compute(s)
    s.ext_positions[1, 1] = 0.0
    s.ext_charges[0] = np.inf
    with pytest.raises(InputError, match=r"^zero: ext_charges of external charge 0 are not finite"):
        Zero().compute(s)
    s.ext_charges[0] = 0.4
    s.ext_radii[1] = -0.3
    with pytest.raises(InputError, match=r"^zero: ext_radii must be > 0 Å; external charge\(s\) 1 have -0.3"):
        Zero().compute(s)


def test_ase_round_trip():
    s = AtomicSystem([8, 1], WATER[:2], charge=-1)
    back = AtomicSystem.from_ase(s.to_ase())
    assert back.charge == -1 and np.allclose(back.positions, s.positions)
    assert back.symbols == ["O", "H"]
