"""Analytic model potentials with closed-form thermodynamics: the test beds of the samplers and estimators.

Units: energy eV, length Å, force constants eV/Å².

* :class:`Harmonic`: E = ½ k Σ_i |r_i - c_i|², each atom tied to its own centre; classically the
  configurational free energy of N atoms in 3-D is A = -(3N/2) kT ln(2π kT / k), so two wells of
  constants k_0 and k_1 differ by ΔA = (3N/2) kT ln(k_1 / k_0).
* :class:`DoubleWell`: E = h ((x - x_0)² / a² - 1)² + ½ k_⊥ ((y - y_0)² + (z - z_0)²) per atom: minima at
  x = x_0 ± a, barrier h between them.
"""
from __future__ import annotations

import numpy as np

from .errors import InputError
from .potential import Potential, Result
from .system import AtomicSystem


def _positive(value, name: str) -> float:
    v = float(value)
    if not (np.isfinite(v) and v > 0):
        raise InputError(f"{name} must be a positive number, got {value!r}")
    return v


class Harmonic(Potential):
    """E = ½ k Σ_i |r_i - c_i|² (eV) with k in eV/Å² and ``centres`` (N, 3) Å (default: the origin)."""

    min_distance = 0.0

    def __init__(self, k: float, centres=None, name: str = "harmonic"):
        self.k = _positive(k, "Harmonic: k")
        self.centres = None if centres is None else np.asarray(centres, float).reshape(-1, 3)
        self.name = name

    def _compute(self, system: AtomicSystem) -> Result:
        c = np.zeros((len(system), 3)) if self.centres is None else self.centres
        if c.shape != system.positions.shape:
            raise InputError(f"{self.name}: {len(c)} centres for {len(system)} atoms")
        d = system.positions - c
        e = 0.5 * self.k * np.sum(d * d, axis=1)
        return Result(float(e.sum()), -self.k * d, energies=e)


class DoubleWell(Potential):
    """Per atom E = h ((x - x_0)²/a² - 1)² + ½ k_perp ((y - y_0)² + (z - z_0)²) (eV); h eV, a Å,
    k_perp eV/Å², ``origin`` (x_0, y_0, z_0) Å."""

    min_distance = 0.0

    def __init__(self, barrier: float, half_width: float, k_perp: float = 1.0, origin=(0.0, 0.0, 0.0),
                 name: str = "double well"):
        self.h = _positive(barrier, "DoubleWell: barrier")
        self.a = _positive(half_width, "DoubleWell: half_width")
        self.k_perp = _positive(k_perp, "DoubleWell: k_perp")
        self.origin = np.asarray(origin, float).reshape(3)
        self.name = name

    def energy_x(self, x) -> np.ndarray:
        """The x part of the energy (eV) at ``x`` (Å), any shape: what the x-marginal is Boltzmann in."""
        s = ((np.asarray(x, float) - self.origin[0]) / self.a) ** 2 - 1.0
        return self.h * s * s

    def _compute(self, system: AtomicSystem) -> Result:
        d = system.positions - self.origin
        s = (d[:, 0] / self.a) ** 2 - 1.0
        e = self.h * s * s + 0.5 * self.k_perp * (d[:, 1] ** 2 + d[:, 2] ** 2)
        f = np.empty_like(d)
        f[:, 0] = -4.0 * self.h * s * d[:, 0] / self.a**2
        f[:, 1:] = -self.k_perp * d[:, 1:]
        return Result(float(e.sum()), f, energies=e)
