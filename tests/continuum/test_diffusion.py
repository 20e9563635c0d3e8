"""D(x) and F(x) from overdamped Langevin trajectories with known D(x), U(x),
and the hand-off of both to the Nernst–Planck solver."""
import warnings

import numpy as np
import pytest

from hybrid.units import K_B

from continuum.diffusion import (SmoluchowskiModel, coordinates, equal_mixing_edges, estimate_diffusion_profile,
                                 lag_scan, msd_in_bins, transition_counts)
from continuum.grid import Grid
from continuum.langevin import lattice_diffusion, overdamped_langevin, sample_boltzmann
from continuum.nernst_planck import Dirichlet, NernstPlanck, Species
from continuum.trajectories import Trajectory

# Reduced units: period 1, D0 = 1.  D(x) = 1 + ½ sin 2πx, βU(x) = 1.5 cos 2πx.
T = 298.15
KT = K_B * T
A_U, A_D = 1.5, 0.5


def D_true(x):
    return 1 + A_D * np.sin(2 * np.pi * x)


def dD_true(x):
    return A_D * 2 * np.pi * np.cos(2 * np.pi * x)


def beta_U(x):
    return A_U * np.cos(2 * np.pi * x)


def beta_force(x):
    return A_U * 2 * np.pi * np.sin(2 * np.pi * x)


def bin_free_energy(edges):
    """Exact βF_i = −ln ∫_bin exp(−βU) dx, shifted to zero mean."""
    xs = np.linspace(edges[0], edges[-1], 200001)[:-1]
    w = np.exp(-beta_U(xs))
    idx = np.searchsorted(edges, xs, side="right") - 1
    F = -np.log(np.bincount(idx, w, minlength=edges.size - 1))
    return F - F.mean()


def simulate(walkers, frames, seed):
    """Walkers start from a stratified Boltzmann sample; frames 1e-3 apart."""
    x0 = sample_boltzmann(beta_U, (0.0, 1.0), walkers, seed=seed)
    return overdamped_langevin(x0, frames, 2e-5, 50, D_true, dD_true, beta_force, (0.0, 1.0),
                               periodic=True, seed=seed + 1), 1e-3


@pytest.fixture(scope="module")
def langevin_data():
    return simulate(3000, 150, seed=11)


@pytest.fixture(scope="module")
def estimate(langevin_data):
    X, dt = langevin_data
    return estimate_diffusion_profile(X, np.linspace(0, 1, 21), dt, lag=12, temperature=T, periodic=True)


def check_estimate(est, edges, d_tol, f_tol):
    rel = est.diffusivity.values / D_true(est.diffusivity.x) - 1
    rms = np.sqrt(np.mean(rel**2))
    F = est.free_energy_kT - est.free_energy_kT.mean()
    dF = np.max(np.abs(F - bin_free_energy(edges)))
    assert rms <= d_tol, f"RMS relative error in D {rms:.3f} > {d_tol}"
    assert dF <= f_tol, f"max |ΔF| {dF:.3f} kT > {f_tol} kT"
    return rms, dF


def test_propagator_estimator_recovers_D_and_F(estimate):
    est = estimate
    check_estimate(est, np.linspace(0, 1, 21), 0.10, 0.1)
    # error bars are honest: nearly all estimates within 3σ
    z = np.abs(est.diffusivity.values - D_true(est.diffusivity.x)) / est.diffusivity.errors
    assert np.mean(z < 3) >= 0.9
    assert np.all(est.free_energy.errors[1:] > 0) and est.free_energy.errors[0] == 0


@pytest.mark.slow
def test_propagator_estimator_tight_with_more_data():
    X, dt = simulate(12000, 300, seed=5)
    edges = np.linspace(0, 1, 21)
    est = estimate_diffusion_profile(X, edges, dt, lag=16, temperature=T, periodic=True)
    check_estimate(est, edges, 0.06, 0.05)


