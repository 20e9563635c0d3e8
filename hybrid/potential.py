"""The central abstraction: a potential maps an AtomicSystem to a Result.

Every model in qmml-hybrid (PySCF, torch MLIPs, adapters, Δ-ML layers and
every blend of them) is a :class:`Potential`; anything that combines
potentials is again a potential, so pieces nest.

Units: energy eV, forces eV/Å, virial eV, stress eV/Å³.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError, UnknownElementError
from .system import AtomicSystem, symbol


@dataclass
class Result:
    """What a potential returns.

    energy : float, eV
    forces : (N, 3) eV/Å, -dE/dR, full length (zeros on atoms it ignores)
    ext_forces : (M, 3) eV/Å on the system's external point charges, or None
    energies : (N,) per-atom energies in eV (sum = energy), or None
    virial : (3, 3) eV, W = -dE/dε (strain derivative), or None
    energy_std : committee energy spread, eV, or None
    force_std : (N,) per-atom force disagreement, eV/Å, or None
    contributions : named energy terms (eV) whose weighted sum is ``energy``
    info : timings, SCF iterations, layer membership, ...
    """

    energy: float
    forces: np.ndarray
    ext_forces: np.ndarray | None = None
    energies: np.ndarray | None = None
    virial: np.ndarray | None = None
    energy_std: float | None = None
    force_std: np.ndarray | None = None
    contributions: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def stress(self, cell: np.ndarray) -> np.ndarray | None:
        """Cauchy stress σ = -W / V in eV/Å³ (ASE sign convention)."""
        if self.virial is None:
            return None
        return -self.virial / abs(np.linalg.det(cell))


class Potential:
    """Base class: subclasses implement :meth:`_compute`.

    ``species`` (atomic numbers) restricts the elements a model accepts;
    ``min_distance`` (Å) rejects atoms closer than that before any engine
    runs, so that a broken geometry gives a clear error instead of a
    library's traceback. :meth:`compute` first refuses NaN or inf in the
    positions and external charges (:meth:`AtomicSystem.check_finite`).
    """

    name: str = "potential"
    species: tuple[int, ...] | None = None
    min_distance: float = 0.4

    def compute(self, system: AtomicSystem) -> Result:
        """Energy and forces (and what else the model offers) of ``system``."""
        if not isinstance(system, AtomicSystem):
            raise InputError(f"{self.name}: expected an AtomicSystem, got {type(system).__name__}")
        system.check_finite(self.name)   # arrays can be written to after construction
        self.check(system)
        t0 = time.perf_counter()
        res = self._compute(system)
        res.info.setdefault("wall_time", time.perf_counter() - t0)
        n = len(system)
        if res.forces.shape != (n, 3):
            raise RuntimeError(f"{self.name} returned forces of shape {res.forces.shape}, expected {(n, 3)}")
        return res

    __call__ = compute

    def energy(self, system: AtomicSystem) -> float:
        """E (eV) alone, checked like :meth:`compute`. Potentials that can skip their gradient (an SCF
        without its gradient, a sum of such) override :meth:`_energy`; the default computes everything."""
        if not isinstance(system, AtomicSystem):
            raise InputError(f"{self.name}: expected an AtomicSystem, got {type(system).__name__}")
        system.check_finite(self.name)
        self.check(system)
        return float(self._energy(system))

    def _energy(self, system: AtomicSystem) -> float:
        return self._compute(system).energy

    def check(self, system: AtomicSystem) -> None:
        if self.species is not None:
            known = set(int(z) for z in self.species)
            for k, z in enumerate(system.numbers):
                if int(z) not in known:
                    raise UnknownElementError(
                        f"{self.name}: atom {k} is {symbol(z)}, an element this model does not know "
                        f"(it knows {', '.join(symbol(s) for s in sorted(known))})")
        if self.min_distance and len(system) > 1:
            from .neighbors import min_pair_distance
            close = min_pair_distance(system.positions, system.cell, system.pbc, self.min_distance)
            if close is not None:
                i, j, d = close
                raise InputError(
                    f"{self.name}: atoms {i} ({symbol(system.numbers[i])}) and {j} "
                    f"({symbol(system.numbers[j])}) are {d:.3f} Å apart, closer than {self.min_distance} Å")

    def _compute(self, system: AtomicSystem) -> Result:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- composition -------------------------------------------------------
    def __add__(self, other: "Potential") -> "LinearCombination":
        return LinearCombination([(1.0, self), (1.0, other)])

    def __sub__(self, other: "Potential") -> "LinearCombination":
        return LinearCombination([(1.0, self), (-1.0, other)])

    def __mul__(self, w: float) -> "LinearCombination":
        return LinearCombination([(float(w), self)])

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class LinearCombination(Potential):
    """E = Σ_k w_k E_k(R); forces, virials and per-atom energies combine alike.

    ``contributions`` holds each part's weighted energy under its name (names
    made unique with #2, #3 ...), and nested parts' contributions as
    ``name/sub``.

    ``workers > 1`` evaluates the terms concurrently in that many threads,
    the slowest term of the previous call first. Threads of one process take
    turns at Python's interpreter lock, so this pays when terms spend their
    time in lock-free kernels or waiting: put the QM term in its own process
    (:class:`hybrid.process.ProcessPotential`) and the MLIP terms run in the
    parent while the SCF runs on the other core. A stateful potential (a
    warm-started QM layer) may then appear in one term only.
    """

    def __init__(self, terms, name: str = "sum", workers: int = 1):
        flat = []
        for w, p in terms:
            if not isinstance(p, Potential):
                raise InputError(f"{name}: {p!r} is not a Potential")
            if isinstance(p, LinearCombination) and p.name == "sum":
                flat += [(w * w2, p2) for w2, p2 in p.terms]
            else:
                flat.append((float(w), p))
        self.terms = flat
        self.name = name
        self.min_distance = max((p.min_distance or 0.0) for _, p in flat)
        sp = [set(p.species) for _, p in flat if p.species is not None]
        self.species = tuple(sorted(set.intersection(*sp))) if sp else None
        self.labels = _unique([p.name for _, p in flat])
        self.workers = int(workers)
        seen = set()
        for _, p in flat if self.workers > 1 else ():
            ids = {id(q) for q in _stateful_parts(p)}
            if ids & seen:
                raise InputError(f"{name}: a stateful potential appears in more than one term; its terms "
                                 "cannot run concurrently (use workers=1 or separate instances)")
            seen |= ids
        self._last_times = np.zeros(len(flat))

    def check(self, system):
        for _, p in self.terms:
            p.check(system)

    def _compute(self, system):
        n = len(system)
        energy, forces = 0.0, np.zeros((n, 3))
        ext = np.zeros((system.n_ext, 3)) if system.n_ext else None
        energies = np.zeros(n)
        virial = np.zeros((3, 3))
        has_e, has_v = True, True
        contrib, info = {}, {}
        for (w, p), label, r in zip(self.terms, self.labels, self._evaluate(system)):
            energy += w * r.energy
            forces += w * r.forces
            if ext is not None and r.ext_forces is not None:
                ext += w * r.ext_forces
            has_e = has_e and r.energies is not None
            has_v = has_v and r.virial is not None
            if has_e:
                energies += w * r.energies
            if has_v:
                virial += w * r.virial
            contrib[label] = w * r.energy
            for k, v in r.contributions.items():
                contrib[f"{label}/{k}"] = w * v
            info[label] = r.info
        return Result(energy, forces, ext_forces=ext, energies=energies if has_e else None,
                      virial=virial if has_v else None, contributions=contrib, info=info)

    def _energy(self, system) -> float:
        return float(sum(w * p._energy(system) for w, p in self.terms))

    def _evaluate(self, system) -> list:
        """The terms' Results, in term order; each term's wall time is kept for the next ordering."""
        def run(k):
            t0 = time.perf_counter()
            r = self.terms[k][1]._compute(system)
            self._last_times[k] = time.perf_counter() - t0
            return r
        if self.workers <= 1 or len(self.terms) < 2:
            return [run(k) for k in range(len(self.terms))]
        from concurrent.futures import ThreadPoolExecutor

        from .threads import inherit
        order = np.argsort(-self._last_times, kind="stable")
        with ThreadPoolExecutor(min(self.workers, len(self.terms)), initializer=inherit()) as ex:
            futures = {int(k): ex.submit(run, int(k)) for k in order}
            return [futures[k].result() for k in range(len(self.terms))]


def _stateful_parts(p):
    """The stateful potentials inside ``p`` (itself, or wrapped in Subset/sums/...)."""
    if getattr(p, "stateful", False):
        yield p
    inner = getattr(p, "potential", None)
    if isinstance(inner, Potential):
        yield from _stateful_parts(inner)
    for _, q in getattr(p, "terms", ()):
        yield from _stateful_parts(q)


def _unique(names):
    seen, out = {}, []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


class Subset(Potential):
    """A potential evaluated on the atoms ``indices`` alone (a fixed region).

    E(R) = E_p(R_indices); forces are scattered back to full length (zeros
    elsewhere). ``charge``/``multiplicity`` set the region's electronic state
    (default: the whole system's). With ``embed_rest`` the other atoms'
    ``charges`` (e) become external point charges of the region (electrostatic
    embedding), and the forces on them are returned as forces on those atoms.
    """

    def __init__(self, potential: Potential, indices, charge: int | None = None,
                 multiplicity: int | None = None, name: str | None = None, embed_charges=None):
        self.potential = potential
        self.indices = np.asarray(indices, int)
        self.charge, self.multiplicity = charge, multiplicity
        self.embed_charges = None if embed_charges is None else np.asarray(embed_charges, float)
        self.name = name or f"{potential.name}[{len(self.indices)} atoms]"
        self.species = potential.species
        self.min_distance = potential.min_distance

    def region(self, system: AtomicSystem) -> AtomicSystem:
        if self.indices.size and (self.indices.max() >= len(system) or self.indices.min() < 0):
            raise InputError(f"{self.name}: region index {int(self.indices.max())} outside a system of "
                             f"{len(system)} atoms")
        sub = system.subset(self.indices, self.charge, self.multiplicity)
        if self.embed_charges is not None:
            rest = np.setdiff1d(np.arange(len(system)), self.indices)
            sub.ext_charges = self.embed_charges[rest]
            sub.ext_positions = system.positions[rest]
        return sub

    def check(self, system: AtomicSystem) -> None:
        self.potential.check(self.region(system))

    def _compute(self, system: AtomicSystem) -> Result:
        r = self.potential._compute(self.region(system))
        forces = np.zeros((len(system), 3))
        forces[self.indices] = r.forces
        if self.embed_charges is not None and r.ext_forces is not None:
            rest = np.setdiff1d(np.arange(len(system)), self.indices)
            forces[rest] += r.ext_forces
        energies = None
        if r.energies is not None:
            energies = np.zeros(len(system))
            energies[self.indices] = r.energies
        return Result(r.energy, forces, energies=energies, virial=r.virial, energy_std=r.energy_std,
                      contributions=r.contributions, info=r.info)
