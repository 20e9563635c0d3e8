"""Run configuration: one TOML file describes a hybrid MD run, checked up front.

A configuration has four sections (and an optional fifth, ``[mm]``) (all units in the key names or below):

``[structure]``  the atoms: ``file`` (PDB, xyz or extxyz), ``charge``,
    ``multiplicity``, ``molecules`` ("covalent": bonded clusters from
    covalent radii; "residues": the PDB's residues).
``[[levels]]``   levels of theory from lowest to highest. The first acts on
    all atoms; each further level is a correction over its ``region``
    (n-layer ONIOM with blended boundaries, :mod:`couplers.blend`):

        E = E_1(all) + Σ_{k≥2} Σ_P σ^(k)_P [E_k(P) − E_{k−1}(P)]

    ``kind`` is one of ``mlip`` (``file``), ``xtb`` (``method``,
    ``accuracy``), ``pyscf`` (``method``, ``basis``, ``options``: keyword
    arguments of :class:`hybrid.qm.PySCFPotential`), ``delta`` (``baseline``:
    an inline level table, ``correction``: an MLIP file, optional),
    ``mace`` (``file``), ``torchani`` (``file``) or ``python`` (``file``:
    a Python file, ``factory``: a function in it returning a Potential,
    ``options``: its keyword arguments).
    ``region``: ``center`` (one of ``{atom = i}``, ``{group = [i, ...]}``,
    ``{molecule = k}`` or ``{point = [x, y, z]}`` Å), ``r_inner`` (Å),
    ``width`` (Å, the buffer), ``switch``, ``scheme`` ("product"/"sorted"/
    "expansion"/"force_mixing"), ``order`` (the expansion's truncation order),
    ``max_buffer`` (more buffer units, or expansion members, stop the run with
    an error naming the count and the cap), ``workers``, ``embed_charges`` and
    ``embed_sigma`` (electrostatic embedding of the region's calls,
    :mod:`couplers.embedding`). A model ``file`` (mlip) or ``correction``
    (delta) may be a list of files: a committee whose mean is the level.
    ``accept_energy_offset`` (default false): accept that this level's zero of
    energy differs from the one below it by more than
    :data:`ENERGY_OFFSET_THRESHOLD_EV` on one molecule (otherwise an error
    before step 0, :mod:`hybrid.md.preflight`).
    ``process`` (default false): the level runs in its own process, and the
    multilayer's terms are then evaluated side by side in threads, so that an
    SCF overlaps with the MLIP and Δ-ML work (see :mod:`hybrid.md.levels`).
``[mm]``         optional: an MM far field (PDB structures only). ``forcefield``
    (OpenMM ForceField files, e.g. ["amber14-all.xml", "amber14/tip3p.xml"]),
    ``nonbonded_method`` ("NoCutoff", "CutoffNonPeriodic", "CutoffPeriodic",
    "PME"), ``cutoff_nm``, and the model region: whole molecules whose centre
    of mass lies within ``radius`` (Å) of ``center`` at step 0 get the levels,
    every other atom is MM (mechanical embedding; static region, see
    :mod:`hybrid.md.runner`). Level regions then refer to the same atom and
    molecule indices of the structure, and must lie inside the model region.
``[md]``         ``integrator`` ("verlet": NVE; "langevin": NVT,
    LangevinMiddleIntegrator with ``friction_per_ps``), ``timestep_fs``,
    ``steps``, ``temperature_K`` (initial velocities, and the bath of
    Langevin), ``seed``, ``initial_velocities``, ``platform``, ``threads``.
``[output]``     ``directory``, ``trajectory`` (.dcd or .xtc) and
    ``trajectory_interval``, ``topology`` (a PDB written beside it), ``csv``
    and ``report_interval``, ``timings``, ``plot`` (PNG), ``checkpoint`` and
    ``checkpoint_interval`` (steps), ``progress``.

Every key is checked before anything is built; an error names the file,
the table, the key and the value, e.g.::

    config.toml: [md] timestep_fs = -1: must be > 0
    config.toml: [md] timstep_fs = 0.5: unknown key; did you mean "timestep_fs"?
    config.toml: [[levels]] #3 region.r_inner = -1.0: must be >= 0

Every key, with its type, default and meaning, is listed in ``docs/config.md``,
whose tables :func:`reference_tables` generates from the schema below
(``python -m hybrid.config docs/config.md``; a test keeps them equal).

Unknown keys are errors. File paths resolve relative to the configuration
file. :func:`load_config` returns nested :class:`Section` objects with the
defaults filled in and paths absolute.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
from pathlib import Path

from .errors import InputError

REQUIRED = object()

LEVEL_KINDS = ("mlip", "xtb", "pyscf", "delta", "mace", "torchani", "python")
#: eV on one molecule: two neighbouring levels whose zeros of energy differ by more are an error
#: (unless the higher level has ``accept_energy_offset = true``)
ENERGY_OFFSET_THRESHOLD_EV = 0.5
STRUCTURE_SUFFIXES = (".pdb", ".xyz", ".extxyz")
TRAJECTORY_SUFFIXES = (".dcd", ".xtc")


class ConfigError(InputError):
    """One or more bad settings; ``errors`` lists one message per problem."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class Section(dict):
    """A validated table: keys as attributes (``cfg.md.timestep_fs``) and as items."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


# -- value checks: each returns an error message or None -----------------------

def _fmt(value) -> str:
    """A value as TOML would show it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def gt(lo):
    return lambda v: None if v > lo else f"must be > {_fmt(lo)}"


