"""Ring-polymer MD through OpenMM's RPMDIntegrator on Potentials: the quantum harmonic oscillator, the two
kinetic-energy estimators, contraction of a smooth correction, isotopes by mass alone."""
import numpy as np
import pytest

from hybrid.analytic import Harmonic
from hybrid.errors import InputError
from hybrid.sampling.path_integral import (centroid_virial_kinetic, contract, harmonic_quantum_energy,
                                           harmonic_ring_energy, primitive_kinetic)
from hybrid.system import AtomicSystem
from hybrid.units import ACCEL, HBAR, KB_EV

pytest.importorskip("openmm")
from couplers.openmm_rpmd import run_rpmd  # noqa: E402

T = 300.0
KT = KB_EV * T
MASS = 1.008
OMEGA = 3 * KT / HBAR                         # βħω = 3: strongly quantum (E = 1.66 × classical)
K = MASS * OMEGA**2 / ACCEL                   # eV/Å²


def oscillators(n):
    """n independent 3-D oscillators (H atoms 3 Å apart, each tied to its own centre): n samples per bead call."""
    centres = np.c_[np.arange(n) * 3.0, np.zeros((n, 2))]
    return Harmonic(K, centres=centres, name="oscillators"), AtomicSystem([1] * n, centres)


def test_estimators_on_known_rings():
    """A collapsed ring has the classical kinetic energy 3/(2β) in the virial estimator and 3P/(2β) in the
    primitive one; contraction to 1 bead is the centroid, to P beads the ring itself, and keeps the centroid."""
    rng = np.random.default_rng(0)
    ring = np.repeat(rng.normal(size=(1, 2, 3)), 8, axis=0)
    np.testing.assert_allclose(centroid_virial_kinetic(ring, rng.normal(size=ring.shape), T), 1.5 * KT)
    np.testing.assert_allclose(primitive_kinetic(ring, [1.0, 16.0], T), 1.5 * 8 * KT)
    ring = rng.normal(size=(8, 2, 3))
    np.testing.assert_allclose(contract(ring, 1)[0], ring.mean(0), atol=1e-12)
    np.testing.assert_allclose(contract(ring, 8), ring)
    np.testing.assert_allclose(contract(ring, 4).mean(0), ring.mean(0), atol=1e-12)
    with pytest.raises(InputError, match="1..8"):
        contract(ring, 9)
    assert harmonic_ring_energy(OMEGA, T, 1) == pytest.approx(3 * KT, rel=1e-12)
    assert harmonic_ring_energy(OMEGA, T, 256) == pytest.approx(harmonic_quantum_energy(OMEGA, T), rel=1e-4)


def test_quantum_harmonic_oscillator_energy_and_estimator_variance():
    """16 oscillators, P = 8: ⟨E⟩ (centroid virial) equals the exact 8-bead value within 3σ, with σ below
    0.6 %; the primitive estimator agrees and fluctuates over 5 times more."""
    pot, s = oscillators(16)
    run = run_rpmd(pot, s, 8, T, 1.0, 3000, friction=100.0, sample_every=10, equilibration=300, seed=3)
    exact = 16 * harmonic_ring_energy(OMEGA, T, 8)
    e, err = run.energy("virial")
    assert err < 0.006 * exact
    assert abs(e - exact) < 3 * err, (e, err, exact)
    ep, errp = run.energy("primitive")
    assert abs(ep - exact) < 3 * errp
    assert run.kinetic_primitive.sum(1).std() > 5 * run.kinetic_virial.sum(1).std()
    assert run.evaluations["potential"] >= 8 * 3300


@pytest.mark.slow
def test_quantum_harmonic_oscillator_converged_in_beads():
    """P = 32 (0.1 % from the P → ∞ limit): ⟨E⟩ within 1 % of (3ħω/2) coth(βħω/2) per oscillator."""
    pot, s = oscillators(32)
    run = run_rpmd(pot, s, 32, T, 1.0, 8000, friction=100.0, sample_every=10, equilibration=500, seed=5)
    exact = 32 * harmonic_quantum_energy(OMEGA, T)
    e, err = run.energy("virial")
    assert err < 0.004 * exact
    assert abs(e / exact - 1) < 0.01, (e, err, exact)


def test_contracting_a_smooth_correction_keeps_the_energy():
    """A soft correction (a harmonic term 30 times weaker than the oscillator, centred 0.2 Å off): ⟨E⟩ with
    the correction on every bead, on 2 beads and on the centroid agree within their errors, and the
    correction is evaluated 4 and 8 times less often during the dynamics."""
    pot, s = oscillators(16)
    corr = Harmonic(K / 30, centres=s.positions + [0.2, 0.0, 0.0], name="correction")
    out = {}
    for m in (8, 2, 1):
        out[m] = run_rpmd(pot, s, 8, T, 1.0, 2000, correction=corr, contracted_beads=m, friction=100.0,
                          sample_every=10, equilibration=300, seed=7)
    e8, s8 = out[8].energy()
    for m in (2, 1):
        e, err = out[m].energy()
        assert abs(e - e8) < 3 * np.hypot(err, s8), (m, e, e8, err, s8)
        dyn = out[m].evaluations["correction"] - 200 * m            # minus the estimator's own calls
        assert dyn == pytest.approx(2300 * m, abs=2 * m + 2)


def test_isotopologue_by_mass_alone_and_bad_input():
    """Deuterium (mass 2.014) on the same potential: ω falls by √2 and the energy follows the exact P-bead
    value for that ω."""
    pot, s = oscillators(16)
    run = run_rpmd(pot, s, 8, T, 1.0, 3000, masses=[2.014] * 16, friction=100.0, sample_every=10,
                   equilibration=300, seed=11, keep_beads=True)
    exact = 16 * harmonic_ring_energy(OMEGA * np.sqrt(MASS / 2.014), T, 8)
    e, err = run.energy()
    assert abs(e - exact) < 3 * err and err < 0.01 * exact        # H and D differ by 18 %
    # the kept beads are the ones the estimators saw (for reweighting after the run)
    assert run.beads.shape == (300, 8, 16, 3)
    np.testing.assert_allclose(run.beads.mean(1), run.centroids, atol=1e-9)
    np.testing.assert_allclose(primitive_kinetic(run.beads[-1], [2.014] * 16, T), run.kinetic_primitive[-1],
                               rtol=1e-9, atol=1e-12)
    with pytest.raises(InputError, match="contracted_beads given without a correction"):
        run_rpmd(pot, s, 8, T, 1.0, 10, contracted_beads=2)
    with pytest.raises(InputError, match="contracted_beads must be an integer in 1..8"):
        run_rpmd(pot, s, 8, T, 1.0, 10, correction=pot, contracted_beads=0)
    with pytest.raises(InputError, match="n_beads"):
        run_rpmd(pot, s, 0, T, 1.0, 10)
    with pytest.raises(InputError, match="masses must be 16"):
        run_rpmd(pot, s, 8, T, 1.0, 10, masses=[1.0])
