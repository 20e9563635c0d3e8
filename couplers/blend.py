"""The blended multilayer Hamiltonian (n-layer ONIOM with smooth, adaptive regions).

Two levels over a partition with unit weights w_u (see :mod:`couplers.partition`):

    E = E_low(all) + Σ_P σ_P [E_high(P) - E_low(P)]

where P runs over partitions: P = inner ∪ S for subsets S of the buffer units.

* ``product``  σ_P = Π_{u∈S} w_u Π_{u∈B∖S} (1 - w_u)  (Σ_P σ_P = 1), 2ⁿ region
  pairs for n buffer units; E is as smooth as the switch.
* ``sorted``   buffer units sorted by weight, w_(1) >= ... >= w_(n);
  P_k = inner ∪ {the first k}, σ_k = w_(k) - w_(k+1) (w_(0) = 1, w_(n+1) = 0);
  n+1 region pairs; E is continuous but forces jump where two weights cross.
* ``expansion``  the product sum expanded in many-body terms about a fixed core C
  (the units of the partitioner's centre, ``core_atoms``; none for a fixed point)
  and truncated at ``order`` k (:mod:`couplers.expansion`): partitions C ∪ S for
  the subsets S, |S| <= k, of the members M (every other unit with w > 0, inner
  ones included), σ_S = Π_{u∈S} w_u Σ_{i<=k-|S|} (-1)^i e_i(w_{M∖S}) (Σ_S σ_S = 1);
  1 + m (k = 1) or 1 + m + m(m-1)/2 (k = 2) region calls for m members, each on
  |C| + |S| units; as smooth as the switch (members enter and leave at w = 0,
  nothing is reclassified); the product sum exactly when k >= m. A core unit
  with w < 1 is an error.
* ``force_mixing``  not Hamiltonian, for comparison (ASE ForceQMMM-like):
  F = F_low + w_u(a) [F_high(R) - F_low(R)] on atoms of the region R = inner ∪ buffer,
  reported energy E_low + ΔE(R) is not conserved; no virial.

Forces and virial (W = -dE/dε, eV; positions and cell strained as R (1 + ε))
of the conservative schemes are exact:
    F = -Σ_P σ_P ∇ΔE_P - Σ_P ΔE_P Σ_u (∂σ_P/∂w_u) ∇w_u,
    W = Σ_P σ_P W_P - Σ_P ΔE_P Σ_u (∂σ_P/∂w_u) ∂w_u/∂ε,
W_P = Σ_i r_i ⊗ ΔF_i over the cluster P (its energies are translation invariant).

More than ``max_buffer`` units in the buffer of the product scheme, or more
than ``max_buffer`` members of the expansion scheme, is an error naming the
count, the region calls and the cap (a fallback to sorted partitions would be
a different energy function: the energy would jump when the count crossed
the cap).

Each region is an isolated cluster: in a periodic system its units are whole
and at their minimum image relative to the partitioner's centre
(:func:`couplers.partition.place_units`; a region larger than half the box is
refused), or, with ``periodic_regions=True``, a periodic piece of the system
that keeps its cell and pbc (a QM cylinder spanning a periodic crack front;
the region's virial is then its levels' virial, None if either has none);
its charge and multiplicity come from per-atom formal charges
(:mod:`couplers.charges`; ``charges``), never from the whole system.
Regions that cut covalent bonds are capped with hydrogen link atoms
(:mod:`couplers.link_atoms`); metal-ligand contacts are not bonds. Stateful
levels (the PySCF layer's warm starts) get one private copy per region, so each partition keeps its own history;
``workers > 1`` evaluates the regions of one step concurrently in threads.
"""
from __future__ import annotations

import copy
import itertools
from collections import OrderedDict

import numpy as np

from hybrid.errors import InputError
from hybrid.potential import LinearCombination, Potential, Result
from hybrid.system import AtomicSystem

