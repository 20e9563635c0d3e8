"""J/G of the crack example's MLIP crack at every trapped load below K₊, for one or more model files.

examples/crack/run.py reports J on three domains at one load (the highest below K₊). This script asks
whether J/G depends on the load: for each model, the MLIP ramp of the crack example's one-cell disc of
radius R (steps of 0.05 K_G from K_G, as run.py), then J on the same three domains (continuum.crack_ramp.
atomistic_j, the model's per-atom virials) at every load of the upward ramp below K₊, against G of the
applied K, in both forms of atomistic_j: finite strain (first Piola–Kirchhoff virials, stored energy) and
linear (Cauchy virials, ½ σ:ε). J/G(K) = 1 within a few per cent is what a linear-elastic, K-dominated field
gives (Stillinger–Weber in tests/continuum/test_crack_ramp.py: within 5 %); a crystal that softens at the
several per cent strains of a 30 Å disc releases less than G(K) of its boundary field, and the
finite-strain J, exact on the strip of bench_crack_strip_j.py, measures how much.

    python benchmarks/bench_crack_j_vs_load.py [--models A.pt B.pt] [--radius 30]

Writes benchmarks/results/crack_j_vs_load.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples" / "crack"))


def j_by_load(model_path, radius):
    """Rows (K/K_G, tip − field centre Å, J/G on three domains finite-strain form, linear form) and
    (K₊ bracket / K_G)."""
    import run as crack_example

    from continuum.crack_ramp import face_reference_energies, lattice_trapping
    from couplers.ase_calculator import HybridCalculator
    from hybrid.ml.potential import MLPotential
    mlip = MLPotential.load(model_path)
    props = mlip.metadata["properties"]["mlip"]
    crack, disc = crack_example.setup(props, radius, 1)
    k_g = crack.griffith_k(props["gamma111_J_m2"] * crack_example.J_M2)
    tr = lattice_trapping(disc, HybridCalculator(mlip), k_g, 0.05 * k_g, fmax=0.01)
    ref = disc.reference.positions
    r_free = float(np.linalg.norm(ref[:, :2] - disc.tip, axis=1)[~disc.fixed].max())
    edges = np.linspace(4.0, r_free - 1.0, 4)                     # the domains of run.j_check
    faces = face_reference_energies(disc, HybridCalculator(mlip))
    rows = []
    for p in sorted([tr.start] + tr.up, key=lambda q: q.K):
        if p.K >= tr.k_plus[1] - 1e-12:
            continue
        tip = np.array([disc.tip_bond(p.positions)[0], disc.y_plane])
        J, J_lin = crack_example.j_both_forms(disc, mlip, p.positions, props["a0_angstrom"], edges, tip, faces)
        G = float(crack.energy_release_rate(p.K))
        rows.append((p.K / k_g, p.tip - disc.tip[0], J / G, J_lin / G))
    return rows, [k / k_g for k in tr.k_plus], edges


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=[str(ROOT / "models" / "si_gfn1xtb.pt")])
    ap.add_argument("--radius", type=float, default=30.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "crack_j_vs_load.md"))
    args = ap.parse_args(argv)
    lines = ["# J/G of the MLIP crack against the load", "",
             f"One-cell disc, R = {args.radius:g} Å; J on three domains about the bond that breaks next, G of the "
             "applied K.", ""]
    for path in args.models:
        t0 = time.perf_counter()
        rows, k_plus, edges = j_by_load(path, args.radius)
        dom = ", ".join(f"{a:.1f}–{b:.1f}" for a, b in zip(edges[:-1], edges[1:]))
        lines += [f"## {Path(path).name} (K₊ {k_plus[0]:.3f}–{k_plus[1]:.3f} K_G; "
                  f"{time.perf_counter() - t0:.0f} s)", "",
                  f"| K/K_G | tip − centre (Å) | J/G on {dom} Å, finite strain | linear form |", "|---|---|---|---|"]
        lines += [f"| {k:.3f} | {t:+.2f} | " + ", ".join(f"{v:.3f}" for v in j) + " | "
                  + ", ".join(f"{v:.3f}" for v in jl) + " |" for k, t, j, jl in rows]
        lines.append("")
        print("\n".join(lines[-len(rows) - 4:]), flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
