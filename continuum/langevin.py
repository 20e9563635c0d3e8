"""Synthetic one-dimensional dynamics with a *known* D(x) and U(x), used to check the D(x)/F(x)
estimators and to synthesise ions near a wall in the examples.

:func:`overdamped_langevin` is Itô Euler–Maruyama for many independent walkers at once:

    x ← x + [D'(x) − D(x) U'(x)/k_B T] Δt + sqrt(2 D(x) Δt) ξ,   ξ ~ N(0, 1)

whose stationary density is ∝ exp(−U/k_B T).  Units are whatever the caller
uses consistently (x, D·t/x² and U/k_B T must be dimensionless together);
U enters only through βU'(x) = U'(x)/k_B T. Its stationary density and its D carry an O(Δt) bias.

:func:`lattice_diffusion` has none: walkers hop on a fine lattice of sites with the finite-volume
Smoluchowski rates k_{i→i±1} = D(x_{i±½})/h² exp[−β(U_{i±1} − U_i)/2], and each frame is drawn from the
exact propagator exp(τR) of that master equation, so the Boltzmann populations are exact and D is the
given one at the lattice scale h (the continuum limit is second order in h).

:func:`underdamped_langevin` keeps the velocities (BAOAB splitting, friction γ(x)): on time scales long
compared with 1/γ the positions diffuse with D(x) = k_BT/(m γ(x)) (the Smoluchowski limit, to
O(ω²/γ²) for a landscape of frequency ω), while at lags comparable with 1/γ they are still ballistic.
"""


from __future__ import annotations

from typing import Callable

import numpy as np

from .diffusion import SmoluchowskiModel


