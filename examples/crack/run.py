"""A silicon (111)[1-10] crack loaded by the continuum K-field: the shipped Si MLIP alone, and with a
GFN1-xTB region about the tip, measured against the continuum fracture module.

Steps (every number from the potentials themselves, nothing assumed):

1. The MLIP's lattice constant, C11, C12, C44 and relaxed γ(111) (continuum.elastic) and the label level's,
   as stored with the model by ``models/make_si_gfn1xtb.py``; the anisotropic K-field and K_G = √(2γ/…) of
   the MLIP's own constants (continuum.fracture).
2. Lattice trapping of the MLIP (continuum.crack_ramp): a disc of radius R about the tip, its outer 6 Å
   held on the K-field, relaxed (FIRE, fmax 0.01 eV/Å) at each load; ramps up and down from K_G in steps of
   0.05 K_G, bisected twice: K₋ < K_G < K₊ for each R in ``--radii``.
3. J on three domains about the tip from the MLIP's per-atom virials and energies (continuum.crack_ramp.
   atomistic_j, finite-strain form) at the highest load below K₊, against G(K) of the applied field (linear
   elasticity) and G of the K fitted to the relaxed displacements; and on a cracked strip at uniaxial strain
   (continuum.crack_strip, ``--strip-size``, ``--strip-strain``), against its exact G = Y W(ε).
4. The hybrid: the MLIP everywhere plus [E_xTB − E_MLIP] of a region about the bond that breaks next in
   the crack relaxed at K_G, kept through the ramps (a trapped tip does not move); K₋ and K₊ for each
   radius r in ``--qm-radii``. ``--qm-shape cylinder`` (default): a cylinder of radius r about the front,
   periodic along it (``periodic_regions``: hydrogen link atoms only on Si–Si bonds cut in the x–y plane),
   on a disc whose front is ``--cylinder-front`` cells long (2: 7.9 Å). ``--qm-shape ball``: a ball of
   radius r with link atoms on all its cut bonds, on a disc whose front is ``--front`` cells long (3
   reduced, 6 full) so that the ball fits in the periodic box; a ball pins a periodic front (README).
5. NVE: 100 K velocity Verlet on the disc with a ``--front``-cell front at 1.05 × the smaller of the MLIP's
   K₊ there and the largest QM region's K₊, MLIP alone and the hybrid whose region, a ball, follows the tip
   every step (couplers.crack_tip, 4-atom blocks, product partitions): energy drift side by side.

Writes output/ (or ``--out``): results.json, table.md, tip_vs_K.png, energy_release.png, snapshot.png,
nve_energy.png.

    python examples/crack/run.py --reduced      # one disc, a 3 Å QM cylinder, short NVE (< 15 min on 2 cores)
    python examples/crack/run.py                # radii 20/30/40 Å, QM cylinders 3/4/5/6 Å on a 2-cell front
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MODEL = ROOT / "models" / "si_gfn1xtb.pt"
J_M2 = 6.241509074e-2            # 1 J/m² in eV/Å²


def qm_level(electronic_temperature=3000.0):
    """GFN1-xTB with Fermi smearing at ``electronic_temperature`` K; 3000 K is the MLIP's label level
    (models/make_si_gfn1xtb.py)."""
    from hybrid.ml.adapters import XTBPotential
    return XTBPotential("GFN1-xTB", electronic_temperature=electronic_temperature)


def bond_levels(disc, tr, qm_atoms):
    """Which level's crack-plane bonds changed at K₊ (broke) and at K₋ (healed): for each, the bonds as
    (i, j, level) with level "QM" (both atoms in the QM region), "MLIP" (neither) or "QM-MLIP"."""
    qm = set(int(a) for a in qm_atoms)
    out = {}
    for event, key in (("advanced", "K_plus_bonds"), ("healed", "K_minus_bonds")):
        rows = []
        for i, j in tr.changed_bonds(disc, event):
            n = (int(i) in qm) + (int(j) in qm)
            rows.append((int(i), int(j), ("MLIP", "QM-MLIP", "QM")[n]))
        out[key] = rows
    return out


def setup(props, radius, front):
    from continuum.crack_ramp import crack_disc
    from continuum.crack_slab import GPA, silicon_crack, silicon_crack_slab
    crack = silicon_crack(*(props[k] * GPA for k in ("C11_GPa", "C12_GPa", "C44_GPa")))
    a0 = props["a0_angstrom"]
    cell = np.array([np.sqrt(6) / 2, np.sqrt(3), np.sqrt(2) / 2]) * a0   # 12-atom cell edges in the crack frame
    size = (int(np.ceil(2 * (radius + 3) / cell[0])), int(np.ceil(2 * (radius + 3) / cell[1])), int(front))
    slab, y_plane = silicon_crack_slab(size, a0, 5.0)
    return crack, crack_disc(slab, y_plane, crack, radius=radius, r_fix=6.0)


def qm_ball(disc, positions, r_qm):
    """Atoms within r_qm Å of the bond that breaks next in ``positions`` (its midpoint), and that point."""
    centre = disc.tip_bond(positions)
    lz = disc.reference.cell[2, 2]
    d = positions - centre
    d[:, 2] -= np.round(d[:, 2] / lz) * lz
    atoms = np.flatnonzero(np.linalg.norm(d, axis=1) < r_qm)
    if len(atoms) < 2:
        raise ValueError(f"a QM ball of {r_qm} Å about {centre} holds {len(atoms)} atoms")
    return atoms, centre


def qm_cylinder(disc, positions, r_qm):
    """Atoms within r_qm Å, in the x–y plane, of the line along the front through the midpoint of the bond
    that breaks next in ``positions``, and that midpoint."""
    centre = disc.tip_bond(positions)
    atoms = np.flatnonzero(np.linalg.norm(positions[:, :2] - centre[:2], axis=1) < r_qm)
    if len(atoms) < 2:
        raise ValueError(f"a QM cylinder of {r_qm} Å about {centre[:2]} holds {len(atoms)} atoms")
    return atoms, centre


def trapping_row(tr, k_g, wall):
    return {"K_minus": [k / k_g for k in tr.k_minus], "K_plus": [k / k_g for k in tr.k_plus],
            "n_broken_start": tr.start.n_broken, "loads": len(tr.up) + len(tr.down), "wall_s": wall}


def j_both_forms(plane, mlip_pot, positions, a0, edges, tip, faces, cell=None):
    """(J finite strain, J linear form) (eV/Å², one per domain of ``edges``) of the MLIP state ``positions`` of a
    disc or strip (continuum.crack_ramp.atomistic_j); faces: the (intact, opened) per-atom reference energies of
    continuum.crack_ramp.face_reference_energies; cell: the deformed cell, if not the reference's."""
    from continuum.crack_ramp import atomistic_j, stored_energy_density
    from hybrid.system import AtomicSystem
    atoms = plane.reference.copy()
    if cell is not None:
        atoms.set_cell(cell)
    atoms.positions = positions
    system = AtomicSystem.from_ase(atoms)
    va = a0**3 / 8
    W = stored_energy_density(plane, positions, mlip_pot.compute(system).energies, *faces, va, tip=tip)
    J = atomistic_j(plane, positions, mlip_pot.atom_virials(system, reference=AtomicSystem.from_ase(plane.reference)),
                    va, edges, tip=tip, energy_density=W, cell=cell)
    return J, atomistic_j(plane, positions, mlip_pot.atom_virials(system), va, edges, tip=tip, cell=cell)


