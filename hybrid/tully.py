"""Tully's three one-dimensional two-state models (J. C. Tully, J. Chem. Phys. 93, 1061 (1990)).

The standard validation of surface hopping. Each is a diabatic matrix in the particle's x coordinate, with
Tully's parameters in atomic units (Hartree, bohr) and mass 2000 mₑ; y and z feel nothing:

* simple avoided crossing (SAC): V11 = A (1 − e^{−Bx}) for x ≥ 0, −A (1 − e^{Bx}) for x < 0; V22 = −V11;
  V12 = C e^{−Dx²}; A = 0.01, B = 1.6, C = 0.005, D = 1.0;
* dual avoided crossing (DAC): V11 = 0, V22 = −A e^{−Bx²} + E0, V12 = C e^{−Dx²}; A = 0.10, B = 0.28,
  E0 = 0.05, C = 0.015, D = 0.06;
* extended coupling with reflection (ECR): V11 = A, V22 = −A; V12 = B e^{Cx} for x < 0, B (2 − e^{−Cx})
  for x ≥ 0; A = 6e-4, B = 0.10, C = 0.90.

Units at this edge only: positions (T, 1, 3) Å in, H in eV and ∇H in eV/Å out. ``MASS_AMU`` is the
particle's mass in amu; :func:`momentum_au_to_velocity` turns Tully's initial momentum k (ħ/bohr) into a
velocity in Å/fs.
"""
from __future__ import annotations

import numpy as np

from . import units
from .errors import InputError
from .states import DiabaticModel

MASS_AU = 2000.0
MASS_AMU = MASS_AU * units.ELECTRON_MASS_AMU


def momentum_au_to_velocity(k_au) -> np.ndarray:
    """Velocity (Å/fs) of the 2000 mₑ particle with momentum k (atomic units, ħ/bohr)."""
    return np.asarray(k_au, float) / MASS_AU * units.BOHR / units.AU_TIME


class _Tully(DiabaticModel):
    n_states = 2

    def __init__(self, eps: float = 0.0):
        self.eps = float(eps)

    def _au(self, x):
        """(V (T, 2, 2) Hartree, dV/dx (T, 2, 2) Hartree/bohr) at x (T,) bohr."""
        raise NotImplementedError

    def diabatic(self, positions):
        positions = np.asarray(positions, float)
        if positions.ndim != 3 or positions.shape[1:] != (1, 3):
            raise InputError(f"{type(self).__name__}: positions must be (T, 1, 3) Å (one particle), "
                             f"got {positions.shape}")
        V, dV = self._au(positions[:, 0, 0] / units.BOHR)
        H = V * units.HARTREE
        dH = np.zeros(V.shape + (1, 3))
        dH[..., 0, 0] = dV * units.HARTREE / units.BOHR
        return H, dH


def _sym(v11, v22, v12):
    V = np.empty(v11.shape + (2, 2))
    V[:, 0, 0], V[:, 1, 1], V[:, 0, 1], V[:, 1, 0] = v11, v22, v12, v12
    return V


class SimpleAvoidedCrossing(_Tully):
    """Tully's model 1 (module docstring)."""
    A, B, C, D = 0.01, 1.6, 0.005, 1.0

    def _au(self, x):
        A, B, C, D = self.A, self.B, self.C, self.D
        e = np.exp(-B * np.abs(x))
        v11 = np.sign(x) * A * (1 - e)
        d11 = A * B * e
        v12 = C * np.exp(-D * x**2)
        return _sym(v11, -v11, v12), _sym(d11, -d11, -2 * D * x * v12)


class DualAvoidedCrossing(_Tully):
    """Tully's model 2 (module docstring)."""
    A, B, E0, C, D = 0.10, 0.28, 0.05, 0.015, 0.06

    def _au(self, x):
        g = np.exp(-self.B * x**2)
        v22 = -self.A * g + self.E0
        d22 = 2 * self.A * self.B * x * g
        v12 = self.C * np.exp(-self.D * x**2)
        zero = np.zeros_like(x)
        return _sym(zero, v22, v12), _sym(zero, d22, -2 * self.D * x * v12)