def ge(lo):
    return lambda v: None if v >= lo else f"must be >= {_fmt(lo)}"


class Key:
    """One setting: its type ("str", "int", "float", "bool", "path", "table",
    "ints", "floats", "vec3"), default (``REQUIRED`` if none), allowed choices,
    further checks and a one-line doc (used in "missing" messages)."""

    def __init__(self, kind, default=REQUIRED, *, choices=None, checks=(), doc="", must_exist=True,
                 suffixes=None):
        self.kind, self.default, self.choices, self.checks = kind, default, choices, tuple(checks)
        self.doc, self.must_exist, self.suffixes = doc, must_exist, suffixes

    def check(self, value, base: Path):
        """(converted value, error message or None)."""
        k = self.kind
        if k in ("str", "path") and not isinstance(value, str):
            return value, "must be a string"
        if k == "paths":                       # one file, or a list of >= 2 (a committee)
            one = Key("path", must_exist=self.must_exist, suffixes=self.suffixes)
            if isinstance(value, str):
                return one.check(value, base)
            if not isinstance(value, list) or len(value) < 2 or not all(isinstance(v, str) for v in value):
                return value, "must be a file name, or a list of at least 2 file names (a committee)"
            out = []
            for v in value:
                p, err = one.check(v, base)
                if err:
                    return value, f"{_fmt(v)}: {err}"
                out.append(p)
            return out, None
        if k == "int" and not _is_int(value):
            return value, "must be an integer"
        if k == "float":
            if not _is_num(value):
                return value, "must be a number"
            value = float(value)
            if not math.isfinite(value):
                return value, "must be finite"
        if k == "bool" and not isinstance(value, bool):
            return value, "must be true or false"
        if k == "table" and not isinstance(value, dict):
            return value, "must be a table"
        if k == "strs":
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                return value, "must be a non-empty list of strings"
        if k == "ints":
            if not isinstance(value, list) or not value or not all(_is_int(v) for v in value):
                return value, "must be a non-empty list of integers"
        if k == "floats":
            if not isinstance(value, list) or not value or not all(_is_num(v) for v in value):
                return value, "must be a non-empty list of numbers"
            value = [float(v) for v in value]
            if not all(math.isfinite(v) for v in value):
                return value, "must be finite numbers"
        if k == "vec3":
            if not isinstance(value, list) or len(value) != 3 or not all(_is_num(v) for v in value):
                return value, "must be a list of 3 numbers"
            value = [float(v) for v in value]
        if self.choices is not None and value not in self.choices:
            msg = "must be one of " + ", ".join(_fmt(c) for c in self.choices)
            close = difflib.get_close_matches(str(value), [str(c) for c in self.choices], n=1, cutoff=0.5)
            if not close and isinstance(value, str):
                close = [c for c in self.choices if str(c).lower() == value.lower()]
            return value, msg + (f"; did you mean {_fmt(close[0])}?" if close else "")
        for c in self.checks:
            msg = c(value)
            if msg:
                return value, msg
        if k == "path":
            p = Path(value).expanduser()
            p = p if p.is_absolute() else (base / p)
            p = Path(os.path.normpath(p))
            if self.suffixes and p.suffix.lower() not in self.suffixes:
                return value, f"must end in {' or '.join(self.suffixes)}"
            if self.must_exist and not p.is_file():
                return value, f"no such file (looked for {p})"
            value = p
        return value, None


def _structure_schema():
    return {
        "file": Key("path", doc="structure file (PDB, xyz or extxyz)", suffixes=STRUCTURE_SUFFIXES),
        "charge": Key("int", None, doc="total charge (e); default: the file's, else 0"),
        "multiplicity": Key("int", None, checks=(ge(1),), doc="2S+1; default: the file's, else 1"),
        "molecules": Key("str", "auto", choices=("auto", "covalent", "residues"),
                         doc="how atoms group into molecules: covalent radii, or the PDB's residues"),
    }


def _region_schema():
    return {
        "center": Key("table", doc="{molecule = k}, {group = [i, ...]}, {atom = i} or {point = [x, y, z]}: "
                                   "see the region centres"),
        "r_inner": Key("float", checks=(ge(0),), doc="radius of the inner region (Å)"),
        "width": Key("float", checks=(ge(0),), doc="width of the buffer (Å); 0 gives an abrupt boundary"),
        "switch": Key("str", "quintic", choices=("quintic", "septic", "cubic", "step"),
                      doc="switching polynomial across the buffer: quintic (C², 6t⁵−15t⁴+10t³), septic (C³), "
                          "cubic (C¹, for comparison), step (abrupt)"),
        "scheme": Key("str", "product", choices=("product", "sorted", "expansion", "force_mixing"),
                      doc="partitions of the buffer molecules: product (2ⁿ region calls, smooth), sorted "
                          "(n+1 calls, forces jump where two weights cross), expansion (the product sum "
                          "truncated at `order` in many-body terms about the centre's molecules (none for a point), "
                          "over the m other molecules with weight > 0, inner ones included: 1+m calls at order 1, "
                          "1+m+m(m−1)/2 at order 2, each on the centre's molecules and at most `order` others; "
                          "smooth; exact when order ≥ m), force_mixing (not conservative)"),
        "order": Key("int", 2, checks=(ge(1),),
                     doc="truncation order of the expansion scheme (1 or 2 usually; ignored by the others)"),
        "max_buffer": Key("int", 6, checks=(ge(0),),
                          doc="most molecules in the buffer for the product scheme (2^max_buffer region calls), "
                              "or most expansion members (molecules with weight > 0 besides the centre's) for "
                              "the expansion scheme; more stop the run with an error naming the count and the cap"),
        "workers": Key("int", 1, checks=(ge(1),), doc="threads evaluating the region calls of one step"),
        "embed_charges": Key("table", None, doc="electrostatic embedding, {element = charge (e)} for every element, "
                             "e.g. {O = -0.834, H = 0.417} (TIP3P): this level's region calls run in these charges "
                             "of every atom outside the region, the level below gets their Coulomb term with the "
                             "region's own charges (couplers.embedding; each molecule's charges must add up to its "
                             "formal charge; non-periodic systems, regions that cut no bonds, a level that takes "
                             "point charges: PySCF); omitted: mechanical embedding"),
        "embed_sigma": Key("float", 0.0, checks=(ge(0),),
                           doc="Gaussian width σ (Å) of the embedding charges, ρ ∝ exp(−r²/σ²) (0: point charges)"),
    }


