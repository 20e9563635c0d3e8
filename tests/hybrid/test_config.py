"""Run configuration: every bad key or value is reported with its table, key and value."""
from pathlib import Path

import ase.io
import pytest

from hybrid.build import water_cluster
from hybrid.config import ConfigError, config_hash, load_config

ROOT = Path(__file__).resolve().parents[2]
MLIP = ROOT / "models" / "water_gfn2xtb.pt"

BASE = f"""
[structure]
file = "w3.xyz"

[[levels]]
name = "ml"
kind = "mlip"
file = "{MLIP}"

[[levels]]
name = "qm"
kind = "pyscf"
method = "HF"
basis = "sto-3g"
[levels.region]
center = {{molecule = 0}}
r_inner = 0.5
width = 1.0

[md]
timestep_fs = 0.5
steps = 10
"""


@pytest.fixture
def cfgdir(tmp_path):
    ase.io.write(tmp_path / "w3.xyz", water_cluster(3).to_ase(), format="extxyz")
    return tmp_path


def write(d, text, name="config.toml"):
    p = d / name
    p.write_text(text)
    return p


def errors(d, text):
    with pytest.raises(ConfigError) as exc:
        load_config(write(d, text))
    return exc.value.errors


def test_valid_config_fills_defaults_and_resolves_paths(cfgdir):
    sub = cfgdir / "sub"
    sub.mkdir()
    (sub / "w3.xyz").write_bytes((cfgdir / "w3.xyz").read_bytes())
    cfg = load_config(write(sub, BASE + '\n[output]\ndirectory = "out"\ncsv = "e.csv"\n'))
    assert cfg.structure.file == sub / "w3.xyz"                 # relative to the config file, not the cwd
    assert cfg.output.directory == sub / "out"
    assert cfg.output.csv == sub / "out" / "e.csv"              # output names relative to the output directory
    assert cfg.output.trajectory == sub / "out" / "trajectory.dcd"
    assert cfg.md.integrator == "verlet" and cfg.md.seed == 1 and cfg.md.friction_per_ps is None
    assert [lv.name for lv in cfg.levels] == ["ml", "qm"]
    assert cfg.levels[0].region is None
    r = cfg.levels[1].region
    assert (r.scheme, r.switch, r.max_buffer) == ("product", "quintic", 6)
    assert r.center == {"kind": "molecule", "value": 0}


def test_error_names_file_table_key_and_value(cfgdir):
    errs = errors(cfgdir, BASE.replace("timestep_fs = 0.5", "timestep_fs = -1"))
    assert errs == ["config.toml: [md] timestep_fs = -1: must be > 0"]


def test_unknown_keys_are_errors_with_suggestions(cfgdir):
    errs = errors(cfgdir, BASE.replace("timestep_fs = 0.5", "timstep_fs = 0.5")
                  .replace("width = 1.0", "width = 1.0\nschme = \"sorted\"") + "\n[outptu]\ncsv = 'x.csv'\n")
    assert 'config.toml: [md] timstep_fs = 0.5: unknown key; did you mean "timestep_fs"?' in errs
    assert 'config.toml: [md] timestep_fs: missing (required: time step (fs))' in errs
    assert 'config.toml: [[levels]] #2 region.schme = "sorted": unknown key; did you mean "scheme"?' in errs
    assert 'config.toml: [outptu]: unknown table; did you mean [output]?' in errs


def test_choices_and_kind_specific_keys(cfgdir):
    errs = errors(cfgdir, BASE.replace('kind = "pyscf"', 'kind = "pyscff"')
                  .replace("[md]", '[md]\nintegrator = "Langevin"')
                  .replace('kind = "mlip"', 'kind = "mlip"\nbasis = "sto-3g"'))
    assert any(e.startswith('config.toml: [[levels]] #2 kind = "pyscff": must be one of "mlip", "xtb", "pyscf"')
               and e.endswith('did you mean "pyscf"?') for e in errs)
    assert any(e.startswith('config.toml: [md] integrator = "Langevin": must be one of "verlet", "langevin"; '
                            'did you mean "langevin"?') for e in errs)
    assert 'config.toml: [[levels]] #1 basis = "sto-3g": not used here (a key of kind = "pyscf", this level ' \
           'is kind = "mlip")' in errs
    errs = errors(cfgdir, BASE.replace('kind = "pyscf"\nmethod = "HF"\nbasis = "sto-3g"',
                                       'kind = "delta"\nbaseline = {kind = "xtb", process = true}\nprocess = "yes"'))
    assert 'config.toml: [[levels]] #2 baseline.process = true: not used here (a baseline runs where its Δ-ML ' \
           'level runs: set process on that level)' in errs
    assert any(e.startswith('config.toml: [[levels]] #2 process = "yes": ') for e in errs), errs


