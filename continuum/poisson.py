"""Electrostatic potential φ(x) from a binned charge density (SI units).

Gauss's law in one dimension, ε dE/dx = ρ with ε = ε_r ε0 and E = −dφ/dx,
integrated exactly for a charge density that is constant in each bin:

    E_j     = E_0 + (1/ε) Σ_{i<j} ρ_i h_i                 on the n+1 bin edges
    φ_{j+1} = φ_j − h_j (E_j + E_{j+1}) / 2               on the bin edges
    φ(c_i)  = φ_i − E_i h_i/2 − ρ_i h_i² / (8ε)          at the bin centres

Two conventions fix E_0:

* ``"periodic"``: the slab is one period of an infinite stack.  Any net
  charge is removed as a uniform background (reported as ``net_charge``),
  and the field has zero mean over the period, so φ(L) = φ(0).
* ``"vacuum"`` (dipole-corrected, open boundaries): the field vanishes
  outside on the left, E(x₀⁻) = 0; a wall charge σ at the left edge gives
  E_0 = σ/ε.  For a neutral system the field then also vanishes on the
  right, and φ(L) − φ(0) is the dipole potential step.

Gauge: φ = 0 at the left edge, the right edge or on average (``reference``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybrid.units import EPS0

from .profiles import Profile

CONVENTIONS = ("periodic", "vacuum")


@dataclass
class PoissonResult:
    """edges: (n+1,) m; field: (n+1,) V/m and potential: (n+1,) V on the
    edges; potential_centers: (n,) V; net_charge: C/m² (for "periodic", the
    charge removed as background; for "vacuum", the total including the wall
    charge); convention: the one used."""
    edges: np.ndarray
    field: np.ndarray
    potential: np.ndarray
    potential_centers: np.ndarray
    net_charge: float
    convention: str


def solve_poisson_1d(edges, rho, convention: str = "vacuum", eps_r: float = 1.0,
                     surface_charge: float = 0.0, reference: str = "left") -> PoissonResult:
    """φ and E from a charge density ρ given as bin averages.

    edges: (n+1,) m; rho: (n,) C/m³; eps_r: relative permittivity (1 when ρ
    holds every charge, as in an all-atom trajectory); surface_charge: wall
    charge σ (C/m²) at the left edge, "vacuum" only; reference: "left",
    "right" or "mean" — where φ = 0.
    """
    edges = np.asarray(edges, dtype=float)
    rho = np.asarray(rho, dtype=float)
    if edges.ndim != 1 or rho.shape != (edges.size - 1,):
        raise ValueError(f"rho must have shape ({edges.size - 1},) for {edges.size} edges, got {rho.shape}")
    if not np.all(np.diff(edges) > 0):
        raise ValueError("edges must be strictly increasing")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if reference not in ("left", "right", "mean"):
        raise ValueError(f"reference must be 'left', 'right' or 'mean', got {reference!r}")
    if eps_r <= 0:
        raise ValueError(f"eps_r must be positive, got {eps_r}")
    eps = eps_r * EPS0
    h = np.diff(edges)
    if convention == "periodic":
        if surface_charge:
            raise ValueError("surface_charge is only meaningful with the 'vacuum' convention")
        net = float(np.sum(rho * h))
        rho = rho - net / h.sum()
    else:
        net = float(np.sum(rho * h) + surface_charge)
    field = np.concatenate([[0.0], np.cumsum(rho * h)]) / eps
    if convention == "periodic":
        field -= np.sum(h * (field[1:] + field[:-1]) / 2) / h.sum()
    else:
        field += surface_charge / eps
    phi = np.concatenate([[0.0], -np.cumsum(h * (field[1:] + field[:-1]) / 2)])
    centers = phi[:-1] - field[:-1] * h / 2 - rho * h**2 / (8 * eps)
    if reference == "right":
        shift = phi[-1]
    elif reference == "mean":
        shift = np.sum(h * (phi[1:] + phi[:-1]) / 2) / h.sum()
    else:
        shift = 0.0
    return PoissonResult(edges, field, phi - shift, centers - shift, net, convention)


def potential_from_profile(charge: Profile, convention: str = "vacuum", eps_r: float = 1.0,
                           surface_charge: float = 0.0, reference: str = "left"):
    """φ(x) and E(x) as :class:`Profile` objects on the bin edges from a
    binned charge-density profile (C/m³, e.g. ``density_profile(...,
    weights="charge")``).  Errors come from solving Poisson's equation for
    every block average of ρ and taking the block standard error.

    Returns (potential, field, result).
    """
    if charge.edges is None:
        raise ValueError("potential_from_profile needs a binned profile (Profile.edges)")
    if charge.unit != "C/m^3":
        raise ValueError(f"potential_from_profile needs a charge density in C/m^3, got a {charge.quantity!r} "
                         f"profile in {charge.unit!r}: use density_profile(..., weights=\"charge\")")
    res = solve_poisson_1d(charge.edges, charge.values, convention, eps_r, surface_charge, reference)
    phi_err = field_err = phi_blocks = None
    if charge.blocks is not None and len(charge.blocks) > 1:
        sols = [solve_poisson_1d(charge.edges, b, convention, eps_r, surface_charge, reference)
                for b in charge.blocks]
        phi_blocks = np.array([s.potential for s in sols])
        n = len(sols)
        phi_err = phi_blocks.std(axis=0, ddof=1) / np.sqrt(n)
        field_err = np.array([s.field for s in sols]).std(axis=0, ddof=1) / np.sqrt(n)
    period = charge.edges[-1] - charge.edges[0] if convention == "periodic" else None
    potential = Profile(res.edges, res.potential, phi_err, "electrostatic potential", "V",
                        blocks=phi_blocks, period=period)
    field = Profile(res.edges, res.field, field_err, "electric field", "V/m", period=period)
    return potential, field, res
