"""Does the crack example's QM-region correction cancel? The energies the blend subtracts along a tip-bond stretch.

The hybrid of examples/crack is E = E_MLIP(all) + E_xTB(region) − E_MLIP(region), the region a capped QM
cylinder along the front (or a ball). Its cost of opening the tip is right only if E_MLIP(region) follows the
MLIP's own energy of the region's atoms in the crack, so that the correction carries GFN1-xTB's physics and
not the MLIP's error on capped clusters. Here: the MLIP-relaxed crack at K_G on the R = 20 Å, 2-cell-front
disc of the crack example; both crack-plane bonds of the row that breaks next are stretched by d along y
(their atoms moved apart rigidly, nothing relaxed); for each QM radius r and each model file the table gives

    ΔE_xTB(region), ΔE_MLIP(region), ΔE_MLIP(all), ΔE_hybrid = ΔE_MLIP(all) + ΔE_xTB(region) − ΔE_MLIP(region)

relative to d = 0 (eV). A converged region has ΔE_hybrid settle as r grows, and a correction that cancels has
ΔE_MLIP(region) follow ΔE_xTB(region) where the MLIP is right (large r, small d).

    python benchmarks/bench_crack_region_stretch.py [--models A.pt B.pt] [--radii 3 4 5 6] [--shape cylinder]

Writes benchmarks/results/crack_region_stretch.md.
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


def stretch_table(model_path, radii, stretches, shape="cylinder"):
    """Rows (r, n QM Si, n link H, d, ΔE_xTB(region), ΔE_MLIP(region), ΔE_MLIP(all), ΔE_hybrid) in eV."""
    import run as crack_example

    from continuum.crack_ramp import relax
    from couplers.ase_calculator import HybridCalculator
    from couplers.blend import BlendedCorrection
    from couplers.partition import FixedPartitioner
    from hybrid.ml.potential import MLPotential
    from hybrid.system import AtomicSystem
    mlip = MLPotential.load(model_path)
    props = mlip.metadata["properties"]["mlip"]
    crack, disc = crack_example.setup(props, 20.0, 2)
    k_g = crack.griffith_k(props["gamma111_J_m2"] * crack_example.J_M2)
    pos, _, _, ok = relax(disc, disc.loaded(k_g), HybridCalculator(mlip), fmax=0.01)
    if not ok:
        raise RuntimeError(f"{model_path}: the crack at K_G did not relax")
    broken, mid = disc.bond_states(pos)
    x_next = disc.tip_bond(pos)[0]
    row = np.flatnonzero(~broken & (np.abs(mid[:, 0] - x_next) < 1.0))
    system = AtomicSystem.from_ase(disc.reference).with_positions(pos)
    xtb = crack_example.qm_level()
    select = crack_example.qm_cylinder if shape == "cylinder" else crack_example.qm_ball
    rows = []
    for r in radii:
        atoms, _ = select(disc, pos, r)
        corr = BlendedCorrection(xtb, mlip, FixedPartitioner(atoms), periodic_regions=shape == "cylinder",
                                 open_shell="lowest")
        e0 = None
        for d in stretches:
            p = pos.copy()
            p[disc.bonds[row, 0], 1] -= d / 2
            p[disc.bonds[row, 1], 1] += d / 2
            s = system.with_positions(p)
            region = corr.region_system(s, atoms)
            e = np.array([xtb.compute(region).energy, mlip.compute(region).energy, mlip.compute(s).energy])
            e0 = e if e0 is None else e0
            de = e - e0
            rows.append((r, len(atoms), len(region) - len(atoms), d, *de, de[2] + de[0] - de[1]))
    return rows, len(row)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=[str(ROOT / "models" / "si_gfn1xtb.pt")])
    ap.add_argument("--radii", type=float, nargs="+", default=[3.0, 4.0, 5.0, 6.0])
    ap.add_argument("--stretches", type=float, nargs="+", default=[0.0, 0.6, 1.2])
    ap.add_argument("--shape", choices=("cylinder", "ball"), default="cylinder")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "crack_region_stretch.md"))
    args = ap.parse_args(argv)
    lines = ["# The crack example's region correction along a tip-bond stretch", "",
             f"QM {args.shape} about the row that breaks next in the MLIP-relaxed crack at K_G (R = 20 Å, 2-cell "
             "front); that row's bonds stretched by d along y, nothing relaxed. Energies relative to d = 0, eV.", ""]
    for path in args.models:
        t0 = time.perf_counter()
        rows, n_bonds = stretch_table(path, args.radii, args.stretches, args.shape)
        lines += [f"## {Path(path).name} ({n_bonds} bonds stretched; {time.perf_counter() - t0:.0f} s)", "",
                  "| r (Å) | QM Si + H | d (Å) | ΔE xTB (region) | ΔE MLIP (region) | ΔE MLIP (all) | ΔE hybrid |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r:g} | {n} + {h} | {d:g} | {ex:+.2f} | {em:+.2f} | {ea:+.2f} | {eh:+.2f} |"
                  for r, n, h, d, ex, em, ea, eh in rows if d > 0]
        lines.append("")
        print("\n".join(lines[-len(rows) - 3:]), flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