def j_check(disc, tr, mlip_pot, crack, k_g, a0):
    """J on three domains about the tip at the highest load below K₊ (the most loaded trapped state), in the
    finite-strain form (first Piola–Kirchhoff virials, stored energy) and the linear one, against G of the
    applied K (linear elasticity) and G of the K fitted to the relaxed displacements (tip free)."""
    from continuum.crack_ramp import face_reference_energies
    from continuum.fracture import fit_k_field
    from couplers.ase_calculator import HybridCalculator
    p = max((q for q in [tr.start] + tr.up if q.K < tr.k_plus[1] - 1e-12), key=lambda q: q.K)
    ref = disc.reference.positions
    r_free = float(np.linalg.norm(ref[:, :2] - disc.tip, axis=1)[~disc.fixed].max())
    edges = np.linspace(4.0, r_free - 1.0, 4)
    tip = np.array([disc.tip_bond(p.positions)[0], disc.y_plane])
    J, J_lin = j_both_forms(disc, mlip_pot, p.positions, a0, edges, tip,
                            face_reference_energies(disc, HybridCalculator(mlip_pot)))
    G = float(crack.energy_release_rate(p.K))
    free = ~disc.fixed
    fit = fit_k_field(crack, ref[free, :2], (p.positions - ref)[free, :2], tip_guess=disc.tip, r_min=6.0)
    G_fit = float(crack.energy_release_rate(fit.K))
    return {"K_over_KG": p.K / k_g, "tip_minus_centre_A": float(p.tip - disc.tip[0]),
            "domains_A": [[float(a), float(b)] for a, b in zip(edges[:-1], edges[1:])],
            "J_J_m2": [float(j) / J_M2 for j in J], "G_J_m2": G / J_M2, "J_over_G": [float(j / G) for j in J],
            "J_linear_form_over_G": [float(j / G) for j in J_lin],
            "K_fit_over_KG": fit.K / k_g, "fit_tip_minus_centre_A": (fit.tip - disc.tip).tolist(),
            "J_over_G_fit": [float(j / G_fit) for j in J]}