_CENTER_KINDS = {
    "molecule": Key("int", checks=(ge(0),), doc="the centre of mass of molecule k (0-based, in the structure's "
                                                 "molecule order); the region moves with it"),
    "group": Key("ints", checks=(lambda v: None if min(v) >= 0 else "indices must be >= 0",),
                 doc="the centre of mass of atoms [i, ...] (0-based); the region moves with them"),
    "atom": Key("int", checks=(ge(0),), doc="atom i (0-based); the region moves with it"),
    "point": Key("vec3", doc="a fixed point [x, y, z] (Å); not translation invariant (momentum is not "
                             "conserved)"),
}


def _level_schema(kind):
    common = {"name": Key("str", None, doc="a label for CSV columns and messages"),
              "kind": Key("str", choices=LEVEL_KINDS, doc="the kind of model: " + ", ".join(LEVEL_KINDS)),
              "region": Key("table", None, doc="where this level applies (every level but the first)"),
              "process": Key("bool", False, doc="evaluate this level in its own process, side by side "
                                                "with the other levels (hybrid.process.ProcessPotential)"),
              "accept_energy_offset": Key("bool", False, doc="accept that this level and the one below differ "
                                          f"by more than {ENERGY_OFFSET_THRESHOLD_EV:g} eV on one molecule (different "
                                          "zeros of energy: a spurious force ~ΔE/width on every molecule crossing "
                                          "the buffer); by default that stops check and run. Not on the first "
                                          "level")}
    dtype = Key("str", "float64", choices=("float64", "float32"), doc="floating-point precision of the model")
    specific = {
        "mlip": {"file": Key("paths", doc="the model file (hybrid.ml: models/*.pt), or a list of model files: a "
                                          "committee, whose mean is the energy (hybrid.ml.committee)"),
                 "dtype": dtype},
        "xtb": {"method": Key("str", "GFN2-xTB", choices=("GFN2-xTB", "GFN1-xTB"), doc="tblite method"),
                "accuracy": Key("float", 1.0, checks=(gt(0),), doc="tblite accuracy (smaller is tighter)")},
        "pyscf": {"method": Key("str", doc='e.g. "HF", "B3LYP", "MP2"'),
                  "basis": Key("str", doc='e.g. "6-31g*", "def2-svp"'),
                  "options": Key("table", {}, doc="keyword arguments of PySCFPotential")},
        "delta": {"baseline": Key("table", doc="the baseline level, an inline table with its own kind"),
                  "correction": Key("paths", None, doc="the learned correction (an MLIP file), or a list of MLIP "
                                                       "files: a committee, whose mean is the correction")},
        "mace": {"file": Key("path", doc="a MACE model file"), "dtype": dtype},
        "torchani": {"file": Key("path", doc="a TorchANI model file (torch.save of the model)")},
        "python": {"file": Key("path", doc="a Python file", suffixes=(".py",)),
                   "factory": Key("str", "make_potential", doc="function in the file returning a Potential"),
                   "options": Key("table", {}, doc="keyword arguments of the factory")},
    }
    return {**common, **specific[kind]}


def _mm_schema():
    return {
        "forcefield": Key("strs", doc='OpenMM ForceField files, e.g. ["amber14-all.xml", "amber14/tip3p.xml"]'),
        "nonbonded_method": Key("str", "NoCutoff", choices=("NoCutoff", "CutoffNonPeriodic", "CutoffPeriodic", "PME"),
                                doc="OpenMM nonbonded method of the force field (the periodic ones need a PDB "
                                    "with a box, CRYST1)"),
        "cutoff_nm": Key("float", 1.0, checks=(gt(0),), doc="nonbonded cutoff (nm) of the cutoff methods"),
        "center": Key("table", doc="centre of the model region, a region-centre form: {molecule = k}, "
                                   "{group = [i, ...]}, {atom = i} or {point = [x, y, z]}"),
        "radius": Key("float", checks=(gt(0),), doc="model region: molecules with their centre of mass "
                                                     "within this distance (Å) of the centre at step 0"),
    }


