"""From the ``[[levels]]`` of a configuration to one blended multilayer potential.

Levels L_1 (lowest, all atoms) … L_n; level k ≥ 2 corrects level k−1 over
its region, blended across a buffer (:class:`couplers.blend.BlendedCorrection`):

    E = E_1(all) + Σ_{k=2..n} ΔE_k,     ΔE_k = Σ_P σ^(k)_P [E_k(P) − E_{k−1}(P)]

Regions are :class:`couplers.partition.DistancePartitioner` over the
structure's molecules (fixed for the run, so a resumed run uses the same
units and bonds as the original), with weight w_u = s((r_u − r_inner)/width)
of each molecule's centre-of-mass distance r_u (Å) from the centre.

Every level is wrapped in :class:`Timed`, which adds the wall time of its
evaluations (seconds) to a :class:`Clock`; PySCF potentials inside a level
(also as a Δ-ML baseline) have the shared ``qm`` clock as well, so the
share of wall time spent in quantum chemistry is measured, not estimated.

A level with ``process = true`` runs in its own persistent process
(:class:`hybrid.process.ProcessPotential`; its warm starts live there, and
each blend region's private copy of it gets a process of its own), and the
multilayer's terms E_1, ΔE_2, … ΔE_n are then evaluated side by side in
threads: the parent's MLIP and Δ-ML work runs while the child's SCF runs on
another core. The sums are taken in term order, so energies and forces do
not depend on which term finishes first. For such a level the ``qm`` clock
counts the whole call as seen from the parent (the SCF plus the transfer).
"""
from __future__ import annotations

import copy
import importlib.util
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ConfigError, Section, _fmt
from ..errors import HybridError, InputError
from ..potential import LinearCombination, Potential, Result


class Clock:
    """Accumulated wall time (s) and number of calls. Deep copies share the clock,
    so the per-region copies that blends make of stateful levels all report here."""

    def __init__(self, name: str):
        self.name, self.total, self.calls = name, 0.0, 0
        self._lock = threading.Lock()        # levels may run in threads side by side

    def add(self, seconds: float) -> None:
        with self._lock:
            self.total += seconds
            self.calls += 1

    def __deepcopy__(self, memo):
        return self

    def __getstate__(self):                  # a level sent to its own process takes a copy along
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


class Timed(Potential):
    """``potential`` unchanged (E, F, everything), with its wall time added to ``clocks``."""

    def __init__(self, potential: Potential, *clocks: Clock):
        self.potential, self.clocks = potential, clocks
        self.name = potential.name
        self.species = potential.species
        self.min_distance = potential.min_distance
        self.stateful = bool(getattr(potential, "stateful", False))

    def check(self, system):
        self.potential.check(system)

    def _compute(self, system) -> Result:
        t0 = time.perf_counter()
        try:
            return self.potential._compute(system)
        finally:
            dt = time.perf_counter() - t0
            for c in self.clocks:
                c.add(dt)


@dataclass
class Model:
    """The run's potential and what the runner reports about it.

    potential : the multilayer LinearCombination (eV, eV/Å)
    names : level names, lowest first
    labels : the LinearCombination's term labels (labels[0] = lowest level on all
        atoms, labels[k] = the blended correction of level k+1), keys of
        ``Result.contributions`` and ``Result.info``
    clocks : {level name: Clock}; qm : the clock of every PySCF evaluation
    """

    potential: Potential
    names: list
    labels: list
    clocks: dict
    qm: Clock
    has_qm: bool = False
    regions: list = field(default_factory=list)

    def reset_clocks(self) -> None:
        """Zero every clock (after the checks before step 0, so that timings count the run alone)."""
        for c in [*self.clocks.values(), self.qm]:
            c.total, c.calls = 0.0, 0