class ExtendedCoupling(_Tully):
    """Tully's model 3 (module docstring)."""
    A, B, C = 6e-4, 0.10, 0.90

    def _au(self, x):
        e = np.exp(-self.C * np.abs(x))
        left = x < 0
        v12 = np.where(left, self.B * e, self.B * (2 - e))
        d12 = self.B * self.C * e          # both branches: (B e^{Cx})' = BC e^{Cx}, (B (2 − e^{−Cx}))' = BC e^{−Cx}
        a = np.full_like(x, self.A)
        return _sym(a, -a, v12), _sym(np.zeros_like(x), np.zeros_like(x), d12)


MODELS = {"sac": SimpleAvoidedCrossing, "dac": DualAvoidedCrossing, "ecr": ExtendedCoupling}


CHANNELS = ("reflected_0", "transmitted_0", "reflected_1", "transmitted_1")


def x_feature(positions):
    """The particle's x (T, 1) from positions (T, 1, 3) (numpy or torch): the feature of a learned model."""
    return positions[:, 0, :1]


def scatter(model, k_au: float, n_traj: int, seed: int, dt_au: float = 0.5, x0_bohr: float = -10.0,
            bound_bohr: float = 10.0, max_steps: int = 400000, **hopping) -> dict:
    """Tully's scattering experiment: ``n_traj`` FSSH trajectories of the 2000 mₑ particle from x0 on the
    lower adiabatic state with momentum k (ħ/bohr), each stopped once it moves outward beyond ±bound.
    ``model``: a name in :data:`MODELS`, or any model of one particle with ``states`` (e.g. a learned one).

    Returns the count of each channel in :data:`CHANNELS` (reflected/transmitted × final adiabatic state),
    n, unfinished (trajectories still inside after ``max_steps``), the largest |E(t) − E(0)| over the
    initial kinetic energy, and the mean numbers of hops and frustrated hops. ``hopping``: keyword
    arguments of :func:`hybrid.surface_hopping.surface_hopping` (frustrated, decoherence, n_substeps).
    """
    from .surface_hopping import surface_hopping
    if isinstance(model, str):
        if model not in MODELS:
            raise InputError(f"scatter: model must be one of {sorted(MODELS)}, got {model!r}")
        model = MODELS[model]()
    if not (k_au > 0 and n_traj >= 1 and bound_bohr > 0):
        raise InputError(f"scatter: need k > 0, n_traj >= 1, bound > 0 (got {k_au}, {n_traj}, {bound_bohr})")
    x = np.zeros((n_traj, 1, 3))
    x[:, 0, 0] = x0_bohr * units.BOHR
    v = np.zeros((n_traj, 1, 3))
    v[:, 0, 0] = momentum_au_to_velocity(k_au)
    bound = bound_bohr * units.BOHR

    def out(x, v):
        return ((x[:, 0, 0] > bound) & (v[:, 0, 0] > 0)) | ((x[:, 0, 0] < -bound) & (v[:, 0, 0] < 0))

    r = surface_hopping(model, x, v, [MASS_AMU], 0, dt_au * units.AU_TIME, max_steps, seed=seed,
                        stop=out, record_every=max_steps, **hopping)
    finished = out(r.positions, r.velocities)
    right = r.positions[:, 0, 0] > 0
    counts = {f"{'transmitted' if t else 'reflected'}_{s}": int(np.sum(finished & (right == t) & (r.active == s)))
              for s in (0, 1) for t in (False, True)}
    return {**counts, "n": int(n_traj), "unfinished": int(np.sum(~finished)),
            "max_rel_energy_error": float(np.max(r.energy_error / r.kinetic0)),
            "hops": float(r.hops.mean()), "frustrated": float(r.frustrated.mean()), "steps": int(r.steps.max())}
