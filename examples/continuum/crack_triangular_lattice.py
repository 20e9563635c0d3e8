"""A crack in a 2D triangular lattice: K, G, J and the Griffith check.

The ideal brittle solid of continuum.brittle_lattice (k = a = 1,
r_c = 1.2, linearised springs): ~7000 atoms, a crack from the left edge to
the centre, the outer atoms held on the isotropic K-field of the lattice's
2D elastic constants (E₂D = 2/√3, ν₂D = 1/3, plane-stress form).

1. G_c from slabs: γ = (E_slab − N E_bulk)/2A, against k(r_c − a)²/a = 0.04;
   the Griffith load k_G = sqrt(G_c E₂D).
2. Quasi-static loading K/k_G = 0.6 … 2.6: relax, break the most stretched
   bond beyond r_c, repeat.  At each load: K fitted to the atomistic
   displacements, J from atomistic stress and displacement gradients on
   three annuli (path independence), the tip position.  The crack stays put
   until K₊ > k_G (lattice trapping) and then runs.
3. The thin strip: G(ε) = ½ C₁₁ ε² h from the relaxed lattice, the critical
   strain where it reaches G_c.
4. The fracture potential trained on mixed-mode K-field loads of the same
   lattice, predicting advance with the Griffith threshold and with the
   lattice-trapping threshold G₊.

Writes crack_triangular_lattice.png next to this script (or to --out).
About 30 s.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from continuum.brittle_lattice import BrittleLattice  # noqa: E402
from continuum.fracture import (IsotropicCrack, fit_k_field, path_independence,  # noqa: E402
                                surface_energy, thin_strip_critical_strain,
                                thin_strip_energy_release_rate)
from continuum.fracture_potential import (k_field_load_cases, tip_descriptors,  # noqa: E402
                                          train_fracture_potential)

B = np.sqrt(3) / 2
R_FIX = 30.0
ANNULI = ((8.0, 16.0), (10.0, 22.0), (12.0, 26.0))


def slab_griffith_G():
    lat = BrittleLattice.build(20, 10, periodic_x=True)
    u = np.zeros_like(lat.positions)
    e_bulk = lat.energy(u) / len(u)
    u[lat.positions[:, 1] > 4.6 * B, 1] = 3.0
    return 2 * surface_energy(lat.energy(u), len(u), e_bulk, 20.0)


def cracked_lattice():
    lat = BrittleLattice.build(72, 80)
    tip = np.array([36.25, 39.5 * B])
    lat.cut(tip[1], tip[0])
    d = lat.positions - tip
    fixed = np.hypot(d[:, 0], d[:, 1]) > R_FIX
    return lat, tip, fixed


def tip_x(lat, y_cut):
    yi = lat.positions[lat.bonds[:, 0], 1]
    crossing = (np.minimum(yi, yi + lat.bond_vectors[:, 1]) < y_cut) & \
               (np.maximum(yi, yi + lat.bond_vectors[:, 1]) > y_cut)
    mid = lat.positions[lat.bonds[:, 0], 0] + 0.5 * lat.bond_vectors[:, 0]
    return mid[crossing & lat.broken].max()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("crack_triangular_lattice.png"))
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    t0 = time.perf_counter()
    G_c = slab_griffith_G()
    lat, tip0, fixed = cracked_lattice()
    crack = IsotropicCrack(lat.youngs_modulus, lat.poisson_ratio, "stress")
    k_G = np.sqrt(G_c * lat.youngs_modulus)
    print(f"G_c from slabs = {G_c:.10f} (closed form k(r_c-a)^2/a = {lat.griffith_G:.10f}); k_G = {k_G:.5f}")

    # quasi-static loading -----------------------------------------------------------
    d = lat.positions - tip0
    x_start = tip_x(lat, tip0[1])
    loads = np.round(np.arange(0.6, 2.61, 0.1), 2)
    rows, snapshots = [], {}
    for ratio in loads:
        K = ratio * k_G
        u, n_new = lat.relax_and_break(fixed, crack.displacement(d[fixed, 0], d[fixed, 1], K))
        xt = tip_x(lat, tip0[1])
        tip = np.array([xt + 0.5, tip0[1]])                 # half a bond ahead of the last broken one
        inner = np.hypot(*(lat.positions - tip).T) < R_FIX - 2
        fit = fit_k_field(crack, lat.positions[inner], u[inner], tip, True, 4.0, R_FIX - 4)
        J = lat.j_integral(u, tip, ANNULI)
        rows.append((ratio, K, xt - x_start, fit.K, J.mean(), path_independence(J), n_new))
        if n_new and "after" not in snapshots:
            snapshots["after"] = (ratio, u.copy(), lat.broken.copy())
        if not n_new:
            snapshots["before"] = (ratio, u.copy(), lat.broken.copy())
    rows = np.array(rows)
    print(f"{'K/k_G':>6} {'G/G_c':>6} {'advance':>8} {'K_fit/K':>8} {'J/G_c':>7} {'J spread':>8} {'bonds':>6}")
    for ratio, K, adv, kfit, J, spread, nb in rows:
        print(f"{ratio:6.2f} {K**2 / lat.youngs_modulus / G_c:6.2f} {adv:8.2f} {kfit / K:8.4f} "
              f"{J / G_c:7.4f} {spread:8.4f} {int(nb):6d}")
    first = rows[rows[:, 6] > 0][0, 0]
    G_plus = (first * k_G) ** 2 / lat.youngs_modulus
    print(f"Griffith: no bond breaks below K/k_G = {first - 0.1:.1f}; the crack first advances at "
          f"K/k_G = {first:.1f} (G = {G_plus / G_c:.2f} G_c >= G_c: lattice trapping)")

    # thin strip ------------------------------------------------------------------------
    n_rows = 11
    strip = BrittleLattice.build(12, n_rows, periodic_x=True)
    h = (n_rows - 1) * B
    row = np.round(strip.positions[:, 1] / B).astype(int)
    clamp = (row == 0) | (row == n_rows - 1)
    eps = np.linspace(0, 0.12, 13)
    G_strip = []
    for e in eps:
        ub = np.zeros((clamp.sum(), 2))
        ub[:, 1] = e * strip.positions[clamp, 1]
        G_strip.append(strip.energy(strip.relax(clamp, ub)) / 12.0)
    eps_c = thin_strip_critical_strain(G_c, strip.uniaxial_strain_modulus, h)
    print(f"thin strip (h = {h:.3f}): critical strain {eps_c:.6f}")

    # fracture potential ---------------------------------------------------------------------
    rng = np.random.default_rng(0)
    lat_fp, tip_fp, fixed_fp = cracked_lattice()
    Kmag = np.sqrt(rng.uniform(0.2, 4.0, 240) * G_c * lat.youngs_modulus)
    phase = rng.uniform(-0.6, 0.6, 240)
    stress, G = k_field_load_cases(lat_fp, crack, tip_fp, fixed_fp, Kmag * np.cos(phase), Kmag * np.sin(phase))
    X = tip_descriptors(lat_fp.positions, stress, tip_fp, radii=(2.5, 5.0, 8.0), stress_unit=lat.k)
    model, hist = train_fracture_potential(X[:200], G[:200], G_c, epochs=800)
    pred = model.predict_G(X[200:])
    acc_griffith = np.mean(model.advances(X[200:]) == (G[200:] >= G_c))
    model.threshold = G_plus
    acc_trap = np.mean(model.advances(X[200:]) == (G[200:] >= G_plus))
    print(f"fracture potential: held-out |G_pred/G - 1| max {np.max(np.abs(pred / G[200:] - 1)):.3f}; "
          f"advance calls right {acc_griffith:.0%} (Griffith threshold), {acc_trap:.0%} (threshold G+)")

    # plots --------------------------------------------------------------------------------
    fig, ax = plt.subplots(2, 2, figsize=(11, 9))
    a = ax[0, 0]
    ratio, u, broken = snapshots["after"]
    lat.broken[:] = broken
    s = lat.stretch(u)
    pos = lat.positions + 4 * u                               # displacements magnified ×4
    near = np.hypot(*(lat.positions - tip0).T) < 14
    keep = near[lat.bonds[:, 0]] & near[lat.bonds[:, 1]] & ~broken
    segs = np.stack([pos[lat.bonds[keep, 0]], pos[lat.bonds[keep, 1]]], axis=1)
    lc = LineCollection(segs, array=s[keep] / lat.s_c, cmap="viridis", linewidths=1.5)
    lc.set_clim(-0.5, 1.0)
    a.add_collection(lc)
    a.plot(*pos[near].T, "k.", ms=2)
    a.set(aspect="equal", title=f"K = {ratio:.1f} k_G, after advance (u ×4)",
          xlim=(tip0[0] - 14, tip0[0] + 14), ylim=(tip0[1] - 11, tip0[1] + 11))
    fig.colorbar(lc, ax=a, label="bond stretch / (r_c − a)")
    a = ax[0, 1]
    G_applied = rows[:, 1] ** 2 / lat.youngs_modulus / G_c
    a.plot(G_applied, rows[:, 4] / G_c, "o", label="J (atomistic, mean of 3 annuli)")
    a.plot(G_applied, (rows[:, 3] ** 2 / lat.youngs_modulus) / G_c, "s", mfc="none", label="K fit → K²/E")
    a.plot([0, G_applied.max()], [0, G_applied.max()], "k--", lw=1, label="G = K²/E (applied)")
    a.axhline(1.0, color="C3", lw=1, label="G_c = 2γ")
    a.set(xlabel="applied G / G_c", ylabel="measured / G_c", title="J, K-fit and the applied load")
    a.legend(fontsize=8)
    a = ax[1, 0]
    a.step(rows[:, 0], rows[:, 2], where="post", color="C0")
    a.axvline(1.0, color="C3", lw=1, label="Griffith k_G")
    a.axvline(first, color="C2", lw=1, ls="--", label=f"first advance K₊ = {first:.1f} k_G")
    a.set(xlabel="K / k_G", ylabel="crack advance (a)", title="quasi-static loading")
    a.legend(fontsize=8)
    a = ax[1, 1]
    a.plot(eps, G_strip, "o", label="relaxed lattice strip")
    ee = np.linspace(0, eps[-1], 200)
    a.plot(ee, thin_strip_energy_release_rate(ee, strip.uniaxial_strain_modulus, h), "k-", lw=1,
           label="½ C₁₁ ε² h")
    a.axhline(G_c, color="C3", lw=1, label="G_c")
    a.axvline(eps_c, color="C2", ls="--", lw=1, label=f"ε_c = {eps_c:.4f}")
    a.set(xlabel="strip strain ε", ylabel="G", title="thin strip")
    a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}  ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
