"""What ``hybrid check`` and ``hybrid run`` verify before step 0, on one code path.

:func:`preflight` does everything a run does up to its first force
evaluation, and checks on the way what step 0 would otherwise find:

1. the output directory can be created and written (nothing is created);
2. the structure reads, the ``[mm]`` model region and force field (if any)
   apply to it, and every level builds (model files, PySCF method or
   functional, Python factories);
3. the OpenMM System and the force that hands the atoms to the potential;
   the AtomicSystem the potential sees at step 0 is taken from that force
   (its charge and multiplicity: ``[structure]``'s, or with ``[mm]`` the
   rounded sum of the force field's charges of the model region);
4. per level, on every system it evaluates at step 0 (the lowest level all
   atoms, a higher level and the one below it the capped, isolated clusters
   of the higher level's region partitions, built as the blend builds them):
   the elements are known to the model (``species``); the basis of a PySCF
   level exists for them; the electron count can have the multiplicity
   (PySCF and xtb levels, Δ-ML baselines included);
5. the energy-zero check of each boundary (:func:`hybrid.md.levels.energy_zero_offsets`):
   on one molecule as an isolated cluster (so periodic and ``[mm]`` runs too),
   |E_k − E_{k−1}| above :data:`hybrid.config.ENERGY_OFFSET_THRESHOLD_EV` is an
   error unless level k sets ``accept_energy_offset = true``;
6. a product-scheme region whose buffer holds more than ``max_buffer``
   molecules at step 0, an expansion-scheme region with more than
   ``max_buffer`` members or a core (the centre's molecules) outside the
   inner region (the run would stop there with that error).

Each problem raises :class:`hybrid.config.ConfigError` naming the file, the
table and the key to change (exit code 2 of the command line); elements a
higher level does not know that are outside its region at step 0 are
warnings (the run stops if such a molecule enters the region). ``hybrid
check`` then evaluates the potential once at the step-0 positions
(:func:`evaluate_step0`); ``hybrid run`` evaluates step 0 in OpenMM before it
creates any output.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import units
from ..config import ENERGY_OFFSET_THRESHOLD_EV, OUTPUT_FILES, ConfigError, Section, _fmt
from ..errors import InputError
from ..system import AtomicSystem, symbol
from .levels import FiniteGuard, Model, bare, build_model, energy_zero_offsets, region_system
from .structure import Structure, load_structure


@dataclass
class Preflight:
    """What :func:`preflight` built and found.

    structure : the whole structure; model_structure : the atoms the levels act on (all, or the
    ``[mm]`` model region, renumbered); inner : their indices in ``structure`` (None without ``[mm]``);
    model : the multilayer; omm : the openmm.System; force : the PotentialForce of the model;
    system : the AtomicSystem the model sees at step 0; offsets : energy_zero_offsets' list;
    warnings : messages printed (already) to the stream.
    """

    structure: Structure
    model_structure: Structure
    inner: np.ndarray | None
    model: Model
    omm: object
    force: object
    system: AtomicSystem
    offsets: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def preflight(cfg: Section, stream=None) -> Preflight:
    """Build the run of ``cfg`` up to its first force evaluation and check it (see the module doc)."""
    import sys
    stream = stream or sys.stderr
    source = cfg["path"].name if cfg.get("path") else "config.toml"
    check_output_directory(cfg, source)
    st = cfg["structure"]
    try:
        structure = load_structure(st["file"], st["charge"], st["multiplicity"], st["molecules"])
    except InputError as exc:
        raise ConfigError([f"{source}: [structure] file = \"{st['file']}\": {exc}"]) from None
    mm = cfg.get("mm")
    levels_cfg, inner = cfg, None
    if mm:
        from . import mm as mm_layer
        inner = mm_layer.model_region(mm, structure, source)
        model_structure = mm_layer.sub_structure(structure, inner)
        levels_cfg = mm_layer.remap_levels(cfg, structure, inner, source)
    else:
        model_structure = structure
    if cfg["md"]["initial_velocities"] == "structure" and structure.velocities is None:
        raise ConfigError([f"{source}: [md] initial_velocities = \"structure\": {Path(st['file']).name} holds no "
                           "velocities (momenta)"])
    model = build_model(levels_cfg, model_structure)
    from ..threads import apply
    n = cfg["md"]["threads"]
    apply({"torch": n, "blas": n, **({"pyscf": n} if model.has_qm else {})})
    omm, force = _openmm_system(cfg, structure, model, inner, source)
    system = seen_system(force, model_structure.system.positions, structure)
    pre = Preflight(structure, model_structure, inner, model, omm, force, system)
    checker = _LevelChecks(cfg, levels_cfg, pre, source)
    checker.run()
    pre.warnings = checker.warnings
    for w in pre.warnings:
        print(f"warning: {w}", file=stream)
    model.reset_clocks()
    return pre


def evaluate_step0(pre: Preflight):
    """The potential's Result at the step-0 positions (as the run's first force call computes it)."""
    return FiniteGuard(pre.model.potential).compute(pre.system)


# -- the output directory ------------------------------------------------------------------------

def check_output_directory(cfg: Section, source: str) -> None:
    """Raise unless the output directory and files can be created and written; creates nothing."""
    out = cfg["output"]
    root = cfg["path"].parent if cfg.get("path") else Path.cwd()
    shown = lambda p: os.path.relpath(p, root) if Path(p).is_absolute() else str(p)  # noqa: E731
    d = Path(out["directory"])
    problem = _unwritable_dir(d)
    if problem:
        raise ConfigError([f"{source}: [output] directory = {_fmt(shown(d))}: {problem}"])
    for key in OUTPUT_FILES:
        p = Path(out[key])
        if p.is_dir():
            raise ConfigError([f"{source}: [output] {key} = {_fmt(p.name)}: {p} is a directory"])
        if p.parent != d:
            problem = _unwritable_dir(p.parent)
            if problem:
                raise ConfigError([f"{source}: [output] {key} = {_fmt(shown(p))}: {problem}"])
        if p.exists() and not os.access(p, os.W_OK):
            raise ConfigError([f"{source}: [output] {key} = {_fmt(shown(p))}: {p} exists and is not writable"])


def _unwritable_dir(d: Path) -> str | None:
    """Why the directory ``d`` cannot be used (created if missing, then written), or None."""
    p = d
    while not p.exists():
        if p.parent == p:
            return f"cannot be created: no existing parent of {d}"
        p = p.parent
    if not p.is_dir():
        return (f"{p} is a file, not a directory" if p == d else
                f"cannot be created: {p} is a file, not a directory")
    if not os.access(p, os.W_OK | os.X_OK):
        return (f"{d} is not writable" if p == d else f"cannot be created: {p} is not writable")
    return None


# -- the OpenMM System (the run's, built once here) ----------------------------------------------

def _openmm_system(cfg, structure, model, inner, source):
    """(openmm.System, PotentialForce of the model) as the run integrates them."""
    import openmm

    from couplers.openmm_force import PotentialForce
    s = structure.system
    mm = cfg.get("mm")
    if mm:
        from couplers.mixed_system import create_mixed_system

        from . import mm as mm_layer
        base = cfg["path"].parent if cfg.get("path") else Path(".")
        mixed = create_mixed_system(structure.topology, mm_layer.mm_system(mm, structure, base, source),
                                    ml_atoms=inner, ml_potential=FiniteGuard(model.potential), reuse=True)
        return mixed.system, mixed.forces["ml"]
    omm = openmm.System()
    for m in structure.masses:
        omm.addParticle(float(m))
    if s.periodic:
        omm.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*(v / units.NM)) for v in s.cell])
    force = PotentialForce(FiniteGuard(model.potential), np.arange(len(s)), s.numbers, charge=s.charge,
                           multiplicity=s.multiplicity, reuse=True, periodic=bool(s.periodic), name="hybrid")
    force.add_to(omm)
    return omm, force


def seen_system(force, positions, structure: Structure) -> AtomicSystem:
    """The AtomicSystem ``force`` hands its potential at ``positions`` (Å): its atoms, charge and
    multiplicity, and the structure's cell if the force is periodic (as at step 0)."""
    return force.system_at(positions, structure.system.cell)


