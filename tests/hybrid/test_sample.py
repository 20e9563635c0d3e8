"""``hybrid sample``: the run file's [sampling] section on its levels (the shipped HF/6-31G* water MLIP as the
first level, HF/6-31G* on one water of a trimer above it), each method end to end, resumed, and bad input."""
from pathlib import Path

import numpy as np
import pytest

from hybrid.cli import main

ROOT = Path(__file__).resolve().parents[2]

BASE = f"""
title = "trimer"
[structure]
file = "trimer.xyz"
[[levels]]
name = "mlip"
kind = "mlip"
file = "{ROOT / 'models' / 'water_hf631gs.pt'}"
[[levels]]
name = "hf"
kind = "pyscf"
method = "HF"
basis = "6-31g*"
[levels.region]
center = {{ molecule = 0 }}
r_inner = 0.5
width = 0.0
[md]
timestep_fs = 0.5
steps = 40
temperature_K = 300
[output]
directory = "out"
"""


def write(tmp_path, sampling: str, base: str = BASE) -> Path:
    from ase import Atoms
    from ase.io import write as write_xyz

    from hybrid.build import water_cluster
    s = water_cluster(3, seed=0)
    write_xyz(tmp_path / "trimer.xyz", Atoms(numbers=s.numbers, positions=s.positions))
    path = tmp_path / "run.toml"
    path.write_text(base + "[sampling]\n" + sampling)
    return path


def test_hmc_chains_resume_and_refuse_changed_settings(tmp_path, capsys):
    cfg = write(tmp_path, 'method = "hmc"\niterations = 8\nreplicas = 2\nproposal_steps = 5\n')
    assert main(["sample", str(cfg), "--no-progress"]) == 0
    out = tmp_path / "out" / "sampling"
    assert {p.name for p in out.iterdir()} == {"report.md", "samples.csv", "plot.png", "tasks"}
    report = (out / "report.md").read_text()
    assert "| 0 | 8 |" in report and "| 1 | 8 |" in report
    stored = {p.name: p.stat().st_mtime_ns for p in (out / "tasks").glob("*.pkl")}
    assert sorted(stored) == ["hmc_0.pkl", "hmc_1.pkl"]
    assert main(["sample", str(cfg), "--no-progress"]) == 0          # resumed: nothing recomputed
    assert {p.name: p.stat().st_mtime_ns for p in (out / "tasks").glob("*.pkl")} == stored
    assert (out / "report.md").read_text() == report
    cfg = write(tmp_path, 'method = "hmc"\niterations = 9\nreplicas = 2\nproposal_steps = 5\n')
    capsys.readouterr()
    assert main(["sample", str(cfg), "--no-progress"]) == 2
    assert "hmc_0.pkl: stored for other inputs than task 'hmc_0' now has (sampling.iterations: 8 -> 9)" in \
        capsys.readouterr().err


def test_free_energy_estimators_agree(tmp_path):
    """ΔA(MLIP → MLIP + HF on one water): EXP both ways, BAR, TI and MBAR from three windows agree within
    their errors (the HF correction on one water is smooth, so short runs suffice)."""
    cfg = write(tmp_path, 'method = "free-energy"\niterations = 40\nlambdas = [0.0, 0.5, 1.0]\n'
                          'proposal_steps = 10\n')
    assert main(["sample", str(cfg), "--no-progress"]) == 0
    rows = [r for r in (tmp_path / "out" / "sampling" / "report.md").read_text().splitlines()
            if r.startswith("| EXP") or r.startswith("| BAR") or r.startswith("| TI") or r.startswith("| MBAR")]
    values = {r.split("|")[1].strip(): tuple(float(v) for v in r.split("|")[2].split("±")) for r in rows}
    assert set(values) == {"EXP (forward)", "EXP (reverse)", "BAR", "TI", "MBAR"}
    bar = values["BAR"]
    for name, (d, e) in values.items():
        assert abs(d - bar[0]) < 3 * np.hypot(e, bar[1]) + 0.01, (name, d, bar)    # kcal/mol
    assert -1.0 < bar[0] < 0.0


def test_umbrella_and_pimd_write_their_profiles(tmp_path):
    cfg = write(tmp_path, 'method = "umbrella"\niterations = 20\ncv = { distance = [0, 3] }\n'
                          'centres = [2.9, 3.2]\nkappa = 5.0\nbins = 4\nproposal_steps = 5\n')
    assert main(["sample", str(cfg), "--no-progress"]) == 0
    report = (tmp_path / "out" / "sampling" / "report.md").read_text()
    assert "F first level (eV)" in report and "F whole model (eV)" in report
    d = tmp_path / "pimd"
    d.mkdir()
    cfg = write(d, 'method = "pimd"\nbeads = 4\ncontracted_beads = 1\nsample_every = 5\nisotopes = { H = 2.014 }\n')
    assert main(["sample", str(cfg), "--no-progress"]) == 0
    report = (d / "out" / "sampling" / "report.md").read_text()
    assert "| H | 2.014 |" in report and "| O | 15.999 |" in report
    assert "'correction': " in report          # the HF correction ran, contracted


@pytest.mark.parametrize("sampling, message", [
    ('method = "hmc"\n', 'iterations: missing (method = "hmc" needs it'),
    ('method = "free-energy"\niterations = 5\nlambdas = [0.0, 0.5]\n', "must increase from 0 to 1"),
    ('method = "umbrella"\niterations = 5\ncv = { angle = [0, 1, 2] }\ncentres = [1.0, 2.0]\nkappa = 1.0\n',
     "must be {distance = [i, j]} or {coordinate = [atom, axis]}"),
    ('method = "pimd"\nisotopes = { Hh = 2.0 }\n', "isotopes.Hh = 2.0: unknown element"),
    ('method = "pimd"\nisotopes = { H = -2.0 }\n', "must be a positive mass"),
    ('method = "pimd"\nbeads = 4\ncontracted_beads = 8\n', "must be <= beads (4)"),
    ('method = "pimds"\n', 'did you mean "pimd"?'),
])
def test_bad_sampling_tables_are_refused_before_anything_is_written(tmp_path, capsys, sampling, message):
    cfg = write(tmp_path, sampling)
    assert main(["sample", str(cfg), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_free_energy_needs_two_levels_and_sample_needs_the_table(tmp_path, capsys):
    one_level = BASE.split("[[levels]]\nname = \"hf\"")[0] + BASE.split("width = 0.0\n")[1]
    cfg = write(tmp_path, 'method = "free-energy"\niterations = 5\nlambdas = [0.0, 1.0]\n', one_level)
    assert main(["sample", str(cfg)]) == 2
    assert "needs at least two [[levels]]" in capsys.readouterr().err
    path = tmp_path / "md.toml"
    path.write_text(BASE)           # the trimer is there from write() above
    assert main(["sample", str(path)]) == 2
    assert "no [sampling] table" in capsys.readouterr().err
