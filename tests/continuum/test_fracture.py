"""Fracture mechanics against closed forms: K-fields, G, Griffith, J-integral,
surface energy and the thin strip of the ideal brittle triangular lattice."""
import numpy as np
import pytest

from continuum.brittle_lattice import BrittleLattice
from continuum.fracture import (AnisotropicCrack, IsotropicCrack, crack_frame, cubic_stiffness,
                                displacement_gradient, energy_release_rate, fit_k_field,
                                griffith_criterion, griffith_k, j_integral_field,
                                path_independence, slab_surface_energy, surface_energy,
                                thin_strip_critical_strain, thin_strip_energy_release_rate,
                                uniaxial_strain_modulus)

# silicon in GPa and Å: G in GPa·Å (1 GPa·Å = 0.1 J/m²); γ(111) ≈ 1.2 J/m²
SI_C = cubic_stiffness(166.0, 64.0, 79.6)
GAMMA = 12.0       # GPa·Å


def test_isotropic_griffith_k_closed_form():
    E, nu, gamma = 150.0, 0.22, 0.0749
    kG = griffith_k(gamma, E, nu, "strain")
    assert kG == pytest.approx(np.sqrt(2 * gamma * E / (1 - nu**2)), rel=1e-10)
    assert energy_release_rate(kG, E, nu, "strain") == pytest.approx(2 * gamma, rel=1e-10)
    assert griffith_k(gamma, E, nu, "stress") == pytest.approx(np.sqrt(2 * gamma * E), rel=1e-10)
    assert list(griffith_criterion([0.99 * 2 * gamma, 2 * gamma * 1.01], gamma)) == [False, True]


@pytest.mark.parametrize("plane", ["strain", "stress"])
def test_isotropic_j_equals_2gamma_on_several_contours(plane):
    crack = IsotropicCrack(150.0, 0.22, plane)
    kG = crack.griffith_k(GAMMA)
    J = j_integral_field(crack, kG, [0.5, 2.0, 10.0, 50.0])
    assert np.all(np.abs(J / (2 * GAMMA) - 1) < 0.01)
    assert path_independence(J) < 1e-6
    # mixed mode: G = (K_I² + K_II²)/E'
    J = j_integral_field(crack, kG, [1.0, 5.0], K_II=0.5 * kG)
    assert np.allclose(J, crack.energy_release_rate(kG, 0.5 * kG), rtol=1e-6)


def test_isotropic_field_satisfies_hooke_and_free_crack_faces():
    crack = IsotropicCrack(150.0, 0.22, "strain")
    pts = np.array([[1.0, 0.3], [-0.4, 0.8], [0.2, -1.5], [2.0, 0.0]])
    H = displacement_gradient(lambda x, y: crack.displacement(x, y, 1.0, 0.3), pts, 1e-6)
    eps = np.stack([H[:, 0, 0], H[:, 1, 1], H[:, 0, 1] + H[:, 1, 0]], -1)
    sig = crack.stress(pts[:, 0], pts[:, 1], 1.0, 0.3)
    assert np.allclose(eps, sig @ crack.compliance.T, rtol=1e-6, atol=1e-10)
    face = crack.stress(np.array([-1.0, -3.0]), np.array([1e-12, -1e-12]), 1.0, 0.3)
    assert np.allclose(face[:, 1:], 0.0, atol=1e-9)          # σ_yy = σ_xy = 0 on the faces


@pytest.mark.parametrize("frame", [crack_frame([1, 1, -2], [1, 1, 1]), crack_frame([0, 0, 1], [1, 1, 0]),
                                   crack_frame([1, -1, 0], [1, 1, 0])])
def test_anisotropic_silicon_j_equals_2gamma(frame):
    crack = AnisotropicCrack(SI_C, frame)
    kG = crack.griffith_k(GAMMA)
    assert crack.energy_release_rate(kG) == pytest.approx(2 * GAMMA, rel=1e-10)
    J = j_integral_field(crack, kG, [0.5, 2.0, 10.0, 50.0])
    assert np.all(np.abs(J / (2 * GAMMA) - 1) < 0.01)
    assert path_independence(J) < 1e-6
    face = crack.stress(np.array([-1.0]), np.array([1e-13]), kG)
    assert np.allclose(face[:, 1:], 0.0, atol=1e-6 * kG)