def test_regions_files_and_cross_checks(cfgdir):
    text = (BASE.replace('file = "w3.xyz"', 'file = "missing.xyz"')
            .replace("r_inner = 0.5", "r_inner = -0.5")
            .replace("center = {molecule = 0}", "center = {molecule = 0, atom = 1}")
            .replace('basis = "sto-3g"', 'basis = "sto-3g"\noptions = {max_cyle = 3, grid_response = 1}')
            .replace("steps = 10", "steps = 10\nfriction_per_ps = 2.0"))
    errs = errors(cfgdir, text)
    assert f'config.toml: [structure] file = "missing.xyz": no such file (looked for {cfgdir / "missing.xyz"})' in errs
    assert "config.toml: [[levels]] #2 region.r_inner = -0.5: must be >= 0" in errs
    assert any(e.startswith("config.toml: [[levels]] #2 region.center = {molecule = 0, atom = 1}: must hold "
                            "exactly one of") for e in errs)
    assert ('config.toml: [[levels]] #2 options.max_cyle = 3: not an option of PySCFPotential; did you mean '
            '"max_cycle"?') in errs
    assert "config.toml: [[levels]] #2 options.grid_response = 1: must be true or false" in errs
    assert 'config.toml: [md] friction_per_ps = 2.0: is used only with integrator = "langevin" (verlet is NVE)' in errs


def test_layer_structure_is_checked(cfgdir):
    no_region = BASE.replace("[levels.region]\ncenter = {molecule = 0}\nr_inner = 0.5\nwidth = 1.0\n", "")
    assert "config.toml: [[levels]] #2 region: missing (where this level corrects the one below)" in \
        errors(cfgdir, no_region)
    first_region = BASE.replace('file = "' + str(MLIP) + '"',
                                'file = "' + str(MLIP) + '"\nregion = {r_inner = 1.0, width = 1.0}', 1)
    assert any("[[levels]] #1 region = " in e and "takes no region" in e for e in errors(cfgdir, first_region))
    assert any("[[levels]] #2 name = \"ml\": used by another level" in e
               for e in errors(cfgdir, BASE.replace('name = "qm"', 'name = "ml"')))
    nested = BASE.replace('kind = "pyscf"\nmethod = "HF"\nbasis = "sto-3g"',
                          'kind = "delta"\nbaseline = {kind = "xtb", methd = "GFN2-xTB"}')
    assert 'config.toml: [[levels]] #2 baseline.methd = "GFN2-xTB": unknown key; did you mean "method"?' in \
        errors(cfgdir, nested)


def test_not_toml_and_missing_file(cfgdir):
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(write(cfgdir, "[md\nsteps = 1", "bad.toml"))
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(cfgdir / "nope.toml")


def test_hash_ignores_steps_but_not_physics_or_input_files(cfgdir):
    h = load_config(write(cfgdir, BASE)).hash
    assert load_config(write(cfgdir, BASE.replace("steps = 10", "steps = 99"))).hash == h
    assert load_config(write(cfgdir, BASE.replace("timestep_fs = 0.5", "timestep_fs = 0.25"))).hash != h
    atoms = ase.io.read(cfgdir / "w3.xyz")
    atoms.positions[0, 0] += 0.01
    ase.io.write(cfgdir / "w3.xyz", atoms, format="extxyz")
    cfg = load_config(write(cfgdir, BASE))
    assert cfg.hash != h and config_hash(cfg) == cfg.hash