def test_estimated_D_and_F_in_nernst_planck_give_zero_flux_and_boltzmann(estimate):
    est = estimate
    grid = Grid.uniform(1.0, 50)
    F = est.free_energy
    c_end = np.exp(-F(0.0) / KT)             # same reference concentration at both ends
    sp = Species("walker", 0, est.diffusivity, Dirichlet(c_end), Dirichlet(c_end), pmf=F)
    sol = NernstPlanck(grid, [sp], T).steady()
    assert np.max(np.abs(sol.fluxes)) < 1e-12 * np.max(est.diffusivity.values)
    assert np.allclose(sol.concentrations[0], np.exp(-F(grid.centers) / KT), rtol=1e-10)


def test_msd_in_bin_and_lag_scan_diagnostics(langevin_data):
    X, dt = langevin_data
    edges = np.linspace(0, 1, 21)
    scan = lag_scan(X, edges, dt, [4, 8, 12], temperature=T, periodic=True)
    assert scan.D_ml.shape == (3, 20) and scan.D_msd.shape == (3, 20)
    # the short-lag propagator estimate is biased high (bins too coarse for √(2Dτ)) ...
    assert np.mean(scan.D_ml[0] / D_true(edges[1:])) > np.mean(scan.D_ml[2] / D_true(edges[1:]))
    # ... while the relaxation time of the slowest mode is lag-independent (Markovian bins)
    assert np.ptp(scan.implied_times) < 0.1 * np.mean(scan.implied_times)
    # MSD-in-bin is accurate where the drift is small compared to √(2Dτ)/τ only; at short lag
    # it follows D(x) to within 10% on average
    D_msd, err, cnt = msd_in_bins(X, edges, dt, 1, periodic=True)
    centers = 0.5 * (edges[1:] + edges[:-1])
    assert np.sqrt(np.mean((D_msd / D_true(centers) - 1) ** 2)) < 0.1
    assert np.all(err > 0) and cnt.sum() == X[:-1].size


def test_rate_matrix_gradient_and_detailed_balance():
    rng = np.random.default_rng(0)
    for periodic in (True, False):
        model = SmoluchowskiModel(6, 0.1, periodic)
        p = rng.normal(0, 0.3, model.n_edges + 5)
        counts = rng.integers(0, 50, (6, 6)).astype(float)
        _, g = model.loglike(p, counts, 0.01)
        h = 1e-6
        fd = [(model.loglike(p + h * e, counts, 0.01)[0] - model.loglike(p - h * e, counts, 0.01)[0]) / (2 * h)
              for e in np.eye(p.size)]
        assert np.allclose(g, fd, rtol=1e-6, atol=1e-5 * np.abs(g).max())
        Tm = model.propagator(p, 0.01)
        f = model.unpack(p)[1]
        peq = np.exp(-f) / np.exp(-f).sum()
        assert np.allclose(Tm.sum(axis=0), 1, atol=1e-12)            # probability conserved
        assert np.allclose(Tm @ peq, peq, atol=1e-12)                 # equilibrium is stationary
        assert np.allclose(Tm * peq, (Tm * peq).T, atol=1e-12)        # detailed balance


def test_coordinates_unwrap_and_counts():
    # one particle moving +0.4 Å per frame through a 10 Å periodic box
    z = (np.arange(60) * 0.4) % 10.0
    pos = np.zeros((60, 1, 3))
    pos[:, 0, 2] = z
    traj = Trajectory(pos, np.tile(np.diag([5.0, 5.0, 10.0]), (60, 1, 1)), True, times=np.arange(60.0))
    x = coordinates(traj, 2)
    assert np.allclose(np.diff(x[:, 0]), 0.4e-10)
    edges = np.linspace(0, 10e-10, 6)
    N = transition_counts(x, edges, 5, periodic=True)          # 2 Å per 5 frames: next bin
    assert N.sum() == 55 and np.all(np.diag(np.roll(N, -1, axis=0)) > 0)
    with pytest.raises(ValueError, match="never visited"):
        estimate_diffusion_profile(np.zeros((10, 3)), np.linspace(0, 1, 4) - 0.5, 1.0, 1)


