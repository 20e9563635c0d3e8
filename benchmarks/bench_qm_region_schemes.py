"""The main job's QM boundary with a buffer that first-shell waters cross: product vs expansion.

The main job's QM region (HF/6-31G* over the Δ-ML level) holds the central
water alone: no water comes within its 2.5 Å outer edge. Widened to
r_inner = 2.5 Å, width = 0.6 Å (centre-of-mass distances; the first shell
sits at 2.6-3.3 Å), 3-5 waters are in its buffer on the stored main-job
frames (benchmarks/references/main_job_frames.extxyz). This script evaluates
the main job's whole multilayer model with that QM region under three
schemes, side by side on the same frames:

* product  - 2ⁿ HF calls on regions of up to 1 + n waters (the reference);
* expansion, order 1 - 1 + n HF calls on the centre water and one member each;
* expansion, order 2 - adds the pairs: HF calls on up to 3 waters.

It prints, per scheme: HF region calls per frame, the wall time of one
evaluation of the whole model (after one evaluation of the same frame, so the
SCF starts from that frame's density: warmer than an MD step's extrapolated
guess, so a lower bound of a step's cost), and the truncation error against
product partitions: energy (meV) and RMS force error on the QM water's atoms
and on all atoms (eV/Å). One thread for PySCF, torch and BLAS.

    python benchmarks/bench_qm_region_schemes.py        (~4 min on this machine)
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRAMES = ROOT / "benchmarks" / "references" / "main_job_frames.extxyz"
SCHEMES = (("product", 1), ("expansion", 1), ("expansion", 2))


def main() -> None:
    import ase.io

    from hybrid import threads
    from hybrid.config import load_config
    from hybrid.md.levels import build_model
    from hybrid.md.structure import load_structure
    from hybrid.system import AtomicSystem
    threads.apply({"pyscf": 1, "torch": 1, "blas": 1})
    frames = [AtomicSystem.from_ase(a) for a in ase.io.read(FRAMES, ":")]
    base = load_config(ROOT / "examples" / "main" / "config.toml")
    st = base["structure"]
    structure = load_structure(st["file"], st["charge"], st["multiplicity"], st["molecules"])
    out = {}
    for scheme, order in SCHEMES:
        cfg = copy.deepcopy(base)
        region = cfg["levels"][2]["region"]
        region.update(r_inner=2.5, width=0.6, scheme=scheme, order=order, max_buffer=8)
        model = build_model(cfg, structure)
        rows = []
        for f in frames:
            model.potential.compute(f)
            t0 = time.perf_counter()
            r = model.potential.compute(f)
            info = r.info[model.labels[2]]
            rows.append((r.energy, r.forces, time.perf_counter() - t0, info["n_high_calls"],
                         len(info["buffer_atoms"]) // 3))
        out[(scheme, order)] = rows
    ref = out[("product", 1)]
    qm = np.arange(3)                                   # the central water (molecule 0)
    print("| scheme | waters in the QM buffer | HF region calls | s per evaluation | ΔE vs product (meV) "
          "| RMS ΔF QM water (eV/Å) | RMS ΔF all atoms (eV/Å) |")
    print("|---|---|---|---|---|---|---|")
    for (scheme, order), rows in out.items():
        de = [1e3 * (a[0] - b[0]) for a, b in zip(rows, ref)]
        fq = np.sqrt(np.mean([np.mean((a[1][qm] - b[1][qm]) ** 2) for a, b in zip(rows, ref)]))
        fa = np.sqrt(np.mean([np.mean((a[1] - b[1]) ** 2) for a, b in zip(rows, ref)]))
        name = scheme if scheme == "product" else f"{scheme}, order {order}"
        print(f"| {name} | {', '.join(str(x[4]) for x in rows)} | {', '.join(str(x[3]) for x in rows)} "
              f"| {np.median([x[2] for x in rows]):.2f} | {', '.join(f'{x:+.2f}' for x in de)} | {fq:.4f} "
              f"| {fa:.4f} |")


if __name__ == "__main__":
    main()
