"""hybrid run: outputs, exact resume from checkpoints, clean stops on SCF failure and NaN."""
import json
import os
import shutil
import struct
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch

from hybrid import units
from hybrid.build import water_cluster
from hybrid.config import load_config
from hybrid.md import checkpoint
from hybrid.md.outputs import Trajectory, dcd_frames, read_csv
from hybrid.md.runner import RunFailed, Runner
from hybrid.ml.model import AtomicMLP, load_model, save_model
from runtools import assert_same_csv, assert_same_frames

ROOT = Path(__file__).resolve().parents[2]
MLIP = ROOT / "models" / "water_gfn2xtb.pt"

#: A test level: the shipped MLIP, optionally slowed down, failing or returning NaN on its n-th call.
LEVEL_PY = '''
import time
from hybrid.errors import SCFConvergenceError
from hybrid.ml.potential import MLPotential
from hybrid.potential import Potential


class Injected(Potential):
    def __init__(self, inner, sleep, fail_at, nan_at):
        self.inner, self.sleep, self.fail_at, self.nan_at = inner, sleep, fail_at, nan_at
        self.species, self.min_distance, self.calls = inner.species, inner.min_distance, 0

    def _compute(self, system):
        self.calls += 1
        time.sleep(self.sleep)
        if self.calls == self.fail_at:
            raise SCFConvergenceError("injected: SCF did not converge after DIIS, damping and newton")
        r = self.inner._compute(system)
        if self.calls == self.nan_at:
            r.energy = float("nan")
        return r


def make_potential(model, sleep=0.0, fail_at=-1, nan_at=-1):
    return Injected(MLPotential.load(model), sleep, fail_at, nan_at)
'''


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """3 waters, the test level file and a small random MLIP (the second level), made once:
    runs in different directories see byte-identical inputs (and configuration hashes)."""
    d = tmp_path_factory.mktemp("inputs")
    ase.io.write(d / "w3.xyz", water_cluster(3, spacing=2.9, seed=3).to_ase(), format="extxyz")
    (d / "level.py").write_text(LEVEL_PY)
    torch.manual_seed(0)
    model = AtomicMLP((1, 8), cutoff=4.0, n_radial=4, hidden=(8,)).double()
    shipped, _ = load_model(MLIP)
    with torch.no_grad():
        for net in model.nets:        # a gentle random correction (forces ~0.01 eV/Å) ...
            net[2].weight.mul_(0.1)
        model.ref_energies.copy_(shipped.ref_energies)    # ... on the low level's zero of energy
        model.energy_offset.copy_(shipped.energy_offset)
    save_model(model, d / "small.pt", level_of_theory="random")
    return d


def config_text(steps=40, integrator="verlet", options="", ci=10, ti=5, traj="trajectory.dcd", two_levels=True):
    text = f"""
[structure]
file = "w3.xyz"

[[levels]]
name = "low"
kind = "python"
file = "level.py"
options = {{model = "{MLIP}"{options}}}
"""
    if two_levels:
        text += """
[[levels]]
name = "high"
kind = "mlip"
file = "small.pt"
[levels.region]
center = {molecule = 0}
r_inner = 1.0
width = 4.0
"""
    text += f"""
[md]
integrator = "{integrator}"
timestep_fs = 0.5
steps = {steps}
temperature_K = 300
seed = 7
"""
    if integrator == "langevin":
        text += "friction_per_ps = 5.0\n"
    text += f"""
[output]
trajectory = "{traj}"
trajectory_interval = {ti}
checkpoint_interval = {ci}
progress = false
"""
    return text


@pytest.fixture
def setup(inputs):
    """setup(directory, **config options) -> path of a config.toml there, with the inputs beside it."""
    def make(d: Path, **kw) -> Path:
        d.mkdir(parents=True, exist_ok=True)
        for name in ("w3.xyz", "level.py", "small.pt"):
            shutil.copyfile(inputs / name, d / name)
        (d / "config.toml").write_text(config_text(**kw))
        return d / "config.toml"
    return make


def run(path, **kw):
    return Runner(load_config(path), **kw).run()


