"""The ``hybrid`` command: exit codes, messages, and a run killed with SIGKILL then resumed."""
import csv
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import ase.io
import pytest

from hybrid.build import water_cluster
from hybrid.cli import main
from hybrid.config import load_config
from hybrid.md.outputs import dcd_frames
from hybrid.md.runner import Runner
from runtools import assert_same_csv, assert_same_frames

ROOT = Path(__file__).resolve().parents[2]
MLIP = ROOT / "models" / "water_gfn2xtb.pt"

#: the shipped MLIP, slowed down (sleep s per call) so that a run can be killed mid-way,
#: or failing with an SCF error on its n-th call
LEVEL_PY = '''
import time
from hybrid.errors import SCFConvergenceError
from hybrid.ml.potential import MLPotential
from hybrid.potential import Potential


class Slow(Potential):
    def __init__(self, inner, sleep, fail_at):
        self.inner, self.sleep, self.fail_at, self.calls = inner, sleep, fail_at, 0
        self.species, self.min_distance = inner.species, inner.min_distance

    def _compute(self, system):
        self.calls += 1
        time.sleep(self.sleep)
        if self.calls == self.fail_at:
            raise SCFConvergenceError("HF/6-31g*: SCF did not converge (injected)")
        return self.inner._compute(system)


def make_potential(model, sleep=0.0, fail_at=-1):
    return Slow(MLPotential.load(model), sleep, fail_at)
'''


def make_run(d: Path, steps: int, sleep: float = 0.0, fail_at: int = -1, ci: int = 10, ti: int = 2,
             integrator: str = "verlet") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    ase.io.write(d / "w4.xyz", water_cluster(4, spacing=2.9, seed=5).to_ase(), format="extxyz")
    (d / "level.py").write_text(LEVEL_PY)
    extra = "friction_per_ps = 2.0\n" if integrator == "langevin" else ""
    (d / "config.toml").write_text(f"""
[structure]
file = "w4.xyz"

[[levels]]
name = "ml"
kind = "python"
file = "level.py"
options = {{model = "{MLIP}", sleep = {sleep}, fail_at = {fail_at}}}

[md]
integrator = "{integrator}"
timestep_fs = 0.5
steps = {steps}
temperature_K = 300
seed = 11
{extra}
[output]
trajectory_interval = {ti}
checkpoint_interval = {ci}
progress = false
""")
    return d / "config.toml"


def test_console_script_is_declared():
    eps = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert eps.get("hybrid") == "hybrid.cli:main"


def test_bad_config_exits_2_naming_key_and_value(tmp_path, capsys):
    cfg = make_run(tmp_path, 10)
    cfg.write_text(cfg.read_text().replace("timestep_fs = 0.5", "timestep_fs = -1")
                   .replace("seed = 11", "sed = 11"))
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "config.toml: [md] timestep_fs = -1: must be > 0" in err
    assert 'config.toml: [md] sed = 11: unknown key; did you mean "seed"?' in err
    assert not (tmp_path / "output").exists()                       # nothing was started


