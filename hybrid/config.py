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
    "force_mixing"), ``max_buffer`` (more buffer units stop the run with an error
    naming the count and the cap), ``workers``.
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
    "ints", "vec3"), default (``REQUIRED`` if none), allowed choices,
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
        "center": Key("table", doc="{atom = i}, {group = [i, ...]}, {molecule = k} or {point = [x, y, z]}"),
        "r_inner": Key("float", checks=(ge(0),), doc="radius of the inner region (Å)"),
        "width": Key("float", checks=(ge(0),), doc="width of the buffer (Å); 0 gives an abrupt boundary"),
        "switch": Key("str", "quintic", choices=("quintic", "septic", "cubic", "step")),
        "scheme": Key("str", "product", choices=("product", "sorted", "force_mixing")),
        "max_buffer": Key("int", 6, checks=(ge(0),)),
        "workers": Key("int", 1, checks=(ge(1),)),
    }


_CENTER_KINDS = {"atom": Key("int", checks=(ge(0),)), "group": Key("ints", checks=(lambda v: None if min(v) >= 0 else "indices must be >= 0",)),
                 "molecule": Key("int", checks=(ge(0),)), "point": Key("vec3")}


def _level_schema(kind):
    common = {"name": Key("str", None, doc="a label for CSV columns and messages"),
              "kind": Key("str", choices=LEVEL_KINDS),
              "region": Key("table", None, doc="where this level applies (every level but the first)"),
              "process": Key("bool", False, doc="evaluate this level in its own process, side by side "
                                                "with the other levels (hybrid.process.ProcessPotential)")}
    model_file = Key("path", doc="model file")
    specific = {
        "mlip": {"file": model_file, "dtype": Key("str", "float64", choices=("float64", "float32"))},
        "xtb": {"method": Key("str", "GFN2-xTB", choices=("GFN2-xTB", "GFN1-xTB")),
                "accuracy": Key("float", 1.0, checks=(gt(0),))},
        "pyscf": {"method": Key("str", doc='e.g. "HF", "B3LYP", "MP2"'),
                  "basis": Key("str", doc='e.g. "6-31g*", "def2-svp"'),
                  "options": Key("table", {}, doc="keyword arguments of PySCFPotential")},
        "delta": {"baseline": Key("table", doc="the baseline level, an inline table with its own kind"),
                  "correction": Key("path", None, doc="the learned correction (an MLIP file)")},
        "mace": {"file": model_file, "dtype": Key("str", "float64", choices=("float64", "float32"))},
        "torchani": {"file": model_file},
        "python": {"file": Key("path", doc="a Python file", suffixes=(".py",)),
                   "factory": Key("str", "make_potential", doc="function in the file returning a Potential"),
                   "options": Key("table", {}, doc="keyword arguments of the factory")},
    }
    return {**common, **specific[kind]}


def _mm_schema():
    return {
        "forcefield": Key("strs", doc='OpenMM ForceField files, e.g. ["amber14-all.xml", "amber14/tip3p.xml"]'),
        "nonbonded_method": Key("str", "NoCutoff", choices=("NoCutoff", "CutoffNonPeriodic", "CutoffPeriodic", "PME")),
        "cutoff_nm": Key("float", 1.0, checks=(gt(0),), doc="nonbonded cutoff (nm) of the cutoff methods"),
        "center": Key("table", doc="{atom = i}, {group = [i, ...]}, {molecule = k} or {point = [x, y, z]}"),
        "radius": Key("float", checks=(gt(0),), doc="model region: molecules with their centre of mass "
                                                     "within this distance (Å) of the centre at step 0"),
    }


def _md_schema():
    return {
        "integrator": Key("str", "verlet", choices=("verlet", "langevin")),
        "timestep_fs": Key("float", checks=(gt(0), lambda v: None if v <= 10 else "must be <= 10 (fs)"),
                           doc="time step (fs)"),
        "steps": Key("int", checks=(ge(0),), doc="number of MD steps"),
        "temperature_K": Key("float", 300.0, checks=(ge(0),)),
        "friction_per_ps": Key("float", None, checks=(gt(0),)),
        "seed": Key("int", 1, checks=(ge(1), lambda v: None if v < 2**31 else "must be < 2^31")),
        "initial_velocities": Key("str", "maxwell-boltzmann", choices=("maxwell-boltzmann", "structure", "zero")),
        "platform": Key("str", "Reference", choices=("Reference", "CPU")),
        "threads": Key("int", 1, checks=(ge(1),)),
    }


def _output_schema():
    out = lambda default: Key("path", default, must_exist=False)  # noqa: E731
    return {
        "directory": Key("path", "output", must_exist=False),
        "trajectory": Key("path", "trajectory.dcd", must_exist=False, suffixes=TRAJECTORY_SUFFIXES),
        "trajectory_interval": Key("int", 10, checks=(ge(1),)),
        "topology": Key("path", "topology.pdb", must_exist=False, suffixes=(".pdb",)),
        "csv": out("energies.csv"),
        "report_interval": Key("int", 1, checks=(ge(1),)),
        "timings": out("timings.csv"),
        "plot": Key("path", "summary.png", must_exist=False, suffixes=(".png",)),
        "checkpoint": out("checkpoint.json"),
        "checkpoint_interval": Key("int", 100, checks=(ge(1),)),
        "progress": Key("bool", True),
    }


TOP = {"structure": _structure_schema, "levels": None, "md": _md_schema, "output": _output_schema, "mm": _mm_schema}
TOP_DOC = {"title": Key("str", "")}


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
        if kind == "delta":
            ck.error(section, prefix + "kind", kind, "a Δ-ML baseline cannot itself be a delta level")
            return None
    foreign = {} if top else {"process": "a baseline runs where its Δ-ML level runs: set process on that level"}
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
            if isinstance(lv.get(key), Path):
                out.append(lv[key])
        if isinstance(lv.get("baseline"), dict):
            level_files(lv["baseline"])

    for lv in cfg["levels"]:
        level_files(lv)
    return out


def config_hash(cfg: Section) -> str:
    """SHA-256 of what determines the trajectory: every setting except ``md.steps``
    and ``output.progress`` (paths relative to the configuration file), plus the
    bytes of the input files (:func:`input_files`).

    A checkpoint records it; ``--resume`` refuses a configuration whose hash
    differs (changing ``steps`` is allowed, to extend a run).
    """
    root = Path(cfg["path"]).parent if cfg.get("path") else Path.cwd()

    def norm(x):
        if isinstance(x, Path):
            return os.path.relpath(x, root)
        if isinstance(x, dict):
            return {k: norm(v) for k, v in x.items() if k not in ("path", "hash")}
        if isinstance(x, (list, tuple)):
            return [norm(v) for v in x]
        return x

    data = norm(cfg)
    data["md"] = {k: v for k, v in data.get("md", {}).items() if k != "steps"}
    data["output"] = {k: v for k, v in data.get("output", {}).items() if k != "progress"}
    files = {norm(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in input_files(cfg)}
    blob = json.dumps({"config": data, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