from . import expansion
from .charges import RegionCharges
from .link_atoms import CappedRegion, cut_bonds
from .partition import Topology, Weights, place_units

SCHEMES = ("product", "sorted", "expansion", "force_mixing")


class BlendedCorrection(Potential):
    """Σ_P σ_P [E_high(P) - E_low(P)] over the partitions of ``partitioner``.

    bonds : (B, 2) covalent bonds for link atoms (default: covalent radii, metals excluded,
        kept for the run: :class:`couplers.partition.Topology`).
    molecules : the system's units for charges (list of index arrays; default: the bonded fragments of
        the first geometry, and a bond formed later between two of them is refused). Give them where
        bonds break and form, e.g. ``[np.arange(N)]`` for a cracking solid: the bonds are then found
        once, from the first geometry, and kept.
    charges : per-atom formal charges (N,), {atom: charge}, or callable(atoms) -> charge or
        (charge, multiplicity) (default: recognised monatomic ions, every other molecule
        neutral if that accounts for the system's charge; see :mod:`couplers.charges`).
    order : truncation order k >= 1 of the ``expansion`` scheme (default 2).
    core : atoms whose units form the expansion's core (default: the partitioner's
        ``core_atoms``, the centre's own molecule or a fixed region; none if it has none).
    max_buffer : most buffer units (product) or expansion members (expansion).
    open_shell : "error" (default) or "lowest": a region with an odd electron count is a doublet
        (:mod:`couplers.charges`).
    periodic_regions : each region keeps the system's cell and pbc (atoms where they are; only bonds to
        atoms outside the region capped) instead of being cut out as an isolated cluster; both levels must
        handle periodic systems. For a region that spans a periodic direction, e.g. a cylinder along a
        crack front.
    embedding : a :class:`couplers.embedding.Embedding`: the high level's region calls run in its
        charges of every atom outside the region, the low level's get their Coulomb term
        (electrostatic embedding; forces on every atom); None: mechanical embedding.
    """

    def __init__(self, high: Potential, low: Potential, partitioner, scheme: str = "product",
                 max_buffer: int = 6, workers: int = 1, bonds=None, molecules=None,
                 charges=None, name: str | None = None, max_instances: int = 256,
                 order: int = 2, core=None, embedding=None, open_shell: str = "error",
                 periodic_regions: bool = False):
        if scheme not in SCHEMES:
            raise InputError(f"unknown blending scheme {scheme!r}; choose from {SCHEMES}")
        if int(order) != order or order < 1:
            raise InputError(f"expansion order must be an integer >= 1, got {order!r}")
        if embedding is not None and scheme == "force_mixing":
            raise InputError("electrostatic embedding needs a conservative scheme, not force_mixing (its forces on "
                             "the embedding charges would have no energy to come from)")
        if embedding is not None and periodic_regions:
            raise InputError("electrostatic embedding needs isolated regions, not periodic_regions")
        self.order = int(order)
        self.embedding = embedding
        self.periodic_regions = bool(periodic_regions)
        self.core_atoms = np.asarray(getattr(partitioner, "core_atoms", ()) if core is None else core,
                                     int).reshape(-1)
        self.high, self.low, self.partitioner = high, low, partitioner
        self.scheme, self.max_buffer = scheme, int(max_buffer)
        self.workers = int(workers)
        self.topology = Topology(bonds=bonds, molecules=molecules)
        self.charges = charges
        if open_shell not in ("error", "lowest"):
            raise InputError(f"open_shell must be 'error' or 'lowest', got {open_shell!r}")
        self.open_shell = open_shell
        self.name = name or f"Δ({high.name}−{low.name})"
        sp = [set(p.species) for p in (high, low) if p.species is not None]
        self.species = tuple(sorted(set.intersection(*sp))) if sp else None
        self.min_distance = max(high.min_distance or 0, low.min_distance or 0)
        self._instances: OrderedDict = OrderedDict()
        self.max_instances = max_instances
        self.last_weights: Weights | None = None

    # -- regions ---------------------------------------------------------------
    def _instance(self, pot: Potential, key) -> Potential:
        if not getattr(pot, "stateful", False):
            return pot
        k = (id(pot), key)
        if k not in self._instances:
            self._instances[k] = copy.deepcopy(pot)
            if len(self._instances) > self.max_instances:
                self._instances.popitem(last=False)
        self._instances.move_to_end(k)
        inst = self._instances[k]
        _sync_settings(inst, pot)
        return inst

    def _delta(self, system: AtomicSystem, atoms: np.ndarray, positions, key):
        """ΔE (eV), ΔF (N, 3) and ΔW (3, 3) of high minus low on the capped region ``atoms``."""
        if len(atoms) == 0:
            return 0.0, np.zeros((len(system), 3)), np.zeros((3, 3)), 0
        region = self._capped(system, atoms, positions)
        if self.embedding is None or len(atoms) == len(system):       # nothing outside to embed
            rh = self._instance(self.high, key)._compute(region.system)
            rl = self._instance(self.low, key)._compute(region.system)
            df = rh.forces - rl.forces
            if region.periodic:
                dw = None if rh.virial is None or rl.virial is None else rh.virial - rl.virial
                return rh.energy - rl.energy, region.scatter(df), dw, 1
            return rh.energy - rl.energy, region.scatter(df), region.virial(df), 1
        if len(region.cuts):
            raise InputError(f"{self.name}: the region of atoms {atoms[:6].tolist()}... cuts {len(region.cuts)} "
                             "covalent bond(s); electrostatic embedding of a capped region is not supported (a link "
                             "atom next to a point charge needs charge redistribution)")
        env, ext = self.embedding.environment(system, atoms)
        sub = region.system
        embedded = AtomicSystem(sub.numbers, sub.positions, charge=sub.charge, multiplicity=sub.multiplicity, **ext)
        rh = self._instance(self.high, key)._compute(embedded)
        if rh.ext_forces is None:
            raise InputError(f"{self.name}: {self.high.name} returned no forces on the {len(env)} embedding charges "
                             "(it cannot do electrostatic embedding; use a PySCF level)")
        rl = self._instance(self.low, key)._compute(sub)
        e_c, f_c = self.embedding.coulomb(system, atoms, env)
        forces = region.scatter(rh.forces - rl.forces) - f_c
        forces[env] += rh.ext_forces
        virial = system.positions.T @ forces           # non-periodic (Embedding.setup): Σ_i r_i ⊗ ΔF_i
        return rh.energy - rl.energy - e_c, forces, virial, 1

    def _capped(self, system: AtomicSystem, atoms: np.ndarray, positions=None) -> CappedRegion:
        """The region ``atoms`` as a capped cluster with its own charge and multiplicity."""
        charge, mult = self._charges.state(atoms, len(cut_bonds(self._bonds, atoms)))
        return CappedRegion(system, atoms, self._bonds, charge, mult, positions, periodic=self.periodic_regions)

    def region_system(self, system: AtomicSystem, atoms) -> AtomicSystem:
        """The capped cluster (with the region's charge and multiplicity; periodic with ``periodic_regions``)
        on which both levels are evaluated for the region ``atoms`` of ``system``; for checks before a run
        (hybrid.md.preflight)."""
        self._setup(system)
        return self._capped(system, np.sort(np.asarray(atoms, int))).system

    def _evaluate(self, system, jobs):
        if self.workers > 1 and len(jobs) > 1:
            from concurrent.futures import ThreadPoolExecutor

            from hybrid.threads import inherit
            with ThreadPoolExecutor(self.workers, initializer=inherit()) as ex:
                return list(ex.map(lambda j: self._delta(system, *j), jobs))
        return [self._delta(system, *j) for j in jobs]

    def _region(self, system, W: Weights, unit_ids, placed):
        """(atoms sorted (n,), their cluster positions (n, 3) or None, key) of the units ``unit_ids``."""
        atoms = W.atoms(unit_ids)
        if placed is None or not len(unit_ids):
            return atoms, None, frozenset(unit_ids)
        pos = np.vstack([placed[k] for k in unit_ids])
        order = np.argsort(np.concatenate([W.units[k] for k in unit_ids]), kind="stable")
        return atoms, pos[order], frozenset(unit_ids)

    def _setup(self, system):
        """Bonds, molecules and the region charges of ``system`` (recomputed when the system changes)."""
        self._bonds, molecules = self.topology.get(system)
        self._charges = RegionCharges(system, molecules, self.charges, self.open_shell)
        if self.embedding is not None:
            self.embedding.setup(system, molecules, self._charges.q)

    # -- the energy ---------------------------------------------------------------
    def _compute(self, system: AtomicSystem) -> Result:
        self._setup(system)
        W = self.partitioner.weights(system)
        self.last_weights = W
        inner, buf = W.inner, W.buffer
        scheme = self.scheme
        if scheme == "product" and len(buf) > self.max_buffer:
            raise InputError(f"{self.name}: {len(buf)} units in the buffer exceed max_buffer="
                             f"{self.max_buffer} (product partitions would need {2 ** len(buf)} "
                             "region calls); raise max_buffer or narrow the buffer")
        if scheme == "expansion":
            core, members = self._expansion_units(W)
            if len(members) > self.max_buffer:
                raise InputError(f"{self.name}: {len(members)} expansion members exceed max_buffer={self.max_buffer} "
                                 f"(order {self.order} would need {expansion.n_calls(len(members), self.order)} "
                                 "region calls); raise max_buffer or shrink the region")
        placed = None
        if system.periodic and inner + buf and not self.periodic_regions:
            ids = inner + buf
            placed = dict(zip(ids, place_units(system, [W.units[k] for k in ids], W.centre)))
        n = len(system)
        forces, virial = np.zeros((n, 3)), np.zeros((3, 3))
        if scheme == "force_mixing":
            region = inner + buf
            (de, df, _, calls), = self._evaluate(system, [self._region(system, W, region, placed)])
            wa = np.zeros(n)
            for k in region:
                wa[W.units[k]] = W.w[k]
            energy, forces, virial = de, wa[:, None] * df, None     # not an energy derivative
            n_calls = calls
        else:
            parts = self._partitions(W, inner, buf, scheme)
            results = self._evaluate(system, [self._region(system, W, p, placed) for p, _, _ in parts])
            energy, n_calls = 0.0, 0
            for (p, sigma, dsigma), (de, df, dw, calls) in zip(parts, results):
                energy += sigma * de
                forces += sigma * df
                virial = None if virial is None or dw is None else virial + sigma * dw
                for k, ds in dsigma.items():
                    if ds and k in W.grad:
                        forces -= de * ds * W.grad[k]
                        if virial is not None:
                            virial -= de * ds * W.strain.get(k, 0.0)
                n_calls += calls
        info = {"scheme": scheme, "n_buffer": len(buf), "n_high_calls": n_calls,
                "inner_atoms": W.atoms(inner).tolist(), "buffer_atoms": W.atoms(buf).tolist(),
                "weights": {int(k): float(W.w[k]) for k in inner + buf}}
        if scheme == "expansion":
            info.update(order=self.order, n_members=len(members), core_atoms=W.atoms(core).tolist())
        return Result(float(energy), forces, virial=virial, contributions={self.name: float(energy)}, info=info)

    def _expansion_units(self, W: Weights):
        """(core, members): the units holding ``core_atoms`` (each of weight 1, else InputError) and every
        other unit with w > 0, as sorted unit ids."""
        core = [k for k, u in enumerate(W.units) if np.isin(u, self.core_atoms).any()] if self.core_atoms.size else []
        low = [k for k in core if W.w[k] < 1.0]
        if low:
            raise InputError(f"{self.name}: the expansion's core unit of atoms {W.units[low[0]].tolist()} has weight "
                             f"{W.w[low[0]]:.6g} < 1; the core must stay in the inner region (raise r_inner, or "
                             "give another core)")
        members = [k for k in range(len(W.units)) if W.w[k] > 0.0 and k not in core]
        return core, members

    def _partitions(self, W: Weights, inner, buf, scheme):
        """[(units of P, σ_P, {unit: ∂σ_P/∂w_unit})]"""
        w = W.w
        out = []
        if scheme == "expansion":
            core, members = self._expansion_units(W)
            for S, c, dc in expansion.coefficients({k: float(w[k]) for k in members}, members, self.order):
                if c != 0.0 or any(d for k, d in dc.items() if k in W.grad):     # else it adds nothing
                    out.append((core + list(S), c, dc))
            return out
        if scheme == "product":
            for mask in itertools.product((0, 1), repeat=len(buf)):
                factors = [w[k] if m else 1.0 - w[k] for k, m in zip(buf, mask)]
                sigma = float(np.prod(factors)) if factors else 1.0
                dsig = {}
                for a, (k, m) in enumerate(zip(buf, mask)):
                    rest = np.prod(factors[:a] + factors[a + 1:]) if len(factors) > 1 else 1.0
                    dsig[k] = float(rest if m else -rest)
                units = inner + [k for k, m in zip(buf, mask) if m]
                if sigma > 0.0 or any(dsig.values()):
                    out.append((units, sigma, dsig))
            return out
        order = sorted(buf, key=lambda k: -w[k])
        ws = [1.0] + [w[k] for k in order] + [0.0]
        for k in range(len(order) + 1):
            dsig = {}
            if k >= 1:
                dsig[order[k - 1]] = 1.0
            if k < len(order):
                dsig[order[k]] = dsig.get(order[k], 0.0) - 1.0
            out.append((inner + order[:k], ws[k] - ws[k + 1], dsig))
        return out