# -- the levels against what they see at step 0 --------------------------------------------------

_SPIN_KINDS = ("pyscf", "xtb")


class _LevelChecks:
    def __init__(self, cfg, levels_cfg, pre: Preflight, source: str):
        self.cfg, self.levels, self.pre, self.source = cfg, levels_cfg["levels"], pre, source
        self.warnings = []
        self.root = cfg["path"].parent if cfg.get("path") else None

    # -- helpers ---------------------------------------------------------------------------------
    def where(self, i: int, prefix: str, key: str, value) -> str:
        if isinstance(value, Path) and self.root is not None:
            value = os.path.relpath(value, self.root)
        shown = _fmt(value if isinstance(value, (dict, list, int, float)) else str(value))
        return f"{self.source}: [[levels]] #{i} {prefix}{key} = {shown}"

    def atom_index(self, k: int) -> int:
        """Index in the structure of atom k of the model system."""
        inner = self.pre.inner
        return int(inner[k]) if inner is not None else int(k)

    def level_potential(self, i: int):
        """The level's potential as the model holds it (1-based ``i``)."""
        terms = self.pre.model.potential.terms
        return terms[0][1] if i == 1 else terms[i - 1][1].high

    def run(self) -> None:
        pre = self.pre
        n = len(self.levels)
        blends = [t[1] for t in pre.model.potential.terms[1:]]
        self.weights = [b.partitioner.weights(pre.system) for b in blends]
        # what each level sees at step 0: [(system, atoms of the model system or None (all), what)]
        seen = {1: [(pre.system, np.arange(len(pre.system)), "on all atoms")]}
        regions = {}
        for k in range(2, n + 1):
            blend, W = blends[k - 2], self.weights[k - 2]
            if blend.scheme == "product" and len(W.buffer) > blend.max_buffer:
                raise ConfigError([f"{self.source}: [[levels]] #{k} region.max_buffer = {blend.max_buffer}: "
                                   f"{len(W.buffer)} molecules lie in the buffer at step 0 (product partitions would "
                                   f"need {2 ** len(W.buffer)} region calls); raise max_buffer or narrow the buffer "
                                   "(width)"])
            if blend.scheme == "expansion":
                self.check_expansion(k, blend, W)
            parts = self.partitions(blend, W)
            try:
                views = [(region_system(blend, pre.system, W.atoms(p)), W.atoms(p),
                          f"on the region of [[levels]] #{k} at step 0") for p in parts if len(p)]
            except InputError as exc:        # a region whose charge or spin cannot be determined
                raise ConfigError([f"{self.source}: [[levels]] #{k} region at step 0: {exc}. Regions take their "
                                   "charges from the structure (a PDB's charge column, recognised monatomic ions) "
                                   "and are singlets in a closed-shell system; [structure] charge and multiplicity "
                                   "describe the whole system"]) from None
            regions[k] = views
            seen.setdefault(k, []).extend(views)
            seen.setdefault(k - 1, []).extend(views)
        everything = set(int(z) for z in pre.system.numbers)
        for i, lv in enumerate(self.levels, start=1):
            self.check_level(i, lv, self.level_potential(i), seen.get(i, []), everything)
        self.check_whole_system_electrons(pre.system)
        for k in range(2, n + 1):
            self.check_electrons(k, regions[k])
        self.energy_zeros(blends)

    def check_expansion(self, k: int, blend, W) -> None:
        """The expansion's core inside the inner region and at most ``max_buffer`` members at step 0."""
        from couplers.expansion import n_calls
        try:
            _, members = blend._expansion_units(W)
        except InputError as exc:
            raise ConfigError([f"{self.source}: [[levels]] #{k} region.r_inner = {_fmt(blend.partitioner.r_inner)} "
                               f"at step 0: {exc}"]) from None
        if len(members) > blend.max_buffer:
            raise ConfigError([f"{self.source}: [[levels]] #{k} region.max_buffer = {blend.max_buffer}: "
                               f"{len(members)} molecules besides the centre's have weight > 0 at step 0 (the "
                               f"expansion of order {blend.order} would need {n_calls(len(members), blend.order)} "
                               "region calls); raise max_buffer or shrink the region (r_inner, width)"])

    @staticmethod
    def partitions(blend, W) -> list:
        """The unit sets of the region calls of this blend at step 0 (as couplers.blend chooses them)."""
        inner, buf = W.inner, W.buffer
        if blend.scheme == "force_mixing":
            return [inner + buf]
        return [p for p, _, _ in blend._partitions(W, inner, buf, blend.scheme)]

    # -- elements and basis ------------------------------------------------------------------------
    def check_level(self, i, lv, pot, views, everything) -> None:
        parts = self.parts(i, lv, bare(pot))
        for prefix, key, value, p, kind in parts:
            species = getattr(p, "species", None)
            known = None if species is None else set(int(z) for z in species)
            basis = getattr(p, "basis", None) if kind == "pyscf" else None
            for system, atoms, what in views:
                for z in dict.fromkeys(int(z) for z in system.numbers):     # in order of first appearance
                    a = int(np.flatnonzero(system.numbers == z)[0])
                    who = (f"atom {self.atom_index(atoms[a])} is {symbol(z)}" if a < len(atoms) else
                           f"a link atom ({symbol(z)}) capping a cut bond")
                    if known is not None and z not in known:
                        raise ConfigError([f"{self.where(i, prefix, key, value)}: {who}, an element this model "
                                           f"does not know (it knows {_symbols(known)}); level "
                                           f"\"{lv['name']}\" acts {what}"])
                    problem = _basis_problem(basis, z) if basis is not None else None
                    if problem:
                        raise ConfigError([f"{self.where(i, prefix, 'basis', basis)}: {problem}; level "
                                           f"\"{lv['name']}\" acts {what} ({who})"])
            unseen = sorted(everything - set(int(z) for s, _, _ in views for z in s.numbers))
            if species is not None:
                bad = [z for z in unseen if z not in known]
                if bad:
                    self.warnings.append(
                        f"{self.where(i, prefix, key, value)}: the structure holds {_symbols(bad)}, which this model "
                        f"does not know; none is in level \"{lv['name']}\"'s region at step 0, but the run stops "
                        "if a molecule holding one enters it")
            if basis is not None:
                bad = [z for z in unseen if _basis_problem(basis, z)]
                if bad:
                    self.warnings.append(
                        f"{self.where(i, prefix, 'basis', basis)}: PySCF has no such basis for {_symbols(bad)}; "
                        f"none is in level \"{lv['name']}\"'s region at step 0, but the run stops if a molecule "
                        "holding one enters it")

    @staticmethod
    def parts(i, lv, pot) -> list:
        """[(key prefix, key, value, potential, kind)] of a level: the parts a message can name."""
        kind = lv["kind"]
        if kind == "delta":
            base_lv = lv["baseline"]
            base_pot = getattr(pot, "baseline", pot)
            out = [("baseline.", *_model_key(base_lv), bare(base_pot), base_lv["kind"])]
            if lv.get("correction") is not None and hasattr(pot, "correction"):
                out.append(("", "correction", lv["correction"], pot.correction, "mlip"))
            return out
        return [("", *_model_key(lv), pot, kind)]

    # -- electrons ---------------------------------------------------------------------------------
    def spin_levels(self, i):
        """[(prefix, options of the engine level, kind)] of the engines of level i that count electrons."""
        lv = self.levels[i - 1]
        out = []
        if lv["kind"] in _SPIN_KINDS:
            out.append(("", lv, lv["kind"]))
        elif lv["kind"] == "delta" and lv["baseline"]["kind"] in _SPIN_KINDS:
            out.append(("baseline.", lv["baseline"], lv["baseline"]["kind"]))
        return out

    def check_electrons(self, region_level: int, views) -> None:
        """Level ``region_level`` and the one below it on the region calls of ``region_level`` at step 0."""
        for j in (region_level, region_level - 1):
            for prefix, elv, kind in self.spin_levels(j):
                opts = _options(elv, kind)
                own = opts.get("charge") is not None or opts.get("multiplicity") is not None
                for system, atoms, _ in views:
                    state = _state(system, opts)
                    problem = _spin_problem(state)
                    if problem is None:
                        continue
                    name = self.levels[j - 1]["name"]
                    atoms_s = [self.atom_index(a) for a in atoms]
                    origin = (f"[[levels]] #{j} {prefix}options" if own else
                              "the region's own formal charges, a singlet")
                    fix = (f"change [[levels]] #{j} {prefix}options" if own else
                           "give the molecules' formal charges (a PDB's charge column)")
                    if kind == "pyscf" and not own:
                        fix += (f", or give the level its own state: [[levels]] #{j} {prefix}options.multiplicity"
                                " / options.charge")
                    raise ConfigError([
                        f"{self.source}: [[levels]] #{region_level} region: level \"{name}\" ({prefix}kind = "
                        f"\"{kind}\") sees {problem} on a region call at step 0 (atoms {_short(atoms_s)}, "
                        f"{_formula(system)}; charge {state.charge} and multiplicity {state.multiplicity} from "
                        f"{origin}); {fix}"])

    def check_whole_system_electrons(self, system) -> None:
        for prefix, elv, kind in self.spin_levels(1):
            opts = _options(elv, kind)
            state = _state(system, opts)
            problem = _spin_problem(state)
            if problem is None:
                continue
            lv = self.levels[0]
            st = self.cfg["structure"]
            if self.cfg.get("mm"):
                head = (f"{self.source}: [mm]: the model region's charge {state.charge} (the rounded sum of the "
                        f"force field's charges) and multiplicity {state.multiplicity}")
                fix = "move the [mm] model region (center, radius)"
            elif opts.get("multiplicity") is not None or opts.get("charge") is not None:
                head = (f"{self.source}: [[levels]] #1 {prefix}options: charge {state.charge}, multiplicity "
                        f"{state.multiplicity}")
                fix = f"change [[levels]] #1 {prefix}options.multiplicity or options.charge"
            else:
                shown = (f"multiplicity = {st['multiplicity']}" if st["multiplicity"] is not None else
                         f"multiplicity (default: {state.multiplicity})")
                head = f"{self.source}: [structure] {shown}"
                fix = "set [structure] multiplicity (2S+1) or [structure] charge"
            raise ConfigError([f"{head}: level \"{lv['name']}\" ({prefix}kind = \"{kind}\") on all "
                               f"{len(system)} atoms sees {problem}; {fix}"])

    def state_source(self) -> str:
        return ("the [mm] model region (charge: the rounded sum of its force-field charges; multiplicity 1)"
                if self.cfg.get("mm") else "[structure] charge / [structure] multiplicity")

    # -- energy zeros ------------------------------------------------------------------------------
    def energy_zeros(self, blends) -> None:
        pre = self.pre
        if not blends:
            return
        def failed(k, exc):
            if isinstance(exc, (ConfigError, KeyboardInterrupt)):
                raise exc
            self.warnings.append(f"{self.source}: [[levels]] #{k + 1}: energy-zero check not done: a level failed on "
                                 f"one molecule ({type(exc).__name__}: {str(exc).strip()[:300]})")

        pre.offsets = energy_zero_offsets(pre.model, pre.model_structure, self.weights, system=pre.system,
                                          on_error=failed)
        errors = []
        for k, ((hi, lo, atoms, de), blend) in enumerate(zip(pre.offsets, blends), start=2):
            if de is None or abs(de) <= ENERGY_OFFSET_THRESHOLD_EV:
                continue
            width = blend.partitioner.width
            force = f" ≈ {abs(de) / width:.3g} eV/Å" if width > 0 else ""
            atoms_s = [self.atom_index(a) for a in atoms]
            text = (f"levels \"{hi}\" and \"{lo}\" differ by {de:+.4g} eV on one molecule (atoms {_short(atoms_s)}, "
                    f"as an isolated cluster): their zeros of energy differ by more than "
                    f"{ENERGY_OFFSET_THRESHOLD_EV:g} eV, so a molecule crossing this boundary's buffer (width "
                    f"{width:g} Å) feels a spurious force ~|ΔE|/width{force}")
            if self.levels[k - 1].get("accept_energy_offset"):
                self.warnings.append(f"{self.source}: [[levels]] #{k} accept_energy_offset = true: {text}")
            else:
                errors.append(f"{self.source}: [[levels]] #{k} \"{hi}\" over \"{lo}\": {text}. Use levels that "
                              "share a reference (an MLIP or Δ-ML trained on the higher level's energies), or set "
                              f"accept_energy_offset = true in [[levels]] #{k} to run anyway")
        if errors:
            raise ConfigError(errors)