def strip_check(mlip_pot, props, size, strain):
    """J against the exact G = Y W(ε) of a cracked strip at uniaxial ``strain`` (continuum.crack_strip), on three
    domains about the tip, in the finite-strain and the linear form; G_lin = ½ M ε² Y from the model's C_ij."""
    from continuum.crack_ramp import face_reference_energies, relax
    from continuum.crack_slab import GPA, SI_FRAME
    from continuum.crack_strip import crack_strip, strip_energy_release_rate
    from continuum.fracture import crack_frame, cubic_stiffness, rotate_stiffness
    from couplers.ase_calculator import HybridCalculator
    t0 = time.perf_counter()
    a0 = props["a0_angstrom"]
    calc = HybridCalculator(mlip_pot)
    strip = crack_strip(a0, size=tuple(size))
    G = strip_energy_release_rate(strip, calc, a0, strain)
    M = rotate_stiffness(cubic_stiffness(*(props[k] * GPA for k in ("C11_GPa", "C12_GPa", "C44_GPa"))),
                         crack_frame(*SI_FRAME[:2], SI_FRAME[2]))[1, 1]
    cell = strip.cell(strain)
    pos, _, steps, ok = relax(strip, strip.loaded(strain), calc, fmax=0.005, max_steps=4000, cell=cell)
    tip_x, n = strip.state(pos)
    tip = np.array([strip.tip_bond(pos)[0], strip.y_plane])
    edges = np.linspace(8.0, 0.5 * strip.height - 8.0, 4)
    J, J_lin = j_both_forms(strip, mlip_pot, pos, a0, edges, tip, face_reference_energies(strip, calc), cell=cell)
    return {"size": list(size), "atoms": len(pos), "height_A": strip.height, "strain": strain,
            "G_J_m2": G / J_M2, "G_lin_over_G": 0.5 * M * strain**2 * strip.height / G,
            "G_over_2gamma": G / (2 * props["gamma111_J_m2"] * J_M2), "tip_moved_A": tip_x - float(strip.tip[0]),
            "n_broken": n, "relaxed": ok, "fire_steps": steps,
            "domains_A": [[float(a), float(b)] for a, b in zip(edges[:-1], edges[1:])],
            "J_over_G": [float(j / G) for j in J], "J_linear_form_over_G": [float(j / G) for j in J_lin],
            "wall_s": time.perf_counter() - t0}


