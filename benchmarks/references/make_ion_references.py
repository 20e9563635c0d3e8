"""Full-system HF/6-31G* references on frames of a hydronium ion in 17 waters, labelled once and stored.

The second system of the accuracy benchmark (``benchmarks/bench_accuracy.py``):
one where electrostatics matter more than in the neutral main-job cluster.
H3O+ with 17 waters (55 atoms, charge +1) is cut from the main job's start
structure (``examples/main/water30.xyz``: its central water and the 17 waters
nearest to it by centre of mass), the central water is protonated (the proton
on the lone-pair side away from the other atoms, 0.98 Å), and the cluster is
run for 1 ps of GFN2-xTB Langevin dynamics (ASE ``Langevin``, 0.5 fs, 300 K,
friction 0.02 /fs, seed 7, through ``couplers.ase_calculator.HybridCalculator``
of ``XTBPotential``, charge +1). Frames at 400, 600, 800 and 1000 fs are kept
(the nearest frame, 25 fs apart, where every oxygen has a clean set of O-H
bonds, i.e. no shared proton). Each kept frame is stored with its atoms
reordered: the hydronium first (O, H, H, H), then each water (O, H, H), so
that molecule 0 is the ion and ASE's TIP3P sees O, H, H triples.

* ``ion_frames.extxyz`` - the geometries (``info``: ``time_fs``, ``charge=1``),
  fixed once made (tblite's threaded SCF is not bitwise reproducible, and
  labels are keyed by geometry);
* ``ion_hf631gs.extxyz`` (+ ledger) - HF/6-31G* energies (eV) and forces
  (eV/Å) of those frames, charge +1, conv_tol 1e-9 Eh, through the
  labelling pipeline (:func:`hybrid.labelling.label`: records written as they
  finish, a killed job resumes). About 2-4 min per frame on 2 cores.

    python benchmarks/references/make_ion_references.py            # frames (once) and labels
    python benchmarks/references/make_ion_references.py --frames-only
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FRAMES = HERE / "ion_frames.extxyz"
LABELS = HERE / "ion_hf631gs.extxyz"
TIMES_FS = (400, 600, 800, 1000)
N_WATERS = 17          # waters around the ion
DT_FS, SAVE_EVERY = 0.5, 50          # frames every 25 fs


def ion_units(numbers, positions):
    """Molecules of one frame by covalent radii, and the formal charge of each (n_H − 2 n_O)."""
    from couplers.partition import find_molecules
    from hybrid.system import AtomicSystem
    mols = find_molecules(AtomicSystem(numbers, positions))
    q = [int((numbers[m] == 1).sum()) - 2 * int((numbers[m] == 8).sum()) for m in mols]
    return mols, q


def ordered(numbers, positions):
    """Atom order: the ion (O, then its H), then each water (O, H, H); None if the frame has a
    unit other than one H3O+ and waters (a shared proton, a dissociated water)."""
    mols, q = ion_units(numbers, positions)
    sizes = sorted(len(m) for m in mols)
    if sorted(q) != [0] * (len(mols) - 1) + [1] or sizes != [3] * (len(mols) - 1) + [4]:
        return None
    ion = mols[q.index(1)]
    order = []
    for m in [ion] + [m for m, c in zip(mols, q) if c == 0]:
        order += [int(a) for a in m if numbers[a] == 8] + [int(a) for a in m if numbers[a] == 1]
    return np.array(order)


def start_structure():
    """H3O+ + 17 waters (Å) cut from examples/main/water30.xyz (see module docstring)."""
    from hybrid.md.structure import load_structure
    st = load_structure(ROOT / "examples" / "main" / "water30.xyz")
    s, mols = st.system, st.molecules
    com = np.array([np.average(s.positions[m], axis=0, weights=st.masses[m]) for m in mols])
    near = np.argsort(np.linalg.norm(com - com[0], axis=1))[:N_WATERS + 1]      # the centre first
    idx = np.concatenate([mols[k] for k in near])
    numbers, pos = s.numbers[idx], s.positions[idx]
    o, h1, h2 = pos[0], pos[1], pos[2]
    u1, u2 = (h1 - o) / np.linalg.norm(h1 - o), (h2 - o) / np.linalg.norm(h2 - o)
    bis = -(u1 + u2) / np.linalg.norm(u1 + u2)
    perp = np.cross(u1, u2) / np.linalg.norm(np.cross(u1, u2))
    best = None
    for sign in (1, -1):                 # the lone-pair side with more room
        h = o + 0.98 * (0.45 * bis + 0.89 * sign * perp) / np.linalg.norm(0.45 * bis + 0.89 * sign * perp)
        room = np.min(np.linalg.norm(pos[3:] - h, axis=1))
        if best is None or room > best[0]:
            best = (room, h)
    numbers = np.concatenate([numbers[:3], [1], numbers[3:]])
    pos = np.vstack([pos[:3], best[1], pos[3:]])
    return numbers, pos


def frames():
    """The reference geometries: read from FRAMES, or made once by GFN2-xTB Langevin dynamics."""
    import ase.io

    from hybrid.system import AtomicSystem
    if FRAMES.exists():
        return [AtomicSystem.from_ase(a) for a in ase.io.read(FRAMES, ":")]
    from ase import Atoms
    from ase import units as u
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.optimize import BFGS

    from couplers.ase_calculator import HybridCalculator
    from hybrid.ml.adapters import XTBPotential

    numbers, pos = start_structure()
    atoms = Atoms(numbers=numbers, positions=pos)
    atoms.info.update(charge=1, multiplicity=1)
    atoms.calc = HybridCalculator(XTBPotential("GFN2-xTB"), charge=1, multiplicity=1)
    BFGS(atoms, logfile=None).run(fmax=0.2, steps=30)          # relax the added proton's surroundings
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(7))
    md = Langevin(atoms, DT_FS * u.fs, temperature_K=300, friction=0.02 / u.fs, rng=np.random.default_rng(7))
    saved = {}

    def keep():
        t = round(md.nsteps * DT_FS)
        saved[t] = atoms.positions.copy()
    md.attach(keep, interval=SAVE_EVERY)
    md.run(int(max(TIMES_FS) / DT_FS))
    images = []
    for t in TIMES_FS:
        for cand in sorted(saved, key=lambda c: (abs(c - t), c)):
            order = ordered(numbers, saved[cand])
            if order is not None and all(a.info["time_fs"] != cand for a in images):
                a = Atoms(numbers=numbers[order], positions=saved[cand][order])
                a.info.update(charge=1, multiplicity=1, time_fs=cand)
                images.append(a)
                break
        else:
            raise RuntimeError(f"no frame near {t} fs without a shared proton")
    ase.io.write(FRAMES, images, format="extxyz")
    print(f"wrote {FRAMES.name}: frames at {[a.info['time_fs'] for a in images]} fs")
    return [AtomicSystem.from_ase(a) for a in images]


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    systems = frames()
    if "--frames-only" in argv:
        return
    import ase.io

    from hybrid.labelling import label
    from hybrid.qm import PySCFPotential
    ids = [int(a.info["time_fs"]) for a in ase.io.read(FRAMES, ":")]
    summary = label(systems, PySCFPotential("HF", "6-31g*", conv_tol=1e-9), LABELS, ids=ids,
                    scheduler="synchronous", level_of_theory="HF/6-31G*")
    print(summary)


if __name__ == "__main__":
    main()
