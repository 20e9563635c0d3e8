"""Position-dependent diffusion coefficient D(x) and free energy F(x).

Propagator estimator (Hummer, New J. Phys. 7, 34 (2005)).  The axis is cut
into n bins of width Δx; the dynamics between bins is the discretised
Smoluchowski equation dp/dt = R p with the rate matrix

    R_{i+1,i} = (D_{i+½}/Δx²) exp[−(F_{i+1} − F_i) / 2k_BT]
    R_{i,i+1} = (D_{i+½}/Δx²) exp[+(F_{i+1} − F_i) / 2k_BT]
    R_{ii}    = −Σ_{j≠i} R_{ji},

which obeys detailed balance with p_i ∝ exp(−F_i/k_BT).  With N_ji the
number of transitions i → j observed after a lag τ, the log-likelihood

    ln L(D, F) = Σ_ij N_ji ln [exp(τR)]_ji

is maximised over ln D_{i+½} (on the bin edges) and F_i (bin centres, F_0 =
0) with its analytic gradient: S = P^{-1/2} R P^{1/2} is symmetric
(S_{i+1,i} = D_{i+½}/Δx²), so exp(τR) = P^{1/2} V e^{τΛ} Vᵀ P^{-1/2} and the
derivative of the matrix exponential follows from the eigenvectors
(Daleckii–Krein).  An optional Gaussian smoothness prior on successive
ln D differences turns the estimate into a MAP one.  Uncertainties come
from the sandwich H⁻¹ M H⁻¹, H the Hessian of −ln L and M the covariance
of the score over independent clusters (the particles, or time blocks of
them): every frame is a time origin, so successive transitions overlap and
the plain inverse Hessian would be too small by about the lag in frames;
the clusters absorb that correlation whatever it is.

Two known biases are removed from the fitted D (:func:`_bias_factor`): the
binning variance h²/12τ that the bins add to every displacement, and, for
dynamics with velocities, the memory deficit MSD(τ) = 2D(τ − τ_m), with τ_m
measured from the positions (:func:`velocity_memory_time`).  Estimates warn
(:class:`DiffusionWarning`) when the lag is too short for either, and
:meth:`LagScan.recommended_lag` picks the first lag long enough for both.

The MSD-in-bin estimator, D_i = Var[x(t+τ) − x(t) | x(t) ∈ i] / 2τ, is
given for comparison; it is biased wherever D or F vary on the scale of
√(2Dτ).  :func:`lag_scan` runs both over several lags, with the implied
relaxation time of the slowest mode as a Markovianity check.

Units: positions in m, times in s, temperature in K (D in m²/s, F in J);
any consistent units work if the temperature is only used through F/k_BT.
"""
from __future__ import annotations

import warnings

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from hybrid.units import K_B

from .profiles import Profile


# ---------------------------------------------------------------------------
# data preparation

#: min_e D_e τ/Δx² below which an estimate warns: the bins are not yet Markovian at that lag and the
#: propagator estimate of D is biased high even after the binning correction (measured on exact lattice
#: diffusion with D spanning two decades, 40 equal-mixing bins: +6 % at min D·τ/Δx² = 0.6, +2 % at 1.1,
#: +0.6 % at 2; without the correction +18 %, +8 %, +3.7 %)
MIN_RESOLUTION = 1.0
#: the recommended lag needs at least this min_e D_e τ/Δx² (bias below 1 % on the same data)
RECOMMENDED_RESOLUTION = 2.0


class DiffusionWarning(UserWarning):
    """A D(x) estimate that its own diagnostics say is biased (lag too short for the bins)."""


def _check_dt_lag(dt, lag) -> None:
    """dt > 0 (s) and lag an integer >= 1 (frames), else ValueError naming the argument."""
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be the positive time between frames in s, got {dt}")
    _check_lag(lag)


def _check_lag(lag) -> None:
    if isinstance(lag, bool) or int(lag) != lag or lag < 1:
        raise ValueError(f"lag must be an integer number of frames >= 1, got {lag}")


#: a lag shorter than this many velocity memory times warns: the motion is not yet diffusive, D from
#: lag τ is low by about τ_m/τ, and the first-order correction for it is no longer reliable
MEMORY_WARN = 5.0
#: the recommended lag is at least this many memory times (measured on free underdamped Langevin data,
#: γ = 20: mean bias after the correction 0.0 % at γτ = 13, −1 % at 38; −7 % and −3.6 % without it)
MEMORY_RECOMMENDED = 10.0


