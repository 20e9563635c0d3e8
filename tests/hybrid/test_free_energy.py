"""Free energies between levels: estimators against the closed form of two harmonic wells, their
diagnostics, correlation handling, bad input, and the λ-coupled potential."""
import warnings

import numpy as np
import pytest

from fdtools import fd_forces
from hybrid.analytic import Harmonic
from hybrid.errors import InputError
from hybrid.sampling.coupling import LambdaCoupled, energies_at
from hybrid.sampling.estimators import (FreeEnergyWarning, bar, exponential_averaging, mbar,
                                        statistical_inefficiency, thermodynamic_integration)
from hybrid.system import AtomicSystem
from hybrid.units import KB_EV

T = 300.0
KT = KB_EV * T
K0, K1 = 1.0, 1.21                    # eV/Å²: frequencies differ by 10 %
EXACT = 1.5 * KT * np.log(K1 / K0)    # one atom in 3-D: ΔA = (3/2) kT ln(k1/k0)


def samples(k, n, rng):
    """Exact Boltzmann samples of ½ k |x|² in 3-D: x ~ N(0, kT/k) per component."""
    return rng.normal(scale=np.sqrt(KT / k), size=(n, 3))


def du(x):
    """U1 - U0 (eV) at samples x (n, 3)."""
    return 0.5 * (K1 - K0) * np.sum(x * x, axis=1)


def check(est, label):
    """Within 2σ of the exact ΔA and within 0.01 kT (the issue's acceptance), and trusted."""
    err = abs(est.delta - EXACT)
    assert err < 2 * est.error, f"{label}: {est.delta / KT:.5f} kT vs exact {EXACT / KT:.5f} ± {est.error / KT:.5f}"
    assert err < 0.01 * KT, f"{label}: off by {err / KT:.4f} kT"
    assert est.error < 0.005 * KT, f"{label}: error bar {est.error / KT:.4f} kT too wide for a 0.01 kT test"
    assert est.trusted, est.warnings


def test_every_estimator_recovers_the_harmonic_free_energy_difference():
    rng = np.random.default_rng(0)
    x0, x1 = samples(K0, 40000, rng), samples(K1, 40000, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FreeEnergyWarning)     # none of these may warn
        check(exponential_averaging(du(x0), T), "EXP forward")
        check(exponential_averaging(du(x1), T, direction="reverse"), "EXP reverse")
        check(bar(du(x0), du(x1), T), "BAR")
        lams = np.linspace(0, 1, 5)
        xs = [samples(K0 + l * (K1 - K0), 20000, rng) for l in lams]
        ends = np.concatenate([np.c_[0.5 * K0 * (x * x).sum(1), 0.5 * K1 * (x * x).sum(1)] for x in xs])
        m = mbar(energies_at(ends, lams), [len(x) for x in xs], T)
        check(m.between(0, -1), "MBAR")
        lams = np.linspace(0, 1, 11)
        check(thermodynamic_integration(lams, [du(samples(K0 + l * (K1 - K0), 20000, rng)) for l in lams], T),
              "TI")


def test_correlated_samples_widen_the_error_by_the_statistical_inefficiency():
    """AR(1) samples with ρ = 0.9 (g = (1 + ρ)/(1 - ρ) = 19) of state 0: the same estimate, an error bar about
    √g times the independent one, and N/g independent samples."""
    rng = np.random.default_rng(1)
    n, rho = 60000, 0.9
    z = np.empty((n, 3))
    z[0] = rng.normal(size=3)
    for t in range(1, n):
        z[t] = rho * z[t - 1] + np.sqrt(1 - rho**2) * rng.normal(size=3)
    x = z * np.sqrt(KT / K0)
    g = statistical_inefficiency(du(x))
    assert 8 < g < 25                         # of |x|², an even function: g_|x|² = (1 + ρ²)/(1 - ρ²) = 10.5
    cor = exponential_averaging(du(x), T)
    naive = exponential_averaging(du(x), T, correlated=False)
    assert cor.n_independent == pytest.approx(n / g, rel=0.1)
    assert cor.error / naive.error == pytest.approx(np.sqrt(g), rel=0.3)
    assert abs(cor.delta - EXACT) < 3 * cor.error