def _md_schema():
    return {
        "integrator": Key("str", "verlet", choices=("verlet", "langevin"),
                          doc="verlet: NVE (VerletIntegrator); langevin: NVT (LangevinMiddleIntegrator)"),
        "timestep_fs": Key("float", checks=(gt(0), lambda v: None if v <= 10 else "must be <= 10 (fs)"),
                           doc="time step (fs)"),
        "steps": Key("int", checks=(ge(0),), doc="number of MD steps"),
        "temperature_K": Key("float", 300.0, checks=(ge(0),),
                             doc="K: of the Maxwell-Boltzmann initial velocities, and of the Langevin bath"),
        "friction_per_ps": Key("float", None, checks=(gt(0),),
                               doc="Langevin friction (1/ps); langevin only, default there 1.0"),
        "seed": Key("int", 1, checks=(ge(1), lambda v: None if v < 2**31 else "must be < 2^31"),
                    doc="random seed of the initial velocities and of the Langevin noise"),
        "initial_velocities": Key("str", "maxwell-boltzmann", choices=("maxwell-boltzmann", "structure", "zero"),
                                  doc="maxwell-boltzmann at temperature_K (exactly, centre of mass at rest), "
                                      "structure (the file's momenta, extxyz), or zero"),
        "platform": Key("str", "Reference", choices=("Reference", "CPU"), doc="OpenMM platform"),
        "threads": Key("int", 1, checks=(ge(1),), doc="threads of OpenMM's CPU platform, torch, BLAS and PySCF"),
    }


def _output_schema():
    out = lambda default, doc: Key("path", default, must_exist=False, doc=doc)  # noqa: E731
    return {
        "directory": Key("path", "output", must_exist=False,
                         doc="where the outputs go (relative to the configuration file); created after step 0"),
        "trajectory": Key("path", "trajectory.dcd", must_exist=False, suffixes=TRAJECTORY_SUFFIXES,
                          doc="trajectory file, .dcd or .xtc (file names are relative to directory)"),
        "trajectory_interval": Key("int", 10, checks=(ge(1),), doc="steps between trajectory frames"),
        "topology": Key("path", "topology.pdb", must_exist=False, suffixes=(".pdb",),
                        doc="a PDB of the topology and first positions, beside the trajectory"),
        "csv": out("energies.csv", "energies by layer, temperature, region sizes and calls, per reported step"),
        "report_interval": Key("int", 1, checks=(ge(1),), doc="steps between rows of csv and timings"),
        "timings": out("timings.csv", "wall time per reported step: total, PySCF, each level"),
        "plot": Key("path", "summary.png", must_exist=False, suffixes=(".png",), doc="the summary plot (PNG)"),
        "checkpoint": out("checkpoint.json", "the checkpoint (`hybrid run --resume` continues from it)"),
        "checkpoint_interval": Key("int", 100, checks=(ge(1),), doc="steps between checkpoints"),
        "progress": Key("bool", True, doc="show a progress bar (ns/day, QM share)"),
    }


SAMPLING_METHODS = ("pimd", "hmc", "free-energy", "umbrella")


def _sampling_schema():
    return {
        "method": Key("str", choices=SAMPLING_METHODS,
                      doc="pimd: ring-polymer MD (first level on every bead, the levels above contracted); hmc: "
                          "hybrid Monte Carlo, trajectories on the first level, accepted with the whole model; "
                          "free-energy: ΔA from the first level to the whole model over λ windows; umbrella: "
                          "F(ξ) along `cv` on the first level, reweighted to the whole model"),
        "replicas": Key("int", 1, checks=(ge(1),),
                        doc="pimd, hmc: independent ring polymers / chains, seeds seed, seed+1, ... (one task each)"),
        "workers": Key("int", 1, checks=(ge(1),),
                       doc="Dask worker processes running the tasks side by side; 1: one after another in this "
                           "process"),
        "scheduler": Key("str", None, doc="a Dask scheduler address (tcp://host:8786) to run the tasks on "
                                          "instead of a local cluster"),
        "beads": Key("int", 16, checks=(ge(1),), doc="pimd: ring-polymer beads P"),
        "contracted_beads": Key("int", None, checks=(ge(1),),
                                doc="pimd: beads the levels above the first are evaluated on (1: the centroid); "
                                    "default: every bead"),
        "equilibration": Key("int", 0, checks=(ge(0),),
                             doc="pimd: steps, other methods: iterations (per window), run before the first sample"),
        "sample_every": Key("int", 10, checks=(ge(1),), doc="pimd: steps between samples"),
        "friction_per_ps": Key("float", 10.0, checks=(gt(0),), doc="pimd: PILE friction of the centroid (1/ps)"),
        "isotopes": Key("table", {}, doc="{element = mass (amu)}, e.g. {H = 2.014}: isotopologues by mass alone"),
        "iterations": Key("int", None, checks=(ge(1),),
                          doc="hmc (per chain), free-energy and umbrella (per window): Monte Carlo iterations"),
        "proposal_steps": Key("int", 20, checks=(ge(1),),
                              doc="velocity-Verlet steps of [md] timestep_fs on the first level per proposal"),
        "lambdas": Key("floats", None, doc="free-energy: window positions, increasing from 0 to 1"),
        "cv": Key("table", None, doc="umbrella: the collective variable, {distance = [i, j]} (Å) or "
                                     "{coordinate = [atom, axis]} (Å, axis 0-2); 0-based atom indices"),
        "centres": Key("floats", None, doc="umbrella: window centres ξ_k"),
        "kappa": Key("float", None, checks=(gt(0),), doc="umbrella: restraint force constant (eV per unit of ξ²)"),
        "bins": Key("int", 30, checks=(ge(2),), doc="umbrella: histogram bins of F(ξ) between the extreme samples"),
    }


_SAMPLING_NEEDS = {"hmc": ("iterations",), "free-energy": ("iterations", "lambdas"),
                   "umbrella": ("iterations", "cv", "centres", "kappa"), "pimd": ()}


