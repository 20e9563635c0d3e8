"""Fewest-switches surface hopping on Tully's three models against an independent FSSH implementation.

For every model and momentum of ``benchmarks/references/make_tully_fssh_references.py``'s grid, 2000
trajectories (two tasks of 1000 on the Dask cluster of hybrid.tasks, stored as they finish in
benchmarks/output/tully_fssh/ so that a rerun computes only what is missing) of
:func:`hybrid.tully.scatter`: lower adiabatic state at x = −10 bohr, Tully's hopping, velocities kept on
frustrated hops, no decoherence. Each channel probability P is compared with the reference's (mudslide,
2000 trajectories) by z = |P − P_ref| / √(σ² + σ_ref²), σ² = P(1 − P)/n: agreement within statistical error
is z < 3 for every channel (a 3σ test over ~100 channel values expects about one z > 2.6 by chance).
A trajectory still inside ±10 bohr after 400000 steps is counted as unfinished and left out of the
probabilities (the table says how many; more than 1 % of a momentum's trajectories stops the report).

Writes benchmarks/results/tully_fssh.md (one table per model, the largest z, the largest energy error
per trajectory relative to its initial kinetic energy) and tully_fssh.png.

    python benchmarks/bench_tully_fssh.py [--n 2000] [--workers 2] [--models sac dac ecr]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REF = ROOT / "benchmarks" / "references" / "tully_fssh_mudslide.json"
DT_AU = {"sac": 0.25, "dac": 0.2, "ecr": 0.1}     # Verlet steps (a.u.): |ΔE|/E_kin ≲ 1e-6 (measured at 1 a.u.:
#                                                   5.6e-6, 1.5e-5, 6.1e-5 at k = 15, 20, 10; error ∝ dt²)
K_FULL_DT = {"sac": 0.0, "dac": 20.0, "ecr": 10.0}  # below these momenta dt shrinks ∝ k: the slow trajectories'
#   Verlet error relative to their small E_kin(0) reached 1.2e-6 and 1.5e-6 (dac k = 8.6, 14.1) and 3.4e-6 and
#   1.5e-6 (ecr k = 4, 6) at the fixed steps above


def time_step(model: str, k: float) -> float:
    """The Verlet step (a.u.) of ``model`` at momentum ``k`` (a.u.): DT_AU, scaled by k / K_FULL_DT below it."""
    return DT_AU[model] * min(1.0, k / K_FULL_DT[model]) if K_FULL_DT[model] else DT_AU[model]
SUBSTEPS = 1     # electronic steps per nuclear step: at these dt the closed-form propagator needs no more
#                  (SAC k = 30, 2000 trajectories, one seed: 1458 upper-state transmissions with 20 substeps, 1456
#                  with 1; 40 s against 120 s)
PART = 1000


def main(argv=None):
    from hybrid.tasks import Task, run_tasks
    from hybrid.tully import CHANNELS, scatter
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="trajectories per momentum (a multiple of 1000)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=["sac", "dac", "ecr"])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "output" / "tully_fssh"))
    args = ap.parse_args(argv)
    ref = json.loads(REF.read_text())
    tasks = {}
    for m in args.models:
        for i, k in enumerate(ref[m]):
            for p in range(args.n // PART):
                seed = 10000 * (args.models.index(m) + 1) + 100 * i + p
                kw = dict(model=m, k_au=float(k), n_traj=PART, seed=seed, dt_au=time_step(m, float(k)),
                          n_substeps=SUBSTEPS)
                tasks[f"{m}_k{k}_{p}"] = Task(scatter, kwargs=kw, inputs=kw)
    t0 = time.perf_counter()
    res = run_tasks(tasks, args.out, n_workers=args.workers, progress=True)
    if res.failed:
        raise SystemExit(f"tasks failed: {res.failed}")
    wall = time.perf_counter() - t0
    lines = ["# FSSH on Tully's models: qmml-hybrid against mudslide " + ref.get("version", ""), "",
             f"{args.n} trajectories per momentum here, {ref['samples']} in the reference; z = |ΔP|/σ of the "
             f"difference. Trajectories end outside ±10 bohr here; the reference's box (bohr): "
             + ", ".join(f"{m} ±{b:g}" for m, b in ref.get("bound_bohr", {}).items())
             + (f". Wall time {wall / 60:.1f} min on {args.workers} workers ({len(res.computed)} of {len(tasks)} "
                "tasks computed in this run)." if res.computed else
                f". All {len(tasks)} tasks read from {args.out} (computed by an earlier run)."), ""]
    fig, axes = _figure(len(args.models))
    worst = {}
    for ax, m in zip(axes, args.models):
        lines += [f"## {m}", "", "| k (a.u.) | " + " | ".join(f"{c} (here / ref)" for c in CHANNELS)
                  + " | max z | max abs ΔE/E_kin | hops | frustrated | unfinished |",
                  "|---" * (len(CHANNELS) + 6) + "|"]
        ks = list(ref[m])
        rows = []
        for k in ks:
            parts = [res[f"{m}_k{k}_{p}"] for p in range(args.n // PART)]
            unfinished = sum(q["unfinished"] for q in parts)
            if unfinished > 0.01 * args.n:
                raise SystemExit(f"{m} k={k}: {unfinished} trajectories did not leave the interaction region")
            n = sum(q["n"] for q in parts) - unfinished         # probabilities over the finished ones
            P = {c: sum(q[c] for q in parts) / n for c in CHANNELS}
            z = {c: abs(P[c] - ref[m][k][c]) / max(np.sqrt(P[c] * (1 - P[c]) / n + ref[m][k][c]
                                                             * (1 - ref[m][k][c]) / ref["samples"]), 1e-12)
                 for c in CHANNELS}
            err = max(q["max_rel_energy_error"] for q in parts)
            rows.append((float(k), P))
            worst[m] = max(worst.get(m, 0.0), max(z.values()))
            lines.append(f"| {k} | " + " | ".join(f"{P[c]:.3f} / {ref[m][k][c]:.3f}" for c in CHANNELS)
                         + f" | {max(z.values()):.2f} | {err:.1e} | {np.mean([q['hops'] for q in parts]):.2f} | "
                         f"{np.mean([q['frustrated'] for q in parts]):.2f} | {unfinished} |")
            for j, c in enumerate(CHANNELS):
                s = np.sqrt(P[c] * (1 - P[c]) / n)
                ax.errorbar(float(k), P[c], yerr=s, fmt="o", color=f"C{j}", ms=3,
                            label=c if k == ks[0] else None)
                ax.plot(float(k), ref[m][k][c], "x", color=f"C{j}", ms=6)
        ax.set_title(f"{m} (o: here, x: mudslide)", fontsize=9)
        ax.set_xlabel("k (a.u.)")
        if m == "dac":
            ax.set_xscale("log")
        lines.append("")
    axes[0].set_ylabel("probability")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    out = ROOT / "benchmarks" / "results"
    fig.savefig(out / "tully_fssh.png", dpi=120)
    lines.append("Largest z per model: " + ", ".join(f"{m} {z:.2f}" for m, z in worst.items()))
    (out / "tully_fssh.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _figure(n):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.5), squeeze=False)
    return fig, list(axes[0])


if __name__ == "__main__":
    main()
