"""Reweighting ring-polymer samples to another potential, on exactly sampled harmonic rings.

For V = ½ k |r|² the P-bead ring-polymer distribution is Gaussian, so rings can be drawn exactly (no MD) and
the discretised path integral's energy is known in closed form (harmonic_ring_energy). Samples of the ω₁ ring
reweighted to ω₂ must give the ω₂ ring's energy; this checks the weights and the virial correction together.
"""
import warnings

import numpy as np
import pytest

from hybrid.analytic import Harmonic
from hybrid.errors import InputError
from hybrid.sampling.estimators import FreeEnergyWarning
from hybrid.sampling.path_integral import (PIMDRun, centroid_virial_kinetic, harmonic_ring_energy,
                                           primitive_kinetic, reweight, spring_frequency)
from hybrid.system import AtomicSystem
from hybrid.units import ACCEL, HBAR, KB_EV

T, P, N, MASS = 300.0, 8, 4, 1.008
OMEGA = 2.0 * KB_EV * T / HBAR          # βħω = 2: strongly quantum, P = 8 not yet converged (the exact P-bead
                                        # value is the reference, so that does not matter)


def exact_rings(omega, n_samples, rng):
    """(n, P, N, 3) rings drawn from exp(-½ rᵀ M r) per atom and axis, M = (β/P) m [ω_P²(2I - S - Sᵀ) + ω² I]."""
    beta_p = 1.0 / (KB_EV * T * P)
    wp = spring_frequency(P, T)
    shift = np.roll(np.eye(P), 1, axis=1)
    m = beta_p * MASS / ACCEL * (wp**2 * (2 * np.eye(P) - shift - shift.T) + omega**2 * np.eye(P))
    chol = np.linalg.cholesky(np.linalg.inv(m))
    z = rng.normal(size=(n_samples, N, 3, P))
    return np.einsum("kl,natl->nkat", chol, z)


def harmonic_run(omega, n_samples, seed=0):
    rng = np.random.default_rng(seed)
    rings = exact_rings(omega, n_samples, rng)
    k = MASS * omega**2 / ACCEL
    kv = np.array([centroid_virial_kinetic(r, -k * r, T) for r in rings])
    kp = np.array([primitive_kinetic(r, np.full(N, MASS), T) for r in rings])
    pot = 0.5 * k * np.sum(rings**2, axis=(2, 3)).mean(1)
    return PIMDRun(T, P, None, np.full(N, MASS), kp, kv, pot, None, rings.mean(1), {"potential": 0}, 0.0,
                   {"n_steps": n_samples, "equilibration": 0}, beads=rings), k


def test_exact_rings_give_the_ring_energy():
    run, _ = harmonic_run(OMEGA, 4000)
    exact = N * harmonic_ring_energy(OMEGA, T, P)
    for est in ("virial", "primitive"):
        e, err = run.energy(est)
        assert abs(e - exact) < 3 * err, (est, e, exact, err)
    assert run.energy("virial")[1] < run.energy("primitive")[1]


def test_reweighting_to_a_stiffer_oscillator():
    omega2 = 1.15 * OMEGA
    run, k1 = harmonic_run(OMEGA, 6000, seed=1)
    k2 = MASS * omega2**2 / ACCEL
    system = AtomicSystem([1] * N, np.zeros((N, 3)))
    rw = reweight(run, Harmonic(k2 - k1), system)
    exact1, exact2 = N * harmonic_ring_energy(OMEGA, T, P), N * harmonic_ring_energy(omega2, T, P)
    assert 0.3 * len(run.potential) < rw.effective_samples() < len(run.potential)
    for est in ("virial", "primitive"):
        e, err = rw.energy(est)
        assert abs(e - exact2) < 3 * err, (est, e, exact2, err)
        assert abs(e - exact1) > 5 * err       # the test can tell the two oscillators apart
    # the weighted error accounts for the weights: it is larger than the unweighted one
    assert rw.energy()[1] > run.energy()[1]
    assert rw.evaluations["correction"] == 6000 * P


def test_reweighting_warns_on_poor_overlap_and_refuses_bad_runs():
    run, k1 = harmonic_run(OMEGA, 300, seed=2)
    system = AtomicSystem([1] * N, np.zeros((N, 3)))
    with pytest.warns(FreeEnergyWarning, match="effective sample size"):
        reweight(run, Harmonic(20 * k1), system)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reweight(run, Harmonic(0.001 * k1), system)      # a tiny change: no warning
    no_beads = PIMDRun(**{**run.__dict__, "beads": None})
    with pytest.raises(InputError, match="kept no beads"):
        reweight(no_beads, Harmonic(k1), system)
    with pytest.raises(InputError, match="2 atoms"):
        reweight(run, Harmonic(k1), AtomicSystem([1, 1], np.zeros((2, 3))))
    with pytest.raises(InputError, match="Potential"):
        reweight(run, k1, system)
    corrected = PIMDRun(**{**run.__dict__, "correction": run.potential})
    with pytest.raises(InputError, match="already carries"):
        reweight(corrected, Harmonic(k1), system)
