"""Hybrid Monte Carlo with a cheap proposal and an exact reference ensemble.

Each iteration draws momenta p ~ exp(-β K(p)), runs ``n_steps`` velocity-Verlet steps on the *surrogate*
(an MLIP, a Δ-ML model, a blend: any Potential), and accepts the end point (x', p') with probability

    min(1, exp(-β [H_ref(x', p') - H_ref(x, p)])),   H_ref = U_ref(x) + K(p).

Velocity Verlet on any potential is time-reversible and volume-preserving, so the proposal is symmetric in
phase space and the chain's stationary distribution is exp(-β H_ref): the positions follow the reference
Boltzmann distribution exactly, however wrong the surrogate is. The surrogate only decides the acceptance
rate: H_ref changes along the trajectory by ΔU_ref - ΔU_sur plus the integrator's energy error. One
reference energy (:meth:`Potential.energy`: an SCF without its gradient) is needed per iteration; the
surrogate is called ``n_steps`` times.

The step is jittered, dt (1 + j u) with u uniform in [-1, 1] (``jitter`` j, default 0.1), so that the
trajectory length never resonates with a period of the system.

Units: time fs, energy eV, mass amu, temperature K; positions Å.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..potential import Potential
from ..system import AtomicSystem
from ..units import ACCEL, KB_EV


def default_masses(system: AtomicSystem) -> np.ndarray:
    """(N,) standard atomic masses (amu) of the system's elements (ASE's table)."""
    from ase.data import atomic_masses
    return atomic_masses[system.numbers].astype(float)


@dataclass
class HMCRun:
    """What :meth:`SurrogateHMC.run` returns.

    energies : (n,) U_ref of each sample (eV); accepted : (n,) bool, whether each iteration moved;
    observables : (n, ...) ``observe(system)`` of each sample, or None; positions : (n, N, 3) Å if kept;
    reference_calls / surrogate_calls : potential evaluations made; wall : seconds.
    """

    energies: np.ndarray
    accepted: np.ndarray
    observables: np.ndarray | None
    positions: np.ndarray | None
    reference_calls: int
    surrogate_calls: int
    wall: float
    final: AtomicSystem
    info: dict = field(default_factory=dict)

    @property
    def acceptance_rate(self) -> float:
        return float(np.mean(self.accepted)) if len(self.accepted) else float("nan")

    def statistical_inefficiency(self, series=None) -> float:
        """g (samples) of ``series`` (default: the observable if 1-D per sample, else U_ref)."""
        from .estimators import statistical_inefficiency
        if series is None:
            obs = self.observables
            series = obs if obs is not None and obs.ndim == 1 else self.energies
        return statistical_inefficiency(series)

    def reference_calls_per_effective_sample(self, series=None) -> float:
        """reference calls / (n / g): the cost of one independent sample of ``series``."""
        n = len(self.energies)
        return self.reference_calls * self.statistical_inefficiency(series) / n


class SurrogateHMC:
    """Hybrid Monte Carlo: trajectories on ``surrogate``, Metropolis test on ``reference`` (module docstring).

    temperature K; timestep fs; n_steps velocity-Verlet steps per proposal; masses (N,) amu (default: the
    elements' standard masses); seed for numpy's generator.
    """

    def __init__(self, reference: Potential, surrogate: Potential, temperature: float, timestep: float,
                 n_steps: int, masses=None, jitter: float = 0.1, seed=None):
        for which, p in (("reference", reference), ("surrogate", surrogate)):
            if not isinstance(p, Potential):
                raise InputError(f"SurrogateHMC: {which} is a {type(p).__name__}, not a Potential")
        for name, v in (("temperature", temperature), ("timestep", timestep)):
            if not (np.isfinite(float(v)) and float(v) > 0):
                raise InputError(f"SurrogateHMC: {name} must be positive, got {v!r}")
        if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 1:
            raise InputError(f"SurrogateHMC: n_steps must be an integer >= 1, got {n_steps!r}")
        if not 0 <= float(jitter) < 1:
            raise InputError(f"SurrogateHMC: jitter must be in [0, 1), got {jitter!r}")
        self.reference, self.surrogate = reference, surrogate
        self.temperature, self.timestep = float(temperature), float(timestep)
        self.n_steps, self.jitter = int(n_steps), float(jitter)
        self.masses = None if masses is None else np.asarray(masses, float)
        self.rng = np.random.default_rng(seed)
        self.kT = KB_EV * self.temperature

    def _masses(self, system: AtomicSystem) -> np.ndarray:
        m = default_masses(system) if self.masses is None else self.masses
        if m.shape != (len(system),) or np.any(~np.isfinite(m)) or np.any(m <= 0):
            raise InputError(f"SurrogateHMC: masses must be {len(system)} positive numbers (amu), got shape "
                             f"{m.shape}")
        return m

    def run(self, system: AtomicSystem, n_samples: int, observe=None, keep_positions: bool = False,
            progress: bool = False) -> HMCRun:
        """``n_samples`` iterations from ``system``; each iteration's state (moved or not) is one sample."""
        import time
        if isinstance(n_samples, bool) or int(n_samples) != n_samples or n_samples < 1:
            raise InputError(f"SurrogateHMC.run: n_samples must be an integer >= 1, got {n_samples!r}")
        m = self._masses(system)[:, None]
        kT, rng = self.kT, self.rng
        t0 = time.perf_counter()
        x = system.positions.copy()
        u_ref = self.reference.energy(system)
        f_sur = self.surrogate.compute(system).forces
        n_ref, n_sur = 1, 1
        energies = np.empty(n_samples)
        accepted = np.zeros(n_samples, bool)
        obs, pos = [], [] if keep_positions else None
        it = range(int(n_samples))
        if progress:
            from tqdm import tqdm
            it = tqdm(it, desc="hybrid MC", unit="sample")
        for n in it:
            v = rng.normal(size=x.shape) * np.sqrt(kT * ACCEL / m)           # Å/fs
            k0 = 0.5 * np.sum(m * v * v) / ACCEL                              # eV
            dt = self.timestep * (1.0 + self.jitter * rng.uniform(-1.0, 1.0))
            y, f = x.copy(), f_sur
            for _ in range(self.n_steps):
                v = v + 0.5 * dt * ACCEL * f / m
                y = y + dt * v
                f = self.surrogate.compute(system.with_positions(y)).forces
                v = v + 0.5 * dt * ACCEL * f / m
            n_sur += self.n_steps
            trial = system.with_positions(y)
            u_new = self.reference.energy(trial)
            n_ref += 1
            k1 = 0.5 * np.sum(m * v * v) / ACCEL
            dh = (u_new + k1) - (u_ref + k0)
            if np.isfinite(dh) and (dh <= 0 or rng.random() < np.exp(-dh / kT)):
                x, u_ref, f_sur = y, u_new, f
                accepted[n] = True
            energies[n] = u_ref
            if observe is not None:
                obs.append(np.asarray(observe(system.with_positions(x)), float))
            if keep_positions:
                pos.append(x.copy())
        return HMCRun(energies, accepted, np.array(obs) if observe is not None else None,
                      np.array(pos) if keep_positions else None, n_ref, n_sur, time.perf_counter() - t0,
                      system.with_positions(x),
                      {"temperature": self.temperature, "timestep": self.timestep, "n_steps": self.n_steps})
