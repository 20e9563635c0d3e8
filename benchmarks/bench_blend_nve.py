"""NVE energy conservation of blended QM/MLIP water clusters, scheme by scheme.

30 waters; high level GFN2-xTB (tblite); low level the built-in MLIP trained
here on GFN2-xTB labels of the same cluster (models/water_gfn2xtb.pt, made by
models/make_water_gfn2xtb.py when missing). The high-level region follows the
central water's oxygen: inner radius 2.0 Å, buffer 1.2 Å (centre-of-mass
distances), so first-shell waters move in and out of the buffer.

Every run starts from the same positions and velocities (300 K) and
integrates velocity Verlet (ASE) with the same timestep. One table:
drift of the total energy per ps (slope of a linear fit), RMS fluctuation
about that fit, high-level region calls per step, buffer entries+exits,
and wall time per step, for

  product C² (quintic) | sorted C² | product cubic (C¹) | abrupt (no buffer)
  | force mixing (not conservative) | pure MLIP

    python benchmarks/bench_blend_nve.py [--steps 2000] [--dt 0.5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "models"))


def run(atoms0, calc, steps, dt_fs, label, blend=None):
    from ase import units
    from ase.md.verlet import VelocityVerlet
    atoms = atoms0.copy()
    atoms.set_velocities(atoms0.get_velocities())
    atoms.calc = calc
    md = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    etot, calls, members = [], [], []
    t0 = time.perf_counter()
    for _ in range(steps):
        md.run(1)
        etot.append(atoms.get_total_energy())
        if blend is not None:
            info = calc.result.info[blend]
            calls.append(info.get("n_high_calls", 0))
            members.append(frozenset(info["buffer_atoms"] if info["buffer_atoms"] or "abrupt" not in label
                                     else info["inner_atoms"]))
    wall = (time.perf_counter() - t0) / steps
    t = np.arange(steps) * dt_fs / 1000.0            # ps
    e = np.array(etot)
    slope, icpt = np.polyfit(t, e, 1)
    rms = np.sqrt(np.mean((e - (slope * t + icpt)) ** 2))
    crossings = sum(len(a ^ b) // 3 for a, b in zip(members, members[1:]))   # buffer (or region) entries + exits
    return {"label": label, "drift": slope * 1e3, "rms": rms * 1e3, "calls": np.mean(calls) if calls else 0,
            "crossings": crossings, "wall": wall, "finite": bool(np.all(np.isfinite(e)))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--dt", type=float, default=0.5, help="timestep, fs")
    ap.add_argument("--only", default=None, help="comma-separated subset of schemes (for quick checks)")
    args = ap.parse_args()

    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    from couplers.ase_calculator import HybridCalculator
    from couplers.blend import blended
    from couplers.partition import DistancePartitioner
    from hybrid.ml.adapters import XTBPotential
    from hybrid.ml.potential import MLPotential
    import make_water_gfn2xtb as maker

    model_path = ROOT / "models" / "water_gfn2xtb.pt"
    if not model_path.exists():
        maker.main()
    mlip = MLPotential.load(model_path)
    start = maker.start_structure()
    atoms0 = start.to_ase()
    MaxwellBoltzmannDistribution(atoms0, temperature_K=300, rng=np.random.default_rng(7))
    Stationary(atoms0)
    ZeroRotation(atoms0)
    xtb = XTBPotential("GFN2-xTB", accuracy=0.01)
    molecules = [np.arange(3 * k, 3 * k + 3) for k in range(len(start) // 3)]

    def part(width=1.2, switch="quintic", r_inner=2.0):
        return DistancePartitioner(("atom", 0), r_inner, width, switch=switch, molecules=molecules)

    schemes = {
        "product C2": dict(partitioner=part(), scheme="product"),
        "sorted C2": dict(partitioner=part(), scheme="sorted"),
        "product cubic": dict(partitioner=part(switch="cubic"), scheme="product"),
        # abrupt: no buffer, the boundary in the middle of the others' buffer (2.6 Å), where waters cross
        "abrupt": dict(partitioner=part(width=0.0, r_inner=2.6), scheme="product"),
        "force mixing": dict(partitioner=part(), scheme="force_mixing"),
    }
    keep = None if args.only is None else set(args.only.split(","))
    rows = []
    if keep is None or "pure MLIP" in keep:
        rows.append(run(atoms0, HybridCalculator(mlip), args.steps, args.dt, "pure MLIP"))
        print(rows[-1], flush=True)
    for label, kw in schemes.items():
        if keep is not None and label not in keep:
            continue
        pot = blended(mlip, xtb, kw["partitioner"], scheme=kw["scheme"], max_buffer=8)
        rows.append(run(atoms0, HybridCalculator(pot), args.steps, args.dt, label, blend=pot.labels[1]))
        print(rows[-1], flush=True)

    print(f"\n{len(start) // 3} waters, GFN2-xTB in a 2.0 Å + 1.2 Å buffer region around water 0, MLIP "
          f"({mlip.metadata.get('level_of_theory')}) elsewhere; NVE {args.steps} × {args.dt} fs, 300 K start\n")
    print(f"{'scheme':>15} {'drift meV/ps':>13} {'RMS meV':>8} {'xTB calls/step':>15} {'buffer in/out':>14} "
          f"{'s/step':>7} {'drift/MLIP':>11}")
    ref = next((r["drift"] for r in rows if r["label"] == "pure MLIP"), None)
    for r in rows:
        ratio = f"{abs(r['drift']) / max(abs(ref), 1e-12):11.2f}" if ref is not None else f"{'-':>11}"
        print(f"{r['label']:>15} {r['drift']:13.3f} {r['rms']:8.3f} {r['calls']:15.2f} {r['crossings']:14d} "
              f"{r['wall']:7.3f} {ratio}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