def test_short_lag_warns_and_the_scan_recommends_a_lag_on_the_plateau(langevin_data):
    """min D·τ/Δx² < 1 warns (the short-lag bias); the scan's recommended lag is the first on the plateau,
    where D(x) is within 6 % RMS and F(x) within 0.1 kT; a scan of short lags only warns and says so."""
    from continuum.diffusion import DiffusionWarning
    X, dt = langevin_data
    edges = np.linspace(0, 1, 21)
    with pytest.warns(DiffusionWarning, match="min D·τ/Δx² = 0.4"):
        short = estimate_diffusion_profile(X, edges, dt, lag=2, temperature=T, periodic=True, errors=False)
    assert short.resolution < 1
    scan = lag_scan(X, edges, dt, [2, 4, 8, 12, 16, 24], temperature=T, periodic=True)
    assert np.all(np.diff(scan.resolution) > 0)
    lag = scan.recommended_lag()
    assert lag in (12, 16) and scan.resolution[list(scan.lags).index(lag)] >= 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = estimate_diffusion_profile(X, edges, dt, lag=lag, temperature=T, periodic=True)
    check_estimate(est, edges, 0.06, 0.1)
    with pytest.warns(DiffusionWarning, match="reached no plateau"):
        assert lag_scan(X, edges, dt, [1, 2], temperature=T, periodic=True).recommended_lag() == 2


def test_unequal_bins_recover_constant_D_and_a_flat_free_energy_density():
    """Free diffusion (D = 1, U = 0) binned into bins of widths differing 3×: D within 3σ on every edge and
    within 10 % RMS (equal bins on the same data and lag: 5.5 %, most of it the short-lag bias, which the
    widest bins set), and the free-energy *density* flat within 0.1 kT (the bins' own free energies differ
    by ln 3 = 1.1 kT: the width correction is what makes it flat)."""
    rng = np.random.default_rng(2)
    X = overdamped_langevin(rng.uniform(0, 1, 2000), 200, 2e-5, 50, lambda x: np.ones_like(x),
                            lambda x: np.zeros_like(x), lambda x: np.zeros_like(x), (0.0, 1.0), periodic=True, seed=3)
    w = np.tile([1.0, 3.0, 2.0], 5)
    edges = np.concatenate([[0.0], np.cumsum(w) / w.sum()])
    est = estimate_diffusion_profile(X, edges, 1e-3, lag=16, temperature=T, periodic=True)
    d = est.diffusivity.values
    assert np.all(np.abs(d - 1) < 3 * est.diffusivity.errors)
    assert np.sqrt(np.mean((d - 1) ** 2)) < 0.10
    F = est.free_energy_kT
    assert np.max(np.abs(F - F.mean())) < 0.1


def lattice_truth(edges, diffusivity, beta_u, periodic=True, n=4001):
    """The exact D and F at the resolution of ``edges``: D_e from the resistance between the neighbouring
    bin centres, d_e √(h_a h_b) / (√(Z_a Z_b) ∫ e^{βU}/D dx) with Z the bins' Boltzmann weights (the
    finite-volume coarse-graining; it differs from D at the edge point by O(h²)), and the free-energy
    density βF_i = −ln(Z_i/h_i), shifted to zero mean."""
    c, h = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
    nb = h.size
    Z = np.array([np.trapezoid(np.exp(-beta_u(x)), x) for x in (np.linspace(edges[i], edges[i + 1], n)
                                                                for i in range(nb))])
    d = []
    for a in range(nb if periodic else nb - 1):
        b = (a + 1) % nb
        x = np.linspace(c[a], c[b] + (edges[-1] - edges[0] if b < a else 0), n)
        resistance = np.trapezoid(np.exp(beta_u(x)) / diffusivity(x), x)
        d.append(0.5 * (h[a] + h[b]) * np.sqrt(h[a] * h[b]) / (np.sqrt(Z[a] * Z[b]) * resistance))
    f = -np.log(Z / h)
    return np.array(d), f - f.mean()


