"""Multi-state models: per-state forces and nonadiabatic couplings from a diabatic matrix, against finite
differences; Tully's models."""
import numpy as np
import pytest

from fdtools import fd_jacobian as _fd
from hybrid.errors import InputError
from hybrid.states import DiabaticModel, adiabatic, align_phases
from hybrid.tully import (MASS_AMU, DualAvoidedCrossing, ExtendedCoupling, SimpleAvoidedCrossing,
                          momentum_au_to_velocity)
from hybrid import units


class Quadratic3(DiabaticModel):
    """A smooth 3-state diabatic matrix of two atoms: H_ij = a_ij + b_ij·R + c_ij |R|² (symmetric in ij)."""
    n_states = 3

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        sym = lambda x: 0.5 * (x + np.swapaxes(x, 0, 1))          # noqa: E731
        self.a = sym(rng.normal(size=(3, 3))) + np.diag([0.0, 1.0, 2.0])
        self.b = sym(rng.normal(size=(3, 3, 6)) * 0.3)
        self.c = sym(rng.normal(size=(3, 3)) * 0.1)

    def diabatic(self, positions):
        R = positions.reshape(len(positions), 6)
        H = self.a + np.einsum("ijk,tk->tij", self.b, R) + self.c * (R**2).sum(1)[:, None, None]
        dH = self.b[None] + 2 * self.c[None, :, :, None] * R[:, None, None, :]
        return H, dH.reshape(len(R), 3, 3, 2, 3)



@pytest.mark.parametrize("model, x", [(Quadratic3(), np.random.default_rng(1).normal(size=(2, 3)))]
                         + [(M(), np.array([[x, 0.3, -0.2]])) for M in (SimpleAvoidedCrossing, DualAvoidedCrossing,
                                                                         ExtendedCoupling)
                            for x in (-1.3, -0.2, 0.15, 2.1)])
def test_state_forces_and_couplings_match_finite_differences(model, x):
    r = model.states(x[None])
    U0 = r.vectors
    h = 1e-5
    # forces: −∂E_k/∂R
    fd_f = -_fd(lambda y: model.states(y[None]).energies[0], x, h)
    assert np.abs(fd_f - r.forces[0]).max() < 1e-6 * max(1.0, np.abs(r.forces).max())
    # couplings: d_kl = u_k · ∂u_l/∂R with the eigenvectors' signs kept continuous
    dU = _fd(lambda y: model.states(y[None], previous=U0).vectors[0], x, h)      # (S, S, N, 3)
    d_fd = np.einsum("ik,ilna->klna", U0[0], dU)
    scale = np.abs(r.couplings).max()
    assert scale > 0
    assert np.abs(d_fd - r.couplings[0]).max() < 1e-5 * max(1.0, scale)
    # antisymmetric, zero on the diagonal
    assert np.allclose(r.couplings[0], -np.swapaxes(r.couplings[0], 0, 1), atol=1e-14)
    # diabatic gradient itself
    H, dH = model.diabatic(x[None])
    assert np.abs(_fd(lambda y: model.diabatic(y[None])[0][0], x, h) - dH[0]).max() < 1e-6 * max(1, np.abs(dH).max())


def test_degenerate_states_need_a_regularised_coupling():
    H = np.zeros((1, 2, 2))
    dH = np.zeros((1, 2, 2, 1, 3))
    dH[0, 0, 1, 0, 0] = dH[0, 1, 0, 0, 0] = 1.0
    with pytest.raises(InputError, match="degenerate"):
        adiabatic(H, dH)
    r = adiabatic(H, dH, eps=1e-3)
    assert np.isfinite(r.couplings).all() and np.abs(r.couplings).max() == 0.0
    # away from degeneracy the regularised coupling differs by the relative amount ε²/ΔE²
    Hs = np.array([[[0.0, 0.0], [0.0, 0.5]]])
    bare, reg = adiabatic(Hs, dH).couplings, adiabatic(Hs, dH, eps=1e-3).couplings
    assert np.abs(reg - bare).max() == pytest.approx(np.abs(bare).max() * (1e-3 / 0.5) ** 2, rel=1e-3)


def test_phase_alignment_flips_only_signs():
    U = np.linalg.qr(np.random.default_rng(3).normal(size=(4, 3, 3)))[0]
    flipped = U * np.array([1, -1, -1])[None, None, :]
    assert np.allclose(align_phases(flipped, U), U)


def test_bad_shapes_are_refused():
    with pytest.raises(InputError, match=r"H must be \(T, S, S\)"):
        adiabatic(np.zeros((2, 2)), np.zeros((2, 2, 1, 3)))
    with pytest.raises(InputError, match="not symmetric"):
        adiabatic(np.array([[[0.0, 1.0], [0.0, 0.0]]]), np.zeros((1, 2, 2, 1, 3)))
    with pytest.raises(InputError, match="one particle"):
        SimpleAvoidedCrossing().diabatic(np.zeros((1, 2, 3)))


def test_tully_units_and_asymptotes():
    # SAC asymptotes ±A = ±0.01 Hartree; the mass is 2000 mₑ; k = 20 a.u. has kinetic energy k²/2M Hartree
    far = np.array([[[-20.0, 0, 0]], [[20.0, 0, 0]]])
    E = SimpleAvoidedCrossing().states(far).energies
    assert np.allclose(E, [[-0.01 * units.HARTREE, 0.01 * units.HARTREE]] * 2, rtol=1e-10)
    assert MASS_AMU == pytest.approx(2000 / 1822.888486, rel=1e-8)
    v = momentum_au_to_velocity(20.0)
    ke = 0.5 * MASS_AMU * v**2 / units.ACCEL
    assert ke == pytest.approx(20.0**2 / 4000 * units.HARTREE, rel=1e-8)
    # DAC: the upper diabat lies E0 = 0.05 Hartree up at ±∞
    E = DualAvoidedCrossing().states(far).energies
    assert np.allclose(E[:, 1], 0.05 * units.HARTREE, rtol=1e-6)


def test_two_state_closed_form_diagonalises():
    from hybrid.states import _eigh
    rng = np.random.default_rng(4)
    H = rng.normal(size=(50, 2, 2))
    H = H + H.transpose(0, 2, 1)
    H[0] = np.diag([0.3, -0.2])                   # already diagonal, descending
    H[1] = np.diag([0.1, 0.1])                    # degenerate
    E, U = _eigh(H)
    assert np.allclose(E, np.linalg.eigvalsh(H), atol=1e-14)
    assert np.allclose(np.einsum("tik,tij,tjl->tkl", U, H, U), E[:, :, None] * np.eye(2), atol=1e-13)
    assert np.allclose(np.einsum("tik,til->tkl", U, U), np.eye(2), atol=1e-14)