@dataclass
class Source:
    """The configuration file (name for messages, directory to show paths as written)."""

    name: str = "config.toml"
    root: Path | None = None

    def error(self, i: int, prefix: str, key: str, value, msg: str) -> ConfigError:
        if isinstance(value, Path) and self.root is not None:
            value = os.path.relpath(value, self.root)
        shown = _fmt(value if isinstance(value, (dict, list, int, float)) else str(value))
        return ConfigError([f"{self.name}: [[levels]] #{i} {prefix}{key} = {shown}: {msg}"])


def build_level(lv: Section, index: int, qm: Clock, source: Source | None = None, prefix: str = "") -> tuple:
    """(Potential, uses PySCF) for one level table (validated by :mod:`hybrid.config`)."""
    kind, name = lv["kind"], lv["name"]
    source = source or Source()
    try:
        if kind == "mlip":
            import torch

            return _mlip(lv["file"], getattr(torch, lv["dtype"]), name), False
        if kind == "xtb":
            from ..ml.adapters import XTBPotential
            return XTBPotential(lv["method"], accuracy=lv["accuracy"], name=name), False
        if kind == "pyscf":
            from ..qm.pyscf_layer import PySCFPotential
            try:
                pot = PySCFPotential(lv["method"], lv["basis"], name=name, **lv["options"])
            except InputError as exc:
                raise source.error(index, prefix, "method", lv["method"], str(exc)) from None
            return Timed(pot, qm), True
        if kind == "delta":
            base, uses_qm = build_level(lv["baseline"], index, qm, source, prefix + "baseline.")
            if lv["correction"] is None:
                base.name = name
                return base, uses_qm
            import torch

            from ..delta import DeltaMLPotential
            corr = _mlip(lv["correction"], torch.float64, f"{name}/correction")
            return DeltaMLPotential(base, corr, name=name), uses_qm
        if kind == "mace":
            from ..ml.adapters import mace_potential
            return mace_potential(lv["file"], dtype=lv["dtype"], name=name), False
        if kind == "torchani":
            from ..ml.adapters import TorchANIPotential
            return TorchANIPotential(lv["file"], name=name), False
        if kind == "python":
            return _python_level(lv, index, source, prefix), False
    except ConfigError:
        raise
    except InputError as exc:
        key = "correction" if kind == "delta" else "file"
        value = lv.get(key) or lv.get("method") or kind
        raise source.error(index, prefix, key if lv.get(key) else "kind", value, str(exc)) from None
    raise source.error(index, prefix, "kind", kind, "unknown kind")  # validated earlier: unreachable


def _mlip(files, dtype, name: str) -> Potential:
    """An MLPotential from one model file, or the Committee (mean) of the models of a list of files."""
    from ..ml.potential import MLPotential
    if not isinstance(files, list):
        return MLPotential.load(files, dtype=dtype, name=name)
    from ..ml.committee import Committee
    return Committee([MLPotential.load(f, dtype=dtype, name=f"{name}#{k}") for k, f in enumerate(files)], name=name)


