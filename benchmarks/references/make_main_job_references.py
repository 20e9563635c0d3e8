"""Full-system HF/6-31G* references on frames of the main job, labelled once and stored.

The accuracy benchmark compares every coupled model with the calculation it
approximates: HF/6-31G* (the main job's QM level) on all 90 atoms of the
30-water cluster. Each such energy+gradient takes ~8 min on 2 cores, so the
references are computed once, through the labelling pipeline
(:func:`hybrid.labelling.label`: records written as they finish, a killed job
resumes), and stored beside this script:

* ``main_job_pairs_frames.extxyz`` - the geometries: frames of the main job's NVE
  trajectory (``hybrid run examples/main/config.toml``: density-fitted
  HF/6-31G* on the pairs of the central water with its first shell, in Δ-ML)
  at steps 150, 300, 450 and 600, fixed once made;
* ``main_job_pairs_hf631gs.extxyz`` (+ ledger) - HF/6-31G* (conventional, not
  density-fitted) energies (eV) and forces (eV/Å) of those frames, conv_tol
  1e-9 Eh as in the main job;
* ``main_job_dml_frames.extxyz``, ``main_job_dml_hf631gs.extxyz`` - the same for
  the previous main job (``--job centre``: HF on the central water with a
  2.0-2.9 Å buffer in Δ-ML; stored, not remade);
* ``main_job_frames.extxyz``, ``main_job_hf631gs.extxyz`` - the same for the
  main job before it became Δ-ML on every atom (``--job three_layers``: the
  trajectory of ``examples/main/three_layers.toml`` as it was then, MLIP
  outside; stored, not remade).

    hybrid run examples/main/config.toml        # once, for the trajectory
    python benchmarks/references/make_main_job_references.py
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
JOBS = {"main": (HERE / "main_job_pairs_frames.extxyz", HERE / "main_job_pairs_hf631gs.extxyz", "output"),
        "centre": (HERE / "main_job_dml_frames.extxyz", HERE / "main_job_dml_hf631gs.extxyz", None),
        "three_layers": (HERE / "main_job_frames.extxyz", HERE / "main_job_hf631gs.extxyz", "output_three_layers")}
STEPS = (150, 300, 450, 600)


def frames(job: str = "main"):
    """The reference geometries of ``job``: read from its frame file, or cut from its trajectory once."""
    path, _, output = JOBS[job]
    import ase.io
    import numpy as np

    from hybrid.md.structure import load_structure
    from hybrid.system import AtomicSystem
    if path.exists():
        return [AtomicSystem.from_ase(a) for a in ase.io.read(path, ":")]
    if output is None:
        raise FileNotFoundError(f"{path} is missing: the frames of job {job!r} are stored, not remade (that job's "
                                "configuration is no longer in the repository)")
    import MDAnalysis as mda
    out = ROOT / "examples" / "main" / output
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
    ase.io.write(path, images, format="extxyz")
    return systems


def main() -> None:
    import argparse

    from hybrid.labelling import label
    from hybrid.qm import PySCFPotential
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--job", choices=sorted(JOBS), default="main")
    job = ap.parse_args().job
    systems = frames(job)
    summary = label(systems, PySCFPotential("HF", "6-31g*", conv_tol=1e-9), JOBS[job][1], ids=list(STEPS),
                    scheduler="synchronous", level_of_theory="HF/6-31G*")
    print(summary)


if __name__ == "__main__":
    main()