def test_check_run_and_refusals(tmp_path, capsys):
    cfg = make_run(tmp_path, 4)
    assert main(["check", str(cfg)]) == 0
    assert "OK (12 atoms, 4 molecules; levels ml)" in capsys.readouterr().out
    assert main(["run", "--resume", str(cfg)]) == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err
    assert main(["run", "--no-progress", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "steps 0 -> 4" in out and "ns/day" in out and str(tmp_path / "output" / "energies.csv") in out
    assert main(["run", str(cfg)]) == 2                             # would overwrite the finished run
    assert "--resume" in capsys.readouterr().err
    assert main(["run", "--overwrite", "--no-progress", str(cfg)]) == 0


def test_build_errors_name_key_and_value(tmp_path, capsys):
    cfg = make_run(tmp_path, 4)
    text = cfg.read_text()
    cfg.write_text(text.replace('kind = "python"\nfile = "level.py"', 'kind = "mlip"\nfile = "w4.xyz"')
                   .replace("options = {", "# options = {"))
    assert main(["check", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('config.toml: [[levels]] #1 file = "') and "w4.xyz" in err and "not a readable" in err
    second = f"""[[levels]]
name = "ml2"
kind = "mlip"
file = "{MLIP}"
[levels.region]
center = {{molecule = 4}}
r_inner = 1.0
width = 1.0

[md]"""
    cfg.write_text(text.replace("[md]", second))
    assert main(["check", str(cfg)]) == 2
    assert "config.toml: [[levels]] #2 region.center.molecule = 4: molecule index outside the structure's 4 " \
           "molecules (0..3)" in capsys.readouterr().err


def test_pdb_structure_from_a_run(tmp_path, capsys):
    """The topology PDB a run writes is itself a structure (molecules from its residues)."""
    cfg = make_run(tmp_path, 2)
    assert main(["run", "--no-progress", str(cfg)]) == 0
    cfg.write_text(cfg.read_text().replace('file = "w4.xyz"', 'file = "output/topology.pdb"'))
    capsys.readouterr()
    assert main(["check", str(cfg)]) == 0
    assert "OK (12 atoms, 4 molecules; levels ml)" in capsys.readouterr().out


def test_scf_failure_exits_1_with_outputs_intact(tmp_path, capsys):
    cfg = make_run(tmp_path, 20, fail_at=9, ci=5)
    assert main(["run", "--no-progress", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "step 8 (t = 4.00 fs): the potential failed: SCFConvergenceError: HF/6-31g*: SCF did not converge" in err
    assert "is step 5" in err
    rows = list(csv.reader(open(tmp_path / "output" / "energies.csv")))
    assert [r[0] for r in rows[1:]] == [str(k) for k in range(8)]


def _rows(path):
    with open(path, newline="") as fh:
        return fh.read().splitlines()


def _checkpoint_step(path):
    import json
    try:
        return json.loads(path.read_text())["step"]
    except (OSError, ValueError, KeyError):
        return -1


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    """SIGKILL a running `hybrid run` after a checkpoint and a few more steps; `--resume` loses no step and
    duplicates none, and the CSV and trajectory equal those of an uninterrupted run with the same seed
    (Langevin: the noise continues from the RNG state in OpenMM's checkpoint)."""
    n, integrator = 120, "langevin"
    ref = make_run(tmp_path / "ref", n, integrator=integrator)
    Runner(load_config(ref), progress=False).run()
    cfg = make_run(tmp_path / "killed", n, sleep=0.02, integrator=integrator)
    out = tmp_path / "killed" / "output"
    cmd = [sys.executable, "-m", "hybrid.cli", "run", "--no-progress", str(cfg)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.time() + 120
    ck = -1
    try:
        while time.time() < deadline and proc.poll() is None:      # kill mid-way between checkpoints 20 and 30
            last = len(_rows(out / "energies.csv")) - 2 if (out / "energies.csv").exists() else -1
            if 24 <= last <= 26 and _checkpoint_step(out / "checkpoint.json") == 20:
                break
            time.sleep(0.002)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    ck = _checkpoint_step(out / "checkpoint.json")
    written = len(_rows(out / "energies.csv")) - 1
    assert 20 <= ck < n and written > ck + 1                  # killed between checkpoints, rows after the last one
    print(f"killed: checkpoint at step {ck}, CSV rows of steps 0..{written - 1} on disk")
    res = subprocess.run(cmd[:3] + ["run", "--resume", "--no-progress", str(cfg)], capture_output=True, text=True,
                         timeout=180)
    assert res.returncode == 0, res.stderr
    assert f"steps {ck} -> {n}" in res.stdout
    a, b = tmp_path / "ref" / "output", out
    rows = _rows(b / "energies.csv")
    assert [r.split(",")[0] for r in rows[1:]] == [str(k) for k in range(n + 1)]     # none lost, none twice
    assert_same_csv(a / "energies.csv", b / "energies.csv")
    assert len(dcd_frames(b / "trajectory.dcd")[1]) == n // 2 + 1
    assert_same_frames(a / "trajectory.dcd", b / "trajectory.dcd")


def test_main_job_config_builds_and_steps(tmp_path):
    """examples/main/config.toml (the README's main job) validates, finds its models and takes two steps."""
    import pyscf
    pyscf.lib.num_threads(1)
    cfg = load_config(ROOT / "examples" / "main" / "config.toml")
    assert [lv.kind for lv in cfg.levels] == ["mlip", "delta", "pyscf"]
    assert cfg.md.steps * cfg.md.timestep_fs >= 250.0
    cfg.md["steps"] = 2
    out = cfg.output
    for key in ("trajectory", "topology", "csv", "timings", "plot", "checkpoint"):
        out[key] = tmp_path / out[key].name
    out["directory"] = tmp_path
    s = Runner(cfg, progress=False).run()
    assert s.last_step == 2 and s.qm_share > 0
    d = csv.DictReader(open(tmp_path / "energies.csv"))
    rows = list(d)
    assert len(rows) == 3 and all(r["high_calls_qm"] == "1" for r in rows)
    assert all(abs(float(r["dE_qm_eV"])) < 0.05 for r in rows)      # the levels share HF's zero of energy


def _run_until(cmd, out: Path, lo: int, hi: int, ck: int, sig) -> subprocess.CompletedProcess:
    """Start ``cmd``, send ``sig`` when the CSV's last step is in [lo, hi] and the checkpoint is at ``ck``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            last = len(_rows(out / "energies.csv")) - 2 if (out / "energies.csv").exists() else -1
            if lo <= last <= hi and _checkpoint_step(out / "checkpoint.json") == ck:
                break
            time.sleep(0.002)
        assert proc.poll() is None, f"the run ended before the signal: {proc.communicate()}"
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_checkpoints_the_current_step_and_resume_loses_nothing(tmp_path, sig):
    """SIGTERM (a scheduler's time limit) or Ctrl-C between two periodic checkpoints: the run finishes the step
    it is in, checkpoints there, flushes its outputs and exits 3 saying how to resume; `--resume` then writes
    every step exactly once, and CSV and trajectory equal an uninterrupted run's (Langevin, same seed)."""
    n, integrator = 60, "langevin"
    ref = make_run(tmp_path / "ref", n, integrator=integrator)
    Runner(load_config(ref), progress=False).run()
    cfg = make_run(tmp_path / "stopped", n, sleep=0.02, integrator=integrator)
    out = tmp_path / "stopped" / "output"
    cmd = [sys.executable, "-m", "hybrid.cli", "run", "--no-progress", str(cfg)]
    res = _run_until(cmd, out, 23, 26, 20, sig)
    assert res.returncode == 3, res.stderr
    assert "Traceback" not in res.stderr and "KeyboardInterrupt" not in res.stderr
    assert f"{sig.name} received: stopped after step" in res.stderr and f"--resume {cfg}" in res.stderr
    ck = _checkpoint_step(out / "checkpoint.json")
    steps = [int(r.split(",")[0]) for r in _rows(out / "energies.csv")[1:]]
    assert 23 <= ck < n and ck != 30 and steps == list(range(ck + 1))     # checkpoint at the stopped step itself
    assert f"stopped after step {ck} of {n}" in res.stderr
    res = subprocess.run(cmd[:3] + ["run", "--resume", "--no-progress", str(cfg)], capture_output=True, text=True,
                         timeout=180)
    assert res.returncode == 0, res.stderr
    assert f"steps {ck} -> {n}" in res.stdout
    steps = [int(r.split(",")[0]) for r in _rows(out / "energies.csv")[1:]]
    assert steps == list(range(n + 1))                                            # none lost, none twice
    assert_same_csv(tmp_path / "ref" / "output" / "energies.csv", out / "energies.csv")
    assert len(dcd_frames(out / "trajectory.dcd")[1]) == n // 2 + 1
    assert_same_frames(tmp_path / "ref" / "output" / "trajectory.dcd", out / "trajectory.dcd")


def test_resume_refusals_name_what_changed(tmp_path, capsys):
    cfg = make_run(tmp_path, 10, ci=5)
    assert main(["run", "--no-progress", str(cfg)]) == 0
    text = cfg.read_text()
    cfg.write_text(text.replace("timestep_fs = 0.5", "timestep_fs = 0.25").replace("seed = 11", "seed = 12"))
    capsys.readouterr()
    assert main(["run", "--resume", "--no-progress", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "md.seed: 11 -> 12" in err and "md.timestep_fs: 0.5 -> 0.25" in err and "steps" not in err.split(
        "Changed:")[1].split(".")[0]
    (tmp_path / "w4.xyz").write_text((tmp_path / "w4.xyz").read_text() + "\n")
    cfg.write_text(text)
    assert main(["run", "--resume", "--no-progress", str(cfg)]) == 2
    assert "w4.xyz: the file's contents changed" in capsys.readouterr().err
    ase.io.write(tmp_path / "w4.xyz", water_cluster(4, spacing=2.9, seed=5).to_ase(), format="extxyz")
    cfg.write_text(text.replace("steps = 10", "steps = 7"))
    assert main(["run", "--resume", "--no-progress", str(cfg)]) == 2
    assert "[md] steps = 7: below the checkpoint's step 10" in capsys.readouterr().err
    cfg.write_text(text.replace("steps = 10", "steps = 12"))                 # extending is allowed
    assert main(["run", "--resume", "--no-progress", str(cfg)]) == 0
    assert "steps 10 -> 12" in capsys.readouterr().out


def test_a_full_disk_mid_run_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    import errno
    from hybrid.md import outputs
    cfg = make_run(tmp_path, 20, ci=5)
    write = outputs.CSVLog.write

    def full(self, row):
        if row["step"] == 8:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        return write(self, row)

    monkeypatch.setattr(outputs.CSVLog, "write", full)
    assert main(["run", "--no-progress", str(cfg)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "No space left on device" in err and "energies.csv" in err and "checkpoint is step 5" in err


def test_version_and_a_closed_pipe(tmp_path):
    from importlib.metadata import version
    res = subprocess.run([sys.executable, "-m", "hybrid.cli", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and version("qmml-hybrid") in res.stdout
    cfg = make_run(tmp_path, 2)
    r, w = os.pipe()
    os.close(r)                                   # `hybrid check ... | head` after head has gone
    try:
        res = subprocess.run([sys.executable, "-m", "hybrid.cli", "check", str(cfg)], stdout=w,
                             stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(w)
    assert "Traceback" not in res.stderr and "BrokenPipeError" not in res.stderr, res.stderr
