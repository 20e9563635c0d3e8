"""Region calls, wall time and truncation error of the blending schemes, n = 2…8 buffer waters.

One blended correction Σ_P σ_P [E_high(P) − E_low(P)] with high = GFN2-xTB
(tblite) and low = the shipped MLIP models/water_gfn2xtb.pt, on the 30-water
cluster models/water30_start.xyz. The region is centred on the oxygen of the
water nearest the cluster's centre of mass; the other waters are ranked by
their centre-of-mass distance d₁ <= d₂ <= … from it. For each n the buffer
holds exactly the n nearest (r_inner = d₁ − 0.15 Å, outer edge
(d_n + d_{n+1})/2, quintic switch), and ``--inner K`` first moves the K
nearest into the inner region (r_inner = (d_K + d_{K+1})/2), so that the
buffer holds waters K+1 … K+n.

Schemes: ``product`` (2ⁿ calls, the reference), ``sorted`` (n+1 calls,
forces jump where weights cross), ``expansion`` order 1 and 2 about the
centre water (1 + m and 1 + m + m(m−1)/2 calls for m = K + n members: inner
waters are expansion members too; each call holds at most 1 + order waters,
where product and sorted calls hold up to 1 + K + n: the column "largest call",
which sets the cost of a QM level). Truncation error against product: |ΔE|
(meV) of the correction, and the RMS force error (eV/Å) over the atoms of the
region (centre, inner and buffer waters). Wall time: one cold evaluation (a
fresh xTB instance per region, so every SCC starts from scratch), the best of
``--repeat``, seconds, one thread.

``--series`` adds, for the largest n, the expansion's error at every order
1 … m (it reaches the product sum at order m), which shows how fast the
many-body expansion of ΔE = E_high − E_low about the centre water converges.

    python benchmarks/bench_partitions.py [--inner 0] [--nmax 8] [--series]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")        # tblite and torch on shared cores: threads only oversubscribe


def setup():
    from ase.data import atomic_masses
    from ase.io import read

    from hybrid.system import AtomicSystem
    atoms = read(ROOT / "models" / "water30_start.xyz")
    s = AtomicSystem.from_ase(atoms)
    m = atomic_masses[s.numbers]
    mols = [np.arange(3 * k, 3 * k + 3) for k in range(len(s) // 3)]
    assert all(s.numbers[u].tolist() == [8, 1, 1] for u in mols)
    com = np.array([(m[u, None] * s.positions[u]).sum(0) / m[u].sum() for u in mols])
    centre = int(np.argmin(np.linalg.norm(com - com.mean(0), axis=1)))
    o = s.positions[mols[centre][0]]
    d = np.linalg.norm(com - o, axis=1)
    rank = [k for k in np.argsort(d) if k != centre]
    return s, mols, centre, d, rank


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inner", type=int, default=0, help="waters in the inner region besides the centre")
    ap.add_argument("--nmax", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3, help="cold evaluations per scheme; the fastest is shown")
    ap.add_argument("--series", action="store_true", help="expansion error at every order for the largest n")
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(1)

    from couplers.blend import BlendedCorrection
    from couplers.partition import DistancePartitioner
    from hybrid.ml.adapters import XTBPotential
    from hybrid.ml.potential import MLPotential

    s, mols, centre, d, rank = setup()
    low = MLPotential.load(str(ROOT / "models" / "water_gfn2xtb.pt"))
    K = args.inner
    schemes = [("product", {}), ("sorted", {}), ("expansion-1", {"order": 1}), ("expansion-2", {"order": 2})]
    print(f"30 waters; centre water {centre}; {K} inner water(s) besides it; high GFN2-xTB, low MLIP "
          "(models/water_gfn2xtb.pt)")
    print("n = buffer waters; region calls per evaluation; largest call (waters); wall s of one cold evaluation; "
          "truncation error vs product: |dE| meV, RMS dF eV/A over the region's atoms")
    head = (f"{'n':>2} | {'calls prod/sort/exp1/exp2':>26} | {'largest call':>12} | "
            f"{'wall s prod/sort/exp1/exp2':>27} | "
            f"{'|dE| meV sort/exp1/exp2':>24} | {'RMS dF eV/A sort/exp1/exp2':>27}")
    print(head)
    print("-" * len(head))
    for n in range(2, args.nmax + 1):
        r_in = d[rank[0]] - 0.15 if K == 0 else 0.5 * (d[rank[K - 1]] + d[rank[K]])
        r_out = 0.5 * (d[rank[K + n - 1]] + d[rank[K + n]])
        part = DistancePartitioner(("atom", int(mols[centre][0])), r_in, r_out - r_in, molecules=mols)
        W = part.weights(s)
        assert len(W.buffer) == n and len(W.inner) == K + 1, (n, len(W.buffer), len(W.inner))
        region = W.atoms(W.inner + W.buffer)
        res = {}
        for label, kw in schemes:
            best = np.inf
            for _ in range(args.repeat):
                blend = BlendedCorrection(XTBPotential("GFN2-xTB"), low, part, scheme=label.split("-")[0],
                                          max_buffer=K + n, **kw)
                t0 = time.perf_counter()
                r = blend.compute(s)
                best = min(best, time.perf_counter() - t0)
            largest = max(len(p) for p, _, _ in blend._partitions(W, W.inner, W.buffer, blend.scheme))
            res[label] = (r.energy, r.forces, r.info["n_high_calls"], best, largest)
        e0, f0 = res["product"][:2]
        err = {k: (abs(v[0] - e0) * 1e3, np.sqrt(np.mean(np.sum((v[1] - f0)[region] ** 2, axis=1))))
               for k, v in res.items() if k != "product"}
        calls = "/".join(str(res[k][2]) for k, _ in schemes)
        wall = "/".join(f"{res[k][3]:.3f}" for k, _ in schemes)
        big = "/".join(str(res[k][4]) for k, _ in schemes)
        de = "/".join(f"{err[k][0]:.1f}" for k, _ in schemes[1:])
        df = "/".join(f"{err[k][1]:.4f}" for k, _ in schemes[1:])
        print(f"{n:>2} | {calls:>26} | {big:>12} | {wall:>27} | {de:>24} | {df:>27}", flush=True)
    if args.series:
        xtb, m = XTBPotential("GFN2-xTB"), K + args.nmax
        print(f"\nn = {args.nmax}: expansion order k, region calls, error vs product |dE| meV, RMS dF eV/A")
        for k in range(1, m + 1):
            r = BlendedCorrection(xtb, low, part, scheme="expansion", order=k, max_buffer=m).compute(s)
            print(f"  k = {k}: {r.info['n_high_calls']:>4} calls  {abs(r.energy - e0) * 1e3:7.2f} meV  "
                  f"{np.sqrt(np.mean(np.sum((r.forces - f0)[region] ** 2, axis=1))):.4f} eV/A", flush=True)


if __name__ == "__main__":
    main()