def _sampling(ck: "_Checker", sub, n_levels: int) -> Section | None:
    """[sampling]: method-specific keys present, λ from 0 to 1, a known CV, known elements and positive masses."""
    if not isinstance(sub, dict):
        ck.error("", "sampling", sub, "must be a table")
        return None
    out = ck.table(sub, _sampling_schema(), "[sampling]")
    method = out.get("method")
    if method not in SAMPLING_METHODS:
        return out
    for key in _SAMPLING_NEEDS[method]:
        if out.get(key) is None:
            ck.error("[sampling]", key, REQUIRED,
                     f"missing (method = \"{method}\" needs it: {_sampling_schema()[key].doc})")
    lams = out.get("lambdas")
    if method == "free-energy" and isinstance(lams, list):
        if len(lams) < 2 or lams[0] != 0.0 or lams[-1] != 1.0 or any(b <= a for a, b in zip(lams, lams[1:])):
            ck.error("[sampling]", "lambdas", lams, "must increase from 0 to 1 (at least the two end states)")
    if method in ("free-energy",) and n_levels < 2:
        ck.error("[sampling]", "method", method, "needs at least two [[levels]]: ΔA runs from the first level "
                                                 "to the whole model")
    cv = out.get("cv")
    if method == "umbrella" and isinstance(cv, dict):
        ok = (len(cv) == 1 and (("distance" in cv and isinstance(cv["distance"], list) and len(cv["distance"]) == 2
                                 and all(_is_int(v) and v >= 0 for v in cv["distance"]))
                                or ("coordinate" in cv and isinstance(cv["coordinate"], list)
                                    and len(cv["coordinate"]) == 2 and all(_is_int(v) for v in cv["coordinate"])
                                    and cv["coordinate"][0] >= 0 and cv["coordinate"][1] in (0, 1, 2))))
        if not ok:
            ck.error("[sampling]", "cv", cv, "must be {distance = [i, j]} or {coordinate = [atom, axis]} with "
                                             "0-based atom indices and axis 0, 1 or 2")
    if method == "umbrella" and isinstance(out.get("centres"), list) and len(out["centres"]) < 2:
        ck.error("[sampling]", "centres", out["centres"], "needs at least 2 windows")
    for el, mass in (out.get("isotopes") or {}).items():
        from ase.data import atomic_numbers
        if el not in atomic_numbers:
            ck.error("[sampling]", f"isotopes.{el}", mass, "unknown element")
        elif not (_is_num(mass) and math.isfinite(mass) and mass > 0):
            ck.error("[sampling]", f"isotopes.{el}", mass, "must be a positive mass (amu)")
    if method == "pimd" and out.get("contracted_beads") and out["contracted_beads"] > out.get("beads", 16):
        ck.error("[sampling]", "contracted_beads", out["contracted_beads"], f"must be <= beads ({out.get('beads')})")
    return out


TOP = {"structure": _structure_schema, "levels": None, "md": _md_schema, "output": _output_schema, "mm": _mm_schema,
       "sampling": _sampling_schema}
TOP_DOC = {"title": Key("str", "", doc="a title for the summary plot")}


class _Checker:
    def __init__(self, source: str, base: Path):
        self.source, self.base, self.errors = source, base, []

    def error(self, section, key, value, msg):
        shown = f"{key} = {_fmt(value)}" if value is not REQUIRED else key
        where = f"{section} " if section else ""
        self.errors.append(f"{self.source}: {where}{shown}: {msg}")

    def table(self, data: dict, schema: dict, section: str, prefix: str = "", foreign: dict | None = None,
              base: Path | None = None, known=()) -> Section:
        """Check ``data`` against ``schema``; ``foreign``: {key: where it belongs} for better messages;
        ``known``: further valid key names (checked elsewhere) offered as suggestions."""
        out = Section()
        for key, value in data.items():
            if key not in schema:
                if foreign and key in foreign:
                    msg = f"not used here ({foreign[key]})"
                else:
                    names = list(schema) + list(known)
                    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
                    msg = "unknown key" + (f'; did you mean "{close[0]}"?' if close else
                                           f" (known: {', '.join(sorted(names))})")
                self.error(section, prefix + key, value, msg)
                continue
            v, msg = schema[key].check(value, base or self.base)
            if msg:
                self.error(section, prefix + key, value, msg)
            out[key] = v
        for key, spec in schema.items():
            if key not in data:
                if spec.default is REQUIRED:
                    self.error(section, prefix + key, REQUIRED,
                               "missing" + (f" (required: {spec.doc})" if spec.doc else " (required)"))
                else:
                    d = spec.default
                    if spec.kind == "path" and d is not None:
                        d = Path(os.path.normpath((base or self.base) / d))
                    out[key] = dict(d) if isinstance(d, dict) else d
        return out


