"""J against the exact G of a cracked strip, for the Si MLIP: does the atomistic J-integral hold at finite strain?

A strip periodic along y (height Y) with a crack from its left end to mid-length, stretched along y by ε
(continuum.crack_strip): G = Y W(ε) exactly, with W(ε) the MLIP's own energy density of uniaxial strain
(internal coordinates relaxed), whatever its nonlinearity. J on three domains about the relaxed tip, in the
two forms of continuum.crack_ramp.atomistic_j:

* linear: per-atom Cauchy virials and W = ½ σ:ε;
* finite strain: per-atom first Piola–Kirchhoff virials (MLPotential.atom_virials about the reference) and
  the stored energy per atom against the faces-closed / faces-apart (relaxed) reference.

Also G_lin = ½ M ε² Y with M = C'_yy from the model's C_ij: how far the crystal is from linear at this
strain. One strip length per row; the longer one checks that the tip is in the steady state.

    python benchmarks/bench_crack_strip_j.py [--models A.pt ...] [--strain 0.075] [--lengths 29 44]

Writes benchmarks/results/crack_strip_j.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples" / "crack"))


def main(argv=None):
    import run as crack_example

    from hybrid.ml.potential import MLPotential
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=[str(ROOT / "models" / "si_gfn1xtb.pt")])
    ap.add_argument("--strain", type=float, default=0.075)
    ap.add_argument("--lengths", type=int, nargs="+", default=[29, 44], help="strip lengths in 6.9 Å cells")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "crack_strip_j.md"))
    args = ap.parse_args(argv)
    rows = []
    for path in args.models:
        mlip = MLPotential.load(path)
        props = mlip.metadata["properties"]["mlip"]
        for length in args.lengths:
            row = crack_example.strip_check(mlip, props, [length, 8, 1], args.strain)
            row["model"] = Path(path).name
            rows.append(row)
            print(row, flush=True)
    dom = ", ".join(f"{a:.1f}–{b:.1f}" for a, b in rows[0]["domains_A"])
    lines = ["# J against the exact G = Y W(ε) of a cracked strip", "",
             f"Strip periodic along y (8 cells, Y = {rows[0]['height_A']:.1f} Å) and the front (1 cell), crack from "
             f"the left end; ε = {args.strain}. J/G on the domains {dom} Å about the bond that breaks next. "
             "G_lin = ½ M ε² Y from the model's C_ij; 2γ from its relaxed γ(111).", "",
             "| model | atoms | length (cells) | G (J/m²) | G_lin/G | G/2γ | tip moved (Å), broken | "
             "J/G finite strain | J/G linear form | FIRE steps | wall (s) |", "|---" * 11 + "|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['atoms']} | {r['size'][0]} | {r['G_J_m2']:.3f} | {r['G_lin_over_G']:.3f} | "
                     f"{r['G_over_2gamma']:.3f} | {r['tip_moved_A']:+.2f}, {r['n_broken']} | "
                     + ", ".join(f"{v:.3f}" for v in r["J_over_G"]) + " | "
                     + ", ".join(f"{v:.3f}" for v in r["J_linear_form_over_G"])
                     + f" | {r['fire_steps']}{'' if r['relaxed'] else ' (not converged)'} | {r['wall_s']:.0f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
