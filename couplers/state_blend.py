"""State-specific blends: an excited region inside a ground-state environment.

For a multi-state high level (``states(positions (T, n, 3)) ->`` :class:`hybrid.states.StatesResult`, e.g.
:class:`hybrid.qm.casscf_states.SACASSCFStates` or a learned diabatic model) and a single-state low level
(a Potential, e.g. the MLIP), every state k of the whole system is

    E_k = E_low(all) + Σ_P σ_P [E_high,k(P) − E_low(P)],

the blend of :mod:`couplers.blend` with the high level read at state k: same partitions, link atoms and
weights, so F_k = −∇E_k is exact, weight gradients included. The couplings of the whole system are the
regions' couplings carried to the real atoms like forces and weighted the same way,

    d_kl = Σ_P σ_P J_Pᵀ d_kl(P),

with J_P the Jacobian of the region's coordinates (link atoms included) with respect to the real atoms.
For one region (σ = 1) this is exactly ⟨k|∇l⟩ of the region's states as functions of the real atoms; with
several partitions it is their σ-weighted mean, whose signs are only meaningful if the level returns
consistent phases for the partitions (one region, or a model with phase alignment).

Each geometry's high-level call is made once: the states of one region are cached by its positions and
shared by the S energy blends and the S(S−1)/2 coupling blends; the low level's region results are cached
the same way, so each region costs one low-level call whatever S is.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from hybrid.errors import InputError
from hybrid.potential import Potential, Result
from hybrid.states import StatesResult
from hybrid.system import AtomicSystem

from .blend import BlendedCorrection


class _StatesCache:
    """The high level's StatesResult of single geometries, keyed by (numbers, positions) bytes."""

    def __init__(self, model, size: int = 64):
        self.model, self.size = model, size
        self._store: OrderedDict = OrderedDict()

    def get(self, system: AtomicSystem) -> StatesResult:
        key = (system.numbers.tobytes(), np.ascontiguousarray(system.positions).tobytes())
        if key not in self._store:
            self._store[key] = self.model.states(system.positions[None])
            if len(self._store) > self.size:
                self._store.popitem(last=False)
        self._store.move_to_end(key)
        return self._store[key]


class _CachedLevel(Potential):
    """A single-state level whose results are cached by (numbers, positions, charge, multiplicity)."""

    def __init__(self, level: Potential, size: int = 64):
        self.level, self.size, self.name = level, size, level.name
        self.species, self.min_distance = level.species, level.min_distance
        self._store: OrderedDict = OrderedDict()

    def _compute(self, system):
        key = (system.numbers.tobytes(), np.ascontiguousarray(system.positions).tobytes(), system.charge,
               system.multiplicity)
        if key not in self._store:
            self._store[key] = self.level._compute(system)
            if len(self._store) > self.size:
                self._store.popitem(last=False)
        self._store.move_to_end(key)
        return self._store[key]


class _StateView(Potential):
    """State k of a multi-state level as a Potential: E_k (eV), F_k (eV/Å)."""

    def __init__(self, cache: _StatesCache, k: int, name: str):
        self.cache, self.k, self.name = cache, k, f"{name}[{k}]"
        self.min_distance = 0.0

    def _compute(self, system):
        r = self.cache.get(system)
        return Result(float(r.energies[0, self.k]), np.array(r.forces[0, self.k]))


class _CouplingView(Potential):
    """d_kl of a multi-state level carried in the forces slot (1/Å) with zero energy: blended like a force,
    it becomes Σ_P σ_P J_Pᵀ d_kl(P) (the zero energy removes the weight-gradient terms)."""

    def __init__(self, cache: _StatesCache, k: int, m: int, name: str):
        self.cache, self.k, self.m, self.name = cache, k, m, f"{name}[d{k}{m}]"
        self.min_distance = 0.0

    def _compute(self, system):
        return Result(0.0, np.array(self.cache.get(system).couplings[0, self.k, self.m]))


class _Zero(Potential):
    name = "zero"
    min_distance = 0.0

    def _compute(self, system):
        return Result(0.0, np.zeros((len(system), 3)))


class StateBlend:
    """The multi-state hybrid of the module docstring.

    low: Potential; high: multi-state level with ``states`` and ``n_states``; partitioner and ``blend``
    keyword arguments as for :class:`couplers.blend.BlendedCorrection` (scheme, bonds, charges, open_shell,
    ...); template: an :class:`hybrid.system.AtomicSystem` giving numbers, cell, charge and multiplicity
    of the whole system (positions come with each call).
    """

    def __init__(self, low: Potential, high, partitioner, template: AtomicSystem, **blend):
        if blend.get("scheme") == "force_mixing":
            raise InputError("StateBlend: a state-specific blend needs a conservative scheme, not force_mixing")
        if blend.get("embedding") is not None:
            raise InputError("StateBlend: electrostatic embedding of a multi-state level is not supported")
        self.low, self.high, self.template = low, high, template
        self.n_states = int(high.n_states)
        self.name = f"state blend {getattr(high, 'name', type(high).__name__)} in {low.name}"
        self._cache = _StatesCache(high)
        hname = getattr(high, "name", "high")
        cached_low = _CachedLevel(low)
        self._energy = [BlendedCorrection(_StateView(self._cache, k, hname), cached_low, partitioner, **blend)
                        for k in range(self.n_states)]
        self._coupling = {(k, m): BlendedCorrection(_CouplingView(self._cache, k, m, hname), _Zero(), partitioner,
                                                    **blend)
                          for k in range(self.n_states) for m in range(k + 1, self.n_states)}

    def _system(self, positions):
        t = self.template
        return AtomicSystem(t.numbers, positions, cell=t.cell, pbc=t.pbc, charge=t.charge,
                            multiplicity=t.multiplicity)

    def states(self, positions, previous=None) -> StatesResult:
        """StatesResult of a batch (T, N, 3) Å (module docstring); ``previous`` is not used (the couplings'
        signs are the level's)."""
        pos = np.asarray(positions, float)
        if pos.ndim != 3 or pos.shape[1:] != (len(self.template), 3):
            raise InputError(f"{self.name}: positions must be (T, {len(self.template)}, 3) Å, got {pos.shape}")
        T, N, S = len(pos), pos.shape[1], self.n_states
        E, F, d = np.zeros((T, S)), np.zeros((T, S, N, 3)), np.zeros((T, S, S, N, 3))
        for t in range(T):
            system = self._system(pos[t])
            base = self.low.compute(system)
            for k, blend in enumerate(self._energy):
                r = blend.compute(system)
                E[t, k], F[t, k] = base.energy + r.energy, base.forces + r.forces
            for (k, m), blend in self._coupling.items():
                d[t, k, m] = blend.compute(system).forces
                d[t, m, k] = -d[t, k, m]
        return StatesResult(E, F, d, None, {"level": self.name})