def validate(data: dict, source: str = "config.toml", base: Path | str = ".") -> Section:
    """Check a parsed configuration; returns it with defaults filled and paths absolute.

    Raises :class:`ConfigError` listing every problem found, each naming
    ``source``, the table, the key and the value.
    """
    base = Path(base).resolve()
    ck = _Checker(source, base)
    cfg = Section()
    for key, value in data.items():
        if key in TOP_DOC:
            v, msg = TOP_DOC[key].check(value, base)
            if msg:
                ck.error("", key, value, msg)
            cfg[key] = v
        elif key not in TOP:
            close = difflib.get_close_matches(key, list(TOP) + list(TOP_DOC), n=1, cutoff=0.6)
            table = isinstance(value, (dict, list))
            hint = (f"[{close[0]}]" if close[0] in TOP else f'"{close[0]}"') if close else ""
            ck.error("", f"[{key}]" if table else key, REQUIRED if table else value,
                     ("unknown table" if table else "unknown key") +
                     (f"; did you mean {hint}?" if close else f" (known: {', '.join(TOP)}, title)"))
    cfg.setdefault("title", "")
    for name in ("structure", "md", "output"):
        sub = data.get(name)
        if sub is None:
            if name == "output":
                sub = {}
            else:
                ck.error("", f"[{name}]", REQUIRED, "missing table")
                continue
        if not isinstance(sub, dict):
            ck.error("", name, sub, "must be a table")
            continue
        if name == "output":
            cfg[name] = _output(ck, sub)
        else:
            cfg[name] = ck.table(sub, TOP[name](), f"[{name}]")
    cfg["levels"] = _levels(ck, data.get("levels", REQUIRED))
    cfg["mm"] = _mm(ck, data["mm"], cfg.get("structure")) if "mm" in data else None
    levels_given = data.get("levels")
    n_levels = len(levels_given) if isinstance(levels_given, list) else 0
    if "sampling" in data:          # only when given: the fingerprint of MD-only files stays as it was
        cfg["sampling"] = _sampling(ck, data["sampling"], n_levels)
    if cfg.get("sampling") is not None and cfg["mm"] is not None:
        ck.error("", "[sampling]", REQUIRED, "cannot be combined with [mm] (sampling runs the levels alone)")
    if "md" in cfg:
        _md_cross_checks(ck, cfg["md"])
    if "output" in cfg:
        out = cfg["output"]
        paths = [out[k] for k in OUTPUT_FILES if isinstance(out.get(k), Path)]
        if len(set(paths)) != len(paths):
            dup = [p for p in paths if paths.count(p) > 1][0]
            ck.error("[output]", "files", [p.name for p in paths], f"two outputs share the path {dup}")
    if ck.errors:
        raise ConfigError(ck.errors)
    return cfg


OUTPUT_FILES = ("trajectory", "topology", "csv", "timings", "plot", "checkpoint")


def _output(ck: _Checker, sub: dict) -> Section:
    """[output]: ``directory`` relative to the configuration, file names relative to ``directory``."""
    schema = _output_schema()
    d = ck.table({k: v for k, v in sub.items() if k == "directory"}, {"directory": schema.pop("directory")},
                 "[output]")
    base = d["directory"] if isinstance(d["directory"], Path) else ck.base
    out = ck.table({k: v for k, v in sub.items() if k != "directory"}, schema, "[output]", base=base,
                   known=("directory",))
    return Section(directory=d["directory"], **out)


def _md_cross_checks(ck: _Checker, md: Section) -> None:
    if md.get("integrator") == "langevin" and md.get("friction_per_ps") is None:
        md["friction_per_ps"] = 1.0
    if md.get("integrator") == "verlet" and md.get("friction_per_ps") is not None:
        ck.error("[md]", "friction_per_ps", md["friction_per_ps"],
                 'is used only with integrator = "langevin" (verlet is NVE)')


def _levels(ck: _Checker, levels) -> list:
    if levels is REQUIRED:
        ck.error("", "[[levels]]", REQUIRED, "missing (at least one level of theory, lowest first)")
        return []
    if not isinstance(levels, list) or not all(isinstance(t, dict) for t in levels) or not levels:
        ck.error("", "levels", levels, "must be a non-empty array of tables ([[levels]])")
        return []
    out, names = [], []
    for i, table in enumerate(levels, start=1):
        section = f"[[levels]] #{i}"
        lv = _level(ck, table, section, "", top=True)
        if lv is None:
            continue
        if lv.get("name") is None:
            lv["name"] = lv["kind"] if lv["kind"] not in [x["kind"] for x in out] else f"{lv['kind']}{i}"
        if lv["name"] in names:
            ck.error(section, "name", lv["name"], "used by another level; names must be unique")
        names.append(lv["name"])
        region = table.get("region")
        if i == 1 and lv.get("accept_energy_offset") is True:
            ck.error(section, "accept_energy_offset", True, "the first (lowest) level has no level below it")
        if i == 1 and region is not None:
            ck.error(section, "region", "{...}", "the first (lowest) level acts on all atoms and takes no region")
        elif i > 1 and region is None:
            ck.error(section, "region", REQUIRED, "missing (where this level corrects the one below)")
        elif i > 1 and isinstance(region, dict):
            lv["region"] = _region(ck, region, section)
        out.append(lv)
    return out


def _level(ck: _Checker, table: dict, section: str, prefix: str, top: bool) -> Section | None:
    kind = table.get("kind", REQUIRED)
    if kind is REQUIRED:
        ck.error(section, prefix + "kind", REQUIRED, f"missing (one of {', '.join(LEVEL_KINDS)})")
        return None
    _, msg = Key("str", choices=LEVEL_KINDS).check(kind, ck.base)
    if msg:
        ck.error(section, prefix + "kind", kind, msg)
        return None
    schema = _level_schema(kind)
    if not top:
        schema.pop("region")
        schema.pop("process")
        schema.pop("accept_energy_offset")
        if kind == "delta":
            ck.error(section, prefix + "kind", kind, "a Δ-ML baseline cannot itself be a delta level")
            return None
    foreign = {} if top else {"process": "a baseline runs where its Δ-ML level runs: set process on that level",
                              "accept_energy_offset": "set it on the Δ-ML level"}
    for other in LEVEL_KINDS:
        for key in _level_schema(other):
            if key not in schema:
                foreign.setdefault(key, f'a key of kind = "{other}", this level is kind = "{kind}"')
    lv = ck.table({k: v for k, v in table.items() if k != "region"}, {k: s for k, s in schema.items()
                                                                      if k != "region"},
                  section, prefix, foreign)
    lv["region"] = None
    if kind == "delta" and isinstance(lv.get("baseline"), dict):
        lv["baseline"] = _level(ck, lv["baseline"], section, prefix + "baseline.", top=False)
        if lv["baseline"] is not None and lv["baseline"].get("name") is None:
            lv["baseline"]["name"] = lv["baseline"]["kind"]
    if kind == "pyscf" and isinstance(lv.get("options"), dict):
        _pyscf_options(ck, lv["options"], section, prefix + "options.")
    return lv