def test_anisotropic_tends_to_isotropic():
    E, nu = 150.0, 0.22
    mu, lam = E / (2 * (1 + nu)), E * nu / ((1 + nu) * (1 - 2 * nu))
    aniso = AnisotropicCrack(cubic_stiffness(lam + 2 * mu, lam, mu * (1 + 1e-5)))
    iso = IsotropicCrack(E, nu, "strain")
    x, y = np.array([1.0, -0.5, 0.3]), np.array([0.2, 1.0, -2.0])
    assert aniso.energy_release_rate(1.0) == pytest.approx(iso.energy_release_rate(1.0), rel=1e-4)
    assert np.allclose(aniso.stress(x, y), iso.stress(x, y), rtol=1e-3, atol=1e-4)
    assert np.allclose(aniso.displacement(x, y), iso.displacement(x, y), rtol=1e-3, atol=1e-6)
    with pytest.raises(ValueError, match="isotropic"):
        AnisotropicCrack(cubic_stiffness(lam + 2 * mu, lam, mu))
    with pytest.raises(ValueError, match="couples"):     # front not along a 2-fold axis
        AnisotropicCrack(SI_C, crack_frame([1, 0, 0], [0, np.cos(0.3), np.sin(0.3)]))


def test_surface_energy_formula_and_ase_slabs():
    assert surface_energy(-95.0, 10, -10.0, 2.5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="area"):
        surface_energy(0.0, 1, 0.0, 0.0)
    from ase.build import bulk, fcc111
    from ase.calculators.emt import EMT

    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    slab = fcc111("Cu", (1, 1, 6), a=3.6, vacuum=8.0)
    for atoms in (cu, slab):
        atoms.calc = EMT()
    area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    manual = (slab.get_potential_energy() - len(slab) * cu.get_potential_energy() / len(cu)) / (2 * area)
    assert slab_surface_energy(slab, cu, axis=2) == pytest.approx(manual, rel=1e-12)
    assert 0.02 < manual < 0.1                      # eV/Å², a sensible metal surface energy


def test_lattice_forces_are_minus_energy_gradient():
    lat = BrittleLattice.build(6, 6)
    lat.broken[3] = True
    u = np.random.default_rng(0).normal(0, 0.03, lat.positions.shape)
    f = lat.forces(u)
    h = 1e-6
    for atom, c in ((7, 0), (14, 1), (20, 0)):
        du = np.zeros_like(u)
        du[atom, c] = h
        assert -(lat.energy(u + du) - lat.energy(u - du)) / (2 * h) == pytest.approx(f[atom, c], abs=1e-8)


def test_ideal_brittle_lattice_slab_gives_Gc():
    """γ = (E_slab − N E_bulk)/2A on the lattice: G_c = 2γ = k(r_c − a)²/a = 0.04."""
    lat = BrittleLattice.build(20, 10, k=1.0, a=1.0, r_c=1.2, periodic_x=True)
    u_bulk = np.zeros_like(lat.positions)
    e_bulk = lat.energy(u_bulk) / len(lat.positions)
    u_slab = np.zeros_like(lat.positions)
    upper = lat.positions[:, 1] > 4.6 * np.sqrt(3) / 2
    u_slab[upper, 1] = 3.0                     # pull the halves apart, beyond r_c
    gamma = surface_energy(lat.energy(u_slab), len(lat.positions), e_bulk, 20 * lat.a)
    assert 2 * gamma == pytest.approx(0.04, abs=1e-8)
    assert lat.griffith_G == pytest.approx(0.04, abs=1e-12)


