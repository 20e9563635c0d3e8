"""Hybrid Monte Carlo with a surrogate proposal samples the reference ensemble exactly; analytic models."""
import numpy as np
import pytest
from scipy import stats

from fdtools import fd_forces
from hybrid.analytic import DoubleWell, Harmonic
from hybrid.errors import InputError
from hybrid.sampling.estimators import statistical_inefficiency
from hybrid.sampling.hmc import SurrogateHMC
from hybrid.system import AtomicSystem
from hybrid.units import KB_EV

T = 300.0
KT = KB_EV * T
REF = DoubleWell(1.0 * KT, 1.0, k_perp=0.5, name="reference")
WRONG = DoubleWell(0.8 * KT, 0.95, k_perp=0.4, name="surrogate")   # barrier 20 % low, wells 5 % too close
ONE = AtomicSystem([1], [[1.0, 0.0, 0.0]])


def exact_cdf(potential):
    """CDF of the x-marginal exp(-U_x(x)/kT) on a fine grid (trapezoid), as a callable."""
    x = np.linspace(-4.0, 4.0, 40001)
    p = np.exp(-potential.energy_x(x) / KT)
    c = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(x))])
    c /= c[-1]
    return lambda q: np.interp(q, x, c)


def independent_x(run):
    """The x samples of a chain, every ⌈g⌉-th (so the KS test sees independent samples)."""
    x = run.observables
    return x[::int(np.ceil(statistical_inefficiency(x)))]


def test_analytic_forces_match_finite_differences():
    rng = np.random.default_rng(0)
    s = AtomicSystem([1, 1, 8], rng.normal(size=(3, 3)))
    for p in (REF, Harmonic(2.0, centres=rng.normal(size=(3, 3)))):
        np.testing.assert_allclose(p.compute(s).forces, fd_forces(p, s, h=1e-4), atol=1e-7)


def test_hybrid_mc_with_a_wrong_surrogate_samples_the_reference_exactly():
    """≥ 10⁴ independent samples: hybrid MC's x histogram passes a Kolmogorov–Smirnov test against the
    reference's exact Boltzmann distribution; the surrogate's own ensemble (its MD, or this sampler with the
    surrogate as reference) fails the same test (p < 1e-6), and passes against its own."""
    hmc = SurrogateHMC(REF, WRONG, T, timestep=18.0, n_steps=5, seed=4)
    run = hmc.run(ONE, 60000, observe=lambda s: s.positions[0, 0])
    x = independent_x(run)
    assert len(x) >= 10000
    assert 0.5 < run.acceptance_rate < 0.95                  # the surrogate is wrong enough to be rejected
    assert stats.kstest(x, exact_cdf(REF)).pvalue > 0.01
    assert run.reference_calls == 60001 and run.surrogate_calls == 60000 * 5 + 1
    md = SurrogateHMC(WRONG, WRONG, T, timestep=18.0, n_steps=5, seed=4).run(ONE, 60000,
                                                                              observe=lambda s: s.positions[0, 0])
    assert md.acceptance_rate > 0.9                         # only velocity Verlet's own error is rejected
    xs = independent_x(md)
    assert len(xs) >= 10000
    assert stats.kstest(xs, exact_cdf(REF)).pvalue < 1e-6
    assert stats.kstest(xs, exact_cdf(WRONG)).pvalue > 0.01  # it does sample its own ensemble


def test_hybrid_mc_bad_input():
    with pytest.raises(InputError, match="surrogate is a str"):
        SurrogateHMC(REF, "xtb", T, 1.0, 5)
    with pytest.raises(InputError, match="timestep"):
        SurrogateHMC(REF, WRONG, T, -1.0, 5)
    with pytest.raises(InputError, match="n_steps"):
        SurrogateHMC(REF, WRONG, T, 1.0, 0)
    with pytest.raises(InputError, match="masses must be 1 positive"):
        SurrogateHMC(REF, WRONG, T, 1.0, 5, masses=[1.0, 2.0]).run(ONE, 10)
    with pytest.raises(InputError, match="n_samples"):
        SurrogateHMC(REF, WRONG, T, 1.0, 5).run(ONE, 0)