def test_lattice_diffusion_is_exact():
    """The synthetic generator used below: free lattice diffusion spreads as 2Dt (exactly, for a
    continuous-time lattice walk; the within-site jitter adds h²/6), and in a 1.5 kT landscape the
    populations are Boltzmann's (within 4σ of the histogram's counting noise in every bin)."""
    rng = np.random.default_rng(0)
    X = lattice_diffusion(rng.uniform(0, 1, 20000), 101, 1e-3, lambda x: np.ones_like(x), lambda x: 0 * x,
                          (0.0, 1.0), 1000, seed=1)
    d = X[100] - X[0]
    assert d.var() == pytest.approx(2 * 0.1 + 1e-6 / 6, rel=0.03)          # 20000 samples: 1 % noise
    X = lattice_diffusion(sample_boltzmann(beta_U, (0, 1), 20000), 50, 1e-2, D_true, beta_U, (0, 1), 1000,
                          seed=2)
    edges = np.linspace(0, 1, 21)
    hist = np.histogram(np.mod(X[-1], 1), edges)[0]
    f = -np.log(hist)
    assert np.all(np.abs(f - f.mean() - lattice_truth(edges, D_true, beta_U)[1]) < 4 / np.sqrt(hist))  # 4σ
    Y = lattice_diffusion(np.full(500, 0.5), 20, 1e-2, D_true, beta_U, (0, 1), 200, periodic=False, seed=3)
    assert Y.min() >= 0 and Y.max() <= 1
    with pytest.raises(ValueError, match="inside bounds"):
        lattice_diffusion([1.5], 2, 1e-3, D_true, beta_U, (0, 1))


def test_D_spanning_two_decades_within_5_percent_at_the_recommended_lag():
    """D(x) = 10^sin(2πx) (0.1 to 10) in a 1 kT landscape, exact lattice diffusion (10000 walkers, 300
    frames). 40 bins with widths ∝ √D from a 10-bin pilot, the lag the scan recommends: D within 5 % RMS
    of D at the edge points (measured 2.9 %) and F within 0.1 kT (0.05). Equal bins, at their own
    recommended lag, are 2× worse (measured 10 %): a lag long enough for the slow bins blurs the fast ones."""
    L10 = np.log(10.0)

    def D(x):
        return 10 ** np.sin(2 * np.pi * x)

    def bu(x):
        return np.cos(2 * np.pi * x)

    dt = 4e-4
    X = lattice_diffusion(sample_boltzmann(bu, (0, 1), 10000, seed=3), 300, dt, D, bu, (0, 1), 1000, seed=4)
    pilot = estimate_diffusion_profile(X, np.linspace(0, 1, 11), dt, 32, T, periodic=True, errors=False, warn=False)
    rms = {}
    for name, edges in (("equal", np.linspace(0, 1, 41)), ("mixing", equal_mixing_edges(pilot.diffusivity, 0, 1, 40))):
        with warnings.catch_warnings():
            warnings.simplefilter("error")                          # a plateau, not the fallback
            lag = lag_scan(X, edges, dt, [2, 4, 8, 16, 32, 64], temperature=T, periodic=True).recommended_lag()
        est = estimate_diffusion_profile(X, edges, dt, lag, T, periodic=True, errors=False)
        rms[name] = np.sqrt(np.mean((est.diffusivity.values / D(edges[1:]) - 1) ** 2))
        if name == "mixing":
            assert np.diff(edges).max() > 5 * np.diff(edges).min()       # √100 = 10 in the limit
            assert rms[name] <= 0.05, rms
            F = est.free_energy_kT
            assert np.max(np.abs(F - F.mean() - lattice_truth(edges, D, bu)[1])) <= 0.1
            assert np.ptp(np.log(D(edges[1:]))) > 2 * L10 * 0.95            # two decades, really
    assert rms["equal"] > 2 * rms["mixing"], rms