def test_ideal_brittle_lattice_thin_strip_critical_strain():
    """Relaxed lattice strip: G(ε) = ½ C₁₁ ε² h, and the strain at which the
    released energy per crack advance equals 2γ matches
    ε_c = sqrt(2 G_c / (C₁₁ h)) to 1e-8."""
    from scipy.optimize import brentq

    n_rows = 11
    lat = BrittleLattice.build(12, n_rows, periodic_x=True)
    h = (n_rows - 1) * np.sqrt(3) / 2
    row = np.round(lat.positions[:, 1] / (np.sqrt(3) / 2)).astype(int)
    fixed = (row == 0) | (row == n_rows - 1)
    Lx = 12 * lat.a

    def strip_energy(eps, cracked):
        lat.broken[:] = False
        if cracked:
            lat.cut(5.5 * np.sqrt(3) / 2)
        u_b = np.zeros((fixed.sum(), 2))
        u_b[:, 1] = eps * lat.positions[fixed, 1]
        u = lat.relax(fixed, u_b)
        e = lat.bond_energies(u)
        return e[~lat.broken].sum() / Lx, e[lat.broken].sum() / Lx

    # elastic energy per length of the intact strip is the thin-strip G
    for eps in (0.01, 0.05):
        G_lattice = strip_energy(eps, False)[0]
        assert G_lattice == pytest.approx(thin_strip_energy_release_rate(eps, lat.uniaxial_strain_modulus, h),
                                          rel=1e-10)
    elastic_cracked, surface = strip_energy(0.05, True)
    assert elastic_cracked < 1e-20 and surface == pytest.approx(0.04, rel=1e-12)   # 2γ per length
    eps_c = brentq(lambda e: strip_energy(e, False)[0] - strip_energy(e, True)[1], 1e-4, 0.5, xtol=1e-14)
    closed = thin_strip_critical_strain(0.04, uniaxial_strain_modulus(lat.youngs_modulus, lat.poisson_ratio,
                                                                      "stress"), h)
    assert abs(eps_c - closed) < 1e-8


@pytest.fixture(scope="module")
def lattice_crack():
    """A crack in a triangular lattice, loaded by the K-field at the
    Griffith load on its outer atoms."""
    lat = BrittleLattice.build(70, 80)
    b = np.sqrt(3) / 2
    tip = np.array([lat.positions[:, 0].mean() + 0.25, 39.5 * b])
    lat.cut(tip[1], tip[0])
    crack = IsotropicCrack(lat.youngs_modulus, lat.poisson_ratio, "stress")
    kG = crack.griffith_k(lat.griffith_G / 2)
    d = lat.positions - tip
    r = np.hypot(d[:, 0], d[:, 1])
    fixed = r > 30.0
    u = lat.relax(fixed, crack.displacement(d[fixed, 0], d[fixed, 1], kG))
    return lat, crack, tip, kG, u, r


def test_atomistic_j_integral_on_lattice(lattice_crack):
    lat, crack, tip, kG, u, r = lattice_crack
    J = lat.j_integral(u, tip, ((8, 16), (10, 22), (12, 26)))
    assert np.all(np.abs(J / lat.griffith_G - 1) < 0.02)
    assert path_independence(J) < 0.01


def test_fit_k_to_atomistic_displacements(lattice_crack):
    lat, crack, tip, kG, u, r = lattice_crack
    inner = r < 30.0
    fit = fit_k_field(crack, lat.positions[inner], u[inner], tip + [0.7, -0.3], True, 4.0, 28.0)
    assert fit.K == pytest.approx(kG, rel=0.02)
    assert np.linalg.norm(fit.tip - tip) < 0.5
    # synthetic field with a known offset and translation: exact recovery
    pts = lat.positions[inner]
    true_tip = tip + [0.3, 0.1]
    u_syn = crack.displacement(pts[:, 0] - true_tip[0], pts[:, 1] - true_tip[1], 0.37) + [0.01, -0.02]
    fit = fit_k_field(crack, pts, u_syn, tip, True, 2.0)
    assert fit.K == pytest.approx(0.37, rel=1e-6) and np.allclose(fit.tip, true_tip, atol=1e-5)


def test_lattice_crack_advances_above_griffith_only(lattice_crack):
    """Below the Griffith load no bond breaks; the lattice-trapping load K₊
    at which the tip bond reaches r_c lies above k_G."""
    lat, crack, tip, kG, u, r = lattice_crack
    s = lat.stretch(u)
    s_tip = s[~lat.broken].max()
    assert s_tip < lat.s_c                   # trapped at the Griffith load
    K_plus = kG * lat.s_c / s_tip            # linear lattice: stretch ∝ K
    assert K_plus > kG
    saved = lat.broken.copy()
    fixed = r > 30.0
    d = lat.positions - tip
    _, n_broken = lat.relax_and_break(fixed, crack.displacement(d[fixed, 0], d[fixed, 1], 1.02 * K_plus))
    assert n_broken >= 2                      # the crack runs once K > K₊
    lat.broken[:] = saved