def nve(potential, disc, positions, steps, dt_fs, locator=None, seed=1):
    from ase import units
    from ase.md.velocitydistribution import Stationary
    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:                        # ASE < 3.27
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    from couplers.ase_calculator import HybridCalculator
    atoms = disc.reference.copy()
    atoms.positions = positions
    from ase.constraints import FixAtoms
    atoms.set_constraint(FixAtoms(indices=np.flatnonzero(disc.fixed)))
    atoms.calc = HybridCalculator(potential)
    thermalize_momenta(atoms, temperature_K=100, rng=np.random.default_rng(seed))
    atoms.set_momenta(atoms.get_momenta() * ~disc.fixed[:, None])
    Stationary(atoms)
    rec = []
    dyn = VelocityVerlet(atoms, dt_fs * units.fs)

    def record():
        rec.append((atoms.get_potential_energy() + atoms.get_kinetic_energy(),
                    locator.last_tip.position[0] if locator is not None and locator.last_tip is not None
                    else disc.state(atoms.positions)[0]))
    dyn.attach(record, interval=1)
    t0 = time.perf_counter()
    failure = None
    try:
        dyn.run(steps)
    except Exception as exc:          # an SCF that does not converge in one of the regions: reported, not hidden
        failure = f"step {len(rec)}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        print(f"NVE stopped at {failure}", flush=True)
    if len(rec) < 2:
        return {"steps": len(rec), "failure": failure}
    steps = len(rec) - 1
    e = np.array([r[0] for r in rec])
    e -= e[0]
    tips = np.array([r[1] for r in rec])
    return {"steps": steps, "dt_fs": dt_fs, "max_abs_dE_meV": float(np.abs(e).max() * 1e3),
            "drift_meV": float(e[-1] * 1e3), "drift_meV_per_atom_per_ps": float(e[-1] * 1e3 / len(atoms)
                                                                                 / (steps * dt_fs * 1e-3)),
            "tip_moved_A": float(tips[-1] - tips[0]), "s_per_step": (time.perf_counter() - t0) / steps,
            "failure": failure, "dE_meV": (e * 1e3).tolist(), "tip_x_A": (tips - tips[0]).tolist()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reduced", action="store_true", help="one disc, one QM radius, short NVE (< 15 min)")
    ap.add_argument("--radii", type=float, nargs="+", help="MLIP disc radii R, Å (default 20 30 40; reduced 20)")
    ap.add_argument("--qm-radii", type=float, nargs="+", help="QM region radii, Å (default 3 4 5 6; reduced 3)")
    ap.add_argument("--qm-shape", choices=("ball", "cylinder"), default="cylinder",
                    help="a QM ball about the tip, or a cylinder about the front, periodic along it")
    ap.add_argument("--hybrid-radius", type=float, default=20.0, help="disc radius of the hybrid ramps, Å")
    ap.add_argument("--cylinder-front", type=int, default=2,
                    help="front length (12-atom cells, 3.97 Å each) of the disc of the cylinder's ramps")
    ap.add_argument("--front", type=int, help="front length of the ball's and the NVE disc in 12-atom cells "
                    "(default 3, full setting 6): a ball (and the NVE's with its 1.5 Å buffer) must fit in half of it")
    ap.add_argument("--step", type=float, default=0.05, help="load step of the MLIP ramps / K_G (bisected twice)")
    ap.add_argument("--hybrid-step", type=float, default=0.1,
                    help="load step of the hybrid ramps / K_G (bisected once)")
    ap.add_argument("--nve-steps", type=int, help="NVE steps (default 200; reduced 40)")
    ap.add_argument("--nve-qm-radius", type=float, default=4.0, help="QM radius of the tip-following hybrid, Å")
    ap.add_argument("--nve-dt", type=float, default=0.5, help="NVE time step, fs")
    ap.add_argument("--nve-qm-temperature", type=float, default=4000.0,
                    help="electronic temperature (K) of the tip-following hybrid's GFN1-xTB in NVE: clusters cut "
                         "through the opening faces have no SCC solution at the label level's 3000 K (README)")
    ap.add_argument("--strip-size", type=int, nargs=3,
                    help="the J check's strip in 12-atom cells, x y z (default 29 8 1; reduced 20 6 1)")
    ap.add_argument("--strip-strain", type=float, help="its uniaxial strain (default 0.075; reduced 0.085)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the rows already in --out's results.json (same model and settings) and compute the rest")
    ap.add_argument("--model", default=str(MODEL))
    ap.add_argument("--out", default=str(HERE / "output"))
    args = ap.parse_args(argv)
    radii = args.radii or ([20.0] if args.reduced else [20.0, 30.0, 40.0])
    qm_radii = args.qm_radii or ([3.0] if args.reduced else [3.0, 4.0, 5.0, 6.0])
    nve_steps = args.nve_steps or (40 if args.reduced else 200)
    front = args.front or (3 if args.reduced else 6)
    strip_size = args.strip_size or ([20, 6, 1] if args.reduced else [29, 8, 1])
    strip_strain = args.strip_strain or (0.085 if args.reduced else 0.075)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch

    from continuum.crack_ramp import lattice_trapping
    from couplers.ase_calculator import HybridCalculator
    from couplers.blend import blended
    from couplers.partition import FixedPartitioner
    from hybrid.ml.potential import MLPotential
    torch.set_num_threads(1)
    mlip = MLPotential.load(args.model)
    props = mlip.metadata["properties"]
    mp = props["mlip"]
    results = {"model": str(args.model), "level_of_theory": mlip.metadata["level_of_theory"],
               "properties": props, "mlip": {}, "hybrid": {}, "qm_shape": args.qm_shape,
               "settings": {k: getattr(args, k) for k in ("hybrid_radius", "cylinder_front", "front", "step",
                                                           "hybrid_step", "nve_qm_radius", "nve_dt",
                                                           "nve_qm_temperature")}}
    done = _resumable(out / "results.json", results) if args.resume else {"mlip": {}, "hybrid": {}, "strip": None}
    calc = HybridCalculator(mlip)
    step_rel = args.step
    for R in radii:
        if f"R={R:g}" in done["mlip"]:
            results["mlip"][f"R={R:g}"] = done["mlip"][f"R={R:g}"]
            continue
        crack, disc = setup(mp, R, 1)
        k_g = crack.griffith_k(mp["gamma111_J_m2"] * J_M2)
        t0 = time.perf_counter()
        tr = lattice_trapping(disc, calc, k_g, step_rel * k_g, fmax=0.01)
        row = trapping_row(tr, k_g, time.perf_counter() - t0)
        row.update(atoms=len(disc.reference), K_G=k_g, ramp=[(p.K / k_g, p.tip - disc.tip[0], p.n_broken)
                                                            for p in sorted(tr.up + tr.down + [tr.start],
                                                                            key=lambda q: q.K)])
        row["J"] = j_check(disc, tr, mlip, crack, k_g, mp["a0_angstrom"])
        results["mlip"][f"R={R:g}"] = row
        print(f"MLIP R={R:g} Å ({len(disc.reference)} atoms): K-/K_G {row['K_minus']}, K+/K_G {row['K_plus']}, "
              f"J/G {row['J'] and row['J']['J_over_G']} ({row['wall_s']:.0f} s)", flush=True)
        _save(results, out)
    old_strip = done.get("strip")
    if old_strip and old_strip["size"] == strip_size and old_strip["strain"] == strip_strain:
        results["strip"] = old_strip
    else:
        results["strip"] = strip_check(mlip, mp, strip_size, strip_strain)
    st = results["strip"]
    print(f"strip {st['size']} ({st['atoms']} atoms) at strain {strip_strain}: G = {st['G_J_m2']:.3f} J/m² "
          f"(G_lin/G {st['G_lin_over_G']:.3f}), J/G {st['J_over_G']} ({st['wall_s']:.0f} s)", flush=True)
    _save(results, out)

    cylinder = args.qm_shape == "cylinder"
    region = qm_cylinder if cylinder else qm_ball
    crack, disc = setup(mp, args.hybrid_radius, args.cylinder_front if cylinder else front)
    k_g = crack.griffith_k(mp["gamma111_J_m2"] * J_M2)
    t0 = time.perf_counter()
    tr = lattice_trapping(disc, calc, k_g, step_rel * k_g, fmax=0.01)
    results["hybrid"]["mlip_same_disc"] = trapping_row(tr, k_g, time.perf_counter() - t0)
    results["hybrid"]["mlip_same_disc"].update(atoms=len(disc.reference), **bond_levels(disc, tr, []))
    print(f"MLIP on the hybrid's disc ({len(disc.reference)} atoms): {results['hybrid']['mlip_same_disc']}", flush=True)
    _save(results, out)
    start = tr.start.positions
    for r_qm in qm_radii:
        if f"r_qm={r_qm:g}" in done["hybrid"]:
            results["hybrid"][f"r_qm={r_qm:g}"] = done["hybrid"][f"r_qm={r_qm:g}"]
            continue
        atoms_qm, centre = region(disc, start, r_qm)
        pot = blended(mlip, qm_level(), FixedPartitioner(atoms_qm), open_shell="lowest", periodic_regions=cylinder)
        t0 = time.perf_counter()
        trh = lattice_trapping(disc, HybridCalculator(pot), k_g, args.hybrid_step * k_g, bisections=1,
                               start_positions=start, fmax=0.01)
        row = trapping_row(trh, k_g, time.perf_counter() - t0)
        row.update(atoms=len(disc.reference), n_qm=int(len(atoms_qm)), centre=centre.tolist(),
                   **bond_levels(disc, trh, atoms_qm),
                   ramp=[(p.K / k_g, p.tip - disc.tip[0], p.n_broken)
                         for p in sorted(trh.up + trh.down + [trh.start], key=lambda q: q.K)])
        results["hybrid"][f"r_qm={r_qm:g}"] = row
        print(f"hybrid r_qm={r_qm:g} Å ({len(atoms_qm)} QM atoms): K-/K_G {row['K_minus']}, "
              f"K+/K_G {row['K_plus']} ({row['wall_s']:.0f} s)", flush=True)
        _save(results, out)
    snapshot = (disc, start, region(disc, start, qm_radii[-1])[0], args.qm_shape)

    disc_nve, tr_nve, mlip_nve = disc, tr, None
    if cylinder:                                    # the NVE's tip-following ball needs the longer front
        _, disc_nve = setup(mp, args.hybrid_radius, front)
        t0 = time.perf_counter()
        tr_nve = lattice_trapping(disc_nve, calc, k_g, step_rel * k_g, fmax=0.01)
        mlip_nve = trapping_row(tr_nve, k_g, time.perf_counter() - t0)
        mlip_nve.update(atoms=len(disc_nve.reference))
    # above the QM tip's K₊ (the largest region's) and below the MLIP's: the hybrid's tip may move, the MLIP's
    # stays
    k_plus = [results["hybrid"][f"r_qm={qm_radii[-1]:g}"]["K_plus"][1] * k_g, tr_nve.k_plus[1]]
    results["nve"] = nve_pair(mlip, disc_nve, tr_nve, k_g, args.nve_qm_radius, nve_steps, dt_fs=args.nve_dt,
                              qm_temperature=args.nve_qm_temperature, K=1.05 * min(k_plus))
    if mlip_nve:
        results["nve"]["mlip_ramp"] = mlip_nve
    _save(results, out)
    write_table(results, out)
    plots(results, out, *snapshot)


def nve_pair(mlip, disc, tr, k_g, r_qm, steps, dt_fs=0.5, qm_temperature=4000.0, K=None):
    """NVE at K (eV/Å^5/2; default 1.05 × the MLIP's K₊ of ``tr``), from the MLIP-relaxed state: MLIP alone,
    then the hybrid with a region that follows the tip (4-atom blocks, product partitions, r_qm + 1.5 Å
    buffer; GFN1-xTB at ``qm_temperature`` K)."""
    from continuum.crack_ramp import load_step
    from couplers.ase_calculator import HybridCalculator
    from couplers.blend import blended
    from couplers.crack_tip import CrackTipLocator, CrackTipPartitioner, block_units
    K = 1.05 * tr.k_plus[1] if K is None else K
    p = load_step(disc, tr.start.positions, tr.start.K, K, HybridCalculator(mlip), fmax=0.01)
    centroid = disc.reference.positions.mean(axis=0)
    dy = disc.y_plane - centroid[1]
    window = ((disc.tip[0] - centroid[0] - 12.0, disc.tip[0] - centroid[0] + 12.0), (dy - 7.0, dy + 7.0))
    lz = disc.reference.cell[2, 2]
    units = block_units(disc.reference.positions, (4.4, 4.7, lz / round(lz / 3.9)))
    part = CrackTipPartitioner(CrackTipLocator(window), r_qm, 1.5, units=units)
    # one unit for charges: bonds break and form as the tip moves (the first geometry's bonds are kept)
    hybrid = blended(mlip, qm_level(qm_temperature), part, scheme="product", max_buffer=8, open_shell="lowest",
                     molecules=[np.arange(len(disc.reference))])
    out = {"K_over_KG": K / k_g, "qm_temperature_K": qm_temperature, "mlip": nve(mlip, disc, p.positions, steps, dt_fs),
           "hybrid": nve(hybrid, disc, p.positions, steps, dt_fs, locator=part)}
    print(f"NVE at {K / k_g:.3f} K_G: " + str({m: {k: v for k, v in out[m].items() if k not in ("dE_meV", "tip_x_A")}
                                              for m in ("mlip", "hybrid")}), flush=True)
    return out


def _resumable(path: Path, results) -> dict:
    """The rows of an earlier results.json at ``path`` made with the same model constants, shape and settings
    (the model is compared by its stored constants, not by its path)."""
    if not path.exists():
        return {"mlip": {}, "hybrid": {}, "strip": None}
    old = json.loads(path.read_text())
    for key in ("qm_shape", "settings"):
        if old.get(key) != results[key]:
            raise SystemExit(f"--resume: {path} has {key} {old.get(key)!r}, this run {results[key]!r}; "
                             "use another --out")
    if old.get("properties") != json.loads(json.dumps(results["properties"])):
        raise SystemExit(f"--resume: {path} was made with other model constants (a retrained model?)")
    return {"mlip": old.get("mlip", {}), "strip": old.get("strip"),
            "hybrid": {k: v for k, v in old.get("hybrid", {}).items() if k != "mlip_same_disc"}}


def _save(results, out: Path):
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1, default=float))
    tmp.replace(out / "results.json")