def test_poor_overlap_is_flagged_by_every_estimator():
    rng = np.random.default_rng(2)
    k1 = 25.0 * K0                        # a five times narrower well: the reverse average has infinite variance
    x0, x1 = samples(K0, 5000, rng), samples(k1, 5000, rng)
    d1 = 0.5 * (k1 - K0) * (x1 * x1).sum(1)
    with pytest.warns(FreeEnergyWarning, match="effective sample size"):
        rev = exponential_averaging(d1, T, direction="reverse")
    assert not rev.trusted and rev.diagnostics["ess"] < 50
    with pytest.warns(FreeEnergyWarning, match="too few samples"):     # good overlap, 20 samples
        few = exponential_averaging(du(samples(K0, 20, rng)), T, correlated=False)
    assert few.diagnostics["ess"] > 10
    far = samples(K0, 5000, rng) + [3.0, 0, 0]           # a well 3 Å away: no overlap at all
    dfar = 0.5 * K0 * ((far - [3.0, 0, 0]) ** 2).sum(1) - 0.5 * K0 * (far**2).sum(1)
    dnear = 0.5 * K0 * ((x0 - [3.0, 0, 0]) ** 2).sum(1) - 0.5 * K0 * (x0**2).sum(1)
    with pytest.warns(FreeEnergyWarning, match="overlap"):
        b = bar(dnear, dfar, T)
    assert b.diagnostics["overlap"] < 0.03
    with pytest.warns(FreeEnergyWarning, match="between states 0 and 1"):
        m = mbar(np.vstack([np.r_[0.5 * K0 * (x0**2).sum(1), 0.5 * K0 * (far**2).sum(1)],
                            np.r_[dnear, dfar] + np.r_[0.5 * K0 * (x0**2).sum(1), 0.5 * K0 * (far**2).sum(1)]]),
                 [5000, 5000], T)
    assert m.overlap[0, 1] < 0.03
    lams = [0.0, 0.5, 1.0]                 # three windows across a 25-fold stiffening: <dU/dλ> curves hard
    with pytest.warns(FreeEnergyWarning, match="quadrature error"):
        thermodynamic_integration(lams, [0.5 * (k1 - K0) * (samples(K0 + l * (k1 - K0), 20000, rng) ** 2).sum(1)
                                         for l in lams], T)


def test_bad_input_names_the_argument():
    good = np.ones(10)
    with pytest.raises(InputError, match="temperature"):
        exponential_averaging(good, -1.0)
    with pytest.raises(InputError, match="direction"):
        exponential_averaging(good, T, direction="backward")
    with pytest.raises(InputError, match="1-D"):
        exponential_averaging(np.ones((3, 3)), T)
    with pytest.raises(InputError, match="sample 2"):
        bar(good, [0.0, 1.0, np.nan], T)
    with pytest.raises(InputError, match="increasing"):
        thermodynamic_integration([0.0, 1.0, 0.5], [good] * 3, T)
    with pytest.raises(InputError, match="3 lambdas but 2"):
        thermodynamic_integration([0.0, 0.5, 1.0], [good] * 2, T)
    with pytest.raises(InputError, match="n_samples"):
        mbar(np.zeros((2, 10)), [5, 4], T)
    with pytest.raises(InputError, match="shape"):
        mbar(np.zeros(10), [10], T)


def test_lambda_coupled_mixes_energies_and_forces_linearly():
    rng = np.random.default_rng(3)
    s = AtomicSystem([1, 8], rng.normal(size=(2, 3)))
    a, b = Harmonic(K0, name="a"), Harmonic(K1, centres=[[0.5, 0, 0], [0, 0.2, 0]], name="b")
    ra, rb = a.compute(s), b.compute(s)
    for lam in (0.0, 0.3, 1.0):
        r = LambdaCoupled(a, b, lam).compute(s)
        assert r.energy == pytest.approx((1 - lam) * ra.energy + lam * rb.energy, abs=1e-12)
        assert r.info["dU_dlambda"] == pytest.approx(rb.energy - ra.energy, abs=1e-12)
        np.testing.assert_allclose(r.forces, fd_forces(LambdaCoupled(a, b, lam), s, h=1e-4), atol=1e-7)
    r = LambdaCoupled(a, b, 0.3).compute(s)
    assert LambdaCoupled(a, b, 0.3).energy(s) == pytest.approx(r.energy, abs=1e-12)    # the energy-only path
    assert (a - 2 * b).energy(s) == pytest.approx(ra.energy - 2 * rb.energy, abs=1e-12)
    e = energies_at([[r.info["energy_0"], r.info["energy_1"]]], [0.0, 0.3, 1.0])[:, 0]
    np.testing.assert_allclose(e, [ra.energy, r.energy, rb.energy], atol=1e-12)
    with pytest.raises(InputError, match=r"λ must be in \[0, 1\]"):
        LambdaCoupled(a, b, 1.5)
    with pytest.raises(InputError, match="state1 is a str"):
        LambdaCoupled(a, "b")
