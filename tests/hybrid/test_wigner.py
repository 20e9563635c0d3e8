"""Normal modes and Wigner sampling: a Morse diatomic's frequency in closed form, rigid motions removed,
and the sampled energies of a triangle of Morse pairs against ħω/4 per mode (T = 0) and
ħω/(4 tanh(ħω/2kT)) (T > 0), within 4σ of the sample mean."""
import numpy as np
import pytest
from ase.calculators.morse import MorsePotential

from hybrid import units
from hybrid.errors import InputError
from hybrid.ml.adapters import ASECalculatorPotential
from hybrid.sampling.wigner import normal_modes, numerical_hessian, wigner_sample
from hybrid.system import AtomicSystem

EPS, R0, RHO0 = 2.0, 1.2, 6.0          # eV, Å; E(r) = ε e^{ρ0(1−r/r0)} (e^{ρ0(1−r/r0)} − 2): k = 2ε ρ0²/r0²


def morse():
    return ASECalculatorPotential(MorsePotential(epsilon=EPS, r0=R0, rho0=RHO0, rcut1=4.0, rcut2=5.0), "morse")


def test_a_morse_diatomic_has_one_vibration_at_the_closed_form_frequency():
    masses = np.array([12.0, 16.0])
    s = AtomicSystem([6, 8], [[0, 0, 0], [R0, 0, 0]])
    modes = normal_modes(numerical_hessian(morse(), s, step=1e-4), s.positions, masses)
    mu = masses.prod() / masses.sum()
    k = 2 * EPS * RHO0**2 / R0**2
    assert modes.omega.shape == (1,)
    # central differences err by h² V''''/6 relative to k: 1.5e-5 in ω at h = 1e-3 Å (ρ0/r0 = 5/Å), ~1e-7 here
    assert abs(modes.omega[0] / np.sqrt(k / mu * units.ACCEL) - 1) < 1e-6
    np.testing.assert_allclose(np.abs(modes.vectors[0, :, 0]), np.sqrt(masses[::-1] / masses.sum()), atol=1e-8)
    stretched = AtomicSystem([6, 8], [[0, 0, 0], [R0 + 0.5, 0, 0]])   # beyond the inflection point: k < 0
    with pytest.raises(InputError, match="imaginary"):
        normal_modes(numerical_hessian(morse(), stretched), stretched.positions, masses)


@pytest.fixture(scope="module")
def triangle():
    x = np.array([[0, 0, 0], [R0, 0, 0], [R0 / 2, R0 * np.sqrt(3) / 2, 0]], float)
    s = AtomicSystem([1, 1, 1], x)
    masses = np.array([1.0, 2.0, 3.0])
    H = numerical_hessian(morse(), s)
    return s, masses, H, normal_modes(H, x, masses)


def test_rigid_motions_are_removed(triangle):
    s, masses, H, modes = triangle
    assert modes.omega.shape == (3,) and np.all(modes.omega > 0)
    V = modes.vectors.reshape(3, -1)
    np.testing.assert_allclose(V @ V.T, np.eye(3), atol=1e-10)
    x, v = wigner_sample(modes, 50, seed=0)
    p = masses[None, :, None] * v
    assert np.abs(p.sum(1)).max() < 1e-12                                           # no net momentum
    com = (masses[:, None] * s.positions).sum(0) / masses.sum()
    assert np.abs(np.cross(s.positions - com, p).sum(1)).max() < 1e-12            # no angular momentum


@pytest.mark.parametrize("T", [0.0, 3000.0])
def test_sampled_energies_are_those_of_the_quantum_oscillators(triangle, T):
    s, masses, H, modes = triangle
    x, v = wigner_sample(modes, 40000, seed=1, temperature=T)
    hw = units.HBAR * modes.omega
    per_mode = hw / 4 if T == 0 else hw / (4 * np.tanh(hw / (2 * units.KB_EV * T)))
    kin = 0.5 * np.einsum("n,sna,sna->s", masses, v, v) / units.ACCEL
    dx = (x - s.positions).reshape(len(x), -1)
    pot = 0.5 * np.einsum("si,ij,sj->s", dx, H, dx)
    for e in (kin, pot):
        assert abs(e.mean() - per_mode.sum()) < 4 * e.std() / np.sqrt(len(e))


def test_bad_input_is_named(triangle):
    s, masses, H, modes = triangle
    with pytest.raises(InputError, match="Hessian"):
        normal_modes(H[:6, :6], s.positions, masses)
    with pytest.raises(InputError, match="temperature"):
        wigner_sample(modes, 10, seed=0, temperature=-1.0)
