"""The cracked strip (continuum.crack_strip): its load, its faces-apart reference and W(ε) of the exact
G = Y W(ε). The finite-strain J against that G with the shipped Si MLIP: tests/test_crack_example.py."""
import numpy as np
import pytest

from continuum.crack_slab import GPA, SI_FRAME
from continuum.crack_strip import crack_strip, uniaxial_strain_energy_density
from continuum.fracture import crack_frame, cubic_stiffness, rotate_stiffness

A0 = 5.431


def _pair_lengths(atoms, positions, cell, pairs):
    a = atoms.copy()
    a.set_cell(cell)
    a.positions = positions
    return np.array([a.get_distance(i, j, mic=True) for i, j in pairs])


def test_loaded_strip_is_strained_ahead_and_unstrained_behind_with_the_crack_open_to_the_tip():
    strip = crack_strip(A0, size=(12, 4, 1))
    eps = 0.05
    pos, cell = strip.loaded(eps), strip.cell(eps)
    assert cell[1, 1] == pytest.approx((1 + eps) * strip.height, rel=1e-12)
    from ase.neighborlist import neighbor_list
    i, j, D = neighbor_list("ijD", strip.reference, 2.5)
    X = strip.reference.positions
    crosses = (X[i, 1] - strip.y_plane) * (X[i, 1] + D[:, 1] - strip.y_plane) < 0
    far_ahead = (X[i, 0] > strip.tip[0] + 3) & (X[j, 0] > strip.tip[0] + 3)
    far_behind = (X[i, 0] < strip.tip[0] - 3) & (X[j, 0] < strip.tip[0] - 3) & ~crosses
    got = _pair_lengths(strip.reference, pos, cell, np.stack([i, j], 1))
    affine = np.linalg.norm(D * [1, 1 + eps, 1], axis=1)
    assert np.abs(got - affine)[far_ahead].max() < 1e-9              # uniform ε_yy, periodic images included
    assert np.abs(got - np.linalg.norm(D, axis=1))[far_behind].max() < 1e-9   # the arms are not strained
    tip_x, n = strip.state(pos)
    broken, mid = strip.bond_states(pos)
    assert n == int((mid[:, 0] < strip.tip[0]).sum()) > 0 and tip_x < strip.tip[0]
    assert not broken[mid[:, 0] > strip.tip[0]].any()


def test_opened_reference_has_one_gap_per_period():
    strip = crack_strip(A0, size=(6, 4, 1))
    opened = strip.opened(8.0)
    from ase.neighborlist import neighbor_list
    d_ref = neighbor_list("d", strip.reference, 2.5)
    i, j, d = neighbor_list("ijd", opened, 2.5)
    assert len(d) == len(d_ref) - 2 * len(strip.bonds)             # only the crack-plane bonds are gone
    assert opened.cell[1, 1] == pytest.approx(strip.height + 8.0)


def test_uniaxial_strain_energy_density_is_half_m_eps_squared_at_small_strain():
    """Stillinger–Weber: ½ (W(ε) + W(−ε)) / (½ C'_yy ε²) → 1 as ε → 0 with the relaxed C44 (56.4 GPa;
    unrelaxed 117 would give C'_yy 27 % higher). The average of ±ε cancels the odd terms: the linear one of
    the ~2 MPa residual stress at a0 = 5.431 Å (1.5 % of W(ε) alone at ε = 0.2 %) and the third-order one;
    the fourth-order terms left are O(ε²), far inside the 0.5 % tolerance."""
    pytest.importorskip("matscipy")
    from matscipy.calculators.manybody import Manybody
    from matscipy.calculators.manybody.explicit_forms.stillinger_weber import (
        Stillinger_Weber_PRB_31_5262_Si, StillingerWeber)
    calc = Manybody(**StillingerWeber(Stillinger_Weber_PRB_31_5262_Si))
    M = rotate_stiffness(cubic_stiffness(151.41 * GPA, 76.42 * GPA, 56.45 * GPA),
                         crack_frame(*SI_FRAME[:2], SI_FRAME[2]))[1, 1]
    eps = 0.002
    W = [uniaxial_strain_energy_density(calc, A0, e, fmax=1e-6) for e in (eps, -eps)]
    assert 0.5 * sum(W) / (0.5 * M * eps**2) == pytest.approx(1, abs=0.005)