def _pyscf_options(ck, options: dict, section: str, prefix: str) -> None:
    import inspect

    from .qm.pyscf_layer import PySCFPotential
    params = {k: p.default for k, p in inspect.signature(PySCFPotential.__init__).parameters.items()
              if k not in ("self", "method", "basis", "name")}
    for key, value in options.items():
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=1, cutoff=0.6)
            ck.error(section, prefix + key, value, "not an option of PySCFPotential" +
                     (f'; did you mean "{close[0]}"?' if close else f" (options: {', '.join(params)})"))
            continue
        d = params[key]
        if isinstance(d, bool) and not isinstance(value, bool):
            ck.error(section, prefix + key, value, "must be true or false")
        elif _is_num(d) and not isinstance(d, bool) and not _is_num(value):
            ck.error(section, prefix + key, value, "must be a number")
        elif _is_int(d) and _is_num(value) and not _is_int(value):
            ck.error(section, prefix + key, value, "must be an integer")


def _region(ck: _Checker, region: dict, section: str) -> Section:
    r = ck.table(region, _region_schema(), section, "region.")
    _center(ck, r, section, "region.")
    return r


def _center(ck: _Checker, table: Section, section: str, prefix: str) -> None:
    """Turn ``table["center"]`` ({kind = value}) into Section(kind=..., value=...), or record the error."""
    c = table.get("center")
    if isinstance(c, dict):
        if len(c) != 1 or next(iter(c)) not in _CENTER_KINDS:
            ck.error(section, prefix + "center", c,
                     "must hold exactly one of atom = i, group = [i, ...], molecule = k, point = [x, y, z]")
        else:
            (kind, value), = c.items()
            v, msg = _CENTER_KINDS[kind].check(value, ck.base)
            if msg:
                ck.error(section, f"{prefix}center.{kind}", value, msg)
            table["center"] = Section(kind=kind, value=v)


def _mm(ck: _Checker, sub, structure) -> Section | None:
    if not isinstance(sub, dict):
        ck.error("", "mm", sub, "must be a table")
        return None
    mm = ck.table(sub, _mm_schema(), "[mm]")
    _center(ck, mm, "[mm]", "")
    f = structure.get("file") if structure else None
    if isinstance(f, Path) and f.suffix.lower() != ".pdb":
        ck.error("[mm]", "forcefield", mm.get("forcefield"), f"needs a PDB structure (OpenMM's ForceField "
                 f"assigns parameters by residue); [structure] file is {f.name}")
    return mm


def load_config(path) -> Section:
    """Read and validate a TOML run configuration (paths relative to its directory).

    The result carries ``path`` (the file) and ``hash`` (:func:`config_hash`).
    """
    import tomllib
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: no such configuration file"])
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path.name}: not valid TOML: {exc}"]) from None
    cfg = validate(data, source=path.name, base=path.resolve().parent)
    cfg["path"] = path.resolve()
    cfg["hash"] = config_hash(cfg)
    return cfg


def input_files(cfg: Section) -> list[Path]:
    """The files a run reads: the structure and every model or Python file of the levels."""
    out = [cfg["structure"]["file"]]

    def level_files(lv):
        for key in ("file", "correction"):
            value = lv.get(key)
            out.extend(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, Path))
        if isinstance(lv.get("baseline"), dict):
            level_files(lv["baseline"])

    for lv in cfg["levels"]:
        level_files(lv)
    return out