def overdamped_langevin(x0, n_frames: int, dt: float, steps_per_frame: int,
                        diffusivity: Callable, diffusivity_gradient: Callable,
                        beta_force: Callable, bounds: tuple[float, float],
                        periodic: bool = True, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Integrate walkers and return the frames.

    x0: (W,) initial positions; n_frames: frames to return (the first is x0);
    dt: integration step; steps_per_frame: steps between saved frames;
    diffusivity, diffusivity_gradient: D(x), D'(x); beta_force: −U'(x)/k_B T;
    bounds: (lo, hi) of the box — periodic (positions returned unwrapped, so
    displacements are physical) or reflecting walls.
    Returns (n_frames, W) positions.
    """
    lo, hi = bounds
    if not hi > lo:
        raise ValueError(f"bounds must satisfy hi > lo, got {bounds}")
    if dt <= 0 or steps_per_frame < 1 or n_frames < 1:
        raise ValueError("need dt > 0, steps_per_frame >= 1 and n_frames >= 1")
    rng = np.random.default_rng(seed)
    x = np.array(x0, dtype=float)
    length = hi - lo
    out = np.empty((n_frames,) + x.shape)
    out[0] = x
    for frame in range(1, n_frames):
        for _ in range(steps_per_frame):
            xin = lo + np.mod(x - lo, length) if periodic else x
            D = diffusivity(xin)
            x = x + (diffusivity_gradient(xin) + D * beta_force(xin)) * dt \
                + np.sqrt(2 * D * dt) * rng.standard_normal(x.shape)
            if not periodic:
                x = np.where(x < lo, 2 * lo - x, x)
                x = np.where(x > hi, 2 * hi - x, x)
        out[frame] = x
    return out


def sample_boltzmann(beta_potential: Callable, bounds: tuple[float, float], n: int,
                     seed: int | np.random.Generator = 0, stratified: bool = True,
                     grid_points: int = 4096) -> np.ndarray:
    """n positions from p(x) ∝ exp(−βU(x)) on bounds, by inverting the
    cumulative distribution tabulated on ``grid_points`` points.

    stratified: draw one uniform number in each of n equal slices of [0, 1)
    (Latin-hypercube style), so the starting histogram follows p(x) with far
    less noise than independent draws; the order is shuffled."""
    rng = np.random.default_rng(seed)
    x = np.linspace(bounds[0], bounds[1], grid_points)
    w = np.exp(-(beta_potential(x) - np.min(beta_potential(x))))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (w[1:] + w[:-1]) * np.diff(x))])
    u = (np.arange(n) + rng.uniform(size=n)) / n if stratified else rng.uniform(size=n)
    return rng.permutation(np.interp(u * cdf[-1], cdf, x))


def lattice_diffusion(x0, n_frames: int, dt: float, diffusivity: Callable, beta_potential: Callable,
                      bounds: tuple[float, float], n_sites: int = 1000, periodic: bool = True,
                      seed: int | np.random.Generator = 0, tail: float = 1e-13) -> np.ndarray:
    """Frames ``dt`` apart of walkers diffusing on ``n_sites`` equal sites of the box ``bounds``.

    x0: (W,) initial positions (their sites are used); diffusivity: D(x), evaluated on the site edges;
    beta_potential: βU(x), on the site centres; periodic: a periodic box (positions returned unwrapped)
    or reflecting walls. Within its site each returned position is uniform, so positions are continuous.
    Transitions beyond the ``tail`` probability of a frame are dropped (the band of reachable sites).
    Returns (n_frames, W) positions.
    """
    lo, hi = bounds
    if not hi > lo:
        raise ValueError(f"bounds must satisfy hi > lo, got {bounds}")
    if not dt > 0 or n_frames < 1 or n_sites < 3:
        raise ValueError("need dt > 0, n_frames >= 1 and n_sites >= 3")
    rng = np.random.default_rng(seed)
    h = (hi - lo) / n_sites
    centres = lo + (np.arange(n_sites) + 0.5) * h
    model = SmoluchowskiModel(n_sites, h, periodic)
    face = lo + (model.a + 1) * h
    bu = np.asarray(beta_potential(centres), dtype=float)
    p = np.concatenate([np.log(np.asarray(diffusivity(face), dtype=float)), bu[1:] - bu[0]])
    T = np.clip(model.propagator(p, dt), 0.0, None)              # T[j, i]: i -> j in one frame
    T /= T.sum(axis=0, keepdims=True)
    # the band of reachable offsets j - i in [-K, K]; for each site the cumulative over that band
    i = np.arange(n_sites)
    offsets = (i[:, None] - i[None, :] + n_sites // 2) % n_sites - n_sites // 2 if periodic \
        else i[:, None] - i[None, :]
    K = int(np.max(np.abs(offsets[T > tail])))
    band = np.arange(-K, K + 1)
    target = i[None, :] + band[:, None]                            # (2K+1, n) unwrapped target sites
    inside = (target >= 0) & (target < n_sites) if not periodic else np.ones(target.shape, bool)
    prob = np.where(inside, T[target % n_sites, i[None, :]], 0.0)
    cum = np.cumsum(prob, axis=0) / prob.sum(axis=0, keepdims=True)
    flat = (cum + 2.0 * i[None, :]).T.ravel()                      # rows made globally increasing
    site = np.floor((np.asarray(x0, dtype=float) - lo) / h).astype(int)
    if np.any((site < 0) | (site >= n_sites)):
        raise ValueError("x0 must lie inside bounds")
    unwrapped = site.copy()
    out = np.empty((n_frames,) + site.shape)
    out[0] = lo + (unwrapped + rng.uniform(size=site.shape)) * h
    for frame in range(1, n_frames):
        k = np.searchsorted(flat, rng.uniform(size=site.shape) + 2.0 * site, side="right") - site * band.size
        step = band[np.minimum(k, band.size - 1)]
        unwrapped += step
        site = unwrapped % n_sites if periodic else unwrapped
        out[frame] = lo + (unwrapped + rng.uniform(size=site.shape)) * h
    return out


def underdamped_langevin(x0, n_frames: int, dt: float, steps_per_frame: int, friction: Callable,
                         beta_force: Callable, bounds: tuple[float, float], kT_over_m: float = 1.0,
                         periodic: bool = True, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Positions of walkers under Langevin dynamics with velocities, BAOAB splitting
    (Leimkuhler–Matthews): B v += a dt/2, A x += v dt/2, O v = e^{−γ(x)dt} v + √((1 − e^{−2γdt}) k_BT/m) ξ,
    A, B, with the acceleration a = (k_BT/m)·βF(x).

    x0: (W,) initial positions (velocities start Maxwell–Boltzmann); friction: γ(x) (1/time);
    beta_force: −βU'(x); kT_over_m: k_BT/m (velocity² units); periodic box (positions returned
    unwrapped) or reflecting walls (v → −v). Returns (n_frames, W) positions."""
    lo, hi = bounds
    if not hi > lo:
        raise ValueError(f"bounds must satisfy hi > lo, got {bounds}")
    if dt <= 0 or steps_per_frame < 1 or n_frames < 1 or kT_over_m <= 0:
        raise ValueError("need dt > 0, steps_per_frame >= 1, n_frames >= 1 and kT_over_m > 0")
    rng = np.random.default_rng(seed)
    x = np.array(x0, dtype=float)
    v = np.sqrt(kT_over_m) * rng.standard_normal(x.shape)
    length = hi - lo

    def wrapped(y):
        return lo + np.mod(y - lo, length) if periodic else y

    def drift(y):
        return kT_over_m * beta_force(wrapped(y))

    def half_move(y, u):
        y = y + 0.5 * dt * u
        if not periodic:
            low, high = y < lo, y > hi
            y = np.where(low, 2 * lo - y, np.where(high, 2 * hi - y, y))
            u = np.where(low | high, -u, u)
        return y, u

    out = np.empty((n_frames,) + x.shape)
    out[0] = x
    a = drift(x)
    for frame in range(1, n_frames):
        for _ in range(steps_per_frame):
            v = v + 0.5 * dt * a
            x, v = half_move(x, v)
            c = np.exp(-friction(wrapped(x)) * dt)
            v = c * v + np.sqrt((1 - c * c) * kT_over_m) * rng.standard_normal(x.shape)
            x, v = half_move(x, v)
            a = drift(x)
            v = v + 0.5 * dt * a
        out[frame] = x
    return out