def _model_key(lv) -> tuple:
    """(key, value) that names a level's model in messages."""
    kind = lv["kind"]
    if kind in ("mlip", "mace", "torchani", "python"):
        return "file", lv["file"]
    if kind == "xtb":
        return "method", lv["method"]
    if kind == "pyscf":
        return "method", lv["method"]
    return "kind", kind


def _options(lv, kind) -> dict:
    return dict(lv.get("options") or {}) if kind == "pyscf" else {}


def _state(system: AtomicSystem, opts: dict) -> AtomicSystem:
    """``system`` with a PySCF level's own charge/multiplicity (options), as PySCFPotential takes them."""
    if opts.get("charge") is None and opts.get("multiplicity") is None:
        return system
    return system.subset(np.arange(len(system)), charge=opts.get("charge"), multiplicity=opts.get("multiplicity"))


def _spin_problem(system: AtomicSystem) -> str | None:
    ne, mult = system.n_electrons(), int(system.multiplicity)
    if ne < 0:
        return f"{ne} electrons (charge {system.charge})"
    if (ne - (mult - 1)) % 2 != 0 or mult - 1 > ne:
        return (f"{ne} electrons (sum of Z {int(system.numbers.sum())}, charge {system.charge}), which cannot "
                f"have multiplicity {mult} (2S = {mult - 1} must have the parity of the electron count)")
    return None