def _python_level(lv, index, source, prefix) -> Potential:
    path = lv["file"]
    spec = importlib.util.spec_from_file_location(f"hybrid_user_level_{index}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise source.error(index, prefix, "file", path, f"importing it failed: {type(exc).__name__}: {exc}") from None
    factory = getattr(module, lv["factory"], None)
    if not callable(factory):
        raise source.error(index, prefix, "factory", lv["factory"], f"no such function in {path.name}")
    try:
        pot = factory(**lv["options"])
    except TypeError as exc:
        raise source.error(index, prefix, "options", lv["options"], f"{lv['factory']}(): {exc}") from None
    if not isinstance(pot, Potential):
        raise source.error(index, prefix, "factory", lv["factory"],
                    f"returned a {type(pot).__name__}, not a hybrid.potential.Potential")
    pot.name = lv["name"]
    return pot


def partitioner(region: Section, index: int, structure, source: str = "config.toml", where: str | None = None):
    """The DistancePartitioner of a region table, checked against the structure
    (``where``: the table named in errors; default ``[[levels]] #index region.``)."""
    from couplers.partition import DistancePartitioner
    n, mols = len(structure.system), structure.molecules
    kind, value = region["center"]["kind"], region["center"]["value"]
    bad = None
    if kind == "atom" and value >= n:
        bad = f"atom index outside the structure's {n} atoms (0..{n - 1})"
    elif kind == "group" and max(value) >= n:
        bad = f"atom index {max(value)} outside the structure's {n} atoms (0..{n - 1})"
    elif kind == "molecule" and value >= len(mols):
        bad = f"molecule index outside the structure's {len(mols)} molecules (0..{len(mols) - 1})"
    if bad:
        where = f"[[levels]] #{index} region." if where is None else where
        raise ConfigError([f"{source}: {where}center.{kind} = {_fmt(value)}: {bad}"])
    if kind == "atom":
        center = ("atom", int(value))
    elif kind == "group":
        center = ("group", [int(i) for i in value])
    elif kind == "molecule":
        center = ("group", [int(i) for i in mols[value]])
    else:
        center = ("point", list(value))
    return DistancePartitioner(center, region["r_inner"], region["width"], switch=region["switch"],
                               molecules=mols)


def embedding_of(region: Section, index: int, source: str = "config.toml"):
    """The :class:`couplers.embedding.Embedding` of a region table, or None (mechanical embedding)."""
    if region.get("embed_charges") is None:
        return None
    from couplers.embedding import Embedding
    try:
        return Embedding(region["embed_charges"], region["embed_sigma"])
    except InputError as exc:
        raise ConfigError([f"{source}: [[levels]] #{index} region.embed_charges: {exc}"]) from None


def build_model(cfg: Section, structure) -> Model:
    """The multilayer potential of ``cfg["levels"]`` on ``structure``."""
    from couplers.blend import BlendedCorrection
    source = Source(cfg["path"].name, cfg["path"].parent) if cfg.get("path") else Source()
    qm = Clock("qm")
    levels, names, clocks, has_qm = [], [], {}, False
    for i, lv in enumerate(cfg["levels"], start=1):
        pot, uses_qm = build_level(lv, i, qm, source)
        if lv["process"]:
            from ..process import ProcessPotential
            pot = ProcessPotential(untimed(pot), name=lv["name"])
            pot = Timed(pot, qm) if uses_qm else pot
        clocks[lv["name"]] = Clock(lv["name"])
        levels.append(Timed(pot, clocks[lv["name"]]))
        names.append(lv["name"])
        has_qm = has_qm or uses_qm
    terms = [(1.0, levels[0])]
    regions = []
    for i in range(1, len(levels)):
        region = cfg["levels"][i]["region"]
        part = partitioner(region, i + 1, structure, source.name)
        embedding = embedding_of(region, i + 1, source.name)
        terms.append((1.0, BlendedCorrection(levels[i], levels[i - 1], part, scheme=region["scheme"],
                                             max_buffer=region["max_buffer"], order=region["order"],
                                             workers=region["workers"], bonds=structure.bonds,
                                             charges=getattr(structure, "charges", None), embedding=embedding,
                                             name=f"{names[i]}-{names[i - 1]}")))
        regions.append(names[i])
    concurrent = any(lv["process"] for lv in cfg["levels"])
    potential = LinearCombination(terms, name="multilayer", workers=len(terms) if concurrent else 1)
    return Model(potential, names, list(potential.labels), clocks, qm, has_qm, regions)


def untimed(p: Potential) -> Potential:
    """The potential inside any :class:`Timed` wrappers."""
    while isinstance(p, Timed):
        p = p.potential
    return p


def bare(p: Potential) -> Potential:
    """The potential inside any :class:`Timed` and :class:`hybrid.process.ProcessPotential` wrappers
    (evaluated here, in this process)."""
    from ..process import ProcessPotential
    while isinstance(p, (Timed, ProcessPotential)):
        p = p.potential
    return p


def region_system(blend, system, atoms):
    """The capped, isolated cluster (AtomicSystem) on which ``blend`` evaluates its levels for the
    region ``atoms`` of ``system``: :class:`couplers.link_atoms.CappedRegion` with the blend's bonds and
    region charge, as :meth:`couplers.blend.BlendedCorrection._delta` builds it (a periodic system's
    region is made whole by the minimum image and loses its cell)."""
    return blend.region_system(system, np.asarray(atoms, int))


def energy_zero_offsets(model: Model, structure, weights, system=None, on_error=None) -> list:
    """ΔE = E_k(m) − E_{k−1}(m) (eV) of each boundary k on one molecule m, as an isolated cluster.

    Levels must share their zero of energy: with whole-molecule units the
    blended energy holds c·Σ_u w_u(r_u) for a per-molecule offset c, a radial
    potential whose force c·w'(r) acts on every molecule crossing the buffer
    (~c/width). m is the first molecule, in the order buffer (largest weight
    first), inner region, any other (smallest first), whose electronic state
    (the charge and multiplicity a region of it gets, :func:`region_system`)
    is possible; the cluster is never periodic, so periodic and ``[mm]`` runs
    are checked too. Returns [(high name, low name, atoms of m, ΔE or None)];
    ``weights[k]`` is the boundary's :class:`couplers.partition.Weights` (at step 0),
    ``system`` the AtomicSystem the model sees (default: the structure's). ``on_error(k, exc)``, if given,
    is told of a level that fails on m (ΔE is then None); otherwise the error propagates.
    """
    out = []
    pot = model.potential
    system = structure.system if system is None else system
    for k in range(1, len(model.names)):
        W, blend = weights[k - 1], pot.terms[k][1]
        if W is None:
            out.append((model.names[k], model.names[k - 1], None, None))
            continue
        inner, buf = W.inner, W.buffer
        rest = [u for u in range(len(W.units)) if u not in inner and u not in buf]
        order = (sorted(buf, key=lambda u: -W.w[u]) + sorted(inner, key=lambda u: len(W.units[u]))
                 + sorted(rest, key=lambda u: len(W.units[u])))
        chosen = None
        for u in order:
            sub = region_system(blend, system, W.units[u])
            try:
                sub.check_spin()
            except InputError:
                continue
            chosen = (np.sort(W.units[u]), sub)
            break
        if chosen is None:
            out.append((model.names[k], model.names[k - 1], None, None))
            continue
        # evaluate copies: the blend deep-copies its (unused) stateful levels per region, and some
        # engines (tblite) cannot be deep-copied once they hold a wavefunction
        hi, lo = (copy.deepcopy(bare(p)) for p in (blend.high, blend.low))
        atoms, sub = chosen
        try:
            de = hi.compute(sub).energy - lo.compute(sub).energy
        except Exception as exc:  # noqa: BLE001 - reported through on_error (e.g. an SCF that fails)
            if on_error is None:
                raise
            on_error(k, exc)
            de = None
        out.append((model.names[k], model.names[k - 1], atoms, de))
    return out


class NonFiniteError(HybridError, FloatingPointError):
    """A potential returned NaN or inf."""


class FiniteGuard(Potential):
    """``potential`` unchanged, but a NaN/inf energy or force raises :class:`NonFiniteError`
    naming the contributions and atoms affected (before OpenMM can integrate it)."""

    def __init__(self, potential: Potential):
        self.potential = potential
        self.name, self.species, self.min_distance = potential.name, potential.species, potential.min_distance

    def check(self, system):
        self.potential.check(system)

    def _compute(self, system) -> Result:
        r = self.potential._compute(system)
        bad_f = ~np.all(np.isfinite(r.forces), axis=1)
        if np.isfinite(r.energy) and not bad_f.any():
            return r
        parts = [f"{k} = {v}" for k, v in r.contributions.items() if not np.isfinite(v)]
        atoms = np.flatnonzero(bad_f)
        raise NonFiniteError(
            f"{self.name}: energy {r.energy}" + (f" ({', '.join(parts)})" if parts else "") +
            (f"; non-finite forces on {len(atoms)} atom(s), first {atoms[:5].tolist()}" if atoms.size else ""))