def test_reference_document_matches_the_schema():
    """docs/config.md (linked from the README) documents every key of the schema the code validates with,
    with its type and default, and no key the schema does not have."""
    import re

    from hybrid import config as C
    doc = (ROOT / "docs" / "config.md").read_text()
    assert "docs/config.md" in (ROOT / "README.md").read_text()
    blocks = C.reference_blocks(doc)
    tables = C.reference_tables()
    assert set(blocks) == set(tables)                                  # every table, no stray one
    for name, table in tables.items():
        assert blocks[name] == table, f"{name}: regenerate with python -m hybrid.config docs/config.md"
    # independently of the generator: the keys in each block are exactly the schema's, each with a meaning
    schemas = {"top": C.TOP_DOC, "structure": C._structure_schema(), "region": C._region_schema(),
               "mm": C._mm_schema(), "md": C._md_schema(), "output": C._output_schema()}
    common = {"name", "kind", "region", "process", "accept_energy_offset"}
    schemas["levels"] = {k: v for k, v in C._level_schema("mlip").items() if k in common}
    for kind in C.LEVEL_KINDS:
        schemas[f"levels.{kind}"] = {k: v for k, v in C._level_schema(kind).items() if k not in common}
        assert f'`kind = "{kind}"`' in doc
    for name, schema in schemas.items():
        cell = r"((?:[^|\\]|\\\|)+)"                                    # a cell: no | but an escaped \|
        rows = re.findall(rf"^\| `(\w+)` \| {cell} \| {cell} \| (.+) \|$", blocks[name], flags=re.M)
        assert [r[0] for r in rows] == list(schema), name
        for key, type_, default, meaning in rows:
            spec = schema[key]
            assert meaning.strip(), f"{name}.{key}: no meaning"
            expected = "required" if spec.default is C.REQUIRED else "none" if spec.default is None else \
                f"`{C._fmt(spec.default)}`"
            assert default == expected, (name, key, default)
            if spec.choices:
                assert all(f"`{C._fmt(c)}`" in type_ for c in spec.choices), (name, key)
    forms = re.findall(r"^\| `\{(\w+) = ", blocks["center"], flags=re.M)
    assert forms == list(C._CENTER_KINDS) == ["molecule", "group", "atom", "point"]
    import inspect

    from hybrid.qm.pyscf_layer import PySCFPotential
    options = re.findall(r"^\| `(\w+)` \|", blocks["levels.pyscf.options"], flags=re.M)
    assert options == [k for k in inspect.signature(PySCFPotential.__init__).parameters
                       if k not in ("self", "method", "basis", "name")]


def test_every_key_has_a_meaning():
    from hybrid import config as C
    schemas = [C.TOP_DOC, C._structure_schema(), C._region_schema(), C._mm_schema(), C._md_schema(),
               C._output_schema(), C._CENTER_KINDS] + [C._level_schema(k) for k in C.LEVEL_KINDS]
    missing = [k for s in schemas for k, v in s.items() if not v.doc.strip()]
    assert missing == []


def test_a_list_of_model_files_is_a_committee(cfgdir):
    """file = [a, b] builds a Committee whose energy and forces are the members' mean; a list of one file, or one
    that names a missing file, is an error naming the key and the file; every member file is hashed."""
    import numpy as np

    from hybrid.md.levels import Clock, build_level
    from hybrid.ml.committee import Committee
    from hybrid.ml.potential import MLPotential
    other = ROOT / "models" / "water_hf631gs.pt"
    two = BASE.replace(f'file = "{MLIP}"', f'file = ["{MLIP}", "{other}"]')
    cfg = load_config(write(cfgdir, two))
    assert cfg.levels[0].file == [MLIP, other]
    pot, _ = build_level(cfg.levels[0], 1, Clock("qm"))
    assert isinstance(pot, Committee) and len(pot.members) == 2
    s = water_cluster(3)
    want = [MLPotential.load(f).compute(s) for f in (MLIP, other)]
    got = pot.compute(s)
    assert abs(got.energy - (want[0].energy + want[1].energy) / 2) < 1e-9   # same arithmetic, different order
    assert np.abs(got.forces - (want[0].forces + want[1].forces) / 2).max() < 1e-9
    assert config_hash(cfg) != config_hash(load_config(write(cfgdir, BASE)))
    assert errors(cfgdir, BASE.replace(f'file = "{MLIP}"', f'file = ["{MLIP}"]')) == [
        "config.toml: [[levels]] #1 file = [\"" + str(MLIP) + "\"]: must be a file name, or a list of at least 2 "
        "file names (a committee)"]
    errs = errors(cfgdir, BASE.replace(f'file = "{MLIP}"', f'file = ["{MLIP}", "nope.pt"]'))
    assert len(errs) == 1 and '"nope.pt": no such file' in errs[0]