_BASIS_CACHE: dict = {}


def _basis_problem(basis, z: int) -> str | None:
    """Why PySCF cannot build ``basis`` for element ``z``, or None."""
    key = (basis if isinstance(basis, str) else repr(basis), z)
    if key not in _BASIS_CACHE:
        from pyscf import gto
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gto.M(atom=[(z, (0.0, 0.0, 0.0))], basis=basis, spin=z % 2, verbose=0)
            _BASIS_CACHE[key] = None
        except Exception as exc:  # PySCF raises KeyError, BasisNotFoundError, RuntimeError, ...
            detail = str(exc).strip("'\" ") or type(exc).__name__
            _BASIS_CACHE[key] = f"PySCF has no such basis for {symbol(z)} ({type(exc).__name__}: {detail})"
    return _BASIS_CACHE[key]


def _symbols(zs) -> str:
    return ", ".join(symbol(z) for z in sorted(set(int(z) for z in zs)))


def _formula(system: AtomicSystem) -> str:
    from collections import Counter
    c = Counter(system.symbols)
    return "".join(f"{s}{n if n > 1 else ''}" for s, n in sorted(c.items()))


def _short(idx, n: int = 12) -> str:
    idx = [int(i) for i in idx]
    return str(idx) if len(idx) <= n else f"[{', '.join(map(str, idx[:n]))}, ... ({len(idx)} atoms)]"
