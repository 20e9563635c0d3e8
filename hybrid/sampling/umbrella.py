"""Umbrella sampling along a collective variable with a cheap level, unbiased by MBAR and optionally
reweighted to an expensive level.

Window k samples U_cheap(R) + w_k(ξ(R)) with the harmonic restraint w_k = ½ κ (ξ - ξ_k)² (a
:class:`HarmonicRestraint`, itself a Potential: add it to any level). All reduced potentials are taken
relative to β U_cheap, which every window shares: window k's is β w_k(ξ_n), the unbiased cheap level's is
0, and an expensive target level's is β (U_target - U_cheap)(R_n), so only the energy *difference* at each
sample is needed (exponential reweighting inside MBAR; pymbar's ``FES`` does the histogram).

Units: ξ in the variable's own unit (Å for :class:`Coordinate` and :class:`Distance`), κ in eV per unit²,
energies eV, temperature K; the profile F(ξ) in eV, zero at its lowest bin.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..potential import Potential, Result
from ..system import AtomicSystem


class Coordinate:
    """ξ = the ``axis`` (0, 1, 2 = x, y, z) Cartesian coordinate of atom ``atom``, Å."""

    def __init__(self, atom: int, axis: int):
        if axis not in (0, 1, 2):
            raise InputError(f"Coordinate: axis must be 0, 1 or 2, got {axis!r}")
        self.atom, self.axis = int(atom), int(axis)
        self.name = f"{'xyz'[axis]}({atom})"

    def __call__(self, system: AtomicSystem) -> tuple[float, np.ndarray]:
        """(ξ, ∂ξ/∂R (N, 3))."""
        if not 0 <= self.atom < len(system):
            raise InputError(f"Coordinate: atom {self.atom} outside a system of {len(system)} atoms")
        g = np.zeros((len(system), 3))
        g[self.atom, self.axis] = 1.0
        return float(system.positions[self.atom, self.axis]), g


class Distance:
    """ξ = |R_j - R_i| (Å, no periodic images)."""

    def __init__(self, i: int, j: int):
        if int(i) == int(j):
            raise InputError(f"Distance: the two atoms must differ, got {i} and {j}")
        self.i, self.j = int(i), int(j)
        self.name = f"d({i},{j})"

    def __call__(self, system: AtomicSystem) -> tuple[float, np.ndarray]:
        for a in (self.i, self.j):
            if not 0 <= a < len(system):
                raise InputError(f"Distance: atom {a} outside a system of {len(system)} atoms")
        d = system.positions[self.j] - system.positions[self.i]
        r = float(np.linalg.norm(d))
        g = np.zeros((len(system), 3))
        g[self.j], g[self.i] = d / r, -d / r
        return r, g


class HarmonicRestraint(Potential):
    """E = ½ κ (ξ(R) - ξ_0)² (eV), forces -κ (ξ - ξ_0) ∂ξ/∂R; ``cv`` maps a system to (ξ, ∂ξ/∂R)."""

    min_distance = 0.0

    def __init__(self, cv, centre: float, kappa: float):
        if not (np.isfinite(float(kappa)) and float(kappa) > 0):
            raise InputError(f"HarmonicRestraint: kappa must be positive, got {kappa!r}")
        self.cv, self.centre, self.kappa = cv, float(centre), float(kappa)
        self.name = f"restraint {getattr(cv, 'name', 'ξ')}={self.centre:g}"

    def _compute(self, system: AtomicSystem) -> Result:
        xi, grad = self.cv(system)
        dx = xi - self.centre
        return Result(0.5 * self.kappa * dx * dx, -self.kappa * dx * grad, info={"cv": xi})


@dataclass
class FreeEnergyProfile:
    """F(ξ) at bin ``centres``: ``free_energy`` and ``error`` (eV, zero at the lowest bin), ``counts`` samples
    per bin (all windows), for the ``level`` it describes, at ``temperature`` K."""

    centres: np.ndarray
    free_energy: np.ndarray
    error: np.ndarray
    counts: np.ndarray
    temperature: float
    level: str

    def plot(self, path, others=(), xlabel: str = "ξ") -> str:
        """Write F(ξ) with ±1σ bands (and ``others`` profiles on the same axes) to ``path`` (png)."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        for p in (self, *others):
            ok = np.isfinite(p.free_energy)
            line, = ax.plot(p.centres[ok], p.free_energy[ok], label=p.level)
            ax.fill_between(p.centres[ok], (p.free_energy - p.error)[ok], (p.free_energy + p.error)[ok],
                            color=line.get_color(), alpha=0.3)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("F (eV)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return str(path)


def umbrella_profile(cv_samples, centres, kappa: float, temperature: float, bin_edges, delta_energy=None,
                     level: str = "cheap", correlated: bool = True) -> FreeEnergyProfile:
    """F(ξ) from umbrella windows by MBAR (pymbar ``FES``, histogram).

    cv_samples : K sequences of ξ at each window's samples, in sampling order; centres : (K,) ξ_k;
    kappa : κ (eV/unit²); bin_edges : (B+1,) increasing; delta_energy : optional K sequences of
    U_target - U_cheap (eV) at the same samples, to reweight the profile to the target level.
    Each window is subsampled by the statistical inefficiency of its ξ series (of its ΔU series too when
    reweighting, the larger g) before MBAR sees it.
    """
    from .estimators import _beta, _pymbar, statistical_inefficiency
    beta = _beta(temperature)
    c = np.asarray(centres, float)
    if len(cv_samples) != len(c):
        raise InputError(f"umbrella_profile: {len(c)} window centres but {len(cv_samples)} sample series")
    if delta_energy is not None and len(delta_energy) != len(c):
        raise InputError(f"umbrella_profile: {len(c)} windows but {len(delta_energy)} delta_energy series")
    if not (np.isfinite(float(kappa)) and float(kappa) > 0):
        raise InputError(f"umbrella_profile: kappa must be positive, got {kappa!r}")
    edges = np.asarray(bin_edges, float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise InputError("umbrella_profile: bin_edges must be at least 2 increasing values")
    xs, dus = [], []
    for k, x in enumerate(cv_samples):
        x = np.asarray(x, float)
        if x.ndim != 1 or len(x) < 4 or not np.all(np.isfinite(x)):
            raise InputError(f"umbrella_profile: window {k} needs >= 4 finite ξ samples, got shape {x.shape}")
        du = None
        if delta_energy is not None:
            du = np.asarray(delta_energy[k], float)
            if du.shape != x.shape or not np.all(np.isfinite(du)):
                raise InputError(f"umbrella_profile: delta_energy[{k}] must be {len(x)} finite energies (eV)")
        step = 1
        if correlated:
            g = statistical_inefficiency(x)
            if du is not None:
                g = max(g, statistical_inefficiency(du))
            step = max(int(np.ceil(g)), 1)
        xs.append(x[::step])
        dus.append(None if du is None else du[::step])
    x_n = np.concatenate(xs)
    n_k = np.array([len(x) for x in xs])
    u_kn = beta * 0.5 * float(kappa) * (x_n[None, :] - c[:, None]) ** 2
    u_n = np.zeros(len(x_n)) if delta_energy is None else beta * np.concatenate(dus)
    pymbar, _, _ = _pymbar()
    fes = pymbar.FES(u_kn, n_k)
    fes.generate_fes(u_n, x_n, fes_type="histogram", histogram_parameters={"bin_edges": edges})
    mid = 0.5 * (edges[1:] + edges[:-1])
    counts = np.histogram(x_n, bins=edges)[0]
    f, df = np.full(len(mid), np.nan), np.full(len(mid), np.nan)
    filled = counts > 0
    res = fes.get_fes(mid[filled], reference_point="from-lowest", uncertainty_method="analytical")
    f[filled], df[filled] = np.asarray(res["f_i"]) / beta, np.asarray(res["df_i"]) / beta
    return FreeEnergyProfile(mid, f, df, counts, float(temperature), level)
