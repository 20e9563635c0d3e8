"""The check against the MD itself (issue #13): walkers crossing a 3 kT barrier in an overdamped Langevin
trajectory with D(x) rising 3× across the box. D(x) and F(x) estimated from that trajectory (at the lag the
scan recommends), put into steady Nernst–Planck between the two sides of the barrier, predict the rate of
A → B crossings counted in the same trajectory (transition-path theory makes the two the same quantity); and
transient Nernst–Planck with them follows a relaxation run over the barrier."""
import warnings

import numpy as np
import pytest

from continuum.diffusion import estimate_diffusion_profile, lag_scan
from continuum.langevin import overdamped_langevin, sample_boltzmann
from continuum.grid import Grid
from continuum.nernst_planck import NernstPlanck, Species
from continuum.transport import equilibrium_concentration, predicted_flux, reactive_flux

T = 298.15
A, B = 0.3, 0.7


def beta_u(x):
    return 3.0 * np.exp(-((x - 0.5) / 0.08) ** 2)


def beta_force(x):
    return 3.0 * 2 * (x - 0.5) / 0.08**2 * np.exp(-((x - 0.5) / 0.08) ** 2)


def diffusivity(x):
    return 0.5 + x


def exact_flux(n):
    """J_AB of the true D and U: c_eq(a) e^{βU(a)} / ∫_a^b e^{βU}/D dx."""
    xs, xa = np.linspace(A, B, 200001), np.linspace(0, 1, 200001)
    c_a = n * np.exp(-beta_u(A)) / np.trapezoid(np.exp(-beta_u(xa)), xa)
    return c_a * np.exp(beta_u(A)) / np.trapezoid(np.exp(beta_u(xs)) / diffusivity(xs), xs)


@pytest.fixture(scope="module")
def crossing():
    n = 2000
    x0 = sample_boltzmann(beta_u, (0, 1), n, seed=1)
    X = overdamped_langevin(x0, 8000, 1e-5, 20, diffusivity, lambda x: np.ones_like(x), beta_force, (0, 1),
                            periodic=False, seed=2)
    return X, 2e-4, n


@pytest.fixture(scope="module")
def estimate(crossing):
    X, dt, _ = crossing
    edges = np.linspace(0, 1, 41)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lag = lag_scan(X, edges, dt, [4, 8, 16, 32], temperature=T).recommended_lag()
    return estimate_diffusion_profile(X, edges, dt, lag, T, errors=False)


def test_flux_predicted_from_the_trajectory_matches_the_crossings_counted_in_it(crossing, estimate):
    X, dt, n = crossing
    j_md, err, count = reactive_flux(X, A, B, dt)
    assert count > 1000                                         # ≤ 3 % counting error
    est = estimate
    c_a = equilibrium_concentration(est.free_energy, n, A, T)
    j_np = predicted_flux(est.diffusivity, est.free_energy, A, B, c_a, 0.0, T)
    assert abs(j_md / j_np - 1) < max(0.05, 2 * err / j_np), (j_md, err, j_np)
    # and both agree with the exact TPT flux of the true D(x), U(x)
    exact = exact_flux(n)
    assert abs(j_np / exact - 1) < 0.03
    assert abs(j_md - exact) < 3 * err


def test_bad_input(crossing):
    X, dt, _ = crossing
    with pytest.raises(ValueError, match="b > a"):
        reactive_flux(X, 0.7, 0.3, dt)
    with pytest.raises(ValueError, match="dt must be"):
        reactive_flux(X, A, B, 0.0)
    with pytest.raises(ValueError, match="frames >= 2"):
        reactive_flux(X[:1], A, B, dt)


def test_transient_np_from_the_trajectory_follows_a_relaxation_run(estimate):
    """The time-dependent check: 4000 walkers released on the left of the barrier (Boltzmann there, none on
    the right) relax over it in a new Langevin run; transient Nernst–Planck with the D(x), F(x) estimated
    from the equilibrium trajectory, started from the same histogram, predicts the fraction on the right at
    each time within 3σ of its counting error (measured: 0.057/0.104/0.184/0.299 against 0.059/0.108/0.185/
    0.302 at t = 0.05/0.1/0.2/0.4, σ = 0.004–0.007; the true D, U give 0.057/0.105/0.186/0.301)."""
    n = 4000
    x0 = sample_boltzmann(lambda x: np.where(x < 0.5, beta_u(x), 50.0), (0, 1), n, seed=7)
    times = np.array([0.05, 0.1, 0.2, 0.4])
    X = overdamped_langevin(x0, 41, 1e-5, 1000, diffusivity, lambda x: np.ones_like(x), beta_force, (0, 1),
                            periodic=False, seed=8)                  # frames 0.01 apart
    md = np.array([np.mean(X[int(round(t / 0.01))] > 0.5) for t in times])
    grid = Grid.uniform(1.0, 200)
    c0 = np.histogram(x0, grid.faces)[0] / grid.widths
    species = Species("walker", 0, estimate.diffusivity, pmf=estimate.free_energy)
    sols = NernstPlanck(grid, [species], T).transient(c0[None], times, dt_max=1e-3)
    right = grid.centers > 0.5
    np_frac = np.array([np.sum((s.concentrations[0] * grid.widths)[right]) / n for s in sols])
    sigma = np.sqrt(md * (1 - md) / n)
    assert np.all(np.diff(md) > 0) and md[-1] > 0.2                    # it does relax over the barrier
    assert np.all(np.abs(np_frac - md) < 3 * sigma), (md, np_frac)
