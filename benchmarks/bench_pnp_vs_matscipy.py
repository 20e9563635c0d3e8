"""continuum's Nernst–Planck / PNP solver beside matscipy's PNP solver.

Problems (SI; closed forms from continuum.electrolyte):

* Gouy–Chapman: 0.1 M 1:1 salt, ε_r = 79, T = 298.15 K, wall at φ₀ = 50 mV,
  domain 20 Debye lengths, zero ion flux at the wall, bulk at the far end.
  Accuracy: max |φ − φ_GC| over the grid and the relative error of the
  surface charge −∫ρ dx against Grahame.
* GHK: D = 1e-9 m²/s, L = 10 nm, 100 mM | 10 mM, z = +1, 50 mV linear
  drop.  matscipy's solver always couples the potential to the ions
  (Poisson), so a fixed linear potential cannot be imposed: n/a there.

Both solvers run on uniform grids with the same number of intervals N
(matscipy: N+1 vertices; continuum: N cells), and continuum also on a graded
grid refined at the wall.  matscipy is run with scipy's 'hybr' root finder
(its fast option) and, at the smallest N only, with its own Newton (dense
finite-difference Jacobian).  Wall times are the best of ``--repeat`` runs.

Run:  python benchmarks/bench_pnp_vs_matscipy.py [--repeat 3] [--sizes 100 200 400]
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid.units import FARADAY  # noqa: E402

from continuum.electrolyte import (debye_length, ghk_flux, gouy_chapman_potential,  # noqa: E402
                                   grahame_surface_charge)
from continuum.grid import Grid  # noqa: E402
from continuum.nernst_planck import (Dirichlet, Flux, NernstPlanck, PoissonNernstPlanck,  # noqa: E402
                                     Species, poisson_boltzmann)

T, C0, PHI0, EPS_R = 298.15, 100.0, 0.05, 79.0
LAM = debye_length([C0, C0], [1, -1], EPS_R, T)
L_GC = 20 * LAM
SIGMA = grahame_surface_charge(PHI0, C0, 1, EPS_R, T)


def best_time(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def gc_errors(x, phi, sigma):
    ref = gouy_chapman_potential(x, PHI0, C0, 1, EPS_R, T)
    return np.max(np.abs(phi - ref)) * 1e3, sigma / SIGMA - 1


def continuum_pnp(grid):
    species = [Species("Na+", 1, 1.33e-9, Flux(0.0), Dirichlet(C0)),
               Species("Cl-", -1, 2.03e-9, Flux(0.0), Dirichlet(C0))]
    sol = PoissonNernstPlanck(grid, species, T, EPS_R, Dirichlet(PHI0), Dirichlet(0.0)).steady()
    return gc_errors(grid.nodes, sol.potential, -np.sum(sol.charge_density * grid.widths))


def continuum_pb(grid):
    phi, c = poisson_boltzmann(grid, [C0, C0], [1, -1], T, EPS_R, Dirichlet(PHI0), Dirichlet(0.0))
    rho = FARADAY * (c[0] - c[1])
    return gc_errors(grid.nodes, phi, -np.sum(rho * grid.widths))


def matscipy_pnp(N, solver):
    from matscipy.electrochemistry import PoissonNernstPlanckSystem

    kwargs = {} if solver == "newton" else {"solver": solver}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = PoissonNernstPlanckSystem(c=np.array([C0, C0]), z=np.array([1, -1]), L=L_GC, T=T,
                                      delta_u=PHI0, relative_permittivity=EPS_R, N=N, **kwargs)
        s.use_standard_interface_bc()
        s.solve()
    return gc_errors(s.grid, s.potential, -np.trapezoid(s.charge_density, s.grid))


def continuum_ghk():
    sp = Species("K+", 1, 1e-9, Dirichlet(100.0), Dirichlet(10.0))
    sol = NernstPlanck(Grid.uniform(10e-9, 4), [sp], T, lambda x: 0.05 * (1 - x / 10e-9)).steady()
    return np.max(np.abs(sol.fluxes / ghk_flux(1e-9, 10e-9, 100.0, 10.0, 1, 0.05, T) - 1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 400])
    args = ap.parse_args(argv)
    logging.getLogger("matscipy").setLevel(logging.ERROR)
    try:
        import matscipy.electrochemistry  # noqa: F401
        have_matscipy = True
    except ImportError as err:        # matscipy.electrochemistry also needs `six`
        print(f"matscipy PNP solver unavailable ({err}); continuum rows only")
        have_matscipy = False

    rows = []
    for N in args.sizes:
        t_ref, (dphi, dsig) = best_time(lambda: continuum_pnp(Grid.uniform(L_GC, N)), args.repeat)
        rows.append(("Gouy-Chapman", "continuum PNP, uniform", N, dphi, dsig, t_ref, t_ref))
        t, (dphi, dsig) = best_time(lambda: continuum_pnp(Grid.graded(L_GC, N, LAM / 50)), args.repeat)
        rows.append(("Gouy-Chapman", "continuum PNP, graded", N, dphi, dsig, t, t_ref))
        t, (dphi, dsig) = best_time(lambda: continuum_pb(Grid.uniform(L_GC, N)), args.repeat)
        rows.append(("Gouy-Chapman", "continuum PB, uniform", N, dphi, dsig, t, t_ref))
        if have_matscipy:
            t, (dphi, dsig) = best_time(lambda: matscipy_pnp(N, "hybr"), args.repeat)
            rows.append(("Gouy-Chapman", "matscipy PNP, hybr", N, dphi, dsig, t, t_ref))
            if N == min(args.sizes):
                t, (dphi, dsig) = best_time(lambda: matscipy_pnp(N, "newton"), 1)
                rows.append(("Gouy-Chapman", "matscipy PNP, own Newton", N, dphi, dsig, t, t_ref))
    t, err = best_time(continuum_ghk, args.repeat)
    rows.append(("GHK flux", "continuum NP, 4 cells", 4, np.nan, err, t, t))
    rows.append(("GHK flux", "matscipy PNP", 4, np.nan, np.nan, np.nan, np.nan))

    head = f"{'problem':<13} {'solver':<26} {'N':>5} {'max|dphi| mV':>13} {'rel err':>10} {'time s':>9} {'t/t_cont':>9}"
    print(head)
    print("-" * len(head))
    for prob, solver, N, dphi, err, t, t_ref in rows:
        def fmt(v, spec):
            return f"{'n/a':>{spec.split('.')[0]}}" if not np.isfinite(v) else format(v, spec)
        print(f"{prob:<13} {solver:<26} {N:>5} {fmt(dphi, '13.4f')} {fmt(err, '10.2e')} "
              f"{fmt(t, '9.4f')} {fmt(t / t_ref if np.isfinite(t) else np.nan, '9.1f')}")
    print("rel err: surface charge vs Grahame (Gouy-Chapman), flux vs GHK (GHK flux); "
          "t/t_cont: time over continuum PNP on the uniform grid of the same N")


if __name__ == "__main__":
    main()
