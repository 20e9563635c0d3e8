"""The ``hybrid`` command: exit codes, messages, and a run killed with SIGKILL then resumed."""
import csv
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import ase
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


def _stopped_run(tmp_path, n, lo, hi, sig):
    """An uninterrupted reference run of n Langevin steps and the same run, slowed, stopped by ``sig`` when its
    CSV shows a step in [lo, hi] with the checkpoint at 20: (config, output dir, result of the stopped run)."""
    ref = make_run(tmp_path / "ref", n, integrator="langevin")
    Runner(load_config(ref), progress=False).run()
    cfg = make_run(tmp_path / "stopped", n, sleep=0.02, integrator="langevin")
    out = tmp_path / "stopped" / "output"
    cmd = [sys.executable, "-m", "hybrid.cli", "run", "--no-progress", str(cfg)]
    return cfg, out, _run_until(cmd, out, lo, hi, 20, sig)


def _resume_equals_the_reference(tmp_path, cfg, out, ck: int, n: int) -> None:
    """`--resume` goes on from step ``ck``: every step once, CSV and frames those of the reference run."""
    res = subprocess.run([sys.executable, "-m", "hybrid.cli", "run", "--resume", "--no-progress", str(cfg)],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    assert f"steps {ck} -> {n}" in res.stdout
    steps = [int(r.split(",")[0]) for r in _rows(out / "energies.csv")[1:]]
    assert steps == list(range(n + 1))                                            # none lost, none twice
    ref = tmp_path / "ref" / "output"
    assert_same_csv(ref / "energies.csv", out / "energies.csv")
    assert len(dcd_frames(out / "trajectory.dcd")[1]) == n // 2 + 1
    assert_same_frames(ref / "trajectory.dcd", out / "trajectory.dcd")


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    """SIGKILL a running `hybrid run` after a checkpoint and a few more steps; `--resume` loses no step and
    duplicates none, and the CSV and trajectory equal those of an uninterrupted run with the same seed
    (Langevin: the noise continues from the RNG state in OpenMM's checkpoint)."""
    n = 120
    cfg, out, res = _stopped_run(tmp_path, n, 24, 26, signal.SIGKILL)        # mid-way between checkpoints 20 and 30
    assert res.returncode == -signal.SIGKILL, res.stderr
    ck = _checkpoint_step(out / "checkpoint.json")
    written = len(_rows(out / "energies.csv")) - 1
    assert 20 <= ck < n and written > ck + 1                  # killed between checkpoints, rows after the last one
    print(f"killed: checkpoint at step {ck}, CSV rows of steps 0..{written - 1} on disk")
    _resume_equals_the_reference(tmp_path, cfg, out, ck, n)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_checkpoints_the_current_step_and_resume_loses_nothing(tmp_path, sig):
    """SIGTERM (a scheduler's time limit) or Ctrl-C between two periodic checkpoints: the run finishes the step
    it is in, checkpoints there, flushes its outputs and exits 3 saying how to resume; `--resume` then writes
    every step exactly once, and CSV and trajectory equal an uninterrupted run's (Langevin, same seed)."""
    n = 60
    cfg, out, res = _stopped_run(tmp_path, n, 23, 26, sig)
    assert res.returncode == 3, res.stderr
    assert "Traceback" not in res.stderr and "KeyboardInterrupt" not in res.stderr
    assert f"{sig.name} received: stopped after step" in res.stderr and f"--resume {cfg}" in res.stderr
    ck = _checkpoint_step(out / "checkpoint.json")
    steps = [int(r.split(",")[0]) for r in _rows(out / "energies.csv")[1:]]
    assert 23 <= ck < n and ck != 30 and steps == list(range(ck + 1))     # checkpoint at the stopped step itself
    assert f"stopped after step {ck} of {n}" in res.stderr
    _resume_equals_the_reference(tmp_path, cfg, out, ck, n)


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


# -- what step 0 would find, found by `hybrid check` and `hybrid run` before any output exists -------------

def _structure(d: Path, extra=(), drop=()):
    """3 waters (atoms O H H each) as w.xyz, plus ``extra`` atoms [(symbol, (x, y, z))], minus atoms ``drop``."""
    atoms = water_cluster(3, spacing=2.9, seed=3).to_ase()
    del atoms[[i for i in drop]]
    for sym, pos in extra:
        atoms += ase.Atoms(sym, [pos])
    ase.io.write(d / "w.xyz", atoms, format="extxyz")


def _level(name, kind, region=None, **keys):
    lines = ["[[levels]]", f'name = "{name}"', f'kind = "{kind}"']
    lines += [f"{k} = {v}" for k, v in keys.items()]
    if region is not None:
        lines += ["[levels.region]", f"center = {{molecule = {region}}}", "r_inner = 1.0", "width = 0.5"]
    return "\n".join(lines) + "\n"


def _config(d: Path, levels: str, structure_extra: str = "", output: str = "") -> Path:
    (d / "config.toml").write_text(f"""
[structure]
file = "w.xyz"
{structure_extra}

{levels}
[md]
timestep_fs = 0.5
steps = 2

[output]
progress = false
{output}
""")
    return d / "config.toml"


def _tree(d: Path) -> dict:
    return {str(p.relative_to(d)): (p.is_dir(), p.stat().st_size if p.is_file() else 0) for p in d.rglob("*")}


def _check_and_run(cfg: Path, capsys) -> list:
    """[(command, exit code, stderr)] of `hybrid check` and `hybrid run` on cfg; asserts neither created
    or changed a file in the configuration's directory."""
    out = []
    for cmd in (["check"], ["run", "--no-progress"]):
        before = _tree(cfg.parent)
        code = main(cmd + [str(cfg)])
        err = capsys.readouterr().err
        assert _tree(cfg.parent) == before, f"{cmd[0]} created or changed files"
        out.append((cmd[0], code, err))
    return out


WATER_PT = "water.pt"       # the shipped GFN2-xTB water MLIP (H, O), copied beside the configuration

BAD_INPUTS = {
    # an MLIP that knows H and O, on a structure with a sodium atom
    "unknown element (lowest level)": (
        dict(extra=[("Na", (5.0, 0.0, 0.0))]),
        _level("ml", "mlip", file=f'"{WATER_PT}"'), "",
        'config.toml: [[levels]] #1 file = "water.pt": atom 9 is Na, an element this model does not know '
        '(it knows H, O); level "ml" acts on all atoms'),
    # GFN2-xTB everywhere (knows C), the H,O MLIP over a region centred on a methane-like CH2 fragment's C
    "unknown element (region level)": (
        dict(extra=[("C", (4.0, 0.0, 0.0)), ("H", (4.63, 0.89, 0.0)), ("H", (4.63, -0.89, 0.0))]),
        _level("xtb", "xtb") + _level("ml", "mlip", region=3, file=f'"{WATER_PT}"'), "",
        'config.toml: [[levels]] #2 file = "water.pt": atom 9 is C, an element this model does not know '
        '(it knows H, O); level "ml" acts on the region of [[levels]] #2 at step 0'),
    # a hydroxyl radical (a water without its last H): 17 electrons, default multiplicity 1
    "odd electron count, default multiplicity": (
        dict(drop=[8]),
        _level("hf", "pyscf", method='"HF"', basis='"sto-3g"'), "",
        'config.toml: [structure] multiplicity (default: 1): level "hf" (kind = "pyscf") on all 8 atoms sees '
        '29 electrons (sum of Z 29, charge 0), which cannot have multiplicity 1 (2S = 0 must have the parity of '
        'the electron count); set [structure] multiplicity (2S+1) or [structure] charge'),
    # the radical's doublet is the whole system's; which region holds the unpaired electron is not known
    "region of an open-shell system": (
        dict(drop=[8]),
        _level("ml", "mlip", file=f'"{WATER_PT}"')
        + _level("hf", "pyscf", region=0, method='"HF"', basis='"sto-3g"', accept_energy_offset="true"),
        "multiplicity = 2",
        "config.toml: [[levels]] #2 region at step 0: region of 3 atoms [0 O, 1 H, 2 H]: the system is open-shell; "
        "give the region's multiplicity (charges=callable(atoms) -> (charge, multiplicity)). Regions take their "
        "charges from the structure (a PDB's charge column, recognised monatomic ions) and are singlets in a "
        "closed-shell system; [structure] charge and multiplicity describe the whole system"),
    "unknown basis": (
        dict(),
        _level("hf", "pyscf", method='"HF"', basis='"6-31gxx"'), "",
        'config.toml: [[levels]] #1 basis = "6-31gxx": PySCF has no such basis for O (KeyError: 631gxx); level '
        '"hf" acts on all atoms (atom 0 is O)'),
    "unknown functional": (
        dict(),
        _level("dft", "pyscf", method='"B3LYPP"', basis='"sto-3g"'), "",
        'config.toml: [[levels]] #1 method = "B3LYPP": PySCF does not know the method or functional \'B3LYPP\''),
    # an MLIP on GFN2-xTB's zero of energy under HF/STO-3G: ~1900 eV apart per water
    "mismatched energy zeros": (
        dict(),
        _level("ml", "mlip", file=f'"{WATER_PT}"') + _level("hf", "pyscf", region=0, method='"HF"',
                                                              basis='"sto-3g"'), "",
        'config.toml: [[levels]] #2 "hf" over "ml": levels "hf" and "ml" differ by -1902 eV on one molecule '
        '(atoms [0, 1, 2], as an isolated cluster): their zeros of energy differ by more than 0.5 eV, so a '
        'molecule crossing this boundary\'s buffer (width 0.5 Å) feels a spurious force ~|ΔE|/width ≈ 3.8e+03 '
        'eV/Å. Use levels that share a reference (an MLIP or Δ-ML trained on the higher level\'s energies), or '
        'set accept_energy_offset = true in [[levels]] #2 to run anyway'),
    # the output directory's parent is a regular file (root ignores chmod, so no read-only directory)
    "output directory under a file": (
        dict(),
        _level("ml", "mlip", file=f'"{WATER_PT}"'), "",
        'config.toml: [output] directory = "blocker/out": cannot be created: {d}/blocker is a file, not a '
        'directory'),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_exit_2_from_check_and_run_before_any_output(tmp_path, capsys, case):
    """Each bad input: `hybrid check` and `hybrid run` exit 2 with the same message, and create nothing."""
    import shutil
    structure, levels, structure_extra, expected = BAD_INPUTS[case]
    _structure(tmp_path, **structure)
    shutil.copyfile(MLIP, tmp_path / WATER_PT)
    output = ""
    if case == "output directory under a file":
        (tmp_path / "blocker").write_text("a file\n")
        output = 'directory = "blocker/out"'
    cfg = _config(tmp_path, levels, structure_extra, output)
    expected = expected.format(d=tmp_path)
    results = _check_and_run(cfg, capsys)
    print(f"| {case} | `{expected}` | {results[0][1]} | {results[1][1]} | no |")
    for cmd, code, err in results:
        assert code == 2, (cmd, err)
        assert expected in err.splitlines(), (cmd, err)
    assert not (tmp_path / "output").exists()


def test_accept_energy_offset_lets_check_and_run_go_on(tmp_path, capsys):
    """The mismatched levels above with accept_energy_offset = true: a warning, exit 0, outputs written."""
    import shutil
    _structure(tmp_path)
    shutil.copyfile(MLIP, tmp_path / WATER_PT)
    cfg = _config(tmp_path, _level("ml", "mlip", file=f'"{WATER_PT}"') + _level(
        "hf", "pyscf", region=0, method='"HF"', basis='"sto-3g"', accept_energy_offset="true"))
    assert main(["check", str(cfg)]) == 0
    io = capsys.readouterr()
    assert 'warning: config.toml: [[levels]] #2 accept_energy_offset = true: levels "hf" and "ml" differ by -1902 ' \
           'eV on one molecule' in io.err
    assert "energy zeros: hf - ml = -1902 eV on one molecule (3 atoms)" in io.out
    assert not (tmp_path / "output").exists()                      # check writes nothing
    assert main(["run", "--no-progress", str(cfg)]) == 0
    assert "accept_energy_offset = true" in capsys.readouterr().err
    assert (tmp_path / "output" / "energies.csv").exists()
    cfg.write_text(cfg.read_text().replace('name = "ml"\nkind = "mlip"', 'name = "ml"\nkind = "mlip"\n'
                                           'accept_energy_offset = true'))
    assert main(["check", str(cfg)]) == 2
    assert "config.toml: [[levels]] #1 accept_energy_offset = true: the first (lowest) level has no level below it" \
        in capsys.readouterr().err.splitlines()


def test_check_exits_1_when_step_0_fails_like_run(tmp_path, capsys):
    """An SCF that cannot converge at step 0: `hybrid check` reports it as `hybrid run` does (exit 1), and
    neither creates an output."""
    _structure(tmp_path)
    cfg = _config(tmp_path, _level("hf", "pyscf", method='"HF"', basis='"sto-3g"',
                                   options="{conv_tol = 1e-12, max_cycle = 1}"))
    results = _check_and_run(cfg, capsys)
    for cmd, code, err in results:
        assert code == 1, (cmd, err)
        assert "step 0 (t = 0.00 fs): the potential failed: SCFConvergenceError: hf: SCF did not converge" in err
    assert not (tmp_path / "output").exists()


def test_buffer_overflow_at_step_0_exits_2_naming_max_buffer(tmp_path, capsys):
    """Two waters in the buffer at step 0 with max_buffer = 1."""
    import shutil
    _structure(tmp_path)
    shutil.copyfile(MLIP, tmp_path / WATER_PT)
    levels = (_level("ml", "mlip", file=f'"{WATER_PT}"') + _level("ml2", "mlip", region=0, file=f'"{WATER_PT}"')
              ).replace("width = 0.5", "width = 4.0\nmax_buffer = 1")
    cfg = _config(tmp_path, levels)
    for cmd, code, err in _check_and_run(cfg, capsys):
        assert code == 2, (cmd, err)
        assert 'config.toml: [[levels]] #2 region.max_buffer = 1: 2 molecules lie in the buffer at step 0 (product ' \
               'partitions would need 4 region calls); raise max_buffer or narrow the buffer (width)' \
               in err.splitlines(), err
    assert not (tmp_path / "output").exists()
