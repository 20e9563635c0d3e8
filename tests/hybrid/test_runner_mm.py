"""hybrid run with an [mm] table: levels on the model region, amber14/TIP3P elsewhere."""
from pathlib import Path

import numpy as np
import openmm
import pytest
from openmm import app, unit

from hybrid import units
from hybrid.config import ConfigError, load_config
from hybrid.md.outputs import read_csv
from hybrid.md.runner import Runner
from hybrid.ml.potential import MLPotential

ROOT = Path(__file__).resolve().parents[2]
MLIP = ROOT / "models" / "water_gfn2xtb.pt"


def write_water_pdb(path, n_waters=8, box_nm=1.2, keep_box_nm=None):
    """The n waters of a TIP3P box nearest its centre, as a non-periodic PDB (``keep_box_nm``: periodic,
    with a cubic box of that edge)."""
    ff = app.ForceField("amber14/tip3p.xml")
    m = app.Modeller(app.Topology(), [])
    m.addSolvent(ff, boxSize=openmm.Vec3(box_nm, box_nm, box_nm) * unit.nanometer)
    pos = np.array(m.positions.value_in_unit(unit.nanometer))
    res = list(m.topology.residues())
    d = [np.linalg.norm(pos[next(r.atoms()).index] - box_nm / 2) for r in res]
    keep = set(np.argsort(d)[:n_waters].tolist())
    m.delete([r for k, r in enumerate(res) if k not in keep])
    m.topology.setPeriodicBoxVectors(None if keep_box_nm is None else
                                     [openmm.Vec3(keep_box_nm, 0, 0), openmm.Vec3(0, keep_box_nm, 0),
                                      openmm.Vec3(0, 0, keep_box_nm)] * unit.nanometer)
    with open(path, "w") as fh:
        app.PDBFile.writeFile(m.topology, m.positions, fh)


def config(d: Path, radius=3.2, second_centre="{molecule = 0}", structure="waters.pdb", mm_centre="{molecule = 0}"):
    text = f"""
[structure]
file = "{structure}"

[mm]
forcefield = ["amber14/tip3p.xml"]
center = {mm_centre}
radius = {radius}

[[levels]]
name = "low"
kind = "mlip"
file = "{MLIP}"

[[levels]]
name = "high"
kind = "mlip"
file = "{MLIP}"
dtype = "float32"
[levels.region]
center = {second_centre}
r_inner = 1.0
width = 2.0

[md]
timestep_fs = 0.25
steps = 40
seed = 3
temperature_K = 100

[output]
progress = false
checkpoint_interval = 20
"""
    (d / "config.toml").write_text(text)
    return d / "config.toml"


@pytest.fixture(scope="module")
def pdb(tmp_path_factory):
    d = tmp_path_factory.mktemp("mm")
    write_water_pdb(d / "waters.pdb")
    return d / "waters.pdb"


