"""Full-system HF/6-31G* references on frames of the main job, labelled once and stored.

The accuracy benchmark compares every coupled model with the calculation it
approximates: HF/6-31G* (the main job's QM level) on all 90 atoms of the
30-water cluster. Each such energy+gradient takes ~8 min on 2 cores, so the
references are computed once, through the labelling pipeline
(:func:`hybrid.labelling.label`: records written as they finish, a killed job
resumes), and stored beside this script:

* ``main_job_frames.extxyz`` - the geometries: frames of the main job's NVE
  trajectory (``hybrid run examples/main/config.toml``) at steps 150, 300,
  450 and 600, fixed once made;
* ``main_job_hf631gs.extxyz`` (+ ledger) - HF/6-31G* energies (eV) and forces
  (eV/Å) of those frames, conv_tol 1e-9 Eh as in the main job.

    hybrid run examples/main/config.toml        # once, for the trajectory
    python benchmarks/references/make_main_job_references.py
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FRAMES = HERE / "main_job_frames.extxyz"
LABELS = HERE / "main_job_hf631gs.extxyz"
STEPS = (150, 300, 450, 600)


def frames():
    """The reference geometries: read from FRAMES, or cut from the main job's trajectory once."""
    import ase.io
    import numpy as np

    from hybrid.md.structure import load_structure
    from hybrid.system import AtomicSystem
    if FRAMES.exists():
        return [AtomicSystem.from_ase(a) for a in ase.io.read(FRAMES, ":")]
    import MDAnalysis as mda
    out = ROOT / "examples" / "main" / "output"
    u = mda.Universe(str(out / "topology.pdb"), str(out / "trajectory.dcd"))
    numbers = load_structure(ROOT / "examples" / "main" / "water30.xyz").system.numbers
    every = 10                                   # the main job's trajectory_interval
    systems = []
    for step in STEPS:
        u.trajectory[step // every]
        systems.append(AtomicSystem(numbers, np.array(u.atoms.positions, float)))
    images = [s.to_ase() for s in systems]
    for a, step in zip(images, STEPS):
        a.info["main_job_step"] = step
    ase.io.write(FRAMES, images, format="extxyz")
    return systems


def main() -> None:
    from hybrid.labelling import label
    from hybrid.qm import PySCFPotential
    systems = frames()
    summary = label(systems, PySCFPotential("HF", "6-31g*", conv_tol=1e-9), LABELS, ids=list(STEPS),
                    scheduler="synchronous", level_of_theory="HF/6-31G*")
    print(summary)


if __name__ == "__main__":
    main()
