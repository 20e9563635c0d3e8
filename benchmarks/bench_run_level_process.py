"""`hybrid run` with the QM level in-process and in its own process (``process = true``), side by side.

Structure: one QM water at the centre of 512 waters (the 8×8×8 lattice of
``bench_openmm_step.water_cluster``, centre water first), a static QM region
(that water alone, width 0: no molecule crosses a buffer), the shipped
HF/6-31G* water MLIP (``models/water_hf631gs.pt``) everywhere, NVE 0.5 fs,
one thread per engine. QM levels: HF/6-31G* (the MLIP's own level) and
B3LYP/def2-SVP (the project's default; the MLIP's zero of energy differs,
which a static region without a buffer never feels: a timing run only).

With ``process = true`` the QM level runs in a child process and the
multilayer's terms side by side in threads, so the MLIP over all atoms
runs while the SCF runs. Rows give, from ``timings.csv``, the median wall
time per step after the first 5 (steady state), the first 5 steps (which
carry the child's start-up: a fresh interpreter importing PySCF), and the
whole run.

Run: python benchmarks/bench_run_level_process.py   (about 2 minutes on 2 cores)
"""
from __future__ import annotations

import argparse
import csv
import io
import tempfile
from pathlib import Path

import numpy as np

from bench_openmm_step import water_cluster

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
[structure]
file = "w512.xyz"

[[levels]]
name = "mlip"
kind = "mlip"
file = "{mlip}"

[[levels]]
name = "qm"
kind = "pyscf"
method = "{method}"
basis = "{basis}"
process = {process}
accept_energy_offset = {accept}   # B3LYP under the HF MLIP: a timing run, no molecule crosses a buffer
[levels.region]
center = {{molecule = 0}}
r_inner = 0.5
width = 0.0

[md]
timestep_fs = 0.5
steps = {steps}

[output]
progress = false
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--n-side", type=int, default=8)
    args = ap.parse_args(argv)

    import ase.io
    from ase import Atoms

    from hybrid.config import load_config
    from hybrid.md.runner import Runner

    numbers, pos, qm = water_cluster(args.n_side)
    order = np.r_[qm, np.setdiff1d(np.arange(len(numbers)), qm)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ase.io.write(Path(tmp) / "w512.xyz", Atoms(numbers=numbers[order], positions=pos[order]), format="extxyz")
        for method, basis in (("HF", "6-31g*"), ("B3LYP", "def2-svp")):
            for process in ("false", "true"):
                d = Path(tmp) / f"{method}-{process}"
                d.mkdir()
                (d / "w512.xyz").write_bytes((Path(tmp) / "w512.xyz").read_bytes())
                (d / "config.toml").write_text(CONFIG.format(mlip=ROOT / "models" / "water_hf631gs.pt", method=method,
                                                             basis=basis, process=process, steps=args.steps,
                                                             accept="true" if method != "HF" else "false"))
                s = Runner(load_config(d / "config.toml"), stream=io.StringIO()).run()
                t = list(csv.DictReader(open(d / "output" / "timings.csv")))
                wall = np.array([float(r["wall_s"]) for r in t])
                rows.append(dict(level=f"{method}/{basis}", process=process == "true", steady=np.median(wall[5:]),
                                 qm=np.median([float(r["level_qm_s"]) for r in t[5:]]),
                                 mlip=np.median([float(r["level_mlip_s"]) for r in t[5:]]),
                                 first=wall[:5].sum(), total=s.wall_s))
    print(f"one QM water in {len(numbers) // 3} waters ({len(numbers)} atoms), HF/6-31G* MLIP, "
          f"{args.steps} steps of 0.5 fs, 1 thread per engine")
    print()
    print("| QM level | QM level in | s per step (steady) | QM call s | MLIP s | first 5 steps s | run s "
          "| steady speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for a, b in zip(rows[::2], rows[1::2]):
        for r in (a, b):
            print(f"| {r['level']} | {'own process' if r['process'] else 'the run'} | {r['steady']:.3f} "
                  f"| {r['qm']:.3f} | {r['mlip']:.3f} | {r['first']:.2f} | {r['total']:.1f} "
                  f"| {a['steady'] / r['steady']:.2f}x |")


if __name__ == "__main__":
    main()
