"""On-the-fly active learning: a committee MLIP that asks for QM labels during a run.

:class:`ActiveLearner` is a :class:`~hybrid.potential.Potential` around a
:class:`~hybrid.ml.committee.Committee` of built-in MLIPs
(:class:`~hybrid.ml.potential.MLPotential` members) and a reference level
(any Potential: PySCF, GFN2-xTB, ...). It drops into an ASE or OpenMM run,
or into a blend, like any potential. At each *step* (one evaluation of the
run's system) it

1. evaluates the committee: mean energy E = (1/M) Σ_m E_m (eV), mean forces
   F̄_i (eV/Å), and the per-atom force disagreement
   σ_F,i = sqrt((1/M) Σ_m ‖F_m,i - F̄_i‖²) (eV/Å, shape (N,));
2. every ``check_every`` steps takes the model deviation ε = max_i σ_F,i and
   classifies it with :class:`~hybrid.ml.uncertainty.TrustLevels`
   (lo = 0.05, hi = 0.15 eV/Å by default, DP-GEN's convention):
   ε < lo *accurate*, lo ≤ ε < hi *candidate*, ε ≥ hi *failed*;
3. for a candidate or failed step, sends a configuration to the reference
   level: the whole system, or (``cluster_radius`` r set) the cluster C of
   whole units (molecules; for molecules larger than ``max_molecule_atoms``,
   heavy atoms with their hydrogens) that have an atom within r Å of an
   *uncertain atom* (σ_F,i ≥ lo), with every cut covalent bond capped by a
   hydrogen link atom (:class:`~couplers.link_atoms.CappedRegion`). Labels
   are computed in process (default), or through :func:`hybrid.labelling.label`
   into ``label_output`` (extended XYZ or ASE db with a ledger), so that they
   persist; a learner pointed at an existing label file loads its labels;
4. retrains the members on a schedule, and keeps a retrain only if it does
   not make the model worse on held-out data (below, "Retrains").

**Retrains.** *When:* a scheduled retrain needs at least ``min_new_labels``
(default 3) new labels (held-out ones do not count), and then happens when ``retrain_every`` labels have
arrived since the last attempt, or ``retrain_interval`` steps after it.
(A retrain on one label with one replayed frame and no validation raised a
held-out force RMSE from 0.487 to 0.822 eV/Å.) :meth:`ActiveLearner.retrain`
called by hand needs one new label. *Data:* ``retrain="fine_tune"``
continues each member from its weights on the K_new new labels plus

    n_replay = min(K_old, max(round(replay · K_new), min_replay))

old frames (``train_frames`` and earlier labels; ``min_replay`` = 10 by
default, so a small batch is never fitted on its own;
:func:`~hybrid.ml.training.fine_tune`); ``retrain="train"`` refits each
member from fresh weights on all frames (:func:`~hybrid.ml.training.train`).
Member m of attempt n uses seed ``seed + 1000 n + m``, so members keep
differing by minibatch order. *Validation:* a held-out set V, never
trained on. Either ``validation_frames`` (fixed), or, by default, a seeded
draw of max(1, round(f · K)) of the K ≥ 2 ``train_frames``
(f = ``validation_fraction``, default 0.1) plus every round(1/f)-th label of
the run (at least every second), starting with the first (``info["held_out"]``
of the label, ``held_out`` in its event): V then follows the configurations
the run explores, and the labels in it are truly held out. V is the
retrain's early-stopping set and its acceptance test: each member's
force-component RMSE on V (eV/Å) is measured before and after, and a member
whose error after exceeds (1 + ``retrain_tolerance``) × before (default
0.02, i.e. 2 %), or is not finite, gets its previous weights back; then, if
the committee's mean prediction with the kept members has a force RMSE on V
above (1 + ``retrain_tolerance``) × the lowest committee error seen on this
V (its error before, or lower after an earlier retrain while V was the
same), every member is restored. Member by member first, because members
are independent fits: one unlucky member should not throw away the others'
progress; the committee test then bounds what the run actually uses (the
mean), which the members' own errors do not (members that agree more can
leave a worse mean). Measuring against the lowest error on the same V keeps
small accepted losses from adding up over many retrains. A retrain that
keeps no member is *rejected*: its labels stay pending and the next attempt
waits for ``retrain_every`` further labels (a larger batch). Frames drawn
from ``train_frames`` were seen by the initial fit, so on them the test
guards against forgetting rather than overfitting; ``validation_frames``
(e.g. the validation split of :func:`~hybrid.ml.training.train_committee`
plus frames like those the run will visit) gives a fixed, truly held-out
set, and no labels are then held out. ``validation_fraction=0`` without
``validation_frames`` turns validation off (every retrain accepted, logged
``validated: False``).

**Errors.** A reference failure while labelling (e.g. ASE's
``CalculationFailed`` from an SCF) stops the step with
:class:`ActiveLearningError` naming the step, the label id, the reference
level and the configuration's size; it is logged as a ``label_failed`` event,
the id is not reused, and nothing done so far is lost (earlier labels stay in
``labels`` and in ``label_output``, untrained ones in ``pending``, the
committee is unchanged). A retrain that fails on any error restores every
member to its weights before the retrain, keeps the pending labels and
raises :class:`ActiveLearningError` naming the attempt, the mode and the
member.

**Failed steps (ε ≥ hi) are not trusted.** As in FLARE's on-the-fly
learning, the step's energy and forces then come from the reference level,
from the very label computed for it (no extra QM call):

* whole-system labels: E = E_ref(R), F = F_ref(R);
* cluster labels (ONIOM-like subtraction over the capped cluster C):
  E = E_ML(all) + E_ref(C) - E_ML(C),
  F = F_ML(all) + S[F_ref(C) - F_ML(C)], with S the link-atom chain rule
  (:meth:`CappedRegion.scatter`), so atoms near the uncertain ones move on
  reference forces and the rest on the committee's.

``on_untrusted="raise"`` instead stops the run with
:class:`UntrustedStepError` (naming the step, ε and the uncertain atoms)
before any label is computed, for users who treat a failed step as a broken
trajectory (DP-GEN discards such frames). ``Result.info["trusted"]`` is
False on every failed step; the step is logged as an ``untrusted`` event.

**Out of the trained domain** (``contact_tolerance`` τ, optional). A
committee can agree on a geometry none of its members has seen: on a water
whose O-H had collapsed to 0.5 Å the members' spread read 0.76 eV/Å while the
force error was 146 eV/Å. With τ set, every checked step also compares each
contact with the shortest contact of the same two elements in the trained
frames (:class:`~hybrid.ml.uncertainty.ContactDomain`, within member 0's
cutoff; fitted on ``train_frames`` without the held-out ones, refitted on
the trained frames after each accepted retrain). A step with two atoms
closer than (1 - τ) d_min, or with a pair of elements never that close in
training, is *failed* whatever σ_F says: labelled, answered from the
reference (also with promotion, whose weights follow σ_F, not the domain;
flagged ``conservative = False``), or with ``on_untrusted="raise"`` stopped
with an :class:`UntrustedStepError` naming the atoms. ``info["contact_ratio"]``
holds max_i d_min/d_ij and ``info["out_of_domain_atoms"]`` the atoms
beyond the tolerance. Distance-based on purpose: the descriptor-space
distance (:class:`~hybrid.ml.uncertainty.DescriptorDistance`) of the 0.5 Å
O-H read lower than that of held-out thermal frames
(``benchmarks/bench_calibration.py``), since the radial features saturate at
short range.

**Promotion** (``promote=True``, optional): every step is evaluated as a
blend (:mod:`couplers.blend`, product partitions, at most
``promote_max_buffer`` buffer units; more stop the step with an error)

    E = E_ML(all) + Σ_P σ_P [E_ref(P) - E_ML(P)]

with unit weights that follow the committee's uncertainty, so a unit above
the upper trust level is wholly in the reference region and one below the
lower level is not. Two modes:

* ``promote=True`` or ``"conservative"`` (default mode): the weights are part
  of the energy (:class:`~hybrid.ml.promotion.UncertaintyPartitioner`):
  w_u = s((hi - s_u)/(hi - lo)), s the C² quintic switch, s_u the smooth
  maximum τ ln Σ_{i∈u} exp(σ_F,i/τ) of the atoms' σ_F (τ = 0.05 (hi - lo)
  by default, ``promote_softness``; s_u >= max_{i∈u} σ_F,i), and the forces
  include the switching term -Σ_P ΔE_P Σ_u (∂σ_P/∂w_u) ∇w_u with ∇σ_F from
  second derivatives of the members (autograd). Forces are -∇E (checked by
  finite differences); the weights' gradients cost one extra backward pass
  per buffer unit.
* ``promote="fixed_field"`` (for comparison; the behaviour before the
  conservative mode): :class:`~couplers.partition.ScorePartitioner` with
  s_u = max_{i∈u} σ_F,i taken as a fixed field of the step (no ∂σ/∂R). The
  forces miss the switching term (measured: eV/Å off -∇E), so every step
  with a unit in the buffer is flagged ``conservative = False``.

With promotion, failed steps take the blend's forces (the uncertain units
are already at the reference level), so in the conservative mode they stay
on the same energy surface. The reference calls promotion costs are
counted in ``info["n_qm_calls"]``.

**Which steps are Hamiltonian** (``Result.info["conservative"]``, also a
column of a run's CSV log): a step is conservative when its forces are -∇
of its energy and that energy is the same function of R as at the previous
step. Flagged False: a failed step answered from the reference without
promotion (and the step after it, back on the committee), the first step
after a retrain (the model changed), and fixed-field promotion steps with a
buffer unit. ``info["n_nonconservative"]`` counts the flagged steps so far.
A learning run with labels and retrains is therefore not an NVE run; use
the trained committee (or the conservative promotion with a frozen
committee) for production dynamics.

**Molecules** (the units of clusters and promotion) are fixed for the run:
``units=`` (the topology's molecules or residues: what a user with a PDB or
force-field topology should pass), or else the connected components of the
covalent bonds of the first step with a tolerance, d_ij < 1.3 (r_cov,i +
r_cov,j) (:data:`~hybrid.ml.promotion.MOLECULE_BOND_SCALE`; an O-H stretched
to 1.26 Å still bonds), checked by :func:`~hybrid.ml.promotion.check_molecules`:
a molecule with an odd electron count in a closed-shell system (a water split
by an O-H stretched further) stops the first step with an error naming its
atoms and the nearest partner, instead of failing later in a region's SCF.

A *step* is one evaluation of a system with the run's atoms (the atomic
numbers seen at the first call). Other systems (e.g. the capped regions a
blend evaluates its low level on) are passed to the committee unchanged:
no step is counted, nothing is checked or labelled. ASE's calculator
evaluates once per MD step; in OpenMM every force evaluation counts,
including the extra ones a reporter asking for energies causes.

Cluster labels are gas-phase clusters: the reference forces on atoms at the
cluster's edge feel the cut, and the loss weighs them like the rest (no
per-atom force weights); pick ``cluster_radius`` well above the model's
cutoff where the reference can afford it.

Every event is kept in ``events`` (a list of dicts) and, with ``log_path``,
appended to a JSON-lines file: ``start`` (settings, errors on
``monitor_frames``), ``trigger`` (step, deviation ε, status, uncertain atoms,
labelled atoms, link atoms), ``label`` (label id, atoms, energy, wall time),
``label_failed`` (step, label id, level, error), ``untrusted`` (step, ε,
action), ``retrain`` (step, mode, frames, n_val; per member: epochs,
n_replay, errors, val_before/val_after force RMSE and accepted; committee
errors on the new labels before/after; ``accepted``, ``accepted_members``,
``rejected`` (None, "members" or "committee"), ``validated``, ``tolerance``,
``val_before`` (committee errors on V before), ``val_after`` (the retrained
committee, before any restore), ``val_kept`` (the committee as kept), and
errors on ``monitor_frames``). Units: energies eV, forces and deviations
eV/Å, distances Å, times s.
"""
from __future__ import annotations

