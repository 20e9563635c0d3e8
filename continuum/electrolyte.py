"""Closed forms of dilute-electrolyte theory, in SI units.

Every function here is an analytic reference used by the solvers' tests,
the benchmark and the examples:

* thermal voltage          V_T = R T / F                                [V]
* Debye length             λ_D = sqrt(ε_r ε0 R T / (F² Σ_k z_k² c_k))   [m]
* Gouy–Chapman potential   φ(x) = (4 V_T / z) artanh[tanh(z φ0 / 4 V_T) e^{-x/λ_D}]
  for a symmetric z:z electrolyte next to a wall at potential φ0.
* Grahame equation         σ = sqrt(8 c N_A ε_r ε0 k_B T) sinh(z φ0 / 2 V_T)
* Goldman–Hodgkin–Katz flux through a membrane of thickness L with a linear
  potential, left concentration c_L, right c_R, Δφ = φ(0) − φ(L):
  J = (D/L) ψ (c_L − c_R e^{-ψ}) / (1 − e^{-ψ}),  ψ = z Δφ / V_T  [mol m⁻² s⁻¹]
* Nernst potential (zero GHK flux): Δφ_N = φ(0) − φ(L) = −(V_T/z) ln(c_L/c_R).

Concentrations are in mol/m³ (1 mM = 1 mol/m³), lengths in m, potentials in
V, temperatures in K.
"""
from __future__ import annotations

import numpy as np

from hybrid.units import E_CHARGE, EPS0, FARADAY, GAS_CONSTANT, K_B, N_A


def thermal_voltage(temperature: float) -> float:
    """V_T = R T / F in V (25.69 mV at 298.15 K)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature} K")
    return GAS_CONSTANT * temperature / FARADAY


def debye_length(concentrations, charges, eps_r: float, temperature: float) -> float:
    """Debye length λ_D = sqrt(ε_r ε0 R T / (F² Σ_k z_k² c_k)) in m.

    concentrations: (M,) bulk concentrations in mol/m³; charges: (M,) valences z_k.
    """
    c = np.atleast_1d(np.asarray(concentrations, dtype=float))
    z = np.atleast_1d(np.asarray(charges, dtype=float))
    if c.shape != z.shape:
        raise ValueError(f"concentrations {c.shape} and charges {z.shape} differ in shape")
    strength = np.sum(z**2 * c)
    if strength <= 0:
        raise ValueError("Debye length needs at least one charged species with c > 0")
    return float(np.sqrt(eps_r * EPS0 * GAS_CONSTANT * temperature / (FARADAY**2 * strength)))


def gouy_chapman_potential(x, phi0: float, concentration: float, valence: int,
                           eps_r: float, temperature: float):
    """Gouy–Chapman φ(x) in V for a z:z electrolyte of bulk concentration
    ``concentration`` (mol/m³) next to a wall at x = 0 held at ``phi0`` (V).

    x: array of distances from the wall in m (x >= 0); returns an array of the
    same shape.  φ → 0 in the bulk.
    """
    x = np.asarray(x, dtype=float)
    vt = thermal_voltage(temperature)
    lam = debye_length([concentration, concentration], [valence, -valence], eps_r, temperature)
    g = np.tanh(valence * phi0 / (4 * vt))
    return 4 * vt / valence * np.arctanh(g * np.exp(-x / lam))


def gouy_chapman_concentrations(x, phi0: float, concentration: float, valence: int,
                                eps_r: float, temperature: float):
    """Boltzmann concentrations (c₊, c₋) in mol/m³ of the Gouy–Chapman layer:
    c± = c exp(∓ z φ(x) / V_T).  Returns an array of shape (2,) + x.shape."""
    phi = gouy_chapman_potential(x, phi0, concentration, valence, eps_r, temperature)
    u = valence * phi / thermal_voltage(temperature)
    return np.stack([concentration * np.exp(-u), concentration * np.exp(u)])


def grahame_surface_charge(phi0: float, concentration: float, valence: int,
                           eps_r: float, temperature: float) -> float:
    """Grahame surface charge density in C/m² of a wall at ``phi0`` (V) facing
    a z:z electrolyte: σ = sqrt(8 c N_A ε_r ε0 k_B T) sinh(z φ0 / 2 V_T)."""
    n0 = concentration * N_A
    return float(np.sqrt(8 * n0 * eps_r * EPS0 * K_B * temperature)
                 * np.sinh(valence * E_CHARGE * phi0 / (2 * K_B * temperature)))


def ghk_flux(diffusivity: float, length: float, c_left: float, c_right: float,
             valence: int, delta_phi: float, temperature: float) -> float:
    """Goldman–Hodgkin–Katz flux in mol m⁻² s⁻¹ (positive: left to right).

    diffusivity in m²/s, length in m, concentrations in mol/m³,
    delta_phi = φ(0) − φ(L) in V (the potential falls by delta_phi across the
    membrane, driving cations to the right when positive).
    """
    psi = valence * delta_phi / thermal_voltage(temperature)
    if abs(psi) < 1e-8:   # pure diffusion limit, first-order correction
        return diffusivity / length * ((c_left - c_right) + 0.5 * psi * (c_left + c_right))
    return diffusivity / length * psi * (c_left - c_right * np.exp(-psi)) / (-np.expm1(-psi))


def nernst_potential(c_left: float, c_right: float, valence: int, temperature: float) -> float:
    """Δφ = φ(0) − φ(L) in V at which the GHK flux vanishes:
    Δφ_N = −(V_T / z) ln(c_L / c_R)."""
    if c_left <= 0 or c_right <= 0:
        raise ValueError(f"Nernst potential needs positive concentrations, got {c_left}, {c_right}")
    return -thermal_voltage(temperature) / valence * np.log(c_left / c_right)