def test_outputs_of_a_run(tmp_path, setup):
    cfg = setup(tmp_path, steps=20)
    summary = run(cfg)
    out = tmp_path / "output"
    d = read_csv(out / "energies.csv")
    assert d["step"].tolist() == list(range(21))
    assert np.allclose(d["time_fs"], 0.5 * d["step"])
    assert np.allclose(d["E_total_eV"], d["E_pot_eV"] + d["E_kin_eV"], rtol=0, atol=1e-12)
    assert np.allclose(d["E_pot_eV"], d["E_low_eV"] + d["dE_high_eV"], rtol=0, atol=1e-9)
    # centre water inside, the two others in the 1-5 Å buffer: 2^2 product partitions
    assert d["n_inner_high"].tolist() == [3] * 21 and d["n_buffer_high"].tolist() == [6] * 21
    assert d["high_calls_high"].tolist() == [4] * 21 and "overflow_high" not in d
    # velocities are drawn at exactly 300 K (test below); OpenMM's leapfrog takes them as v(-dt/2) and reports
    # the kinetic energy at t = 0, half a force kick later
    assert abs(d["T_K"][0] - 300.0) < 5.0
    assert np.ptp(d["E_total_eV"]) < 0.05 * np.ptp(d["E_pot_eV"])    # NVE: total conserved
    header, frames = dcd_frames(out / "trajectory.dcd")
    assert len(frames) == 5 and struct.unpack("<i", header[8:12])[0] == 5
    first = np.frombuffer(frames[0][4:4 + 36], "<f4")                  # x of the 9 atoms, Å
    assert np.allclose(first, ase.io.read(tmp_path / "w3.xyz").positions[:, 0], atol=1e-5)
    top = (out / "topology.pdb").read_text()
    assert top.count("HOH") >= 9 and top.count("HETATM") + top.count("ATOM  ") == 9
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"
    t = read_csv(out / "timings.csv")
    assert t["step"].tolist() == list(range(21)) and (t["wall_s"] > 0).all() and (t["level_low_s"] > 0).all()
    ck = checkpoint.load(out / "checkpoint.json")
    assert ck["step"] == 20 and ck["outputs"]["csv"] == (out / "energies.csv").stat().st_size
    assert summary.last_step == 20 and summary.steps == 20 and summary.ns_per_day > 0
    assert summary.qm_share == 0.0 and "energies.csv" in summary.files["csv"]
    with pytest.raises(Exception, match="--resume"):       # a second fresh start would clobber the run
        run(cfg)