def test_ninety_percent_intervals_cover_the_truth_in_85_to_95_percent_of_50_repeats():
    """Sandwich error bars with the walkers as independent clusters (the plain inverse Hessian is too small
    by about the lag in frames, every frame being a time origin). 50 independent lattice trajectories of
    the mild landscape (1000 walkers, 150 frames, 20 bins) at the lag recommended on the first: the 90 %
    interval of ln D contains the exact D at the edge in 85–95 % of the 50 × 20 cases (measured 89.4 %)."""
    edges = np.linspace(0, 1, 21)
    hits, lag = [], None
    for r in range(50):
        X = lattice_diffusion(sample_boltzmann(beta_U, (0, 1), 1000, seed=100 + r), 150, 1e-3, D_true, beta_U,
                              (0, 1), 1000, seed=200 + r)
        if lag is None:
            with warnings.catch_warnings():
                warnings.simplefilter("error")                      # a plateau, not the fallback
                lag = lag_scan(X, edges, 1e-3, [4, 8, 16, 32], temperature=T, periodic=True).recommended_lag()
        est = estimate_diffusion_profile(X, edges, 1e-3, lag, T, periodic=True)
        z = np.log(est.diffusivity.values / D_true(est.diffusivity.x)) * est.diffusivity.values / est.diffusivity.errors
        hits.append(np.abs(z) < 1.645)
    coverage = np.mean(hits)
    assert 0.85 <= coverage <= 0.95, (lag, coverage)


def test_underdamped_data_warn_at_small_gamma_tau_and_give_D_at_the_recommended_lag():
    """Langevin dynamics with velocities (γ = 20, k_BT/m = 1, so D = 1/γ = 0.05 and τ_m = 1/γ) in a 0.2 kT
    landscape, periodic box of 4, 40 bins: the velocity memory time is measured from the positions alone;
    at γτ = 0.8 the estimate warns; the scan recommends a lag of ≥ 10 τ_m where D is within 5 % RMS (measured
    3.6 %, mean −0.1 %) and F within 0.1 kT, while the same lag without the memory correction is low by
    about τ_m/τ (measured −7 %)."""
    from continuum.diffusion import DiffusionWarning, velocity_memory_time
    from continuum.langevin import underdamped_langevin
    gamma, box = 20.0, 4.0

    def bu(x):
        return 0.2 * np.cos(2 * np.pi * x)

    X = underdamped_langevin(sample_boltzmann(bu, (0, box), 4000, seed=1), 1500, 0.0025, 4,
                             lambda x: np.full_like(x, gamma), lambda x: 0.2 * 2 * np.pi * np.sin(2 * np.pi * x),
                             (0, box), seed=2)
    dt, edges = 0.01, np.linspace(0, box, 41)
    tau_m = velocity_memory_time(X, dt, box)
    assert tau_m == pytest.approx(1 / gamma, rel=0.1)        # the sum's truncation loses a few per cent
    with pytest.warns(DiffusionWarning, match="velocity memory"):
        estimate_diffusion_profile(X, edges, dt, 4, T, periodic=True, errors=False)
    scan = lag_scan(X, edges, dt, [4, 16, 32, 64, 128], temperature=T, periodic=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                              # a plateau, not the fallback
        lag = scan.recommended_lag()
    assert lag * dt >= 10 * scan.memory_time
    est = estimate_diffusion_profile(X, edges, dt, lag, T, periodic=True, errors=False)
    rel = est.diffusivity.values * gamma - 1
    assert np.sqrt(np.mean(rel**2)) <= 0.05, rel
    F = est.free_energy_kT
    centres = 0.5 * (edges[1:] + edges[:-1])
    assert np.max(np.abs(F - F.mean() - (bu(centres) - bu(centres).mean()))) <= 0.1
    raw = estimate_diffusion_profile(X, edges, dt, lag, T, periodic=True, errors=False, bias_correction=False)
    assert np.mean(raw.diffusivity.values * gamma - 1) < -0.04
