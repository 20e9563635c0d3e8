"""Quasi-static K ramps and the atomistic J-integral (continuum.crack_ramp) on a Stillinger–Weber
silicon crack: SW is fast, and its constants are known (C11 151.4, C12 76.4, C44 56.4 GPa, relaxed
γ(111) 1.36 J/m², tests/continuum/test_elastic.py)."""
import numpy as np
import pytest

from continuum.crack_ramp import (atomistic_j, crack_disc, displacement_gradients, lattice_trapping, relax)
from continuum.crack_slab import GPA, silicon_crack, silicon_crack_slab

A0 = 5.431
J_M2 = 6.241509074e-2       # 1 J/m² in eV/Å²


@pytest.fixture(scope="module")
def sw():
    pytest.importorskip("matscipy")
    from matscipy.calculators.manybody import Manybody
    from matscipy.calculators.manybody.explicit_forms.stillinger_weber import (
        Stillinger_Weber_PRB_31_5262_Si, StillingerWeber)
    calc = Manybody(**StillingerWeber(Stillinger_Weber_PRB_31_5262_Si))
    crack = silicon_crack(151.41 * GPA, 76.42 * GPA, 56.45 * GPA)
    return calc, crack, crack.griffith_k(1.360 * J_M2)


def test_displacement_gradients_recover_an_affine_field():
    slab, y = silicon_crack_slab((3, 2, 1), A0, 5.0)
    H = np.array([[0.01, -0.02], [0.03, 0.005]])
    u = np.zeros_like(slab.positions)
    u[:, :2] = slab.positions[:, :2] @ H.T
    got = displacement_gradients(slab, u, 4.2)
    assert np.abs(got - H).max() < 1e-12


def test_j_on_three_domains_is_g_of_the_applied_k_when_the_tip_sits_at_the_field_centre(sw):
    """J = G(K) holds for the crack the field describes: its tip at c₀. (With the tip trapped one bond
    behind c₀, 3.7 Å, J/G is 1.07-1.16 on a 45 Å disc: the field about c₀ is not a K-field about the tip.)"""
    calc, crack, k_g = sw
    slab, y = silicon_crack_slab((13, 9, 1), A0, 5.0)
    disc = crack_disc(slab, y, crack, radius=40.0, r_fix=6.0)
    K = 1.0 * k_g
    pos, _, _, ok = relax(disc, disc.loaded(K), calc, fmax=0.002, max_steps=3000)
    assert ok
    tip, _ = disc.state(pos)
    assert abs(tip - disc.tip[0]) < 1.0
    atoms = disc.reference.copy()
    atoms.positions = pos
    atoms.calc = calc
    virials = -atoms.get_stresses(voigt=False) * atoms.get_volume()     # matscipy: Σ_a s_a = σ
    J = atomistic_j(disc, pos, virials, A0**3 / 8, [6, 16, 26])
    J = np.append(J, atomistic_j(disc, pos, virials, A0**3 / 8, [11, 21]))
    ratio = J / crack.energy_release_rate(K)
    assert np.all(np.abs(ratio - 1) < 0.05), ratio


def test_lattice_trapping_brackets_the_griffith_load(sw):
    calc, crack, k_g = sw
    slab, y = silicon_crack_slab((8, 6, 1), A0, 5.0)
    disc = crack_disc(slab, y, crack, radius=22.0, r_fix=6.0)
    step = 0.1 * k_g
    tr = lattice_trapping(disc, calc, k_g, step, bisections=1, fmax=0.005)
    (m_lo, m_hi), (p_lo, p_hi) = tr.k_minus, tr.k_plus
    assert m_lo < m_hi < k_g < p_lo < p_hi
    assert p_hi - p_lo <= step / 2 + 1e-12 and m_hi - m_lo <= step / 2 + 1e-12
    at = {p.K: p for p in tr.up + tr.down}
    assert at[p_hi].n_broken > tr.start.n_broken >= at[p_lo].n_broken
    assert at[m_lo].n_broken < tr.start.n_broken <= at[m_hi].n_broken
    assert all(p.converged for p in tr.up + tr.down)
    assert tr.advanced is at[p_hi] and tr.healed is at[m_lo]
    # the bonds that changed: as many as n_broken changed by, all broken at K₊ and intact at K₋, and the
    # ones that broke lie ahead of the starting tip
    grew, healed = tr.changed_bonds(disc, "advanced"), tr.changed_bonds(disc, "healed")
    assert len(grew) == tr.advanced.n_broken - tr.start.n_broken > 0
    assert len(healed) == tr.start.n_broken - tr.healed.n_broken > 0
    broken_up = {tuple(b) for b in disc.broken_bonds(tr.advanced.positions)}
    broken_start = {tuple(b) for b in disc.broken_bonds(tr.start.positions)}
    assert {tuple(b) for b in grew} <= broken_up - broken_start
    assert {tuple(b) for b in healed} <= broken_start
    mid_x = 0.5 * (tr.advanced.positions[grew[:, 0], 0] + tr.advanced.positions[grew[:, 1], 0])
    assert np.all(mid_x > tr.start.tip)


def test_a_disc_wider_than_its_slab_is_refused(sw):
    _, crack, _ = sw
    slab, y = silicon_crack_slab((4, 3, 1), A0, 5.0)
    with pytest.raises(ValueError, match="half the slab"):
        crack_disc(slab, y, crack, radius=30.0, r_fix=6.0)
