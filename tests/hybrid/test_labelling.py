"""Labelling: kill -9 and resume, Dask cluster vs one process, failures and retries, stores."""
import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from hybrid.errors import InputError
from hybrid.labelling import configuration_hash, jobqueue_cluster, label, label_status, load_labels
from hybrid.ml.adapters import XTBPotential
from hybrid.potential import Potential
from hybrid.system import AtomicSystem
from fdtools import WATER

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def waters(n, seed=0, scale=0.05):
    rng = np.random.default_rng(seed)
    return [AtomicSystem([8, 1, 1], np.array(WATER) + rng.normal(scale=scale, size=(3, 3))) for _ in range(n)]


def ledger(path):
    with open(str(path) + ".ledger.jsonl") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def done_entries(path):
    return [e for e in ledger(path) if e["event"] == "done"]


JOB = """
import json, os, sys, time
import numpy as np
sys.path.insert(0, {tests!r})
from fdtools import WATER
from hybrid.labelling import configuration_hash, label
from hybrid.qm import PySCFPotential
from hybrid.system import AtomicSystem

class CountingHF(PySCFPotential):
    '''HF/STO-3G that logs every call (pid, configuration hash) and is slowed down.'''
    min_distance = 0     # skip the neighbour-list check: spares each process the import of torch (via vesin)

    def _compute(self, system):
        with open("calls.log", "a") as fh:
            fh.write(f"{{os.getpid()}} {{configuration_hash(system)}}\\n")
            fh.flush()
            os.fsync(fh.fileno())
        time.sleep(0.15)
        return super()._compute(system)

if __name__ == "__main__":
    rng = np.random.default_rng(3)
    systems = [AtomicSystem([8, 1, 1], np.array(WATER) + rng.normal(scale=0.05, size=(3, 3))) for _ in range(6)]
    s = label(systems, CountingHF("HF", "sto-3g", name="HF/sto-3g"), "labels.extxyz",
              scheduler="synchronous", progress=False)
    print(json.dumps({{"pid": os.getpid(), "resumed": s.resumed, "computed": s.computed,
                      "repaired": s.repaired_bytes}}))
"""