def velocity_memory_time(positions, dt: float, period: float | None = None, max_lag: int | None = None) -> float:
    """τ_m = ∫ t C_v(t) dt / ∫ C_v(t) dt (s) from the autocorrelation c_j of the frame-to-frame
    displacements (F, W) ``positions`` (m, frames ``dt`` s apart; ``period``: minimum-image steps):

        τ_m = 2 dt Σ_{j≥1} j c_j / (c_0 + 2 Σ_{j≥1} c_j),

    the sums stopping at the first c_j ≤ 0 (noise, or the anticorrelation of confinement). Since
    MSD(τ) → 2D(τ − τ_m), a D measured at lag τ is low by τ_m/τ. Langevin dynamics with friction γ:
    τ_m = 1/γ; overdamped or lattice data: ≈ 0."""
    x = np.asarray(positions, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[0] < 3:
        raise ValueError(f"velocity_memory_time needs at least 3 frames, got {x.shape[0]}")
    step = np.diff(x, axis=0)
    if period:
        step -= period * np.round(step / period)
    n = step.shape[0]
    max_lag = n // 2 if max_lag is None else min(int(max_lag), n - 1)
    acf = [np.mean(step * step)]
    while len(acf) <= max_lag:                      # c_j one lag at a time: the sum stops early
        j = len(acf)
        acf.append(np.mean(step[:-j] * step[j:]))
        if acf[-1] <= 0:
            break
    acf = np.array(acf)
    j = acf.size - 1 if acf[-1] <= 0 else acf.size
    lags = np.arange(1, j)
    total = acf[0] + 2 * acf[1:j].sum()
    return float(2 * dt * np.sum(lags * acf[1:j]) / total) if total > 0 else 0.0


def _bins(positions, edges, periodic):
    """(F, W) bin index of each position, −1 outside the edges."""
    edges = np.asarray(edges, dtype=float)
    x = np.asarray(positions, dtype=float)
    if periodic:
        x = edges[0] + np.mod(x - edges[0], edges[-1] - edges[0])
    idx = np.searchsorted(edges, x, side="right") - 1
    return np.where((idx >= 0) & (idx < edges.size - 1), idx, -1)


def transition_counts(positions, edges, lag: int, periodic: bool = False) -> np.ndarray:
    """N_ji: transitions from bin i at frame t to bin j at frame t + lag,
    every frame used as a time origin.  positions: (F, W); edges: (n+1,).
    Returns (n, n) with N[j, i]."""
    _check_lag(lag)
    b = _bins(positions, edges, periodic)
    if b.shape[0] <= lag:
        raise ValueError(f"need more than lag={lag} frames, got {b.shape[0]}")
    start, end = b[:-lag].ravel(), b[lag:].ravel()
    ok = (start >= 0) & (end >= 0)
    n = len(edges) - 1
    return np.bincount(end[ok] * n + start[ok], minlength=n * n).reshape(n, n).astype(float)


#: the error bars' clusters: at least this many (particles, or time blocks of them), at most MAX_CLUSTERS
MIN_CLUSTERS, MAX_CLUSTERS = 32, 256


def _cluster_counts(positions, edges, lag: int, periodic: bool, blocks: int | None = None) -> np.ndarray:
    """(G, n, n) transition counts split into G independent clusters for the sandwich covariance: the
    particles (columns), each cut into ``blocks`` contiguous time blocks of origins (None: enough blocks
    for MIN_CLUSTERS clusters); beyond MAX_CLUSTERS, clusters are merged round-robin."""
    b = _bins(positions, edges, periodic)
    n_origins, n_walkers = b.shape[0] - lag, b.shape[1]
    if blocks is None:
        blocks = max(1, -(-MIN_CLUSTERS // n_walkers))
    if int(blocks) != blocks or blocks < 1 or blocks > n_origins:
        raise ValueError(f"error_blocks must be an integer in [1, {n_origins}], got {blocks}")
    block = np.arange(n_origins) * int(blocks) // n_origins
    raw = block[:, None] + int(blocks) * np.arange(n_walkers)[None, :]
    g = min(int(blocks) * n_walkers, MAX_CLUSTERS)
    cluster = (raw % g).ravel()
    start, end = b[:-lag].ravel(), b[lag:].ravel()
    ok = (start >= 0) & (end >= 0)
    n = len(edges) - 1
    flat = (cluster[ok] * n + end[ok]) * n + start[ok]
    return np.bincount(flat, minlength=g * n * n).reshape(g, n, n).astype(float)


def coordinates(trajectory, axis: int = 2, atoms=None, unwrap: bool = True) -> np.ndarray:
    """(F, N) positions along ``axis`` in m from a
    :class:`continuum.trajectories.Trajectory`; with ``unwrap`` periodic
    jumps are removed (minimum-image steps between frames), so displacements
    are physical.  Times: ``trajectory.timestep`` (fs) × 1e-15 s."""
    traj = trajectory if atoms is None else trajectory.select(atoms)
    z = traj.coordinate(axis)
    if unwrap and traj.pbc[axis]:
        h = traj.height(axis)[:, None]
        step = np.diff(z, axis=0)
        step -= h[1:] * np.round(step / h[1:])
        z = np.concatenate([z[:1], z[:1] + np.cumsum(step, axis=0)])
    return z * 1e-10


# ---------------------------------------------------------------------------
# the Smoluchowski rate-matrix model

class SmoluchowskiModel:
    """Rate-matrix model on ``n`` bins of widths ``dx`` (a number, or (n,) widths: bins may differ).

    Parameters are packed as p = [ln D_e (n_edges), f_1..f_{n−1}] with f = F/k_BT the bins' free
    energies (−ln of their equilibrium populations) and f_0 = 0; n_edges = n − 1 (reflecting) or n
    (periodic, edge n−1 joins the last bin to the first). Across edge e between bins a and b (widths
    h_a, h_b, centres d_e = (h_a + h_b)/2 apart) the rate is

        k_{a→b} = D_e / (d_e √(h_a h_b)) · exp(−(f_b − f_a)/2),

    which obeys detailed balance and, for a flat free-energy density, is the finite-volume rate
    D_e/(d_e h_a); on equal bins it is D_e/Δx² · exp(−Δf/2).
    """

    def __init__(self, n_bins: int, dx, periodic: bool):
        if n_bins < 2:
            raise ValueError(f"need at least two bins, got {n_bins}")
        self.n, self.periodic = n_bins, periodic
        self.widths = np.broadcast_to(np.asarray(dx, dtype=float), (n_bins,)).copy()
        self.a = np.arange(n_bins if periodic else n_bins - 1)
        self.b = (self.a + 1) % n_bins
        ha, hb = self.widths[self.a], self.widths[self.b]
        self.coef = 1.0 / (0.5 * (ha + hb) * np.sqrt(ha * hb))     # k_e = D_e · coef_e (before Δf)

    @property
    def n_edges(self):
        return self.a.size

    def unpack(self, p):
        lnD = p[:self.n_edges]
        f = np.concatenate([[0.0], p[self.n_edges:]])
        return lnD, f

    def symmetric_matrix(self, lnD, f):
        """S = P^{-1/2} R P^{1/2} (n, n), symmetric."""
        k = np.exp(lnD) * self.coef
        delta = f[self.b] - f[self.a]
        S = np.zeros((self.n, self.n))
        S[self.a, self.b] += k
        S[self.b, self.a] += k
        np.add.at(S, (self.a, self.a), -k * np.exp(-delta / 2))
        np.add.at(S, (self.b, self.b), -k * np.exp(delta / 2))
        return S

    def propagator(self, p, tau):
        """T = exp(τR) (n, n), T[j, i] = P(j, t+τ | i, t)."""
        lnD, f = self.unpack(p)
        lam, V = np.linalg.eigh(self.symmetric_matrix(lnD, f))
        E = (V * np.exp(tau * lam)) @ V.T
        return np.exp(-(f[:, None] - f[None, :]) / 2) * E

    def loglike(self, p, counts, tau):
        """ln L and its gradient (len(p),)."""
        lnD, f = self.unpack(p)
        S = self.symmetric_matrix(lnD, f)
        lam, V = np.linalg.eigh(S)
        el = np.exp(tau * lam)
        E = (V * el) @ V.T
        Ec = np.maximum(E, 1e-300)
        value = np.sum(counts * (np.log(Ec) - (f[:, None] - f[None, :]) / 2))
        W = counts / Ec
        # Daleckii–Krein: d exp(τS) = V [(Vᵀ dS V) ∘ Φ] Vᵀ
        dl = lam[:, None] - lam[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            Phi = np.where(np.abs(dl) > 1e-12 * (np.abs(lam).max() + 1e-300),
                           (el[:, None] - el[None, :]) / dl, tau * el[:, None])
        G = V @ ((V.T @ W @ V) * Phi) @ V.T           # ∂lnL/∂S_ij
        k = np.exp(lnD) * self.coef
        delta = f[self.b] - f[self.a]
        ea, eb = np.exp(-delta / 2), np.exp(delta / 2)
        Gaa, Gbb = G[self.a, self.a], G[self.b, self.b]
        g_lnD = k * (G[self.a, self.b] + G[self.b, self.a] - Gaa * ea - Gbb * eb)
        g_delta = k * (Gaa * ea - Gbb * eb) / 2
        g_f = np.zeros(self.n)
        np.add.at(g_f, self.b, g_delta)
        np.add.at(g_f, self.a, -g_delta)
        g_f -= 0.5 * (counts.sum(axis=1) - counts.sum(axis=0))
        return value, np.concatenate([g_lnD, g_f[1:]])


def _bias_factor(resolution, tau: float, memory: float):
    """D/D_fit = (1 − 1/(12 ρ)) / (1 − τ_m/τ), ρ = D_fit τ/Δx² per edge; the binning term is clipped at
    ½ (ρ < 1/6) and τ_m/τ at ½, where neither expansion holds and the estimate warns anyway.

    Binning: a continuous displacement ξ that starts uniformly in a bin of width h gives bin-index
    displacements of variance Var ξ/h² + 1/6, while the rate matrix's own is 2Dτ/h², so the fitted D
    absorbs h²/12τ. Memory: with velocities correlated over τ_m, MSD(τ) → 2D(τ − τ_m), so D from lag τ
    is low by τ_m/τ (:func:`velocity_memory_time`; 0 for overdamped data). Measured on exact lattice
    diffusion with D spanning two decades (40 equal-mixing bins), the binning term takes the mean bias
    from +3.7 % to +0.6 % at ρ = 2 and from +1.8 % to +0.3 % at ρ = 4."""
    binning = np.maximum(1.0 - 1.0 / (12.0 * np.asarray(resolution)), 0.5)
    return binning / (1.0 - min(memory / tau, 0.5))


@dataclass
class DiffusionEstimate:
    """Result of :func:`estimate_diffusion_profile`.

    diffusivity: D on the bin edges (m²/s) as a :class:`Profile` with errors;
    free_energy: F at the bin centres (J, F = 0 in the first bin) with errors;
    lag_time: τ (s); loglike: ln L at the optimum; temperature: K;
    covariance: Laplace covariance of [ln D_e, f_1..] (dimensionless);
    resolution: min over edges of D_e τ/Δx², the bins' diffusive mixing in one lag (warns below
    :data:`MIN_RESOLUTION`); memory_time: the velocity memory time τ_m (s) of the positions
    (:func:`velocity_memory_time`; warns when τ < :data:`MEMORY_WARN` τ_m).
    """
    diffusivity: Profile
    free_energy: Profile
    lag_time: float
    loglike: float
    temperature: float
    covariance: np.ndarray
    counts: np.ndarray
    resolution: float = float("nan")
    memory_time: float = float("nan")

    @property
    def free_energy_kT(self) -> np.ndarray:
        """(n,) F/k_BT at the bin centres."""
        return self.free_energy.values / (K_B * self.temperature)


def estimate_diffusion_profile(positions, edges, dt: float, lag: int, temperature: float = 298.15,
                               periodic: bool = False, smoothness: float | None = None,
                               errors: bool = True, warn: bool = True,
                               error_blocks: int | None = None,
                               bias_correction: bool = True, memory_time: float | None = None) -> DiffusionEstimate:
    """Maximum-likelihood (or MAP) D(x) and F(x) from trajectories.

    positions: (F, W) coordinates along the axis (m) of W particles over F
    frames dt (s) apart (unwrapped or wrapped; only bins are used);
    edges: (n+1,) increasing bin edges (m), equal or not (:func:`equal_mixing_edges`: widths ∝ √D, so
    that one lag suits every bin); lag: τ in frames; periodic:
    the axis is periodic with period edges[-1] − edges[0];
    smoothness: σ of a Gaussian prior on ln D_{e+1} − ln D_e (None: pure ML);
    errors: sandwich (cluster-robust) standard errors, the particles being the independent clusters
    (error_blocks: cut each particle's time origins into that many blocks, for few long trajectories;
    the blocks must be much longer than the slowest relaxation for the errors to hold);
    bias_correction: remove the binning variance and the velocity memory from D (:func:`_bias_factor`;
    the errors are those of the fitted D); memory_time: τ_m (s) if known, None: measured from the positions.
    Warns (:class:`DiffusionWarning`, unless ``warn=False``) when min D·τ/Δx² < :data:`MIN_RESOLUTION`.
    """
    _check_dt_lag(dt, lag)
    edges = np.asarray(edges, dtype=float)
    widths = np.diff(edges)
    if edges.ndim != 1 or edges.size < 3 or not np.all(widths > 0):
        raise ValueError("edges must be at least 3 strictly increasing positions")
    counts = transition_counts(positions, edges, lag, periodic)
    if np.any(counts.sum(axis=0) == 0):
        empty = np.flatnonzero(counts.sum(axis=0) == 0)
        raise ValueError(f"bins {empty.tolist()} were never visited at a time origin: "
                         f"shrink the range or use fewer bins")
    tau = lag * dt
    n = edges.size - 1
    model = SmoluchowskiModel(n, widths, periodic)

    # start: F from populations, D from the MSD-in-bin estimate
    pop = counts.sum(axis=0)
    f0 = -np.log(pop / pop[0])
    msd = msd_in_bins(positions, edges, dt, lag, periodic)[0]
    d_guess = np.nanmedian(msd) if np.any(np.isfinite(msd)) else np.median(widths) ** 2 / tau
    p0 = np.concatenate([np.full(model.n_edges, np.log(d_guess)), f0[1:]])
    scale = counts.sum()

    def objective(p):
        v, g = model.loglike(p, counts, tau)
        v, g = -v / scale, -g / scale
        if smoothness:
            d = np.diff(p[:model.n_edges])
            v += np.sum(d**2) / (2 * smoothness**2) / scale
            gd = np.zeros(model.n_edges)
            gd[1:] += d / smoothness**2
            gd[:-1] -= d / smoothness**2
            g = g.copy()
            g[:model.n_edges] += gd / scale
        return v, g

    # bounds keep the line search's first trial steps finite (an unbounded step to ln D ~ 1e3 overflowed)
    bounds = [(np.log(d_guess) - 20, np.log(d_guess) + 20)] * model.n_edges + [(-100.0, 100.0)] * (n - 1)
    res = minimize(objective, p0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10})
    p = res.x
    if not np.isfinite(res.fun):
        raise RuntimeError(f"D(x) at lag {lag}: the likelihood maximisation failed ({res.message}); "
                           "try another lag or fewer bins")
    lnD, f = model.unpack(p)
    d_fit = np.exp(lnD)
    memory = velocity_memory_time(positions, dt, edges[-1] - edges[0] if periodic else None) \
        if memory_time is None else float(memory_time)
    d_value = d_fit * _bias_factor(d_fit * model.coef * tau, tau, memory) if bias_correction else d_fit
    cov = np.full((p.size, p.size), np.nan)
    d_err = f_err = None
    if errors:
        h = 1e-5
        H = np.empty((p.size, p.size))
        for i in range(p.size):
            e = np.zeros(p.size)
            e[i] = h
            H[:, i] = (objective(p + e)[1] - objective(p - e)[1]) / (2 * h) * scale
        Hinv = np.linalg.inv(0.5 * (H + H.T))
        scores = np.array([model.loglike(p, c, tau)[1] for c in
                           _cluster_counts(positions, edges, lag, periodic, error_blocks)])
        scores -= scores.mean(axis=0)
        g = len(scores)
        cov = Hinv @ (scores.T @ scores * g / (g - 1)) @ Hinv
        d_err = d_fit * np.sqrt(np.diag(cov)[:model.n_edges])
        f_err = np.concatenate([[0.0], np.sqrt(np.diag(cov)[model.n_edges:])]) * K_B * temperature
    centers = 0.5 * (edges[1:] + edges[:-1])
    kT = K_B * temperature
    f_density = f + np.log(widths / widths[0])      # the PMF per length: bins may differ in width
    if periodic:
        period = edges[-1] - edges[0]
        D = Profile(edges[1:], d_value, d_err, "diffusion coefficient", "m^2/s",
                    (edges[0], edges[-1]), period=period)
        F = Profile(centers, f_density * kT, f_err, "free energy", "J", (edges[0], edges[-1]), period=period)
    else:
        D = Profile(edges[1:-1], d_value, d_err, "diffusion coefficient", "m^2/s", (edges[0], edges[-1]))
        F = Profile(centers, f_density * kT, f_err, "free energy", "J", (edges[0], edges[-1]), edges=edges)
    resolution = float(np.min(d_value * model.coef) * tau)           # min_e D_e τ/(d_e √(h_a h_b))
    if warn and tau < MEMORY_WARN * memory:
        warnings.warn(f"D(x) at lag {lag} frames: τ = {tau:.3g} s is only {tau / memory:.1f} velocity memory "
                      f"times (τ_m = {memory:.3g} s, from the displacement autocorrelation); the motion is not yet "
                      f"diffusive, D from this lag is low by about τ_m/τ = {memory / tau:.0%} and the correction "
                      f"for it is unreliable. Use a lag of at least {MEMORY_RECOMMENDED:g} τ_m: "
                      "lag_scan(...).recommended_lag", DiffusionWarning, stacklevel=2)
    if warn and resolution < MIN_RESOLUTION:
        warnings.warn(f"D(x) at lag {lag} frames: min D·τ/Δx² = {resolution:.2f} < {MIN_RESOLUTION:g}; the bins "
                      "are not Markovian at this lag and D is biased high (+6 % at 0.6, more below). Use a longer "
                      "lag: lag_scan(...).recommended_lag", DiffusionWarning, stacklevel=2)
    return DiffusionEstimate(D, F, tau, -res.fun * scale, temperature, cov, counts, resolution, memory)


def equal_mixing_edges(diffusivity, lo: float, hi: float, n_bins: int, samples: int = 4096) -> np.ndarray:
    """(n_bins+1,) edges on [lo, hi] (m) with widths ∝ √D(x): equal ∫ dx/√D per bin, so that D τ/Δx² is
    the same in every bin and one lag is long enough for the slow bins without being far too long for
    the fast ones. ``diffusivity``: a callable D(x) (m²/s), e.g. the Profile of a pilot estimate."""
    if not hi > lo or int(n_bins) != n_bins or n_bins < 2:
        raise ValueError(f"equal_mixing_edges needs hi > lo and n_bins >= 2, got {lo}, {hi}, {n_bins}")
    x = np.linspace(lo, hi, samples)
    d = np.asarray(diffusivity(x), dtype=float)
    if d.shape != x.shape or np.any(~(d > 0)):
        raise ValueError("equal_mixing_edges: the diffusivity must be positive on [lo, hi]")
    w = 1.0 / np.sqrt(d)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (w[1:] + w[:-1]) * np.diff(x))])
    edges = np.interp(np.linspace(0.0, cum[-1], int(n_bins) + 1), cum, x)
    edges[0], edges[-1] = lo, hi
    return edges


