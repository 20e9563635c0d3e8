"""A λ-coupled potential between two levels: E_λ(R) = (1 - λ) E_0(R) + λ E_1(R).

One object serves every window of a free-energy calculation: set ``lam`` (or pass it to
:meth:`LambdaCoupled.at`) and compute. Each Result carries both end-state energies, so one sample gives
the energy under every λ' (E_λ' = E_0 + λ' (E_1 - E_0): exactly linear), which is all MBAR, BAR and
exponential averaging need, and ∂E_λ/∂λ = E_1 - E_0 for thermodynamic integration.

Units: energy eV, forces eV/Å, virial eV (as every Potential).
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..potential import Potential, Result
from ..system import AtomicSystem


def check_lambda(lam) -> float:
    try:
        x = float(lam)
    except (TypeError, ValueError):
        raise InputError(f"λ must be a number in [0, 1], got {lam!r}") from None
    if not (0.0 <= x <= 1.0):
        raise InputError(f"λ must be in [0, 1], got {lam!r}")
    return x


class LambdaCoupled(Potential):
    """E_λ = (1 - λ) E_0 + λ E_1 between potentials ``state0`` and ``state1`` (any two Potentials).

    Result.info: "lambda", "energy_0" and "energy_1" (eV), "dU_dlambda" = E_1 - E_0 (eV).
    Forces, virial and per-atom energies mix with the same weights. At λ = 0 or 1 the other end state is
    still evaluated (its energy is needed for the estimators).
    """

    def __init__(self, state0: Potential, state1: Potential, lam: float = 0.0, name: str | None = None):
        for which, p in (("state0", state0), ("state1", state1)):
            if not isinstance(p, Potential):
                raise InputError(f"LambdaCoupled: {which} is a {type(p).__name__}, not a Potential")
        self.state0, self.state1 = state0, state1
        self.lam = check_lambda(lam)
        self.name = name or f"λ({state0.name}→{state1.name})"
        self.min_distance = max(state0.min_distance or 0.0, state1.min_distance or 0.0)
        sp = [set(p.species) for p in (state0, state1) if p.species is not None]
        self.species = tuple(sorted(set.intersection(*sp))) if sp else None

    def at(self, lam: float) -> "LambdaCoupled":
        """The same pair at another λ (shares the two potentials and their state, e.g. warm starts)."""
        return LambdaCoupled(self.state0, self.state1, lam, self.name)

    def check(self, system: AtomicSystem) -> None:
        self.state0.check(system)
        self.state1.check(system)

    def _compute(self, system: AtomicSystem) -> Result:
        lam = self.lam
        r0 = self.state0._compute(system)
        r1 = self.state1._compute(system)
        w0, w1 = 1.0 - lam, lam

        def mix(a, b):
            return None if a is None or b is None else w0 * np.asarray(a) + w1 * np.asarray(b)

        info = {"lambda": lam, "energy_0": float(r0.energy), "energy_1": float(r1.energy),
                "dU_dlambda": float(r1.energy - r0.energy), self.state0.name: r0.info, self.state1.name: r1.info}
        return Result(w0 * r0.energy + w1 * r1.energy, w0 * r0.forces + w1 * r1.forces,
                      ext_forces=mix(r0.ext_forces, r1.ext_forces), energies=mix(r0.energies, r1.energies),
                      virial=mix(r0.virial, r1.virial),
                      contributions={self.state0.name: w0 * r0.energy, self.state1.name: w1 * r1.energy},
                      info=info)


    def _energy(self, system: AtomicSystem) -> float:
        return (1.0 - self.lam) * self.state0._energy(system) + self.lam * self.state1._energy(system)


def energies_at(end_energies, lambdas) -> np.ndarray:
    """(K, N) E_λk(x_n) = E_0 + λ_k (E_1 - E_0) in eV from ``end_energies`` (N, 2) = (E_0, E_1) per sample."""
    e = np.asarray(end_energies, float)
    if e.ndim != 2 or e.shape[1] != 2:
        raise InputError(f"energies_at: end_energies must have shape (N, 2) = (E_0, E_1), got {e.shape}")
    lam = np.array([check_lambda(x) for x in np.atleast_1d(lambdas)])
    return e[:, 0][None, :] + lam[:, None] * (e[:, 1] - e[:, 0])[None, :]