def test_killed_job_resumes_without_loss_or_recomputation(tmp_path):
    """SIGKILL the job's process group after >= 3 labels; the restart keeps them and computes only the rest."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(JOB.format(tests=TESTS)))
    out = tmp_path / "labels.extxyz"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    t0 = time.time()
    while True:
        n_done = len(done_entries(out)) if os.path.exists(str(out) + ".ledger.jsonl") else 0
        if n_done >= 3 or proc.poll() is not None or time.time() - t0 > 60:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    before = {e["id"]: e for e in done_entries(out)}
    assert 3 <= len(before) < 6                      # killed mid-way
    calls_before = (tmp_path / "calls.log").read_text().split()

    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    run2 = json.loads(res.stdout.strip().splitlines()[-1])
    assert sorted(run2["resumed"]) == sorted(before)                   # no finished label lost
    assert not set(run2["computed"]) & set(before)                    # none recomputed
    assert sorted(run2["resumed"] + run2["computed"]) == list(range(6))

    # the call log of the restarted process names no configuration that was done before the kill
    lines = [ln.split() for ln in (tmp_path / "calls.log").read_text().splitlines()]
    hashes_run2 = {h for pid, h in lines if int(pid) == run2["pid"]}
    assert len(hashes_run2) == 6 - len(before) and len(lines) == len(calls_before) // 2 + len(hashes_run2)
    assert not hashes_run2 & {e["hash"] for e in before.values()}

    # every id once in the ledger and the file; the pre-kill records are untouched, byte for byte
    done = done_entries(out)
    assert sorted(e["id"] for e in done) == list(range(6))
    after = {e["id"]: e for e in done}
    for cid, e in before.items():
        assert (after[cid]["offset"], after[cid]["crc32"]) == (e["offset"], e["crc32"])
    frames = load_labels(out)
    assert [f.info["config_id"] for f in frames] == list(range(6))
    assert os.path.getsize(out) == max(e["offset"] + e["length"] for e in done)
    rng = np.random.default_rng(3)
    first = AtomicSystem([8, 1, 1], np.array(WATER) + rng.normal(scale=0.05, size=(3, 3)))
    assert frames[0].info["config_hash"] == configuration_hash(first)


def test_local_cluster_and_synchronous_give_identical_labels(tmp_path):
    """HF/STO-3G with dipoles and Mulliken charges, 2 Dask workers vs one process."""
    from hybrid.qm import PySCFPotential
    systems = waters(4)
    qm = PySCFPotential("HF", "sto-3g")
    a = label(systems, qm, tmp_path / "sync.extxyz", scheduler="synchronous",
              properties=("dipole", "charges"), progress=False)
    b = label(systems, qm, tmp_path / "dask.extxyz", n_workers=2,
              properties=("dipole", "charges"), progress=False)
    assert a.done == b.done == list(range(4)) and not a.failed and not b.failed
    workers = {e["worker"] for e in done_entries(tmp_path / "dask.extxyz")}
    assert len(workers) == 2                                  # both workers labelled
    fa, fb = load_labels(tmp_path / "sync.extxyz"), load_labels(tmp_path / "dask.extxyz")
    for x, y in zip(fa, fb):
        assert x.info["config_id"] == y.info["config_id"]
        assert x.energy == pytest.approx(y.energy, abs=1e-9)
        assert np.abs(x.forces - y.forces).max() < 1e-9
        assert np.abs(x.dipole - y.dipole).max() < 1e-9
        assert np.abs(x.charges - y.charges).max() < 1e-9
    # and they are the layer's own numbers: energy, forces, dipole, Mulliken charges
    direct = PySCFPotential("HF", "sto-3g")
    r = direct.compute(systems[2])
    assert fa[2].energy == pytest.approx(r.energy, abs=1e-7)
    assert np.abs(fa[2].forces - r.forces).max() < 1e-6
    from hybrid import units
    mu = direct._mf.dip_moment(unit="AU", verbose=0) * units.BOHR
    assert np.abs(fa[2].dipole - mu).max() < 1e-6 and abs(np.linalg.norm(mu)) > 0.2
    assert fa[2].charges.sum() == pytest.approx(0.0, abs=1e-6) and fa[2].charges[0] < -0.2
    assert fa[2].info["charge_model"] == "mulliken"


def test_torn_tail_after_kill_is_cut_and_recomputed(tmp_path):
    """A record written without its ledger line, and a half-written ledger line, are not counted."""
    out = tmp_path / "x.extxyz"
    systems = waters(4, seed=1)
    xtb = functools.partial(XTBPotential, "GFN2-xTB")
    label(systems[:2], xtb, out, scheduler="synchronous", progress=False)
    good_size = os.path.getsize(out)
    # simulate a kill between writing record 2 and its ledger line, then one inside a ledger write
    with open(out, "a") as fh:
        fh.write("3\nProperties=species:S:1:pos:R:3 config_id=2 energy=-1\nO 0 0 0\nH 0 0")
    with open(str(out) + ".ledger.jsonl", "a") as fh:
        fh.write('{"event": "done", "id": 2, "hash": "ab')
    s = label(systems, xtb, out, scheduler="synchronous", progress=False)
    assert s.resumed == [0, 1] and sorted(s.computed) == [2, 3] and s.repaired_bytes > 0
    frames = load_labels(out)
    assert [f.info["config_id"] for f in frames] == [0, 1, 2, 3]
    direct = XTBPotential().compute(systems[2])
    assert frames[2].energy == pytest.approx(direct.energy, abs=1e-6)
    entries = done_entries(out)
    assert entries[2]["offset"] == good_size                       # the torn record was cut away


class Flaky(Potential):
    """GFN2-xTB that fails the first time it sees each configuration (a marker file per hash)."""

    name = "flaky-xtb"

    def __init__(self, marker_dir):
        self.marker_dir = str(marker_dir)

    def _compute(self, system):
        marker = os.path.join(self.marker_dir, configuration_hash(system))
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("transient failure")
        return XTBPotential()._compute(system)


def test_failures_are_recorded_and_retried_once(tmp_path, capsys):
    out = tmp_path / "f.extxyz"
    systems = waters(3, seed=2)
    systems.append(AtomicSystem([8, 1], WATER[:2]))          # 9 electrons, singlet: fails every time
    s = label(systems, Flaky(tmp_path), out, scheduler="synchronous", progress=True)
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()[-1]
    assert "3/4" in bar and "done=3, failed=1, remaining=0" in bar       # the progress bar's last state
    assert s.done == [0, 1, 2] and list(s.failed) == [3]
    assert "multiplicity" in s.failed[3] and s.attempts == {0: 2, 1: 2, 2: 2, 3: 2}
    fails = [e for e in ledger(out) if e["event"] == "failed"]
    assert sorted((e["id"], e["attempt"]) for e in fails) == [(0, 1), (1, 1), (2, 1), (3, 1), (3, 2)]
    assert all("RuntimeError: transient failure" in e["error"] for e in fails if e["id"] != 3)
    status = label_status(out)
    assert status["done"] == [0, 1, 2] and len(status["failed"][3]) == 2
    # a restart does not retry an exhausted configuration, unless asked to
    s2 = label(systems, Flaky(tmp_path), out, scheduler="synchronous", progress=False)
    assert s2.computed == [] and list(s2.failed) == [3]
    s3 = label(systems, Flaky(tmp_path), out, scheduler="synchronous", progress=False, retry_failed=True)
    assert s3.computed == [] and s3.attempts[3] == 4
    assert len([e for e in ledger(out) if e["event"] == "failed"]) == 7


def test_ase_database_output_and_resume(tmp_path):
    out = tmp_path / "labels.db"
    systems = waters(3, seed=4)
    xtb = functools.partial(XTBPotential, "GFN2-xTB")
    ids = ["a", "b", "c"]
    s = label(systems[:2], xtb, out, ids=ids[:2], scheduler="synchronous", properties=("charges",),
              progress=False)
    assert s.computed == ["a", "b"]
    s2 = label(systems, xtb, out, ids=ids, scheduler="synchronous", properties=("charges",), progress=False)
    assert s2.resumed == ["a", "b"] and s2.computed == ["c"]
    frames = load_labels(out)
    assert [f.info["config_id"] for f in frames] == ids
    ref = XTBPotential()
    r = ref.compute(systems[2])
    assert frames[2].energy == pytest.approx(r.energy, abs=1e-8)
    assert np.allclose(frames[2].forces, r.forces) and np.allclose(frames[2].charges, ref.calc.results["charges"])
    # one potential kept per worker (warm start) gives the same labels here
    label(systems, xtb, tmp_path / "warm.extxyz", scheduler="synchronous", warm_start=True, progress=False)
    warm = load_labels(tmp_path / "warm.extxyz")
    assert [abs(w.energy - f.energy) < 1e-7 for w, f in zip(warm, frames)] == [True] * 3


def test_jobqueue_cluster_writes_a_batch_script():
    pytest.importorskip("dask_jobqueue")
    cluster = jobqueue_cluster("slurm", cores=1, memory="1GB", walltime="00:10:00", account="chem",
                               scheduler_options={"dashboard_address": None})
    try:
        script = cluster.job_script()
        assert "#SBATCH -A chem" in script and "#SBATCH -t 00:10:00" in script
        assert hasattr(cluster, "scheduler_address")        # what label(scheduler=cluster) connects to
    finally:
        cluster.close()


def test_bad_inputs_are_named(tmp_path):
    import threading

    from hybrid.ml.adapters import ASECalculatorPotential
    from ase.calculators.emt import EMT
    systems = waters(2, seed=5)
    locked = ASECalculatorPotential(EMT())
    locked.lock = threading.Lock()                    # a handle no pickler can carry
    with pytest.raises(InputError, match="cannot be pickled.*factory"):
        label(systems, locked, tmp_path / "u.extxyz", scheduler="synchronous")
    used = XTBPotential()                             # a used xTB pickles its settings, not its handle
    used.compute(systems[0])
    assert len(label(systems, used, tmp_path / "x.extxyz", scheduler="synchronous", progress=False).done) == 2
    xtb = functools.partial(XTBPotential, "GFN2-xTB")
    out = tmp_path / "g.extxyz"
    label(systems, xtb, out, scheduler="synchronous", progress=False)
    moved = [systems[0], systems[1].with_positions(systems[1].positions + 0.1)]
    with pytest.raises(InputError, match="configuration id 1 .input index 1. is not the geometry"):
        label(moved, xtb, out, scheduler="synchronous", progress=False)
    with pytest.raises(InputError, match="holds labels at 'GFN2-xTB', not 'GFN1-xTB'"):
        label(systems, functools.partial(XTBPotential, "GFN1-xTB"), out, scheduler="synchronous")
    with pytest.raises(InputError, match=r"ids\[1\] = 7 is used twice"):
        label(systems, xtb, tmp_path / "d.extxyz", ids=[7, 7])
    with pytest.raises(InputError, match="configuration 1: expected an AtomicSystem"):
        label([systems[0], "water"], xtb, tmp_path / "d.extxyz")
    from hybrid.ml.model import AtomicMLP
    from hybrid.ml.potential import MLPotential
    with pytest.raises(InputError, match="predicts no dipole"):
        label(systems, MLPotential(AtomicMLP((1, 8))), tmp_path / "m.extxyz", properties=("dipole",))
    with pytest.raises(InputError, match="property 'spin' is not one of"):
        label(systems, xtb, tmp_path / "m.extxyz", properties=("spin",))
    (tmp_path / "plain.extxyz").write_text("junk\n")
    with pytest.raises(InputError, match="plain.extxyz exists but .* does not"):
        label(systems, xtb, tmp_path / "plain.extxyz", scheduler="synchronous")
    with pytest.raises(InputError, match="kind 'torque' is not one of"):
        jobqueue_cluster("torque")


def test_periodic_stress_is_labelled_as_ase_reports_it(tmp_path):
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from hybrid.ml.adapters import ASECalculatorPotential
    atoms = bulk("Cu", "fcc", a=3.55, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    s = label([AtomicSystem.from_ase(atoms)], ASECalculatorPotential(EMT(), name="EMT"), tmp_path / "cu.extxyz",
              scheduler="synchronous", properties=("stress",), progress=False)
    assert s.done == [0]
    (frame,) = load_labels(tmp_path / "cu.extxyz")
    atoms.calc = EMT()
    assert np.allclose(frame.info["stress"], atoms.get_stress(), atol=1e-7)      # eV/Å³, Voigt, ASE sign
    assert np.abs(frame.info["stress"]).max() > 1e-3
    with pytest.raises(InputError, match="no stress for a non-periodic system"):
        from hybrid.labelling import extra_properties
        w = waters(1)[0]
        extra_properties(XTBPotential(), w, XTBPotential().compute(w), ("stress",))