def _sync_settings(inst: Potential, template: Potential) -> None:
    """Give a region's copy the settings changed on its template since it was copied (potentials with a
    ``settings`` mapping, e.g. PySCFPotential: ``qm.basis = ...`` after a run started then reaches every
    region, each through the copy's own setter, which rebuilds what the change requires)."""
    want = getattr(template, "settings", None)
    if not want:
        return
    have = inst.settings
    for name, value in want.items():
        if not _same_value(have.get(name), value):
            setattr(inst, name, copy.deepcopy(value))


def _same_value(a, b) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:          # e.g. arrays inside a basis dict
        return repr(a) == repr(b)


def blended(low: Potential, high: Potential, partitioner, **kwargs) -> LinearCombination:
    """E = E_low(all) + Σ_P σ_P [E_high(P) - E_low(P)] as one potential."""
    return multilayer([low, high], [partitioner], **kwargs)


def multilayer(levels, partitioners, name: str = "multilayer", **kwargs) -> LinearCombination:
    """n-layer ONIOM: E = E_0(all) + Σ_k Σ_P σ^(k)_P [E_k(P) - E_{k-1}(P)].

    ``levels`` from lowest to highest (e.g. [MLIP, Δ-ML, QM]); ``partitioners[k]``
    defines the region of level k+1 (nested: each inside the previous one).
    """
    if len(partitioners) != len(levels) - 1:
        raise InputError(f"multilayer: {len(levels)} levels need {len(levels) - 1} partitioners, "
                         f"got {len(partitioners)}")
    terms = [(1.0, levels[0])]
    for k, part in enumerate(partitioners):
        terms.append((1.0, BlendedCorrection(levels[k + 1], levels[k], part, **kwargs)))
    return LinearCombination(terms, name=name)