def msd_in_bins(positions, edges, dt: float, lag: int, periodic: bool = False):
    """MSD-in-bin estimate D_i = Var[x(t+τ) − x(t) | x(t) in bin i] / 2τ.

    positions must be unwrapped (physical displacements).  Returns
    (D (n,) m²/s — NaN for bins with fewer than 2 samples, errors (n,),
    counts (n,)); errors assume ~Gaussian displacements,
    σ_D = D sqrt(2 lag / N_i) (overlapping origins counted once per lag).
    """
    _check_dt_lag(dt, lag)
    x = np.asarray(positions, dtype=float)
    if x.shape[0] <= lag:
        raise ValueError(f"need more than lag={lag} frames, got {x.shape[0]}")
    b = _bins(x[:-lag], edges, periodic).ravel()
    disp = (x[lag:] - x[:-lag]).ravel()
    n = len(edges) - 1
    ok = b >= 0
    cnt = np.bincount(b[ok], minlength=n).astype(float)
    s1 = np.bincount(b[ok], disp[ok], minlength=n)
    s2 = np.bincount(b[ok], disp[ok] ** 2, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / cnt
        var = s2 / cnt - mean**2
        D = np.where(cnt >= 2, var / (2 * lag * dt), np.nan)
        err = D * np.sqrt(2 * lag / cnt)
    return D, err, cnt


@dataclass
class LagScan:
    """Estimates for several lags.  lags: (L,) frames; lag_times: (L,) s;
    D_ml: (L, n_edges) m²/s; F_ml: (L, n) J; D_msd: (L, n) m²/s;
    implied_times: (L,) s, relaxation time of the slowest mode of the
    *empirical* transition matrix, −τ / ln λ₂ — constant in τ once the bin
    dynamics is Markovian; resolution: (L,) min_e D_e τ/Δx²; memory_time: τ_m (s) of the positions."""
    lags: np.ndarray
    lag_times: np.ndarray
    D_ml: np.ndarray
    F_ml: np.ndarray
    D_msd: np.ndarray
    implied_times: np.ndarray
    resolution: np.ndarray
    memory_time: float = 0.0

    def recommended_lag(self, rtol: float = 0.03) -> int:
        """The shortest scanned lag on the plateau: min D·τ/Δx² ≥ :data:`RECOMMENDED_RESOLUTION`, τ ≥
        :data:`MEMORY_RECOMMENDED` velocity memory times, and the geometric-mean D changes by less than
        ``rtol`` to the next scanned lag (the short-lag bias has decayed), and the lag no longer than the
        slowest implied relaxation time (beyond it the transitions are nearly at equilibrium and no longer
        determine D). Without a plateau in the scan,
        the longest lag, with a :class:`DiffusionWarning`."""
        gm = np.exp(np.mean(np.log(self.D_ml), axis=1))
        for k in range(len(self.lags) - 1):
            if (self.resolution[k] >= RECOMMENDED_RESOLUTION and self.lag_times[k] >= MEMORY_RECOMMENDED
                    * self.memory_time and not self.lag_times[k] > self.implied_times[k]
                    and abs(gm[k + 1] / gm[k] - 1) < rtol):
                return int(self.lags[k])
        ratio = np.round(self.lag_times / self.memory_time, 1).tolist() if self.memory_time > 0 else "inf"
        warnings.warn(f"lag scan {self.lags.tolist()}: D(x) reached no plateau (min D·τ/Δx² "
                      f"{np.round(self.resolution, 2).tolist()}, τ/τ_m {ratio}, implied times "
                      f"{np.round(self.implied_times, 6).tolist()} s); scan longer lags, use narrower bins or a "
                      "longer box", DiffusionWarning, stacklevel=2)
        return int(self.lags[-1])


def lag_scan(positions, edges, dt: float, lags, temperature: float = 298.15,
             periodic: bool = False, smoothness: float | None = None) -> LagScan:
    """Run the propagator and MSD-in-bin estimators at each lag (frames)."""
    for lag in np.atleast_1d(lags):
        _check_dt_lag(dt, lag)
    lags = np.asarray(lags, dtype=int)
    D_ml, F_ml, D_msd, t_imp, resolution = [], [], [], [], []
    memory = velocity_memory_time(positions, dt, edges[-1] - edges[0] if periodic else None)
    for lag in lags:
        est = estimate_diffusion_profile(positions, edges, dt, lag, temperature, periodic,
                                         smoothness, errors=False, warn=False, memory_time=memory)
        D_ml.append(est.diffusivity.values)
        resolution.append(est.resolution)
        F_ml.append(est.free_energy.values)
        D_msd.append(msd_in_bins(positions, edges, dt, lag, periodic)[0])
        T = est.counts / est.counts.sum(axis=0, keepdims=True)
        ev = np.sort(np.abs(np.linalg.eigvals(T)))[::-1]
        t_imp.append(-lag * dt / np.log(ev[1]) if 0 < ev[1] < 1 else np.nan)
    return LagScan(lags, lags * dt, np.array(D_ml), np.array(F_ml), np.array(D_msd), np.array(t_imp),
                   np.array(resolution), memory)