def write_table(results, out: Path):
    p = results["properties"]
    lines = ["| quantity | MLIP | GFN1-xTB (label level) |", "|---|---|---|"]
    for k in ("a0_angstrom", "C11_GPa", "C12_GPa", "C44_GPa", "gamma111_J_m2"):
        lines.append(f"| {k} | {p['mlip'][k]:.3f} | {p['label_level'][k]:.3f} |")
    lines += ["", "| model | disc | atoms | K₋/K_G | K₊/K_G | J/G(K) on 3 domains, finite-strain J (linear-form J) |",
              "|---|---|---|---|---|---|"]
    for name, row in results["mlip"].items():
        j = row.get("J")
        jt = "—"
        if j:
            jt = (", ".join(f"{x:.3f}" for x in j["J_over_G"]) + " (" +
                  ", ".join(f"{x:.3f}" for x in j.get("J_linear_form_over_G", [])) + f") at {j['K_over_KG']:.3f} K_G; "
                  f"against G of the fitted K = {j['K_fit_over_KG']:.3f} K_G: "
                  + ", ".join(f"{x:.3f}" for x in j["J_over_G_fit"]))
        lines.append(f"| MLIP | {name} | {row['atoms']} | {_br(row['K_minus'])} | {_br(row['K_plus'])} | {jt} |")
    st = results.get("strip")
    if st:
        dom = ", ".join(f"{a:.1f}–{b:.1f}" for a, b in st["domains_A"])
        lines += ["", f"Strip {st['size']} ({st['atoms']} atoms, Y = {st['height_A']:.1f} Å) at uniaxial strain "
                  f"{st['strain']}: exact G = Y W(ε) = {st['G_J_m2']:.3f} J/m² = {st['G_over_2gamma']:.3f} × 2γ "
                  f"(linear elasticity would give {st['G_lin_over_G']:.3f} G); tip moved "
                  f"{st['tip_moved_A']:+.2f} Å.", "",
                  f"| J form | J/G on {dom} Å |", "|---|---|",
                  "| finite strain | " + ", ".join(f"{x:.3f}" for x in st["J_over_G"]) + " |",
                  "| linear | " + ", ".join(f"{x:.3f}" for x in st["J_linear_form_over_G"]) + " |"]
    lines += ["", f"Hybrid disc (QM-{results.get('qm_shape', 'ball')} radius table); the level of the bonds that broke "
              "at K₊ / healed at K₋:", "",
              "| model | atoms (QM) | K₋/K_G | K₊/K_G | broke at K₊ | healed at K₋ | wall (min) |",
              "|---|---|---|---|---|---|---|"]
    for name, row in results["hybrid"].items():
        lv = {k: ", ".join(sorted({b[2] for b in row[k]})) if k in row else "—"
              for k in ("K_plus_bonds", "K_minus_bonds")}
        lines.append(f"| {'MLIP' if name == 'mlip_same_disc' else 'hybrid ' + name} | {row.get('atoms', '—')} "
                     f"({row.get('n_qm', 0)}) | {_br(row['K_minus'])} | {_br(row['K_plus'])} | "
                     f"{lv['K_plus_bonds']} | {lv['K_minus_bonds']} | {row['wall_s'] / 60:.1f} |")
    nve_res = results.get("nve")
    if nve_res:
        dt = nve_res["mlip"].get("dt_fs", "?")
        ramp = nve_res.get("mlip_ramp")
        disc_txt = (f" on a disc of {ramp['atoms']} atoms (its MLIP K₋/K_G {_br(ramp['K_minus'])}, K₊/K_G "
                    f"{_br(ramp['K_plus'])})") if ramp else ""
        lines += ["", f"NVE at {nve_res['K_over_KG']:.3f} K_G{disc_txt}, 100 K, {dt} fs; the hybrid's ball follows "
                  f"the tip, GFN1-xTB at {nve_res.get('qm_temperature_K', 3000):g} K:", "",
                  "| model | steps | max abs(E − E0) (meV) | drift (meV) | tip moved (Å) | s/step | stopped by |",
                  "|---|---|---|---|---|---|---|"]
        for name in ("mlip", "hybrid"):
            r = nve_res[name]
            if "drift_meV" in r:
                lines.append(f"| {name} | {r['steps']} | {r['max_abs_dE_meV']:.2f} | {r['drift_meV']:+.2f} | "
                             f"{r['tip_moved_A']:.2f} | {r['s_per_step']:.2f} | {r.get('failure') or '—'} |")
            else:
                lines.append(f"| {name} | {r['steps']} | — | — | — | — | {r.get('failure')} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _label(name):
    return {"mlip_same_disc": "MLIP, hybrid's disc"}.get(name, ("MLIP " if name.startswith("R=") else "hybrid ") + name)


def _br(b):
    return f"{b[0]:.3f}–{b[1]:.3f}"


def plots(results, out: Path, disc, positions, qm_atoms, shape="ball"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in list(results["mlip"].items()) + [(k, v) for k, v in results["hybrid"].items() if "ramp" in v]:
        ramp = np.array(row["ramp"])
        ax.plot(ramp[:, 0], ramp[:, 1], "o-", ms=3, label=_label(name))
    ax.axvline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("K / K_G (MLIP)")
    ax.set_ylabel("tip − field centre (Å)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "tip_vs_K.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    k = np.linspace(0.4, 2.5, 200)
    ax.plot(k, k**2, "k-", lw=1, label="G(K) / 2γ (continuum)")
    for i, (name, row) in enumerate(list(results["mlip"].items()) + list(results["hybrid"].items())):
        c = f"C{i}"
        for b in (row["K_minus"], row["K_plus"]):
            ax.axvspan(b[0], b[1], color=c, alpha=0.3)
        ax.plot([], [], color=c, lw=6, alpha=0.3, label=_label(name))
        j = row.get("J")
        if j:
            g_over_2gamma = np.array(j["J_J_m2"]) / (2 * results["properties"]["mlip"]["gamma111_J_m2"])
            ax.plot([j["K_over_KG"]] * len(g_over_2gamma), g_over_2gamma, "x", color=c)
    ax.set_xlabel("K / K_G")
    ax.set_ylabel("G / 2γ   (x: J on three domains)")
    ax.set_title("lattice trapping: shaded K₋ and K₊ brackets", fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "energy_release.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 5))
    level = np.zeros(len(positions), int)
    level[disc.fixed] = 1
    level[qm_atoms] = 2
    for lv, colour, label in ((0, "0.6", "MLIP"), (1, "tab:blue", "MLIP, held on the K-field"),
                              (2, "tab:red", f"GFN1-xTB ({shape})")):
        m = level == lv
        ax.scatter(positions[m, 0], positions[m, 1], s=6, c=colour, label=label)
    ax.set_aspect("equal")
    ax.set_xlabel("x [11-2] (Å)")
    ax.set_ylabel("y [111] (Å)")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "snapshot.png", dpi=120)
    plt.close(fig)

    nve_res = results.get("nve")
    if nve_res and any("dE_meV" in nve_res[m] for m in ("mlip", "hybrid")):
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
        for m in ("mlip", "hybrid"):
            r = nve_res[m]
            if "dE_meV" in r:
                t = np.arange(len(r["dE_meV"])) * r["dt_fs"]
                a1.plot(t, r["dE_meV"], label={"mlip": "MLIP alone", "hybrid": "hybrid, region following the tip"}[m])
                a2.plot(t, r["tip_x_A"])
        a1.set_ylabel("E − E(0) (meV)")
        a1.legend(fontsize=7)
        a2.set_ylabel("tip advance (Å)")
        a2.set_xlabel("t (fs)")
        a1.set_title(f"NVE at {nve_res['K_over_KG']:.3f} K_G, 100 K", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "nve_energy.png", dpi=120)
        plt.close(fig)


if __name__ == "__main__":
    main()