import copy
import json
import os
import time

import numpy as np

from ..errors import HybridError, InputError
from ..potential import Potential, Result
from ..system import AtomicSystem, symbol
from .uncertainty import ACCURATE, CANDIDATE, FAILED, TrustLevels

UNCHECKED = "unchecked"
RETRAIN_MODES = ("fine_tune", "train")
PROMOTE_MODES = ("conservative", "fixed_field")
UNTRUSTED_ACTIONS = ("reference", "raise")


class ActiveLearningError(HybridError, RuntimeError):
    """A labelling or retraining step of an active-learning run that failed."""


class _LabelFailure(Exception):
    """A label file job that did not produce the label (turned into ActiveLearningError by ``_label``)."""


class UntrustedStepError(ActiveLearningError):
    """A step whose model deviation reached the upper trust level (``on_untrusted="raise"``)."""

    def __init__(self, message: str, step: int, deviation: float, atoms):
        super().__init__(message)
        self.step, self.deviation, self.atoms = step, deviation, list(atoms)


# -- clusters ------------------------------------------------------------------------
def fragment_units(system: AtomicSystem, max_molecule_atoms: int = 24, bonds=None) -> list:
    """Units a cluster is built from: whole molecules, or united atoms of large molecules.

    Molecules are the connected components of the covalent bond graph
    (:func:`couplers.partition.find_bonds`, d_ij < 1.2 (r_cov,i + r_cov,j)).
    A molecule of at most ``max_molecule_atoms`` atoms is one unit; a larger
    one is split into its heavy atoms, each with the hydrogens bonded to it,
    so that a cluster cuts only bonds between heavy atoms (which link atoms
    cap). Returns a list of sorted (n_u,) int arrays covering every atom once.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from couplers.partition import find_bonds

    if int(max_molecule_atoms) < 1:
        raise InputError(f"fragment_units: max_molecule_atoms must be >= 1, got {max_molecule_atoms}")
    n = len(system)
    bonds = find_bonds(system) if bonds is None else np.asarray(bonds, int).reshape(-1, 2)
    g = coo_matrix((np.ones(len(bonds)), (bonds[:, 0], bonds[:, 1])), shape=(n, n)) if len(bonds) \
        else coo_matrix((n, n))
    _, label = connected_components(g, directed=False)
    heavy_of = {}
    for i, j in bonds:
        for h, x in ((i, j), (j, i)):
            if system.numbers[h] == 1 and system.numbers[x] != 1:
                heavy_of.setdefault(int(h), int(x))
    units = []
    for k in range(label.max() + 1 if n else 0):
        mol = np.flatnonzero(label == k)
        if len(mol) <= max_molecule_atoms:
            units.append(mol)
            continue
        groups: dict = {}
        for a in mol:
            a = int(a)
            owner = a if system.numbers[a] != 1 else heavy_of.get(a, a)
            groups.setdefault(owner, []).append(a)
        units += [np.array(sorted(v), int) for v in groups.values()]
    return sorted(units, key=lambda u: int(u[0]))


def cluster_atoms(system: AtomicSystem, centres, radius: float, units) -> np.ndarray:
    """Atoms (sorted) of every unit with an atom within ``radius`` Å of an atom in ``centres``.

    Distances are minimum-image for periodic systems. ``units`` is a list of
    index arrays covering the system (see :func:`fragment_units`).
    """
    from ..neighbors import neighbor_pairs

    centres = np.unique(np.asarray(centres, int).reshape(-1))
    n = len(system)
    if centres.size == 0:
        raise InputError("cluster_atoms: no centre atoms given")
    if centres.min() < 0 or centres.max() >= n:
        raise InputError(f"cluster_atoms: centre atom {int(centres.max() if centres.max() >= n else centres.min())} "
                         f"is outside a system of {n} atoms")
    if not (np.isfinite(radius) and radius > 0):
        raise InputError(f"cluster_atoms: radius must be a positive distance in Å, got {radius}")
    near = np.zeros(n, bool)
    near[centres] = True
    if n > 1:
        i, j, _ = neighbor_pairs(system.positions, system.cell, system.pbc, float(radius))
        near[j[np.isin(i, centres)]] = True
    covered = np.zeros(n, int)
    picked = []
    for k, u in enumerate(units):
        u = np.asarray(u, int).reshape(-1)
        if u.size and (u.min() < 0 or u.max() >= n):
            raise InputError(f"cluster_atoms: unit {k} holds atom {int(u.max() if u.max() >= n else u.min())}, "
                             f"outside a system of {n} atoms")
        np.add.at(covered, u, 1)
        if near[u].any():
            picked.append(u)
    if np.any(covered != 1):
        a = int(np.flatnonzero(covered != 1)[0])
        raise InputError(f"cluster_atoms: the units cover atom {a} {covered[a]} times; they must cover "
                         f"each of the {n} atoms exactly once")
    return np.unique(np.concatenate(picked))


def uncertain_cluster(system: AtomicSystem, centres, radius: float, units=None, bonds=None,
                      max_molecule_atoms: int = 24, charge: int | None = None,
                      multiplicity: int | None = None):
    """The capped cluster around ``centres``: a :class:`~couplers.link_atoms.CappedRegion`.

    Its atoms are :func:`cluster_atoms` of ``units`` (default
    :func:`fragment_units`); each covalent bond Q–M cut by the cluster
    boundary (Q inside) gets a hydrogen at R_L = R_Q + g (R_M - R_Q),
    g = (r_cov(Q) + r_cov(H)) / (r_cov(Q) + r_cov(M)). ``region.system`` is
    the capped cluster (real atoms first, sorted, then link atoms), and
    ``region.scatter`` maps its forces (n + n_links, 3) back onto the system.
    """
    from couplers.link_atoms import CappedRegion
    from couplers.partition import find_bonds

    bonds = find_bonds(system) if bonds is None else np.asarray(bonds, int).reshape(-1, 2)
    if units is None:
        units = fragment_units(system, max_molecule_atoms, bonds)
    atoms = cluster_atoms(system, centres, radius, units)
    return CappedRegion(system, atoms, bonds, charge=charge, multiplicity=multiplicity)


# -- committee errors ----------------------------------------------------------------
def committee_errors(committee: Potential, frames) -> dict:
    """Errors of a committee's mean prediction on labelled frames.

    Energy MAE/RMSE (eV and eV/atom) and force-component MAE/RMSE (eV/Å),
    as :func:`hybrid.ml.training.metrics`, plus ``mean_max_force_deviation``:
    the mean over frames of ε = max_i σ_F,i (eV/Å).
    """
    from .training import metrics

    frames = list(frames)
    if not frames:
        raise InputError("committee_errors: no frames")
    pred = {k: [] for k in ("energy_ref", "energy_pred", "n_atoms", "forces_ref", "forces_pred")}
    eps = []
    for fr in frames:
        r = committee.compute(fr.system)
        pred["energy_ref"].append(float(fr.energy))
        pred["energy_pred"].append(float(r.energy))
        pred["n_atoms"].append(len(fr.system))
        pred["forces_ref"].append(np.asarray(fr.forces, float))
        pred["forces_pred"].append(r.forces)
        if r.force_std is not None:
            eps.append(float(np.max(r.force_std)))
    out = metrics({k: (np.concatenate(v) if k.startswith("forces") else np.asarray(v, float))
                   for k, v in pred.items()})
    if eps:
        out["mean_max_force_deviation"] = float(np.mean(eps))
    return out


# -- the learner -----------------------------------------------------------------------
class ActiveLearner(Potential):
    """A committee MLIP that labels, and learns from, its uncertain configurations (module docstring).

    committee : a Committee of MLPotential members (the models retrained in place)
    reference : the labelling level: a Potential, or a zero-argument factory
        returning one (needed for file labelling of potentials that cannot be
        pickled once used, e.g. ``functools.partial(XTBPotential)``)
    train_frames : the frames the committee was trained on (replayed when
        fine-tuning, refitted when training; default none)
    levels : TrustLevels (lower, upper) in eV/Å; default (0.05, 0.15)
    check_every : check ε every this many steps (steps 0, k, 2k, ...)
    cluster_radius : None: label the whole system; else the radius r (Å) of
        the labelled cluster around the uncertain atoms
    units : the units clusters and promotion are made of (list of index
        arrays covering the system, e.g. the topology's molecules or
        residues); default :func:`fragment_units` with ``max_molecule_atoms``
        of the first step's bonds (tolerance 1.3, checked; module docstring)
    cluster_charge : callable(atoms (n,) int array) -> charge of a cluster in
        e (default: 0 for a neutral system; required for charged systems);
        link atoms do not change it. The multiplicity is the system's, unless
        ``open_shell="lowest"``: then a cluster is a singlet or, with an odd
        electron count (dangling bonds, e.g. a crack's faces), a doublet,
        whatever the system's, as in :mod:`couplers.charges`.
    on_untrusted : "reference" (default: the step's forces from the reference
        label) or "raise" (:class:`UntrustedStepError`)
    promote : False (default), True or "conservative" (every step an
        uncertainty-driven blend whose forces are -∇E), or "fixed_field"
        (the same blend with σ_F as a fixed field: not Hamiltonian, flagged)
    promote_max_buffer : product partitions for up to this many buffer units;
        more raise InputError (naming the count and the cap)
    promote_softness : τ (eV/Å) of the conservative mode's smooth maximum
        over a unit's atoms; default 0.05 (upper - lower)
    retrain : "fine_tune" (default) or "train"
    retrain_every : retrain when this many labels have arrived since the last
        attempt (K; at least ``min_new_labels``)
    retrain_interval : also retrain this many steps after the last attempt
        (N) if there are ``min_new_labels`` new labels; None: labels only
    min_new_labels : new labels a scheduled retrain needs (default 3)
    retrain_kwargs : passed to fine_tune/train (epochs, lr, batch_size,
        patience, w_forces, num_threads, ...); names and values are checked
        here (InputError naming the key), not at the first retrain
    replay : fine-tuning replay ratio (old frames per new frame)
    min_replay : fine-tuning replays at least this many old frames (or all
        there are); default 10
    validation_frames : a fixed held-out set V for the acceptance test (module
        docstring, "Retrains"); default: drawn from train_frames and labels
    validation_fraction : f: without ``validation_frames``, V holds
        round(f · K) of the K train_frames and every round(1/f)-th label;
        0 turns validation off (default 0.1)
    retrain_tolerance : a retrain is kept if the held-out force RMSE after is
        at most (1 + tolerance) × before (relative; default 0.02)
    label_output : None (labels in memory) or a label file (``.xyz``/``.extxyz``/``.db``);
        labels already in the file are loaded and count as new labels (the
        first scheduled retrain trains on them); new ids continue after the
        largest id there
    label_scheduler : scheduler for :func:`hybrid.labelling.label` ("synchronous",
        None for a local Dask cluster, an address, a Client, ...)
    level_of_theory : stored with file labels (default: the reference's name)
    log_path : JSON-lines event log (appended to), or None
    monitor_frames : labelled frames (e.g. a held-out set) whose committee
        errors are logged at the start and after every retrain
    seed : base seed of the retraining runs

    Attributes: ``step`` (index of the last step, -1 before the first),
    ``labels`` (every labelled :class:`~hybrid.ml.training.Frame`, with
    ``info`` label_id, step, cluster_atoms, n_links, held_out), ``pending``
    (labels not yet trained on, held-out ones excluded), ``validation_frames``
    (the held-out set V), ``events`` (the log), ``deviations`` ((step, ε, status)
    of every checked step), ``n_retrains`` (attempts, rejected ones
    included), ``n_qm_calls``. Each step's
    ``Result.info`` holds step, max_force_deviation, status ("accurate",
    "candidate", "failed" or "unchecked"), trusted, uncertain_atoms,
    label_id, source ("committee", "reference",
    "committee+reference(cluster)" or "promoted"), n_qm_calls, retrained
    (a retrain was attempted after the step; its event says if it was kept),
    conservative and n_nonconservative (module docstring).
    """

    #: each step's Result.info says whether it is conservative (read by hybrid.md.runner for its CSV)
    reports_conservative = True

    def __init__(self, committee, reference, *, train_frames=(), levels: TrustLevels | None = None,
                 check_every: int = 1, cluster_radius: float | None = None, units=None,
                 max_molecule_atoms: int = 24, cluster_charge=None, open_shell: str = "error",
                 on_untrusted: str = "reference",
                 promote: bool | str = False, promote_max_buffer: int = 4,
                 promote_softness: float | None = None, retrain: str = "fine_tune",
                 retrain_every: int = 5, retrain_interval: int | None = None, retrain_kwargs=None,
                 replay: float = 1.0, min_replay: int = 10, min_new_labels: int = 3, validation_frames=None,
                 validation_fraction: float = 0.1, retrain_tolerance: float = 0.02,
                 contact_tolerance: float | None = None,
                 label_output=None, label_scheduler="synchronous",
                 level_of_theory: str | None = None, log_path=None, monitor_frames=None, seed: int = 0,
                 name: str | None = None):
        from .committee import Committee
        from .model import AtomicMLP
        from .potential import MLPotential

        if not isinstance(committee, Committee):
            raise InputError(f"ActiveLearner: committee must be a hybrid.ml.committee.Committee, "
                             f"got {type(committee).__name__}")
        for m, member in enumerate(committee.members):
            if not isinstance(member, MLPotential) or not isinstance(member.model, AtomicMLP):
                raise InputError(f"ActiveLearner: committee member {m} ({getattr(member, 'name', '?')}) is a "
                                 f"{type(member).__name__}, not an MLPotential over an AtomicMLP: it cannot "
                                 "be retrained")
        if isinstance(reference, Potential):
            self.reference, self._label_potential = reference, reference
        elif callable(reference):
            self.reference, self._label_potential = reference(), reference
            if not isinstance(self.reference, Potential):
                raise InputError(f"ActiveLearner: the reference factory returned a "
                                 f"{type(self.reference).__name__}, not a Potential")
        else:
            raise InputError(f"ActiveLearner: reference must be a Potential or a factory returning one, "
                             f"got {type(reference).__name__}")
        self.levels = TrustLevels() if levels is None else levels
        if not isinstance(self.levels, TrustLevels):
            raise InputError(f"ActiveLearner: levels must be TrustLevels, got {type(levels).__name__}")
        self.check_every = _positive_int("check_every", check_every)
        self.retrain_every = _positive_int("retrain_every", retrain_every)
        self.retrain_interval = None if retrain_interval is None else _positive_int("retrain_interval",
                                                                                    retrain_interval)
        self.promote_max_buffer = _positive_int("promote_max_buffer", promote_max_buffer, minimum=0)
        self.max_molecule_atoms = _positive_int("max_molecule_atoms", max_molecule_atoms)
        if cluster_radius is not None and not (np.isfinite(cluster_radius) and cluster_radius > 0):
            raise InputError(f"ActiveLearner: cluster_radius must be a positive distance in Å or None, "
                             f"got {cluster_radius}")
        if retrain not in RETRAIN_MODES:
            raise InputError(f"ActiveLearner: retrain={retrain!r} is not one of {RETRAIN_MODES}")
        if on_untrusted not in UNTRUSTED_ACTIONS:
            raise InputError(f"ActiveLearner: on_untrusted={on_untrusted!r} is not one of {UNTRUSTED_ACTIONS}")
        if not (np.isfinite(replay) and replay >= 0):
            raise InputError(f"ActiveLearner: replay must be >= 0, got {replay}")
        self.min_replay = _positive_int("min_replay", min_replay, minimum=0)
        self.min_new_labels = _positive_int("min_new_labels", min_new_labels)
        if self.retrain_every < self.min_new_labels:
            raise InputError(f"ActiveLearner: retrain_every={self.retrain_every} is below min_new_labels="
                             f"{self.min_new_labels}: a scheduled retrain needs at least min_new_labels new "
                             "labels; lower min_new_labels or raise retrain_every")
        if isinstance(validation_fraction, bool) or not (np.isfinite(validation_fraction)
                                                         and 0 <= validation_fraction < 1):
            raise InputError(f"ActiveLearner: validation_fraction must be a number in [0, 1), "
                             f"got {validation_fraction!r}")
        if isinstance(retrain_tolerance, bool) or not (np.isfinite(retrain_tolerance) and retrain_tolerance >= 0):
            raise InputError(f"ActiveLearner: retrain_tolerance must be a relative tolerance >= 0, "
                             f"got {retrain_tolerance!r}")
        if contact_tolerance is not None and (isinstance(contact_tolerance, bool) or not (
                np.isfinite(contact_tolerance) and 0 <= contact_tolerance < 1)):
            raise InputError(f"ActiveLearner: contact_tolerance must be a fraction in [0, 1) of the shortest "
                             f"training contact, or None, got {contact_tolerance!r}")
        if contact_tolerance is not None and not train_frames:
            raise InputError("ActiveLearner: contact_tolerance needs train_frames: the trained domain is the "
                             "shortest contacts of the frames the committee was trained on")
        if cluster_charge is not None and not callable(cluster_charge):
            raise InputError("ActiveLearner: cluster_charge must be a callable(atoms) -> charge")
        self.committee = committee
        self.cluster_radius = None if cluster_radius is None else float(cluster_radius)
        self.units = None if units is None else [np.asarray(u, int) for u in units]
        self.cluster_charge = cluster_charge
        if open_shell not in ("error", "lowest"):
            raise InputError(f"ActiveLearner: open_shell must be 'error' or 'lowest', got {open_shell!r}")
        self.open_shell = open_shell
        self.on_untrusted = on_untrusted
        if promote is True:
            promote = "conservative"
        if promote not in (False, None) + PROMOTE_MODES:
            raise InputError(f"ActiveLearner: promote={promote!r} is not False, True or one of {PROMOTE_MODES}")
        self.promote = promote or None          # None, "conservative" or "fixed_field"
        if promote_softness is not None and not (np.isfinite(promote_softness) and promote_softness > 0):
            raise InputError(f"ActiveLearner: promote_softness must be a positive score in eV/Å, got "
                             f"{promote_softness!r}")
        self.promote_softness = None if promote_softness is None else float(promote_softness)
        self.retrain_mode = retrain
        self.retrain_kwargs = dict(retrain_kwargs or {})
        for bad in ("old_frames", "new_frames", "frames", "replay", "min_replay", "seed", "val_frames", "dtype"):
            if bad in self.retrain_kwargs:
                raise InputError(f"ActiveLearner: retrain_kwargs may not set {bad!r}; the learner sets it")
        _check_retrain_kwargs(self.retrain_kwargs)
        self.replay = float(replay)
        self.seed = int(seed)
        self.train_frames = list(train_frames or [])
        self.validation_fraction = float(validation_fraction)
        self.retrain_tolerance = float(retrain_tolerance)
        if validation_frames is not None:
            self.validation_frames = list(validation_frames)
            if not self.validation_frames:
                raise InputError("ActiveLearner: validation_frames is empty; give held-out frames, or None "
                                 "to draw them from train_frames")
            from .training import _check_frames
            _check_frames(self.validation_frames, committee.members[0].model, "ActiveLearner: validation_frames")
        else:
            self.validation_frames = _draw(self.train_frames, self.validation_fraction, self.seed)
        self._fixed_validation = validation_frames is not None
        self.contact_tolerance = None if contact_tolerance is None else float(contact_tolerance)
        self.domain = None             # ContactDomain of the trained frames (with contact_tolerance)
        self._held_out = {id(f) for f in self.validation_frames}   # never trained on
        self._n_admitted = 0           # labels seen (made or loaded): every round(1/f)-th is held out
        self._val_floor = None         # (len(V), lowest committee force RMSE on that V)
        self.monitor_frames = list(monitor_frames or [])
        self.label_output = None if label_output is None else os.fspath(label_output)
        self.label_scheduler = label_scheduler
        self.level_of_theory = level_of_theory or self.reference.name
        self.log_path = None if log_path is None else os.fspath(log_path)
        self.name = name or f"active[{committee.name}]"
        self.species = committee.species
        self.min_distance = committee.min_distance

        self.step = -1                 # index of the last step
        self.labels: list = []         # every labelled frame (loaded and new), in label order
        self.pending: list = []        # labels not yet trained on
        self.events: list = []
        self.deviations: list = []     # (step, ε, status) of every checked step
        self.n_retrains = 0
        self.n_qm_calls = 0
        self.last_retrain_step = -1
        self._deferred = 0             # pending labels a rejected retrain left (next one waits for more)
        self._numbers = None
        self._bonds = None
        self._units_run = None
        self._next_id = 0
        self._blend = None
        self._sigma = None
        self._promote_reference = None
        self.n_nonconservative = 0         # steps flagged conservative = False so far
        self._surface = None               # (model version, how the energy is made) of the last step
        if self.promote:
            # the blend copies a stateful level once per region; copies must come from an unused
            # instance (a used tblite/PySCF object holds C handles that cannot be copied)
            try:
                self._promote_reference = (reference() if not isinstance(reference, Potential)
                                           else copy.deepcopy(reference))
            except TypeError as exc:
                raise InputError(f"ActiveLearner: promote=True needs a fresh copy of the reference "
                                 f"{self.reference.name!r} for its regions, and this one cannot be copied "
                                 f"({exc}); pass a factory, e.g. functools.partial(XTBPotential)") from None
        if self.label_output is not None and os.path.exists(self.label_output):
            self._load_existing_labels()
        for frame in list(self.labels):        # loaded labels are held out by the same rule as new ones
            self._hold_out_if_due(frame)
        self._fit_domain(self._trainable(self.train_frames))
        start = {"event": "start", "committee": committee.name, "members": len(committee.members),
                 "reference": self.level_of_theory, "levels": [self.levels.lower, self.levels.upper],
                 "check_every": self.check_every, "cluster_radius": self.cluster_radius,
                 "on_untrusted": on_untrusted, "promote": self.promote, "retrain": retrain,
                 "retrain_every": self.retrain_every, "retrain_interval": self.retrain_interval,
                 "replay": self.replay, "min_replay": self.min_replay, "min_new_labels": self.min_new_labels,
                 "n_val": len(self.validation_frames), "validation_fraction": self.validation_fraction,
                 "retrain_tolerance": self.retrain_tolerance, "n_train_frames": len(self.train_frames),
                 "contact_tolerance": self.contact_tolerance,
                 "n_loaded_labels": len(self.labels), "label_output": self.label_output}
        if self.monitor_frames:
            start["monitor"] = committee_errors(committee, self.monitor_frames)
        self._log(start)

    # -- bookkeeping ---------------------------------------------------------------
    def _log(self, event: dict) -> None:
        event = {k: _jsonable(v) for k, v in event.items()}
        event.setdefault("time", time.time())
        self.events.append(event)
        if self.log_path is not None:
            with open(self.log_path, "a") as fh:
                fh.write(json.dumps(event) + "\n")

    def _load_existing_labels(self) -> None:
        from ..labelling import load_labels
        frames = load_labels(self.label_output)
        ids = [f.info["config_id"] for f in frames]
        if any(not isinstance(i, int) for i in ids):
            bad = next(i for i in ids if not isinstance(i, int))
            raise InputError(f"{self.label_output}: label id {bad!r} is not an integer: not a label file "
                             "written by an ActiveLearner")
        self.labels = list(frames)
        self.pending = list(frames)
        self._next_id = max(ids) + 1 if ids else 0

    def summary(self) -> dict:
        """Counts of the run so far: steps, checks, triggers, labels (and failed ones), untrusted steps,
        retrains (attempts, and those rejected by validation), QM calls (failed ones included)."""
        count = lambda kind: sum(1 for e in self.events if e["event"] == kind)  # noqa: E731
        return {"steps": self.step + 1, "checks": len(self.deviations), "triggers": count("trigger"),
                "labels": count("label"), "label_failures": count("label_failed"), "untrusted": count("untrusted"),
                "retrains": count("retrain"),
                "retrains_rejected": sum(1 for e in self.events if e["event"] == "retrain" and not e["accepted"]),
                "pending_labels": len(self.pending), "qm_calls": self.n_qm_calls}

    # -- Potential ---------------------------------------------------------------------
    def check(self, system: AtomicSystem) -> None:
        self.committee.check(system)

    def _is_run_system(self, system: AtomicSystem) -> bool:
        if self._numbers is None:
            self._numbers = system.numbers.copy()
            return True
        return len(system) == len(self._numbers) and bool(np.all(system.numbers == self._numbers))

    def _compute(self, system: AtomicSystem) -> Result:
        if not self._is_run_system(system):
            return self.committee._compute(system)
        self.step += 1
        step = self.step
        if self.promote or self.cluster_radius is not None:
            self._run_units(system)          # molecules fixed (and checked) at the first step
        res = self.committee._compute(system)
        sigma = np.asarray(res.force_std, float)
        eps = float(sigma.max()) if sigma.size else 0.0
        info = {"step": step, "max_force_deviation": eps, "status": UNCHECKED, "trusted": True,
                "label_id": None, "retrained": False, "n_qm_calls": 0, "source": "committee"}
        res.info.update(info)
        status = UNCHECKED
        uncertain = np.zeros(0, int)
        outside = np.zeros(0, int)          # atoms out of the trained domain (contact_tolerance)
        if step % self.check_every == 0:
            status = self.levels.classify(eps)
            if status != ACCURATE:
                uncertain = np.flatnonzero(~(sigma < self.levels.lower))   # NaN counts as uncertain
            if self.domain is not None:
                c = self.domain.ratios(system)
                res.info["contact_ratio"] = float(np.max(c)) if c.size else 0.0
                outside = np.flatnonzero(~(c <= 1.0 / (1.0 - self.contact_tolerance)))
                if outside.size:
                    status = FAILED
                    uncertain = np.union1d(uncertain, outside)
            self.deviations.append((step, eps, status))
        res.info["status"] = status
        res.info["uncertain_atoms"] = uncertain.tolist()
        res.info["out_of_domain_atoms"] = outside.tolist()
        if status == FAILED:
            res.info["trusted"] = False
            if self.on_untrusted == "raise":
                self._log({"event": "untrusted", "step": step, "deviation": eps, "action": "raise",
                           "uncertain_atoms": uncertain, "out_of_domain_atoms": outside})
                worst = int(np.argmax(sigma))
                listed = f"{uncertain.tolist()[:20]}{' ...' if len(uncertain) > 20 else ''}"
                if outside.size:
                    why = (f"atoms {outside.tolist()[:20]} ({', '.join(symbol(z) for z in system.numbers[outside[:4]])}"
                           f"{' ...' if len(outside) > 4 else ''}) are outside the trained domain: a contact "
                           f"{res.info['contact_ratio']:.3g}x shorter than the shortest training contact of those "
                           f"elements (contact_tolerance {self.contact_tolerance}; max σ_F = {eps:.4g} eV/Å)")
                else:
                    why = (f"model deviation max σ_F = {eps:.4g} eV/Å on atom {worst} "
                           f"({symbol(system.numbers[worst])}) reaches the upper trust level "
                           f"{self.levels.upper} eV/Å (uncertain atoms: {listed})")
                raise UntrustedStepError(f"{self.name}: step {step}: {why}", step, eps, uncertain)
        region, frame = None, None
        if status in (CANDIDATE, FAILED):
            region, target = self._target(system, uncertain)
            self._log({"event": "trigger", "step": step, "deviation": eps, "status": status,
                       "uncertain_atoms": uncertain, "out_of_domain_atoms": outside,
                       "labelled_atoms": np.arange(len(system)) if region is None else region.atoms,
                       "n_links": 0 if region is None else len(region.cuts)})
            frame = self._label(target, step, region)
            res.info["label_id"] = frame.info["label_id"]
            res.info["n_qm_calls"] += 1
        if self.promote and not outside.size:
            res = self._promoted(system, res, sigma)
        elif status == FAILED:       # promotion weights follow σ_F, not the domain: out-of-domain steps
            res = self._reference_step(system, res, region, frame)     # are answered from the reference
        if status == FAILED:
            self._log({"event": "untrusted", "step": step, "deviation": eps,
                       "action": "promote" if self.promote and not outside.size else "reference",
                       "label_id": frame.info["label_id"], "uncertain_atoms": uncertain,
                       "out_of_domain_atoms": outside})
        self._flag_conservative(res)
        if self._retrain_due(step):
            self.retrain()
            res.info["retrained"] = True
        return res

    def _model_key(self) -> str:
        """A digest of every member's weights and buffers: changes whenever a retrain changes the model."""
        import hashlib
        h = hashlib.blake2b(digest_size=16)
        for member in self.committee.members:
            for name, t in member.model.state_dict().items():
                h.update(name.encode())
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def _flag_conservative(self, res: Result) -> None:
        """Set ``info["conservative"]`` (module docstring) and count the steps that are not."""
        if self.promote and "promoted" in res.info:
            exact = self.promote == "conservative" or not res.info["promoted"]["buffer_atoms"]
            how = ("promoted", self.promote)
        else:
            exact = True
            how = (res.info["source"], tuple(res.info.get("cluster_atoms", ())))
        surface = (self._model_key(), how)
        conservative = bool(exact and (self._surface is None or surface == self._surface))
        self._surface = surface
        self.n_nonconservative += not conservative
        res.info["conservative"] = conservative
        res.info["n_nonconservative"] = self.n_nonconservative

    # -- labelling --------------------------------------------------------------------
    def _run_units(self, system: AtomicSystem) -> list:
        """The run's units and bonds, fixed at the first step (module docstring, "Molecules")."""
        if self._units_run is None:
            from couplers.partition import find_bonds, find_molecules

            from .promotion import MOLECULE_BOND_SCALE, check_molecules
            bonds = find_bonds(system, MOLECULE_BOND_SCALE)
            if self.units is None:
                check_molecules(system, find_molecules(system, bonds=bonds), self.cluster_charge,
                                how=f"(bonded where d_ij < {MOLECULE_BOND_SCALE} (r_cov,i + r_cov,j) at step "
                                    f"{max(self.step, 0)}) ")
                units = fragment_units(system, self.max_molecule_atoms, bonds)
            else:
                units = self.units
            self._bonds, self._units_run = bonds, units
        return self._units_run

    def cluster(self, system: AtomicSystem, atoms):
        """The capped cluster (CappedRegion) labelled for uncertain ``atoms``, or None for the whole system.

        None when ``cluster_radius`` is None or the cluster holds every atom.
        """
        if self.cluster_radius is None:
            return None
        units = self._run_units(system)
        picked = cluster_atoms(system, atoms, self.cluster_radius, units)
        if len(picked) == len(system):
            return None
        if self.cluster_charge is not None:
            charge = int(self.cluster_charge(picked))
        elif int(system.charge) == 0:
            charge = 0
        else:
            raise InputError(f"{self.name}: the system has charge {system.charge}; give cluster_charge="
                             "callable(atoms) -> charge so that clusters carry the right charge")
        from couplers.link_atoms import CappedRegion
        region = CappedRegion(system, picked, self._bonds, charge=charge)
        if self.open_shell == "lowest":
            lowest = 1 + region.system.n_electrons() % 2
            if lowest != region.system.multiplicity:
                region = CappedRegion(system, picked, self._bonds, charge=charge, multiplicity=lowest)
        if len(region.cuts) and self.species is not None and 1 not in self.species:
            raise InputError(f"{self.name}: the cluster cuts {len(region.cuts)} covalent bond(s) and caps "
                             "them with hydrogen, an element the committee does not know; pass units= that "
                             "keep the molecules whole, or a larger max_molecule_atoms")
        return region

    def _target(self, system, uncertain):
        region = self.cluster(system, uncertain)
        return region, (system if region is None else region.system)

    def _label(self, target: AtomicSystem, step: int, region) -> "object":
        from .training import Frame

        label_id = self._next_id
        self._next_id += 1          # a failed id is not reused (a label file's ledger records it)
        self.n_qm_calls += 1        # failed calls cost too
        t0 = time.perf_counter()
        try:
            if self.label_output is None:
                r = self.reference.compute(target)
                frame = Frame(target, float(r.energy), np.asarray(r.forces, float),
                              info={"config_id": label_id, "level_of_theory": self.level_of_theory})
            else:
                from ..labelling import label, load_labels
                summary = label([target], self._label_potential, self.label_output, ids=[label_id],
                                scheduler=self.label_scheduler, level_of_theory=self.level_of_theory,
                                progress=False)
                if label_id in summary.failed:
                    raise _LabelFailure(f"labelling into {self.label_output} failed (attempts recorded in its "
                                        f"ledger): {summary.failed[label_id]}")
                found = [f for f in load_labels(self.label_output) if f.info["config_id"] == label_id]
                if not found:
                    raise _LabelFailure(f"label {label_id} is not in {self.label_output} after labelling")
                frame = found[0]
        except Exception as exc:
            what = str(exc) if isinstance(exc, _LabelFailure) else f"{type(exc).__name__}: {exc}"
            self._log({"event": "label_failed", "step": step, "label_id": label_id, "n_atoms": len(target),
                       "level": self.level_of_theory, "error": what, "wall_time": time.perf_counter() - t0})
            kept = f"in {self.label_output} and in .labels" if self.label_output else "in .labels"
            raise ActiveLearningError(
                f"{self.name}: step {step}: the reference level {self.level_of_theory!r} failed on "
                f"configuration {label_id} ({len(target)} atoms, "
                f"{'the whole system' if region is None else 'a capped cluster'}): {what}. Nothing done so "
                f"far is lost: the {len(self.labels)} earlier labels are kept {kept} ({len(self.pending)} not "
                "yet trained on, in .pending) and the committee is unchanged") from exc
        frame.info.update(label_id=label_id, step=step,
                          cluster_atoms=None if region is None else region.atoms.tolist(),
                          n_links=0 if region is None else len(region.cuts))
        self.labels.append(frame)
        self.pending.append(frame)
        frame.info["held_out"] = self._hold_out_if_due(frame)
        self._log({"event": "label", "step": step, "label_id": label_id, "n_atoms": len(target),
                   "n_links": frame.info["n_links"], "held_out": frame.info["held_out"], "energy": frame.energy,
                   "wall_time": time.perf_counter() - t0, "output": self.label_output or "memory"})
        return frame

    def select_and_label(self, systems, k: int, diversity: float = 0.5, retrain: bool = True,
                         score: str = "max") -> dict:
        """One DP-GEN-style iteration on candidate ``systems`` (AtomicSystems or Frames, e.g. the frames of an
        exploration run): choose up to ``k`` by committee uncertainty with diversity
        (:func:`hybrid.ml.selection.diverse_batch`, kept away from the frames already trained on; only
        candidates with lower <= max_i σ_F,i < upper trust level), label each whole system with the
        reference (held out by the same rule as on-the-fly labels), then, with ``retrain``, retrain and
        validate exactly as a scheduled retrain does (:meth:`retrain`).

        Returns {"chosen": indices into ``systems``, "scores": their max σ_F (eV/Å), "labels": [Frame],
        "retrain": the retrain event or None}. Each label is logged as a ``trigger`` (``source`` "pool")
        and a ``label`` event. ``score``: a frame's "max" (DP-GEN's model deviation) or "mean" per-atom σ_F."""
        from .selection import diverse_batch, fingerprints
        systems = [getattr(s, "system", s) for s in systems]
        if not systems:
            raise InputError(f"{self.name}: select_and_label: no candidate systems")
        for n, s in enumerate(systems):
            if not isinstance(s, AtomicSystem):
                raise InputError(f"{self.name}: select_and_label: candidate {n} is a {type(s).__name__}, not an "
                                 "AtomicSystem or Frame")
            self.committee.check(s)
        model = self.committee.members[0].model
        if score not in ("max", "mean"):
            raise InputError(f"{self.name}: select_and_label: score={score!r} is not 'max' or 'mean'")
        reduce = np.max if score == "max" else np.mean
        scores = np.array([float(reduce(self.committee._compute(s).force_std)) for s in systems])
        usable = np.where(scores < self.levels.upper, scores, np.nan)    # failed: suspect geometry (DP-GEN)
        trained = self._trainable(self.train_frames + self.labels)
        known = fingerprints(model, trained) if trained else None
        chosen = diverse_batch(usable, fingerprints(model, systems), k, known, diversity, self.levels.lower)
        labels = []
        for c in chosen:
            self._log({"event": "trigger", "step": self.step, "deviation": scores[c], "status": CANDIDATE,
                       "source": "pool", "pool_index": c, "uncertain_atoms": [],
                       "labelled_atoms": np.arange(len(systems[c])), "n_links": 0})
            labels.append(self._label(systems[c], self.step, None))
        event = self.retrain() if retrain and self.pending else None
        return {"chosen": chosen, "scores": [float(scores[c]) for c in chosen], "labels": labels, "retrain": event}

    # -- untrusted steps ------------------------------------------------------------
    def _reference_step(self, system, res: Result, region, frame) -> Result:
        """The failed step's result from its reference label (module docstring)."""
        info = dict(res.info, source="reference")
        if region is None:
            forces = np.asarray(frame.forces, float)
            return Result(float(frame.energy), forces.copy(), force_std=res.force_std,
                          energy_std=res.energy_std,
                          contributions={self.level_of_theory: float(frame.energy)}, info=info)
        low = self.committee._compute(region.system)
        de = float(frame.energy) - low.energy
        forces = res.forces + region.scatter(np.asarray(frame.forces, float) - low.forces)
        info["source"] = "committee+reference(cluster)"
        info["cluster_atoms"] = region.atoms.tolist()
        return Result(res.energy + de, forces, force_std=res.force_std, energy_std=res.energy_std,
                      contributions={self.committee.name: res.energy,
                                     f"{self.level_of_theory}-{self.committee.name}(cluster)": de},
                      info=info)

    def _promoted(self, system, res: Result, sigma) -> Result:
        """E = E_ML(all) + Σ_P σ_P [E_ref(P) - E_ML(P)], weights from σ_F (module docstring, "Promotion"):
        smooth in R with exact gradients ("conservative"), or σ_F as a fixed field ("fixed_field")."""
        if self._blend is None:
            from couplers.blend import BlendedCorrection
            from couplers.partition import ScorePartitioner

            from .promotion import UncertaintyPartitioner
            units = self._run_units(system)
            if self.promote == "conservative":
                part = UncertaintyPartitioner(self.committee, self.levels.lower, self.levels.upper, units,
                                              softness=self.promote_softness)
            else:
                part = ScorePartitioner(lambda s: self._sigma, self.levels.lower, self.levels.upper,
                                        molecules=units)
            charge = self.cluster_charge
            if charge is None and int(system.charge) != 0:
                raise InputError(f"{self.name}: the system has charge {system.charge}; give cluster_charge="
                                 "callable(atoms) -> charge for the promoted regions")
            self._blend = BlendedCorrection(self._promote_reference, self.committee, part, scheme="product",
                                            max_buffer=self.promote_max_buffer,
                                            bonds=self._bonds, charges=charge,
                                            open_shell=self.open_shell, name="promoted")
        self._sigma = sigma
        if self.promote == "conservative":
            self._blend.partitioner.set_deviation(system, sigma)     # the committee's σ_F, already computed
        corr = self._blend._compute(system)
        calls = int(corr.info["n_high_calls"])
        self.n_qm_calls += calls
        info = dict(res.info, source="promoted" if corr.info["inner_atoms"] or corr.info["buffer_atoms"]
                    else "committee", promoted=corr.info)
        info["n_qm_calls"] += calls
        virial = None if res.virial is None or corr.virial is None else res.virial + corr.virial
        return Result(res.energy + corr.energy, res.forces + corr.forces, virial=virial,
                      force_std=res.force_std, energy_std=res.energy_std,
                      contributions={self.committee.name: res.energy, "promoted": corr.energy}, info=info)

    # -- retraining -------------------------------------------------------------------
    def _fit_domain(self, frames) -> None:
        """Fit the trained domain (with ``contact_tolerance``): the shortest contacts of ``frames``."""
        if self.contact_tolerance is None:
            return
        from .uncertainty import ContactDomain
        self.domain = ContactDomain(self.committee.members[0].model.cutoff).fit(frames)

    def _trainable(self, frames) -> list:
        """``frames`` without the held-out ones (V is never trained on)."""
        return [f for f in frames if id(f) not in self._held_out]

    def _hold_out_if_due(self, frame) -> bool:
        """Put every round(1/f)-th label (at least every 2nd; the first included) into V unless V is fixed."""
        k = self._n_admitted
        self._n_admitted += 1
        if self._fixed_validation or self.validation_fraction <= 0:
            return False
        if k % max(2, int(round(1.0 / self.validation_fraction))):
            return False
        self.validation_frames.append(frame)
        self._held_out.add(id(frame))
        self.pending = [f for f in self.pending if f is not frame]
        return True

    def _retrain_due(self, step: int) -> bool:
        """A scheduled retrain (module docstring, "Retrains"): at least ``min_new_labels`` new labels, and
        ``retrain_every`` labels or ``retrain_interval`` steps since the last attempt."""
        since = len(self.pending) - self._deferred      # labels since a rejected attempt (0 if none)
        if len(self.pending) < self.min_new_labels or since < 1:
            return False
        if since >= self.retrain_every:
            return True
        return self.retrain_interval is not None and step - self.last_retrain_step >= self.retrain_interval

    def retrain(self) -> dict:
        """Retrain every member on the pending labels now, and keep the result only if it is no worse on
        the held-out frames (module docstring, "Retrains"); returns (and logs) the ``retrain`` event.

        fine_tune: new = the pending labels, old = train_frames + earlier labels (held-out ones excluded),
        n_replay = min(K_old, max(round(replay · K_new), min_replay)) old frames replayed. train: fresh
        weights, all frames but the held-out ones. Any error restores every member and raises
        :class:`ActiveLearningError`; the pending labels are kept.
        """
        import torch

        from .model import AtomicMLP
        from .training import errors, fine_tune, train

        if not self.pending:
            held = sum(1 for f in self.labels if id(f) in self._held_out)
            raise InputError(f"{self.name}: no new labels to retrain on ({len(self.labels)} labels, {held} of "
                             "them held out for validation)")
        val = list(self.validation_frames)
        new = list(self.pending)
        new_ids = {id(f) for f in new}
        old = self._trainable(self.train_frames + [f for f in self.labels if id(f) not in new_ids])
        attempt = self.n_retrains + 1
        t0 = time.perf_counter()
        before = committee_errors(self.committee, new)
        val_before = committee_errors(self.committee, val) if val else None
        saved = [(member.model, {k: v.detach().clone() for k, v in member.model.state_dict().items()})
                 for member in self.committee.members]

        def restore(m: int) -> None:
            model, state = saved[m]
            model.load_state_dict(state)
            self.committee.members[m].model = model.eval()

        members, where = [], "before training"
        try:
            for m, member in enumerate(self.committee.members):
                where = f"member {m}"
                seed = self.seed + 1000 * attempt + m
                entry = {"member": m}
                if val:
                    entry["val_before_force_rmse"] = errors(member.model, val, member.dtype)["force_rmse"]
                if self.retrain_mode == "fine_tune":
                    rep = fine_tune(member.model, new, old_frames=old, replay=self.replay,
                                    min_replay=self.min_replay, seed=seed, dtype=member.dtype,
                                    val_frames=val or None, **self.retrain_kwargs)
                else:
                    torch.manual_seed(seed)
                    model = AtomicMLP(**member.model.config)
                    rep = train(model, old + new, val_frames=val or None, seed=seed, dtype=member.dtype,
                                **self.retrain_kwargs)
                    member.model = model.to(member.dtype).eval()
                entry.update(epochs=rep.epochs, best_epoch=rep.best_epoch, n_replay=rep.info.get("n_replay"))
                for split, errs in rep.metrics.items():
                    entry[f"{split}_force_rmse"] = errs["force_rmse"]
                    entry[f"{split}_energy_rmse"] = errs["energy_rmse"]
                for key in ("new_before", "new_after", "old_before", "old_after"):
                    if key in rep.info:
                        entry[f"{key}_force_rmse"] = rep.info[key]["force_rmse"]
                if val:
                    entry["val_after_force_rmse"] = errors(member.model, val, member.dtype)["force_rmse"]
                members.append(entry)
            where = "the validation"
            val_after = committee_errors(self.committee, val) if val else None
        except BaseException as exc:
            for m in range(len(saved)):
                restore(m)
            if not isinstance(exc, Exception):
                raise
            raise ActiveLearningError(
                f"{self.name}: retrain {attempt} ({self.retrain_mode}, {len(new)} new labels) failed at {where}: "
                f"{type(exc).__name__}: {exc}. Every member is back to its weights before the retrain and the "
                f"{len(self.pending)} pending labels are kept") from exc

        # acceptance: member by member, then the committee's mean (module docstring, "Retrains")
        tol = self.retrain_tolerance
        no_worse = lambda after, prior: bool(np.isfinite(after) and after <= (1 + tol) * prior)  # noqa: E731
        rejected, val_kept = None, None
        if val:
            for e in members:
                e["accepted"] = no_worse(e["val_after_force_rmse"], e["val_before_force_rmse"])
                if not e["accepted"]:
                    restore(e["member"])
            kept = [e["member"] for e in members if e["accepted"]]
            val_kept = val_after if len(kept) == len(members) else \
                (committee_errors(self.committee, val) if kept else val_before)
            floor = val_before["force_rmse"]
            if self._val_floor is not None and self._val_floor[0] == len(val):
                floor = min(floor, self._val_floor[1])
            if not kept:
                rejected = "members"
            elif not no_worse(val_kept["force_rmse"], floor):
                for m in kept:
                    restore(m)
                for e in members:
                    e["accepted"] = False
                kept, rejected, val_kept = [], "committee", val_before
            self._val_floor = (len(val), min(floor, val_kept["force_rmse"]))
        else:
            for e in members:
                e["accepted"] = True
            kept = [e["member"] for e in members]
        accepted = bool(kept)
        if accepted:                  # the trained domain grows with the labels now trained on
            self._fit_domain(old + self._trainable(new))
        self.n_retrains = attempt
        self.last_retrain_step = self.step
        if accepted:
            self.pending, self._deferred = [], 0
        else:
            self._deferred = len(self.pending)       # the next attempt waits for retrain_every more labels
        event = {"event": "retrain", "step": self.step, "retrain": attempt, "mode": self.retrain_mode,
                 "n_new": len(new), "n_old": len(old), "n_val": len(val), "n_labels": len(self.labels),
                 "accepted": accepted, "accepted_members": kept, "rejected": rejected, "validated": bool(val),
                 "tolerance": tol, "val_before": val_before, "val_after": val_after, "val_kept": val_kept,
                 "val_floor": None if self._val_floor is None else self._val_floor[1],
                 "members": members, "new_before": before, "new_after": committee_errors(self.committee, new)}
        if self.monitor_frames:
            event["monitor"] = committee_errors(self.committee, self.monitor_frames)
        event["wall_time"] = time.perf_counter() - t0
        self._log(event)
        return self.events[-1]


def _draw(frames: list, fraction: float, seed: int) -> list:
    """A seeded held-out draw of max(1, round(fraction · K)) of K >= 2 frames, leaving at least one; [] else."""
    if fraction <= 0 or len(frames) < 2:
        return []
    n = min(len(frames) - 1, max(1, int(round(fraction * len(frames)))))
    picked = np.random.default_rng(seed).choice(len(frames), n, replace=False)
    return [frames[k] for k in sorted(picked.tolist())]


def _check_retrain_kwargs(kwargs: dict) -> None:
    """InputError for a retrain_kwargs key neither fine_tune nor train takes, or a bad value (named)."""
    import inspect

    from .training import _check_train_settings, fine_tune, train

    known = (set(inspect.signature(train).parameters) | set(inspect.signature(fine_tune).parameters)) \
        - {"model", "frames", "new_frames", "train_kwargs"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise InputError(f"ActiveLearner: retrain_kwargs {unknown} are not settings of fine_tune/train "
                         f"(known: {sorted(known)})")
    names = ("val_fraction", "w_energy", "w_forces", "l2", "epochs", "lr", "batch_size", "patience")
    _check_train_settings("ActiveLearner: retrain_kwargs", **{k: kwargs[k] for k in names if k in kwargs})


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise InputError(f"ActiveLearner: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v
