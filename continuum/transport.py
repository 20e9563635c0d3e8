"""Fluxes across a barrier: counted from a trajectory, and predicted by steady Nernst–Planck from the
D(x) and F(x) estimated from the same trajectory.

For overdamped dynamics in 1D with regions A = {x ≤ a} and B = {x ≥ b}, the rate of reactive transitions
A → B (a particle last in A first enters B) per unit time equals the steady Nernst–Planck flux through
[a, b] with the equilibrium concentration at a and an absorbing end at b (transition-path theory):

    J_AB = c_eq(a) e^{βF(a)} / ∫_a^b e^{βF(x)} / D(x) dx,

so counting crossings in the trajectory checks D(x), F(x) and the solver together, with no fitted number
in between. Units: whatever the positions use (m for trajectories from :func:`continuum.diffusion.coordinates`),
times in s; concentrations are particles per unit length (1D), fluxes particles per unit time.
"""
from __future__ import annotations

import numpy as np

from hybrid.units import K_B

from .grid import Grid
from .nernst_planck import Dirichlet, NernstPlanck, Species


def reactive_flux(positions, a: float, b: float, dt: float) -> tuple[float, float, int]:
    """(J, σ_J, n): A → B transitions per unit time counted in ``positions`` (F frames, W particles), with
    the Poisson error √n / T; A = {x ≤ a}, B = {x ≥ b}, frames ``dt`` apart. Particles that start between
    a and b are counted only after they have visited A."""
    x = np.asarray(positions, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"positions must be (frames >= 2, particles), got shape {x.shape}")
    if not b > a:
        raise ValueError(f"reactive_flux needs b > a, got a = {a}, b = {b}")
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be the positive time between frames, got {dt}")
    last = np.where(x[0] <= a, 0, np.where(x[0] >= b, 1, -1))        # 0: last in A, 1: last in B
    n = 0
    for frame in x[1:]:
        in_a, in_b = frame <= a, frame >= b
        n += int(np.sum(in_b & (last == 0)))
        last = np.where(in_a, 0, np.where(in_b, 1, last))
    total = (x.shape[0] - 1) * dt
    return n / total, np.sqrt(n) / total, n


def equilibrium_concentration(free_energy, n_particles: float, x, temperature: float) -> np.ndarray:
    """c(x) = N e^{−βF(x)} / ∫ e^{−βF}: particles per length at ``x`` for N particles in a free-energy
    profile ``free_energy`` (a binned :class:`continuum.profiles.Profile` in J, the PMF per length, as
    :func:`continuum.diffusion.estimate_diffusion_profile` returns it)."""
    if free_energy.edges is None:
        raise ValueError("equilibrium_concentration needs a binned free-energy profile (Profile.edges)")
    beta = 1.0 / (K_B * temperature)
    f = free_energy.values
    z = np.sum(np.diff(free_energy.edges) * np.exp(-beta * (f - f.min())))
    return n_particles * np.exp(-beta * (free_energy(x) - f.min())) / z


def predicted_flux(diffusivity, free_energy, a: float, b: float, c_a: float, c_b: float = 0.0,
                   temperature: float = 298.15, n_cells: int = 400) -> float:
    """Steady Nernst–Planck flux through [a, b] with D(x) ``diffusivity`` and PMF ``free_energy`` (J; any
    callables, e.g. the Profiles of a D(x) estimate), Dirichlet concentrations c_a, c_b at the ends; the
    particles carry no charge (the field, if any, is inside F). Returns the flux (particles per time, 1D)."""
    if not b > a:
        raise ValueError(f"predicted_flux needs b > a, got a = {a}, b = {b}")
    grid = Grid.uniform(b - a, int(n_cells), start=a)
    species = Species("particle", 0, diffusivity, Dirichlet(float(c_a)), Dirichlet(float(c_b)), pmf=free_energy)
    sol = NernstPlanck(grid, [species], temperature).steady()
    return float(sol.fluxes[0].mean())