def test_mm_far_field_run(tmp_path, pdb):
    (tmp_path / "waters.pdb").write_bytes(pdb.read_bytes())
    runner = Runner(load_config(config(tmp_path)))
    summary = runner.run()
    d = read_csv(tmp_path / "output" / "energies.csv")
    inner = runner.model_structure
    assert 0 < len(inner.system) < len(runner.structure.system)          # MLIP inside, MM outside
    assert np.allclose(d["E_pot_eV"], d["E_MM_eV"] + d["E_low_eV"] + d["dE_high_eV"], atol=1e-9)
    # the model term at step 0 is the two-level model on the model region's atoms alone
    low = MLPotential.load(MLIP).compute(inner.system).energy
    assert abs(d["E_low_eV"][0] - low) < 1e-9
    # MM' at step 0: the force field's energy minus its terms inside the model region
    ff = app.ForceField("amber14/tip3p.xml")
    pdbf = app.PDBFile(str(pdb))

    def mm_energy(top, pos_nm):
        s = ff.createSystem(top, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
        c = openmm.Context(s, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("Reference"))
        c.setPositions(pos_nm)
        return c.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * units.KJ_PER_MOL

    pos = np.array(pdbf.positions.value_in_unit(unit.nanometer))
    idx = np.sort(np.concatenate([np.flatnonzero(np.all(np.isclose(pos, p / units.NM, atol=1e-6), axis=1))
                                  for p in inner.system.positions]))
    m = app.Modeller(pdbf.topology, pdbf.positions)
    m.delete([a for a in pdbf.topology.atoms() if a.index in set(idx.tolist())])
    e_out = mm_energy(m.topology, m.positions)                        # MM among the MM atoms
    m_in = app.Modeller(pdbf.topology, pdbf.positions)
    m_in.delete([a for a in pdbf.topology.atoms() if a.index not in set(idx.tolist())])
    e_in = mm_energy(m_in.topology, m_in.positions)                   # MM inside the model region
    e_all = mm_energy(pdbf.topology, pdbf.positions)
    assert abs(d["E_MM_eV"][0] - (e_all - e_in)) < 1e-6               # cross terms kept, inner terms removed
    assert e_all - e_in - e_out != 0                                  # (the cross terms are really there)
    assert summary.drift_meV < 5.0                                    # 10 fs NVE on MM + MLIP


def test_mm_table_errors(tmp_path, pdb):
    (tmp_path / "waters.pdb").write_bytes(pdb.read_bytes())
    with pytest.raises(ConfigError, match=r"\[\[levels\]\] #2 region.center.molecule = 7: molecule 7 lies "
                                          r"outside the \[mm\] model region"):
        Runner(load_config(config(tmp_path, second_centre="{molecule = 7}"))).run()
    with pytest.raises(ConfigError, match=r"\[mm\] radius = 0.1: no molecule"):
        Runner(load_config(config(tmp_path, radius=0.1, mm_centre="{point = [50, 0, 0]}",
                                  second_centre="{point = [0, 0, 0]}"))).run()
    (tmp_path / "w.xyz").write_text("1\n\nO 0 0 0\n")
    with pytest.raises(ConfigError, match=r"\[mm\] forcefield = .*needs a PDB structure"):
        load_config(config(tmp_path, structure="w.xyz"))


def test_mm_run_with_a_mismatched_qm_level_exits_2_before_any_output(tmp_path, capsys):
    """A periodic [mm] run (PDB with a box, CutoffPeriodic) whose QM level (HF/STO-3G) sits ~1900 eV per water
    from the MLIP below it: the energy-zero check runs on the QM level's isolated cluster (it used to be skipped
    here, blaming PySCF's periodic support) and `hybrid check` and `hybrid run` both exit 2, creating nothing."""
    from hybrid.cli import main
    write_water_pdb(tmp_path / "waters.pdb", keep_box_nm=2.5)
    cfg = config(tmp_path)
    text = cfg.read_text().replace('forcefield = ["amber14/tip3p.xml"]',
                                   'forcefield = ["amber14/tip3p.xml"]\nnonbonded_method = "CutoffPeriodic"\n'
                                   'cutoff_nm = 0.9')
    text = text.replace('name = "high"\nkind = "mlip"\nfile = "' + str(MLIP) + '"\ndtype = "float32"',
                        'name = "qm"\nkind = "pyscf"\nmethod = "HF"\nbasis = "sto-3g"')
    cfg.write_text(text)
    assert load_config(cfg).structure.file.suffix == ".pdb"
    expected = ('config.toml: [[levels]] #2 "qm" over "low": levels "qm" and "low" differ by -1902 eV on one '
                'molecule (atoms [6, 7, 8], as an isolated cluster): their zeros of energy differ by more than 0.5 '
                'eV, so a molecule crossing this boundary\'s buffer (width 2 Å) feels a spurious force ~|ΔE|/width '
                '≈ 951 eV/Å. Use levels that share a reference (an MLIP or Δ-ML trained on the higher level\'s '
                'energies), or set accept_energy_offset = true in [[levels]] #2 to run anyway')
    before = sorted(p.name for p in tmp_path.iterdir())
    for cmd in (["check"], ["run", "--no-progress"]):
        assert main(cmd + [str(cfg)]) == 2, cmd
        err = capsys.readouterr().err
        assert expected in err.splitlines(), (cmd, err)
        assert sorted(p.name for p in tmp_path.iterdir()) == before         # no output directory or file
    # accepted on purpose, the periodic [mm] run checks and starts (and is still told)
    cfg.write_text(text.replace('basis = "sto-3g"', 'basis = "sto-3g"\naccept_energy_offset = true')
                   .replace("steps = 40", "steps = 1"))
    assert main(["check", str(cfg)]) == 0
    io = capsys.readouterr()
    assert "[mm] model region" in io.out and "accept_energy_offset = true: levels \"qm\" and \"low\" differ" in io.err
