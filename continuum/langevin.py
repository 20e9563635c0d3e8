"""Vectorised overdamped Langevin dynamics in one dimension.

A cheap source of trajectories with a *known* D(x) and U(x), used to check
the D(x)/F(x) estimators and to synthesise ions near a wall in the examples.
Itô Euler–Maruyama for many independent walkers at once:

    x ← x + [D'(x) − D(x) U'(x)/k_B T] Δt + sqrt(2 D(x) Δt) ξ,   ξ ~ N(0, 1)

whose stationary density is ∝ exp(−U/k_B T).  Units are whatever the caller
uses consistently (x, D·t/x² and U/k_B T must be dimensionless together);
U enters only through βU'(x) = U'(x)/k_B T.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


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
