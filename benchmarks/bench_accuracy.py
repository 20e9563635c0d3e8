"""Accuracy against full QM: force and energy errors per region, beside cost per call, of the main
job's hybrid, each of its levels alone, region-radius variants and peers (QM in vacuum, QM in TIP3P
point charges, ASE SimpleQMMM and EIQMMM with TIP3P).

Reference: HF/6-31G* (PySCF, conv_tol 1e-9 Eh) on every atom of each frame, labelled once through
the labelling pipeline and stored in ``benchmarks/references/`` (made by the ``make_*_references.py``
scripts there; this script never recomputes them):

* ``main``: the main job's 30-water cluster (``hybrid run examples/main/config.toml``), frames at
  steps 150, 300, 450, 600 (``main_job_pairs_frames.extxyz``, labels ``main_job_pairs_hf631gs.extxyz``);
* ``main-centre``: the same cluster, frames at the same steps of the previous main job (HF on the central
  water with a 2.0-2.9 Å buffer in Δ-ML; ``main_job_dml_frames.extxyz``, ``main_job_dml_hf631gs.extxyz``);
* ``main-3l``: the same cluster, frames at the same steps of the main job as it was before it put Δ-ML on
  every atom (the three-layer job, MLIP outside; ``main_job_frames.extxyz``, ``main_job_hf631gs.extxyz``);
* ``ion``: H3O+ in 17 waters (55 atoms, charge +1), frames of GFN2-xTB Langevin dynamics at
  400-1000 fs (``ion_frames.extxyz``, labels ``ion_hf631gs.extxyz``); the ion is molecule 0.

Models, each evaluated on every labelled frame (the centre is molecule 0 in both systems):

* hybrid: the main job's model exactly as ``hybrid run examples/main/config.toml`` builds it
  (:func:`hybrid.config.load_config` + :func:`hybrid.md.levels.build_model`; structure from
  :func:`hybrid.md.structure.load_structure`): Δ-ML (GFN2-xTB + correction) on every atom, density-fitted
  HF/6-31G* on the central molecule and its first shell: every molecule within 3.2 Å (centre-of-mass
  distance) a member of weight 1, a 3.2-3.6 Å buffer (quintic switch), expansion of order 1 about the
  central molecule (one HF call on it and one on it with each member: HF on every pair of the centre with
  a first-shell molecule). For the ion the same levels and region around the ion, on a structure whose
  formal charges (+1 on the hydronium's O, :mod:`couplers.charges`) give every region holding the ion
  the charge +1;
* the same with conventional HF (no density fitting: PySCF's default auxiliary basis moves forces on a water
  dimer by up to 1.2e-3 eV/Å and costs 2.7x less), with expansion order 2 (trimers too) and with product
  partitions (what order 1 truncates);
* the previous main job (HF on the central molecule with a 2.0-2.9 Å buffer, conventional HF, order 1), and
  the QM region of the central molecule alone (2.0+0.5 Å: no other water enters it);
* electrostatic embedding (water only): the main job, and its variant with the central water alone as the
  QM region, with ``embed_charges`` TIP3P (:mod:`couplers.embedding`): HF/6-31G* region calls in the
  TIP3P charges of every atom outside the region, the same charges' Coulomb term on the Δ-ML side;
* region radius: the main job's levels with the QM region every molecule within R (``r_inner`` R,
  ``width`` 0, product scheme: one density-fitted HF call on the whole region), edited in the loaded
  configuration before ``build_model``;
* three layers: ``examples/main/three_layers.toml`` (the HF/6-31G* MLIP on every atom, Δ-ML within
  3.0+0.5 Å, HF/6-31G* within 2.0+0.5 Å), and the same with the Δ-ML region's ``r_inner`` set to R
  (width 0): the MLIP (cutoff 4.5 Å) acts on the QM atoms through E_MLIP(all) − E_MLIP(Δ-ML region)
  until that region holds every atom within about two cutoffs;
* each level alone on all atoms: the MLIP, Δ-ML (xTB + correction) and GFN2-xTB (the Δ-ML level's
  baseline), the very objects the hybrids' levels are built from;
* QM on the central molecule alone, in vacuum and in TIP3P point charges of every other water
  (O −0.834, H +0.417 e; PySCF ``qmmm`` through ``AtomicSystem.ext_charges``);
* ASE ``SimpleQMMM`` (QM: ``HybridCalculator(PySCFPotential(...))``, MM: ``ase.calculators.tip3p.TIP3P``
  for the whole system and the QM subsystem; needs O, H, H triples, so not for the ion) and ASE
  ``EIQMMM`` (TIP3P as MM, Lennard-Jones O-O of TIP3P as the explicit interaction, the MM charges
  embedded in the QM calculation through :class:`EmbeddableHybridCalculator`, which gives
  ``HybridCalculator`` ASE's ``embed(charges)`` interface).

ASE's TIP3P is rigid water: it has no intramolecular terms, so the peers' forces and energies on MM
atoms miss the bond and angle terms (their MM-region errors say so, they are not a fair test of
TIP3P); QM in vacuum or in point charges describes only the QM atoms (no energy of the whole
system, no forces elsewhere: "—").

Errors against the reference, per region of each frame: the atoms of the central molecule (the QM
atoms), the QM pairs (other molecules with a QM weight > 0 in the main job's region: centre-of-mass
distance < 3.6 Å, the first shell), the shell (the other molecules within 5.0 Å), the rest; force
RMSE = RMS over the Cartesian components of all atoms of the region, pooled over frames (eV/Å).
Energies: relative, since the absolute zeros of xTB and the TIP3P peers differ from HF's: RMS over
frames of (E − E_ref) − mean(E − E_ref) (eV); the mean offset mean(E − E_ref) is shown for models on
the HF/6-31G* energy scale (the hybrid, its variants, the MLIP and Δ-ML).

Cost: median wall time of one energy + forces evaluation, measured side by side in this run, after
one warm-up evaluation of each model (on the first frame); each model then runs over the frames in
order (``--passes`` times), so a warm-started SCF starts from the previous frame's density, frames
75 fs apart for the main job: the QM layers do more SCF cycles here than in MD (0.5 fs steps).
PySCF, torch and BLAS run on ``--threads`` threads (default 1).

Outputs: a markdown table on stdout and in ``benchmarks/results/accuracy_<system>.md``, and a plot
(QM-atom force RMSE against s per call) in ``benchmarks/results/accuracy_<system>.png``
(``main`` writes ``accuracy_main_job.*``, ``main-centre`` ``accuracy_main_job_centre_frames.*``, ``main-3l``
``accuracy_main_job_three_layer_frames.*``).

    python benchmarks/bench_accuracy.py                       # every system whose labels exist
    python benchmarks/bench_accuracy.py --system main --references /elsewhere/benchmarks/references

``--references DIR`` (or the environment variable ``BENCH_ACCURACY_REFERENCES``) reads the label files
from DIR instead of ``benchmarks/references/`` (e.g. while a labelling job is still writing them
elsewhere); the frames always come from ``benchmarks/references/``. Labels are read with
:func:`hybrid.labelling.load_labels`, which returns finished records only.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REFERENCES = HERE / "references"
RESULTS = HERE / "results"
CONFIG = ROOT / "examples" / "main" / "config.toml"
THREE_LAYERS = ROOT / "examples" / "main" / "three_layers.toml"
HF = dict(method="HF", basis="6-31g*", conv_tol=1e-9)
TIP3P_CHARGES = {8: -0.834, 1: 0.417}
REGIONS = ("QM atoms", "QM pairs", "shell", "rest", "all")
SHELL = 5.0              # Å, centre-of-mass distance of the "shell" region of the tables

SYSTEMS = {
    "main": dict(frames="main_job_pairs_frames.extxyz", labels="main_job_pairs_hf631gs.extxyz",
                 id_key="main_job_step", out="accuracy_main_job",
                 title="main job: 30 waters (90 atoms), central water and its first-shell pairs in HF", frame_unit="step"),
    "main-centre": dict(frames="main_job_dml_frames.extxyz", labels="main_job_dml_hf631gs.extxyz",
                        id_key="main_job_step", out="accuracy_main_job_centre_frames",
                        title="30 waters (90 atoms), frames of the previous main job (HF on the central water)",
                        frame_unit="step"),
    "main-3l": dict(frames="main_job_frames.extxyz", labels="main_job_hf631gs.extxyz", id_key="main_job_step",
                 out="accuracy_main_job_three_layer_frames",
                 title="30 waters (90 atoms), frames of the three-layer job, central water as QM region",
                 frame_unit="step"),
    "ion": dict(frames="ion_frames.extxyz", labels="ion_hf631gs.extxyz", id_key="time_fs",
                out="accuracy_ion", title="H3O+ in 17 waters (55 atoms, charge +1), the ion as QM region",
                frame_unit="fs"),
}
PREVIOUS = {"r_inner": 2.0, "width": 0.9, "max_buffer": 6, "scheme": "expansion", "order": 1}   # the last main job
RADII = (2.9, 3.15)      # Å, r_inner of the QM-region-radius variants (sharp: every molecule within R)
DML_RADII = (4.5, 6.0)   # Å, the Δ-ML region's r_inner of the three-layer variants (three_layers.toml: 3.0)


# -- references -------------------------------------------------------------------------------------

@dataclasses.dataclass
class Reference:
    id: int
    system: object          # AtomicSystem (Å, charge from the frame file)
    energy: float           # eV
    forces: np.ndarray      # (N, 3) eV/Å


def load_references(name: str, labels_dir: Path) -> tuple[list, int]:
    """The labelled frames of system ``name`` ([Reference], sorted by id) and the number of frames stored.

    Geometries (and charge) come from the frame file in ``benchmarks/references``, energies and forces
    from the label file in ``labels_dir``; the two must agree on every position (1e-6 Å)."""
    import ase.io

    from hybrid.labelling import load_labels
    from hybrid.system import AtomicSystem
    spec = SYSTEMS[name]
    images = ase.io.read(REFERENCES / spec["frames"], ":")
    frames = {int(a.info[spec["id_key"]]): AtomicSystem.from_ase(a) for a in images}
    path = Path(labels_dir) / spec["labels"]
    if not path.exists():
        return [], len(frames)
    refs = []
    for lab in load_labels(path):
        i = int(lab.info["config_id"])
        system = frames[i]
        if np.abs(lab.system.positions - system.positions).max() > 1e-6:
            raise RuntimeError(f"{path.name}: frame {i} is not the geometry of {spec['frames']}")
        refs.append(Reference(i, system, float(lab.energy), np.asarray(lab.forces, float)))
    return refs, len(frames)


def load_main_config():
    from hybrid.config import load_config
    return load_config(CONFIG)


def load_three_layer_config():
    from hybrid.config import load_config
    return load_config(THREE_LAYERS)


def structure_for(name: str, cfg):
    """The Structure the hybrid is built on: the main job's own (``[structure]`` of its config), or for the
    ion the first stored frame with formal charges (n_H − 2 n_O on each molecule's O: +1 on the hydronium)."""
    from hybrid.md.structure import load_structure
    if name.startswith("main"):
        return load_structure(cfg["structure"]["file"])
    st = load_structure(REFERENCES / SYSTEMS[name]["frames"], charge=1)
    q = np.zeros(len(st.system), int)
    for m in st.molecules:
        o = [a for a in m if st.system.numbers[a] == 8]
        q[o[0]] = int((st.system.numbers[m] == 1).sum()) - 2 * len(o)
    assert q[0] == 1 and q.sum() == 1, "the ion must be molecule 0"
    return dataclasses.replace(st, charges=q)


def region_masks(cfg, structure, system) -> dict:
    """{region name: (N,) bool} of one frame (see module doc): the central molecule, the other molecules with a
    weight > 0 in the main job's QM region (the QM pairs), the other molecules within SHELL Å (centre of mass),
    the rest."""
    from hybrid.md.levels import partitioner
    qm = next(lv for lv in cfg["levels"] if lv["name"] == "qm")["region"]
    w_qm = partitioner(qm, 2, structure).weights(system)
    w_shell = partitioner({**qm, "r_inner": SHELL, "width": 0.0}, 2, structure).weights(system)
    n = len(system)
    centre = np.zeros(n, bool)
    centre[structure.molecules[0]] = True
    buffer, shell = np.zeros(n, bool), np.zeros(n, bool)
    for u, w in zip(w_qm.units, w_qm.w):
        buffer[u] |= w > 0
    for u, w in zip(w_shell.units, w_shell.w):
        shell[u] |= w > 0
    buffer &= ~centre
    shell &= ~(centre | buffer)
    return {"QM atoms": centre, "QM pairs": buffer, "shell": shell, "rest": ~(centre | buffer | shell),
            "all": np.ones(n, bool)}


# -- models ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class Candidate:
    """A model under test: ``run(system) -> (energy eV or None, forces (N, 3) eV/Å, NaN where not described)``."""
    name: str
    kind: str                        # "hybrid", "radius", "level", "peer"
    run: object
    same_scale: bool = False         # on the HF/6-31G* energy scale: the mean offset means something
    qm_molecules: object = None      # callable() -> number of molecules in the QM calls of the last evaluation
    note: str = ""


def edited_model(cfg, structure, options=None, **regions):
    """build_model on a copy of ``cfg`` whose level regions are updated: ``edited_model(cfg, st, qm={"order": 2})``;
    ``options={"qm": {"density_fit": True}}`` updates a level's ``options`` likewise.
    Every level runs in this process (``process`` off): costs are compared on one thread, side by side."""
    from hybrid.md.levels import build_model
    cfg = copy.deepcopy(cfg)
    for lv in cfg["levels"]:
        lv["process"] = False
    levels = {lv["name"]: lv for lv in cfg["levels"]}
    for name, keys in (options or {}).items():
        levels[name]["options"] = {**levels[name].get("options", {}), **keys}
    for name, keys in regions.items():
        levels[name]["region"].update(keys)
    return build_model(cfg, structure)


def _hybrid_candidate(name, kind, model, note=""):
    qm_blend = model.potential.terms[-1][1]

    def run(system):
        res = model.potential.compute(system)
        return res.energy, res.forces

    def qm_molecules():
        W = qm_blend.last_weights
        return len(W.inner) + len(W.buffer)
    return Candidate(name, kind, run, same_scale=True, qm_molecules=qm_molecules, note=note)


def _level_candidate(name, pot, same_scale, note=""):
    def run(system):
        res = pot.compute(system)
        return res.energy, res.forces
    return Candidate(name, "level", run, same_scale=same_scale, qm_molecules=lambda: 0, note=note)


def qm_alone(structure, embedded: bool) -> Candidate:
    """HF/6-31G* on molecule 0 alone, in vacuum or in TIP3P point charges of every other atom."""
    from hybrid.qm import PySCFPotential
    from hybrid.system import AtomicSystem
    qm = np.asarray(structure.molecules[0])
    charge = int(structure.charges[qm].sum()) if structure.charges is not None else 0
    pot = PySCFPotential(**HF)

    def run(system):
        rest = np.setdiff1d(np.arange(len(system)), qm)
        kw = {}
        if embedded:
            kw = dict(ext_charges=np.array([TIP3P_CHARGES[int(z)] for z in system.numbers[rest]]),
                      ext_positions=system.positions[rest])
        res = pot.compute(AtomicSystem(system.numbers[qm], system.positions[qm], charge=charge, **kw))
        forces = np.full((len(system), 3), np.nan)
        forces[qm] = res.forces
        return None, forces
    name = "HF/6-31G* QM molecule in TIP3P point charges" if embedded else "HF/6-31G* QM molecule in vacuum"
    return Candidate(name, "peer", run, qm_molecules=lambda: 1)


def embeddable_calculator():
    """The class :class:`EmbeddableHybridCalculator` (defined lazily: ASE is imported on use)."""
    from ase.calculators.calculator import Calculator, all_changes

    from couplers.ase_calculator import HybridCalculator
    from hybrid.system import AtomicSystem

    class PointCharges:
        """What ASE's ``Embedding`` expects from ``qmcalc.embed(charges)``: positions it updates, forces it reads."""

        def __init__(self, calc, charges):
            self.calc, self.charges, self.positions = calc, np.asarray(charges, float), None

        def set_positions(self, positions, com_pv=None):
            self.positions = np.array(positions, float)
            self.calc.reset()                      # the QM energy depends on the charges' positions

        def get_forces(self, calc):
            return np.array(calc.result.ext_forces)

    class EmbeddableHybridCalculator(HybridCalculator):
        """``HybridCalculator`` with ASE's point-charge embedding interface (EIQMMM): ``embed(charges)``
        returns an object whose ``set_positions`` places the charges; they reach the potential as the
        AtomicSystem's ``ext_charges``, and their forces (``Result.ext_forces``) go back to the MM atoms."""

        def __init__(self, potential, **kwargs):
            super().__init__(potential, **kwargs)
            self.pc = None

        def embed(self, charges, **kwargs):
            self.pc = PointCharges(self, charges)
            return self.pc

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            Calculator.calculate(self, atoms, properties, system_changes)
            system = AtomicSystem.from_ase(self.atoms, self.charge, self.multiplicity)
            if self.pc is not None and self.pc.positions is not None:
                system = dataclasses.replace(system, ext_charges=self.pc.charges, ext_positions=self.pc.positions)
            res = self.potential.compute(system)
            self.result = res
            self.results["energy"] = self.results["free_energy"] = res.energy
            self.results["forces"] = res.forces

    return EmbeddableHybridCalculator


def ase_peer(structure, kind: str) -> Candidate:
    """ASE SimpleQMMM or EIQMMM: HF/6-31G* on molecule 0, rigid TIP3P (ASE) on the rest."""
    from ase import Atoms
    from ase.calculators.qmmm import EIQMMM, LJInteractions, SimpleQMMM
    from ase.calculators.tip3p import TIP3P, epsilon0, sigma0

    from couplers.ase_calculator import HybridCalculator
    from hybrid.qm import PySCFPotential
    qm = [int(a) for a in structure.molecules[0]]
    charge = int(structure.charges[qm].sum()) if structure.charges is not None else 0
    rc = 1000.0          # Å: no cutoff in a cluster (ASE's TIP3P default is 5 Å)
    if kind == "SimpleQMMM":
        calc = SimpleQMMM(qm, HybridCalculator(PySCFPotential(**HF), charge=charge), TIP3P(rc=rc), TIP3P(rc=rc))
        name = "ASE SimpleQMMM: HF/6-31G* QM molecule, TIP3P"
    else:
        qmcalc = embeddable_calculator()(PySCFPotential(**HF), charge=charge)
        calc = EIQMMM(qm, qmcalc, TIP3P(rc=rc), LJInteractions({("O", "O"): (epsilon0, sigma0)}))
        name = "ASE EIQMMM: HF/6-31G* QM molecule in TIP3P charges, LJ"
    atoms = Atoms(numbers=structure.system.numbers, positions=structure.system.positions)
    atoms.calc = calc

    def run(system):
        atoms.positions = system.positions
        return float(atoms.get_potential_energy()), np.array(atoms.get_forces())
    return Candidate(name, "peer", run, qm_molecules=lambda: 1, note="rigid TIP3P")


def build_models(name: str, cfg, three, structure, radii=RADII, dml_radii=DML_RADII) -> tuple[list, list]:
    """([Candidate], [(model name, why it was not run)]) for system ``name``; ``cfg`` the main job's loaded
    configuration, ``three`` its three-layer variant's (examples/main/three_layers.toml)."""
    from hybrid.md.levels import bare
    skipped = []
    qm = next(lv for lv in cfg["levels"] if lv["name"] == "qm")["region"]
    buf = f"HF {qm['r_inner']}+{qm['width']} Å"
    main = edited_model(cfg, structure)
    conventional = {"qm": {"density_fit": False}}
    models = [_hybrid_candidate(f"hybrid (main job: Δ-ML on all atoms, {buf} pairs, expansion order {qm['order']}, "
                                "density-fitted HF)", "hybrid", main)]
    models.append(_hybrid_candidate("the same, conventional HF", "scheme",
                                    edited_model(cfg, structure, options=conventional)))
    for order in (2,):
        models.append(_hybrid_candidate(f"the same, expansion order {order}", "scheme",
                                        edited_model(cfg, structure, qm={"order": order})))
    models.append(_hybrid_candidate("the same, product partitions", "scheme",
                                    edited_model(cfg, structure, qm={"scheme": "product"})))
    models.append(_hybrid_candidate(f"the previous main job: HF {PREVIOUS['r_inner']}+{PREVIOUS['width']} Å, "
                                    "expansion order 1, conventional HF", "previous",
                                    edited_model(cfg, structure, options=conventional, qm=PREVIOUS)))
    models.append(_hybrid_candidate("Δ-ML on all atoms, HF 2.0+0.5 Å (the central water alone)", "previous",
                                    edited_model(cfg, structure, qm={"r_inner": 2.0, "width": 0.5,
                                                                     "scheme": "product"})))
    dml = copy.deepcopy(bare(main.potential.terms[0][1]))
    if all(len(m) == 3 for m in structure.molecules):
        tip3p = {"embed_charges": {"O": TIP3P_CHARGES[8], "H": TIP3P_CHARGES[1]}, "embed_sigma": 0.0}
        models.append(_hybrid_candidate("the main job with electrostatic embedding (TIP3P charges)", "embedding",
                                        edited_model(cfg, structure, qm=tip3p)))
        models.append(_hybrid_candidate("Δ-ML on all atoms, HF 2.0+0.5 Å, electrostatic embedding (TIP3P charges)",
                                        "embedding", edited_model(cfg, structure, qm={"r_inner": 2.0, "width": 0.5,
                                                                                      "scheme": "product", **tip3p})))
    else:
        skipped.append(("electrostatic embedding", "TIP3P has no charges for H3O+, and the embedding charges of every "
                        "molecule must add up to its formal charge"))
    for r in radii:
        models.append(_hybrid_candidate(f"Δ-ML on all atoms, HF on every molecule within {r} Å (sharp)", "radius",
                                        edited_model(cfg, structure, qm={"r_inner": float(r), "width": 0.0,
                                                                         "scheme": "product"})))
    three_model = edited_model(three, structure)
    models.append(_hybrid_candidate("three layers (three_layers.toml: MLIP; Δ-ML 3.0+0.5 Å; HF 2.0+0.5 Å)",
                                    "three", three_model))
    for r in dml_radii:
        models.append(_hybrid_candidate(f"three layers, Δ-ML r_inner {r} Å sharp", "three",
                                        edited_model(three, structure, dml={"r_inner": float(r), "width": 0.0,
                                                                           "scheme": "product"})))
    mlip = copy.deepcopy(bare(three_model.potential.terms[0][1]))
    xtb = copy.deepcopy(dml.baseline)
    models += [_level_candidate("MLIP (HF/6-31G*) alone", mlip, True),
               _level_candidate("Δ-ML (xTB + correction) alone", dml, True),
               _level_candidate("GFN2-xTB alone", xtb, False)]
    models += [qm_alone(structure, False), qm_alone(structure, True)]
    if all(len(m) == 3 for m in structure.molecules):
        models.append(ase_peer(structure, "SimpleQMMM"))
    else:
        skipped.append(("ASE SimpleQMMM", "its MM calculator (ASE's TIP3P) is also evaluated on the QM "
                        "subsystem, and TIP3P has no parameters for H3O+ (it takes O, H, H triples only)"))
    models.append(ase_peer(structure, "EIQMMM"))
    return models, skipped


# -- evaluation -----------------------------------------------------------------------------------

def evaluate(models, refs, passes: int = 2) -> dict:
    """{model name: {"E": [eV or None per frame], "F": [(N, 3)], "t": [s], "qm": [molecules]}}: one warm-up
    evaluation per model, then ``passes`` runs over the frames (cheap models) in turn, side by side."""
    out = {m.name: {"E": [], "F": [], "t": [], "qm": []} for m in models}
    for m in models:
        m.run(refs[0].system)                                  # warm-up: builds, first SCF, torch
    for p in range(passes):
        for m in models:
            rec = out[m.name]
            if p > 0 and np.median(rec["t"]) > 5.0:            # the costly ones: one pass is enough
                continue
            for ref in refs:
                t0 = time.perf_counter()
                e, f = m.run(ref.system)
                rec["t"].append(time.perf_counter() - t0)
                if p == 0:
                    rec["E"].append(e)
                    rec["F"].append(f)
                    rec["qm"].append(m.qm_molecules() if m.qm_molecules else 0)
            print(f"  {m.name}: {np.median(rec['t']):.3f} s per call", flush=True)
    return out


def rmse(pred, ref, masks) -> float:
    """RMS over the Cartesian components of the masked atoms, pooled over frames (NaN if not described)."""
    d = np.concatenate([(p - r)[k].ravel() for p, r, k in zip(pred, ref, masks)])
    if len(d) == 0 or np.isnan(d).any():
        return float("nan")
    return float(np.sqrt(np.mean(d ** 2)))


def energy_errors(pred, ref) -> tuple[float, float]:
    """(RMS over frames of (E − E_ref) − mean, mean(E − E_ref)) in eV; NaN without energies."""
    if any(e is None for e in pred):
        return float("nan"), float("nan")
    d = np.asarray(pred, float) - np.asarray(ref, float)
    return float(np.sqrt(np.mean((d - d.mean()) ** 2))), float(d.mean())


def tabulate(name, models, skipped, results, refs, masks, n_stored) -> tuple[str, list]:
    """The markdown report of one system and the rows [(model, kind, QM-atom RMSE, s per call)] of its plot."""
    spec = SYSTEMS[name]
    f_ref = [r.forces for r in refs]
    e_ref = [r.energy for r in refs]
    counts = {k: [int(m[k].sum()) for m in masks] for k in REGIONS}
    lines = [f"### Accuracy against full HF/6-31G*: {spec['title']}", ""]
    lines.append(f"Reference: HF/6-31G* (PySCF, conv_tol 1e-9 Eh) on all atoms, {len(refs)} of {n_stored} "
                 f"stored frames labelled ({spec['frame_unit']} {', '.join(str(r.id) for r in refs)}). "
                 "Force RMSE in eV/Å (RMS over Cartesian components, pooled over frames); energies: RMS over "
                 "frames of (E − E_ref) − mean (relative; absolute zeros differ), offset = mean(E − E_ref) for "
                 "models on the HF/6-31G* scale; s per call: median wall time of one energy + forces call, "
                 "side by side in this run.")
    lines.append("")
    sizes = ", ".join(f"{k} {min(v)}–{max(v)}" if min(v) != max(v) else f"{k} {v[0]}" for k, v in counts.items()
                      if k != "all")
    ref_rms = ", ".join(f"{k} {rmse([np.zeros_like(f) for f in f_ref], f_ref, [m[k] for m in masks]):.2f}"
                        for k in REGIONS if sum(counts[k]))
    lines.append(f"Atoms per frame: {sizes}. Reference forces, RMS per region (eV/Å): {ref_rms}.")
    lines.append("")
    head = ["model", "QM molecules", *[f"F {k}" for k in REGIONS], "E rel. RMS eV", "E offset eV", "s per call"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    plot_rows = []

    def fmt(x, spec=".3f"):
        return "—" if x is None or not np.isfinite(x) else format(x, spec)
    for m in models:
        r = results[m.name]
        errs = [rmse(r["F"], f_ref, [mk[k] for mk in masks]) if sum(counts[k]) else float("nan") for k in REGIONS]
        e_rms, e_off = energy_errors(r["E"], e_ref)
        t = float(np.median(r["t"]))
        qm = np.mean(r["qm"])
        qm_txt = "—" if m.kind == "level" else (f"{qm:.2f}".rstrip("0").rstrip(".") if qm % 1 else f"{qm:.0f}")
        label = m.name + (f" ({m.note})" if m.note else "")
        lines.append(f"| {label} | {qm_txt} | " + " | ".join(fmt(e) for e in errs)
                     + f" | {fmt(e_rms)} | {fmt(e_off if m.same_scale else float('nan'))} | {t:.3f} |")
        plot_rows.append((m.name, m.kind, errs[0], t))
    lines.append("")
    first = models[0]
    levels = [m for m in models if m.kind == "level"]
    best = min(levels, key=lambda m: rmse(results[m.name]["F"], f_ref, [mk["QM atoms"] for mk in masks]))
    per_frame = lambda m: [rmse([results[m.name]["F"][k]], [f_ref[k]], [masks[k]["QM atoms"]])  # noqa: E731
                           for k in range(len(refs))]
    a, b = per_frame(first), per_frame(best)
    lines.append(f"Per frame ({spec['frame_unit']} {', '.join(str(r.id) for r in refs)}), QM-atom force RMSE of "
                 f"{first.name.split(' (')[0]} against the best single level ({best.name}): "
                 + ", ".join(f"{x:.3f}/{y:.3f}" for x, y in zip(a, b))
                 + f"; lower on {sum(x < y for x, y in zip(a, b))} of {len(refs)} frames.")
    lines.append("")
    for what, why in skipped:
        lines.append(f"Not run: {what}: {why}.")
    lines.append("QM molecules: mean number of molecules in the QM calls of one evaluation (inner region and "
                 "buffer). Radius rows: the QM region (or, in three layers, the Δ-ML region) is every molecule whose "
                 "centre of mass is within R of the centre's (abrupt boundary, one call). The MLIP's cutoff is "
                 "4.5 Å. Rigid TIP3P "
                 "(ASE) has no intramolecular terms: the TIP3P peers' errors outside the QM molecule and their "
                 "energies miss the MM waters' bond and angle terms. QM in vacuum / in point charges describes "
                 "the QM atoms only (—).")
    if name == "ion":
        lines.append("The shipped MLIP and Δ-ML correction were trained on neutral water clusters only; H3O+ is "
                     "outside their training data, and their per-species reference energies were fitted on water, "
                     "where only E_O + 2 E_H is determined: the extra proton's energy is arbitrary, so their "
                     "energy offsets on this system mean nothing (relative energies and forces do). The hybrid's "
                     "regions that hold the ion have charge +1 (formal charges of the structure, "
                     "couplers.charges); the ion is always inside both regions, so the offset between levels is "
                     "a constant, not a force.")
    return "\n".join(lines) + "\n", plot_rows


def plot(rows, title, path) -> None:
    """QM-atom force RMSE against s per call (log x), one labelled point per model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colours = {"hybrid": "tab:red", "scheme": "darkred", "previous": "salmon", "embedding": "tab:pink",
               "radius": "tab:orange",
               "three": "tab:purple", "level": "tab:blue", "peer": "tab:green"}
    names = {"hybrid": "hybrid: the main job", "scheme": "main job, other partitions or conventional HF",
             "previous": "HF on the central water (+ 2.0-2.9 Å buffer)",
             "embedding": "QM water electrostatically embedded", "radius": "QM region of every water within R",
             "three": "three layers (MLIP outside)", "level": "one level on all atoms",
             "peer": "QM molecule + environment model"}
    fig, ax = plt.subplots(figsize=(11.5, 5.5))
    fig.subplots_adjust(left=0.07, right=0.6, bottom=0.11, top=0.9)
    seen, shown, placed = set(), [], []
    top = max(err for _, _, err, _ in rows if np.isfinite(err))
    for name, kind, err, t in rows:
        if not np.isfinite(err):
            continue
        shown.append(name)
        ax.scatter(t, err, color=colours[kind], s=45, zorder=3, label=None if kind in seen else names[kind])
        seen.add(kind)
        near = sum(1 for t2, e2 in placed if abs(np.log10(t / t2)) < 0.08 and abs(err - e2) < 0.03 * top)
        placed.append((t, err))
        ax.annotate(f"{len(shown)}", (t, err), textcoords="offset points", xytext=(5 + 13 * near, 4), fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("wall time per energy + forces call (s, log scale)")
    ax.set_ylabel("force RMSE on the QM atoms vs full HF/6-31G* (eV/Å)")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, 1.12 * max(err for _, _, err, _ in rows if np.isfinite(err)))
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.text(0.615, 0.11, "\n".join(f"{i}  {name}" for i, name in enumerate(shown, 1)), fontsize=7.5,
             ha="left", va="bottom")
    fig.savefig(path, dpi=130)
    plt.close(fig)


def run_system(name, labels_dir, passes, radii, dml_radii=DML_RADII) -> str | None:
    refs, n_stored = load_references(name, labels_dir)
    if not refs:
        print(f"{name}: no labelled frames in {Path(labels_dir) / SYSTEMS[name]['labels']}; run "
              f"benchmarks/references/make_{'main_job' if name.startswith('main') else name}_references.py"
              f"{ {'main-3l': ' --job three_layers', 'main-centre': ' --job centre'}.get(name, '')} first")
        return None
    cfg, three = load_main_config(), load_three_layer_config()
    structure = structure_for(name, cfg)
    masks = [region_masks(cfg, structure, r.system) for r in refs]
    print(f"{name}: {len(refs)} labelled frames; building models", flush=True)
    models, skipped = build_models(name, cfg, three, structure, radii, dml_radii)
    results = evaluate(models, refs, passes)
    text, rows = tabulate(name, models, skipped, results, refs, masks, n_stored)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / SYSTEMS[name]["out"]
    out.with_suffix(".md").write_text(text)
    plot(rows, f"Accuracy vs cost, {SYSTEMS[name]['title']}; {len(refs)} frames", out.with_suffix(".png"))
    print()
    print(text)
    print(f"wrote {out.with_suffix('.md').relative_to(ROOT)} and {out.with_suffix('.png').relative_to(ROOT)}")
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", nargs="+", choices=sorted(SYSTEMS), default=["main", "main-centre", "main-3l", "ion"])
    ap.add_argument("--references", default=os.environ.get("BENCH_ACCURACY_REFERENCES", str(REFERENCES)),
                    help="directory of the label files (default benchmarks/references, or $BENCH_ACCURACY_REFERENCES)")
    ap.add_argument("--passes", type=int, default=2, help="timed runs over the frames (models under 5 s per call)")
    ap.add_argument("--radii", type=float, nargs="*", default=list(RADII),
                    help="QM r_inner (Å) of the region-radius variants (none: skip them)")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads of PySCF, torch and BLAS (default 1: on a shared 2-core machine OpenMP "
                         "spin-waiting makes small calls many times slower)")
    ap.add_argument("--dml-radii", type=float, nargs="*", default=list(DML_RADII),
                    help="Δ-ML r_inner (Å) of the three-layer variants (none: skip them)")
    args = ap.parse_args(argv)
    from hybrid import threads
    threads.apply({"pyscf": args.threads, "torch": args.threads, "blas": args.threads})
    for name in args.system:
        run_system(name, args.references, args.passes, args.radii, args.dml_radii)


if __name__ == "__main__":
    main()