def config_fingerprint(cfg: Section) -> dict:
    """{setting: value} of what determines the trajectory, flattened to dotted keys
    (``md.timestep_fs``, ``levels[1].region.r_inner``), paths relative to the
    configuration file, plus ``file <path>: <sha256>`` for every input file
    (:func:`input_files`). ``md.steps`` and ``output.progress`` are left out:
    they do not change the trajectory (``steps`` may grow on resume).

    A checkpoint stores it, so a refused ``--resume`` can name the keys that changed.
    """
    root = Path(cfg["path"]).parent if cfg.get("path") else Path.cwd()
    flat: dict = {}

    def walk(x, key):
        if isinstance(x, Path):
            flat[key] = os.path.relpath(x, root)
        elif isinstance(x, dict):
            if not x:
                flat[key] = {}
            for k, v in x.items():
                if key or k not in ("path", "hash"):
                    walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(x, (list, tuple)):
            if not x:
                flat[key] = []
            for i, v in enumerate(x):
                walk(v, f"{key}[{i}]")
        else:
            flat[key] = x if isinstance(x, (bool, int, float, str, type(None))) else str(x)

    walk(cfg, "")
    flat.pop("md.steps", None)
    flat.pop("output.progress", None)
    for k in [k for k in flat if k.startswith("sampling")]:     # [sampling] does not change the MD trajectory
        flat.pop(k)
    for p in input_files(cfg):
        flat[f"file {os.path.relpath(p, root)}"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return flat


def changed_settings(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for every setting of two fingerprints that differs (added or removed keys too)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k, "(not set)"), new.get(k, "(not set)")
        if a != b:
            if k.startswith("file "):
                out.append(f"{k[5:]}: the file's contents changed" if k in old and k in new else
                           f"{k[5:]}: {'now read' if k in new else 'no longer read'}")
            else:
                out.append(f"{k}: {json.dumps(a, default=str)} -> {json.dumps(b, default=str)}")
    return out


def config_hash(cfg: Section) -> str:
    """SHA-256 of :func:`config_fingerprint`: every setting that determines the
    trajectory and the bytes of the input files.

    A checkpoint records it; ``--resume`` refuses a configuration whose hash
    differs (changing ``steps`` is allowed, to extend a run).
    """
    blob = json.dumps(config_fingerprint(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# -- the configuration reference (docs/config.md), generated from the schema above -----------------------

def _type_name(key: Key) -> str:
    names = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "path": "path",
             "table": "table", "strs": "list of strings", "ints": "list of integers", "vec3": "[x, y, z]",
             "floats": "list of numbers",
             "paths": "file name or list of file names"}
    t = names[key.kind]
    if key.suffixes:
        t += " (" + ", ".join(key.suffixes) + ")"
    if key.choices is not None:
        t += ": " + " \\| ".join(f"`{_fmt(c)}`" for c in key.choices)
    return t


def _default_text(key: Key) -> str:
    d = key.default
    if d is REQUIRED:
        return "required"
    if d is None:
        return "none"
    return f"`{_fmt(d)}`"


def _table(schema: dict) -> str:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, key in schema.items():
        rows.append(f"| `{name}` | {_type_name(key)} | {_default_text(key)} | {key.doc.replace('|', chr(92) + '|')} |")
    return "\n".join(rows)


def _pyscf_options_table() -> str:
    """The ``options`` of a pyscf level: PySCFPotential's keyword arguments, meanings from its docstring."""
    import inspect
    import re

    from .qm.pyscf_layer import PySCFPotential
    doc = inspect.getdoc(PySCFPotential) or ""
    meaning, current = {}, None
    for line in doc.splitlines():
        m = re.match(r"^(\w+(?:, \w+)*) : (.*)$", line)
        if m:
            current = [n.strip() for n in m.group(1).split(",")]
            for n in current:
                meaning[n] = m.group(2).strip()
        elif current and line.startswith("    "):
            for n in current:
                meaning[n] += " " + line.strip()
        else:
            current = None
    rows = ["| option | default | meaning |", "|---|---|---|"]
    for k, p in inspect.signature(PySCFPotential.__init__).parameters.items():
        if k in ("self", "method", "basis", "name"):
            continue
        text = meaning.get(k, "").replace("``", "`").replace("|", chr(92) + "|")
        rows.append(f"| `{k}` | {f'`{_fmt(p.default)}`' if p.default is not None else 'none'} | {text} |")
    return "\n".join(rows)


def reference_tables() -> dict:
    """{block name: markdown table} of every table of a run file, from the schema :func:`validate` uses.

    Blocks: ``top``, ``structure``, ``levels`` (keys of every level), ``levels.<kind>`` (keys of one kind),
    ``levels.pyscf.options``, ``region``, ``center``, ``mm``, ``md``, ``output``, ``sampling``.
    """
    common = ("name", "kind", "region", "process", "accept_energy_offset")
    out = {"top": _table(TOP_DOC), "structure": _table(_structure_schema())}
    out["levels"] = _table({k: v for k, v in _level_schema("mlip").items() if k in common})
    for kind in LEVEL_KINDS:
        out[f"levels.{kind}"] = _table({k: v for k, v in _level_schema(kind).items() if k not in common})
    out["levels.pyscf.options"] = _pyscf_options_table()
    out["region"] = _table(_region_schema())
    rows = ["| form | value | meaning |", "|---|---|---|"]
    forms = {"molecule": "k", "group": "[i, ...]", "atom": "i", "point": "[x, y, z]"}
    for name, key in _CENTER_KINDS.items():
        rows.append(f"| `{{{name} = {forms[name]}}}` | {_type_name(key)} | {key.doc} |")
    out["center"] = "\n".join(rows)
    for name in ("mm", "md", "output", "sampling"):
        out[name] = _table(TOP[name]())
    return out


_BLOCK = "<!-- schema: {} -->"
_END = "<!-- /schema -->"


def reference_blocks(text: str) -> dict:
    """{block name: content} of the generated blocks in a reference document."""
    import re
    return {m.group(1): m.group(2).strip("\n") for m in
            re.finditer(r"<!-- schema: (\S+) -->\n(.*?)<!-- /schema -->", text, flags=re.S)}


def write_reference(path) -> bool:
    """Regenerate the blocks of the reference document ``path``; True if it changed."""
    import re
    path = Path(path)
    text = path.read_text()
    tables = reference_tables()

    def fill(m):
        name = m.group(1)
        if name not in tables:
            raise KeyError(f"{path}: no schema block {name!r} (known: {', '.join(tables)})")
        return f"{_BLOCK.format(name)}\n{tables[name]}\n{_END}"
    new = re.sub(r"<!-- schema: (\S+) -->\n.*?<!-- /schema -->", fill, text, flags=re.S)
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":      # python -m hybrid.config docs/config.md  (regenerate the reference's tables)
    import sys
    for p in sys.argv[1:]:
        print(f"{p}: {'updated' if write_reference(p) else 'up to date'}")