def test_initial_velocities(tmp_path, setup):
    r = Runner(load_config(setup(tmp_path)))
    r._build()
    v = r._initial_velocities() * units.NM / units.PS                     # Å/fs
    m = r.structure.masses
    assert np.allclose((m[:, None] * v).sum(0), 0.0, atol=1e-12)          # no centre-of-mass motion
    ke = 0.5 * np.sum(m[:, None] * v**2) / units.ACCEL
    assert ke == pytest.approx(0.5 * (3 * 9 - 3) * units.KB_EV * 300.0, rel=1e-12)
    again = Runner(load_config(setup(tmp_path)))
    again._build()
    # the same seed draws the same velocities; 1e-12 relative leaves room only for round-off
    np.testing.assert_allclose(again._initial_velocities(), r._initial_velocities(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("integrator", ["verlet", "langevin"])
def test_resume_continues_exactly(tmp_path, setup, integrator):
    """Stop at step 15 (checkpoint), resume to 30: the outputs equal those of one uninterrupted run.
    Langevin noise continues because OpenMM's checkpoint holds the integrator's RNG state."""
    ref = setup(tmp_path / "ref", steps=30, integrator=integrator, ci=10)
    run(ref)
    part = setup(tmp_path / "part", steps=15, integrator=integrator, ci=10)
    run(part)
    assert checkpoint.load(tmp_path / "part" / "output" / "checkpoint.json")["step"] == 15
    part.write_text(config_text(steps=30, integrator=integrator, ci=10))     # extend: only steps changed
    s = run(part, resume=True)
    assert (s.first_step, s.last_step, s.resumed) == (15, 30, True)
    a, b = tmp_path / "ref" / "output", tmp_path / "part" / "output"
    assert_same_csv(a / "energies.csv", b / "energies.csv")
    assert_same_frames(a / "trajectory.dcd", b / "trajectory.dcd")
    assert len(read_csv(b / "timings.csv")["step"]) == 31


def test_resume_cuts_outputs_back_to_the_checkpoint(tmp_path, setup):
    """Rows and frames written after the checkpoint (and a half-written row) are removed on resume."""
    ref = setup(tmp_path / "ref", steps=20, ci=10)
    run(ref)
    cfg = setup(tmp_path / "run", steps=20, ci=10)
    run(cfg)
    out = tmp_path / "run" / "output"
    ck = json.loads((out / "checkpoint.json").read_text())
    # pretend the run was killed after step 17 having checkpointed at 10: restore that checkpoint
    (out / "checkpoint.json").write_text(json.dumps(_checkpoint_at(setup, tmp_path, 10)))
    with open(out / "energies.csv", "a") as fh:
        fh.write("21,10.5,-12.3")                                      # a row cut by the kill
    s = run(cfg, resume=True)
    assert s.first_step == 10
    assert_same_csv(tmp_path / "ref" / "output" / "energies.csv", out / "energies.csv")
    assert_same_frames(tmp_path / "ref" / "output" / "trajectory.dcd", out / "trajectory.dcd")
    assert ck["step"] == 20


def _checkpoint_at(setup, tmp_path, step):
    """The checkpoint a 20-step run wrote at ``step`` (from a run that stops there)."""
    d = tmp_path / f"ck{step}"
    run(setup(d, steps=step, ci=10))
    return json.loads((d / "output" / "checkpoint.json").read_text())


def test_resume_refuses_changed_config_and_truncated_outputs(tmp_path, setup):
    cfg = setup(tmp_path, steps=10, ci=5)
    run(cfg)
    cfg.write_text(config_text(steps=10, ci=5).replace("timestep_fs = 0.5", "timestep_fs = 0.4"))
    with pytest.raises(Exception, match="different configuration"):
        run(cfg, resume=True)
    cfg.write_text(config_text(steps=10, ci=5))
    out = tmp_path / "output" / "energies.csv"
    out.write_bytes(out.read_bytes()[:100])
    with pytest.raises(Exception, match="cannot resume consistently"):
        run(cfg, resume=True)


def test_scf_failure_stops_cleanly_with_outputs_intact(tmp_path, setup):
    """Call k of the level fails: step k-1 (one evaluation per step, reuse for the next force call)."""
    cfg = setup(tmp_path, steps=30, ci=10, options=", fail_at = 18", two_levels=False)
    with pytest.raises(RunFailed) as exc:
        run(cfg)
    e = exc.value
    assert (e.step, e.checkpoint_step) == (17, 10)
    msg = str(e)
    assert msg.startswith("step 17 (t = 8.50 fs): the potential failed: SCFConvergenceError: injected: SCF did")
    assert "the last checkpoint" in msg and "is step 10" in msg
    out = tmp_path / "output"
    d = read_csv(out / "energies.csv")
    assert d["step"].tolist() == list(range(17))                     # every completed step, nothing after
    assert checkpoint.load(out / "checkpoint.json")["step"] == 10
    assert len(dcd_frames(out / "trajectory.dcd")[1]) == 4           # steps 0, 5, 10, 15
    assert (out / "summary.png").exists()
    # the checkpoint is usable: a resume goes on from step 10 (the injected failure, counted per process,
    # now strikes at step 10 + 17) and cuts the outputs back first, so no step appears twice
    with pytest.raises(RunFailed) as exc:
        run(cfg, resume=True)
    assert (exc.value.step, exc.value.checkpoint_step) == (27, 20)
    assert read_csv(out / "energies.csv")["step"].tolist() == list(range(27))


def test_nan_energy_stops_cleanly(tmp_path, setup):
    cfg = setup(tmp_path, steps=30, ci=10, options=", nan_at = 13", two_levels=False)
    with pytest.raises(RunFailed, match=r"^step 12 \(t = 6.00 fs\): the potential failed: NonFiniteError: multilayer: "
                                        r"energy nan \(low = nan\)"):
        run(cfg)
    assert read_csv(tmp_path / "output" / "energies.csv")["step"].tolist() == list(range(12))
    assert checkpoint.load(tmp_path / "output" / "checkpoint.json")["step"] == 10


def test_xtc_trajectory_is_cut_back_on_resume(tmp_path, setup):
    ref = setup(tmp_path / "ref", steps=20, ci=10, ti=2, traj="traj.xtc")
    run(ref)
    cfg = setup(tmp_path / "run", steps=20, ci=10, ti=2, traj="traj.xtc")
    run(cfg)
    out = tmp_path / "run" / "output"
    (out / "checkpoint.json").write_text(json.dumps(_checkpoint_at_xtc(setup, tmp_path)))
    run(cfg, resume=True)
    from openmm.app.internal.xtc_utils import read_xtc
    a = read_xtc(str(tmp_path / "ref" / "output" / "traj.xtc").encode())
    b = read_xtc(str(out / "traj.xtc").encode())
    assert a[0].shape == b[0].shape == (9, 3, 11)
    np.testing.assert_allclose(b[0], a[0], rtol=0, atol=1.001e-3)    # XTC: coordinates kept to 1e-3 nm, one quantum
    np.testing.assert_allclose(b[3], a[3], rtol=0, atol=1e-9)        # frame times (ps)


def _checkpoint_at_xtc(setup, tmp_path):
    d = tmp_path / "ck"
    run(setup(d, steps=10, ci=10, ti=2, traj="traj.xtc"))
    return json.loads((d / "output" / "checkpoint.json").read_text())


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ck.json"
    checkpoint.atomic_write(path, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        checkpoint.atomic_write(path, b"new")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["ck.json"]


def test_trajectory_refuses_missing_frames(tmp_path):
    from openmm.app import Topology
    top = Topology()
    res = top.addResidue("X", top.addChain())
    from openmm.app import element
    top.addAtom("H", element.hydrogen, res)
    t = Trajectory(tmp_path / "t.dcd", top, 0.001, 1)
    t.write(np.zeros((1, 3)))
    size = t.sync()
    t.write(np.ones((1, 3)))
    t.close()
    t = Trajectory(tmp_path / "t.dcd", top, 0.001, 1, resume=(size, 1))
    assert t.frames == 1 and len(dcd_frames(tmp_path / "t.dcd")[1]) == 1
    t.close()
    with pytest.raises(Exception, match="cannot resume consistently"):
        Trajectory(tmp_path / "t.dcd", top, 0.001, 1, resume=(size + 100, 2))


QM_CONFIG = f"""
[structure]
file = "w3.xyz"

[[levels]]
name = "ml"
kind = "mlip"
file = "{MLIP}"

[[levels]]
name = "hf"
kind = "pyscf"
method = "HF"
basis = "sto-3g"
options = {{conv_tol = 1e-9}}
accept_energy_offset = true     # the MLIP is on GFN2-xTB's zero of energy, ~1900 eV per water from HF's
[levels.region]
center = {{molecule = 0}}
r_inner = 1.0
width = 0.5

[md]
timestep_fs = 0.5
steps = 3

[output]
progress = false
"""


def test_pyscf_level_time_share_and_accepted_energy_offset(tmp_path, inputs):
    import io

    import pyscf
    pyscf.lib.num_threads(1)
    shutil.copyfile(inputs / "w3.xyz", tmp_path / "w3.xyz")
    (tmp_path / "config.toml").write_text(QM_CONFIG)
    log = io.StringIO()
    s = Runner(load_config(tmp_path / "config.toml"), stream=log, progress=True).run()
    assert 0.0 < s.qm_share < 1.0 and s.level_s["hf"] > 0
    bar = log.getvalue().split("\r")[-1]
    assert "3/3" in bar and "ns/day, QM " in bar                       # the progress bar's last state
    t = read_csv(tmp_path / "output" / "timings.csv")
    assert (t["pyscf_s"] > 0).all() and np.allclose(t["pyscf_s"], t["level_hf_s"], rtol=0.2)
    d = read_csv(tmp_path / "output" / "energies.csv")
    assert d["high_calls_hf"].tolist() == [1] * 4
    # an MLIP on GFN2-xTB energies below HF: ~1900 eV apart per water; accepted, and still pointed out
    assert 'warning: config.toml: [[levels]] #2 accept_energy_offset = true: levels "hf" and "ml" differ by -19' \
        in log.getvalue()
    assert "spurious force" in log.getvalue()


def test_level_in_its_own_process_gives_the_same_run(tmp_path, inputs):
    """process = true: the HF level runs in a child process and the multilayer's terms side by side;
    the CSV equals the in-process run's to within the SCF tolerance, and an SCF failure still stops the run."""
    import os

    import pyscf

    from hybrid.process import ProcessPotential
    pyscf.lib.num_threads(1)
    rows = {}
    for mode, text in (("here", QM_CONFIG), ("child", QM_CONFIG.replace('basis = "sto-3g"',
                                                                        'basis = "sto-3g"\nprocess = true'))):
        d = tmp_path / mode
        d.mkdir()
        shutil.copyfile(inputs / "w3.xyz", d / "w3.xyz")
        (d / "config.toml").write_text(text)
        runner = Runner(load_config(d / "config.toml"), progress=False)
        s = runner.run()
        assert s.qm_share > 0 and s.level_s["hf"] > 0
        pot = runner.model.potential
        qm = [p for p in _walk(pot) if isinstance(p, ProcessPotential)]
        if mode == "child":
            assert pot.workers == 2 and qm and all(q._process.pid != os.getpid() for q in qm if q._process)
        else:
            assert pot.workers == 1 and not qm
        rows[mode] = read_csv(d / "output" / "energies.csv")
    for col in ("E_pot_eV", "E_total_eV", "dE_hf_eV"):
        assert np.abs(rows["child"][col] - rows["here"][col]).max() < 1e-6, col
    d = tmp_path / "fails"
    d.mkdir()
    shutil.copyfile(inputs / "w3.xyz", d / "w3.xyz")
    (d / "config.toml").write_text(QM_CONFIG.replace("conv_tol = 1e-9", "conv_tol = 1e-12, max_cycle = 1")
                                   .replace('basis = "sto-3g"', 'basis = "sto-3g"\nprocess = true'))
    with pytest.raises(RunFailed, match=r"^step 0 \(t = 0.00 fs\): the potential failed: SCFConvergenceError: "):
        Runner(load_config(d / "config.toml")).run()


def _walk(p):
    """p and every potential inside it (sums, wrappers, blends' levels and their region copies)."""
    yield p
    for q in [getattr(p, "potential", None), getattr(p, "high", None), getattr(p, "low", None)] \
            + [t for _, t in getattr(p, "terms", ())] + list(getattr(p, "_instances", {}).values()):
        if q is not None:
            yield from _walk(q)


def test_real_scf_failure_at_the_first_step(tmp_path, inputs):
    import pyscf
    pyscf.lib.num_threads(1)
    shutil.copyfile(inputs / "w3.xyz", tmp_path / "w3.xyz")
    (tmp_path / "config.toml").write_text(QM_CONFIG.replace("conv_tol = 1e-9", "conv_tol = 1e-12, max_cycle = 1"))
    with pytest.raises(RunFailed, match=r"^step 0 \(t = 0.00 fs\): the potential failed: SCFConvergenceError: "
                                        r"hf: SCF did not converge: HF/sto-3g, .*tried DIIS \(1/1 cycles, "
                                        r"conv_tol 1e-12 Eh\)") as exc:
        Runner(load_config(tmp_path / "config.toml")).run()
    assert exc.value.checkpoint_step == -1 and "nothing was written" in str(exc.value)
    assert not (tmp_path / "output").exists()          # step 0 is evaluated before any output is created


def test_langevin_reports_no_total_energy_drift(tmp_path, setup):
    """NVT: the summary and the plot report no total-energy drift (the bath exchanges energy); NVE does."""
    from hybrid.md.plot import summary_figure
    nvt = run(setup(tmp_path / "nvt", steps=20, integrator="langevin"))
    assert nvt.drift_meV is None and nvt.drift_meV_per_ps is None
    text = nvt.text()
    assert "total-energy drift:" not in text and "no total-energy drift is reported" in text
    d = read_csv(tmp_path / "nvt" / "output" / "energies.csv")
    assert nvt.mean_T_K == pytest.approx(float(np.mean(d["T_K"])), rel=0, abs=1e-9)
    fig = summary_figure(d, integrator="langevin", bath_K=300.0)
    b = next(a for a in fig.axes if a.get_label() == "b")
    assert "drift:" not in b.get_title() and "no drift" in b.get_title()
    assert np.allclose(b.lines[0].get_ydata(), (d["E_pot_eV"] - d["E_pot_eV"][0]) * 1e3, rtol=0, atol=1e-9)
    nve = run(setup(tmp_path / "nve", steps=20))
    assert nve.drift_meV is not None and "total-energy drift: max |E_tot - E_tot(0)|" in nve.text()
    fig = summary_figure(read_csv(tmp_path / "nve" / "output" / "energies.csv"))
    assert next(a for a in fig.axes if a.get_label() == "b").get_title().startswith("NVE total-energy drift: ")


def test_plot_region_call_lines_are_visible(tmp_path, setup):
    """The region calls per step have their own panel from 0: a solid line, wide enough, opaque, holding the
    CSV's counts, inside the axis limits (they used to be a thin dotted line on a twin axis, drawn over the
    membership lines)."""
    import matplotlib.pyplot as plt

    from hybrid.md.plot import summary_figure
    run(setup(tmp_path, steps=10))
    d = read_csv(tmp_path / "output" / "energies.csv")
    fig = summary_figure(d)
    e = next(a for a in fig.axes if a.get_label() == "e")
    line, = [ln for ln in e.lines if ln.get_label() == "high: region calls"]
    assert line.get_visible() and line.get_linestyle() == "-" and line.get_linewidth() >= 1.5
    assert line.get_alpha() is None or line.get_alpha() >= 0.9
    assert np.array_equal(line.get_ydata(), d["high_calls_high"]) and d["high_calls_high"].min() == 4
    lo, hi = e.get_ylim()
    assert lo == 0.0 and hi > d["high_calls_high"].max() + 0.4                 # not on the frame
    assert all(ln.get_label() != "high: region calls" for a in fig.axes if a is not e for ln in a.lines)
    plt.close(fig)


def test_energy_zero_check_runs_on_periodic_systems(tmp_path, inputs):
    """A periodic box (extxyz with a cell): the HF level runs on an isolated cluster of one molecule, so the
    energy-zero check is done (it used to be skipped, blaming PySCF's periodic support) and stops the run
    before any output; accepted on purpose, the offset is the cluster's, as in the non-periodic run."""
    import pyscf

    from hybrid.config import ConfigError
    from hybrid.md.preflight import preflight
    pyscf.lib.num_threads(1)
    atoms = ase.io.read(inputs / "w3.xyz")
    atoms.center(vacuum=4.0)
    atoms.pbc = True
    ase.io.write(tmp_path / "w3.xyz", atoms, format="extxyz")
    text = QM_CONFIG.replace("accept_energy_offset = true", "")
    (tmp_path / "config.toml").write_text(text)
    cfg = load_config(tmp_path / "config.toml")
    with pytest.raises(ConfigError, match=r'\[\[levels\]\] #2 "hf" over "ml": levels "hf" and "ml" differ by -19\d\d '
                                          r"eV on one molecule \(atoms \[\d, \d, \d\], as an isolated cluster\)"):
        Runner(cfg, progress=False).run()
    assert not (tmp_path / "output").exists()
    (tmp_path / "config.toml").write_text(QM_CONFIG)
    pre = preflight(load_config(tmp_path / "config.toml"), stream=__import__("io").StringIO())
    assert pre.system.periodic and pre.offsets[0][3] is not None
    atoms_m, de = pre.offsets[0][2], pre.offsets[0][3]
    # the same molecule outside the box: the same offset to within the SCF tolerance
    flat = ase.io.read(tmp_path / "w3.xyz")
    flat.pbc = False
    flat.cell = None
    ase.io.write(tmp_path / "flat.xyz", flat, format="extxyz")
    (tmp_path / "config.toml").write_text(QM_CONFIG.replace('file = "w3.xyz"', 'file = "flat.xyz"'))
    ref = preflight(load_config(tmp_path / "config.toml"), stream=__import__("io").StringIO())
    assert not ref.system.periodic and list(ref.offsets[0][2]) == list(atoms_m)
    assert abs(ref.offsets[0][3] - de) < 1e-6
