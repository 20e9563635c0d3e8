"""On-the-fly active learning: triggers, labels (in memory and to a label file), retraining,
untrusted steps, uncertainty-driven promotion and the capped clusters sent to the reference."""
import functools
import json

import numpy as np
import pytest
import torch
from ase import units as ase_units
from ase.build import molecule
from ase.data import covalent_radii
from ase.md.langevin import Langevin
try:
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:   # ASE < 3.27
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

from couplers.ase_calculator import HybridCalculator
from couplers.blend import blended
from couplers.partition import FixedPartitioner
from hybrid.build import water_cluster
from hybrid.errors import InputError
from hybrid.labelling import load_labels
from hybrid.ml.active import (ActiveLearner, UntrustedStepError, cluster_atoms, committee_errors,
                              fragment_units, uncertain_cluster)
from hybrid.ml.adapters import XTBPotential
from hybrid.ml.committee import Committee
from hybrid.ml.model import AtomicMLP
from hybrid.ml.potential import MLPotential
from hybrid.ml.training import Frame, train_committee
from hybrid.ml.uncertainty import TrustLevels
from hybrid.system import AtomicSystem


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import pyscf
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    pyscf.lib.num_threads(1)
    yield
    torch.set_num_threads(n)


def random_committee(species=(1, 8), n=2, hidden=(8,)):
    """Untrained members: different random weights, so their forces disagree."""
    members = []
    for m in range(n):
        torch.manual_seed(100 + m)
        members.append(MLPotential(AtomicMLP(species, cutoff=4.0, n_radial=3, hidden=hidden), name=f"m{m}"))
    return Committee(members)


def butane_and_waters():
    """trans-butane (atoms 0-13), a water next to H4 (14-16) and a distant water (17-19)."""
    but = molecule("trans-butane")
    h4 = but.positions[4]
    o = h4 + [1.8, 0.4, 0.0]
    near = [o, o + [0.586, 0.757, 0.0], o + [0.586, -0.757, 0.0]]
    far = [[-9.0, 0.0, 0.0], [-9.586, 0.757, 0.0], [-9.586, -0.757, 0.0]]
    return AtomicSystem(list(but.numbers) + [8, 1, 1, 8, 1, 1], np.vstack([but.positions, near, far]))


# -- clusters ----------------------------------------------------------------------------
def test_cluster_takes_whole_molecules_and_caps_a_cut_c_c_bond():
    s = butane_and_waters()
    # distances from the uncertain atom H4: C0 1.09, H6/H7 1.77, water O 1.84, C1 2.18, water H's 2.4-2.7 Å
    units = fragment_units(s, max_molecule_atoms=8)
    as_sets = sorted(tuple(u.tolist()) for u in units)
    assert as_sets == [(0, 4, 6, 7), (1, 10, 11), (2, 12, 13), (3, 5, 8, 9), (14, 15, 16), (17, 18, 19)]
    region = uncertain_cluster(s, [4], 2.0, max_molecule_atoms=8)
    # the CH3 of H4 and the whole near water (its H's lie beyond 2 Å); not C1, not the far water
    assert region.atoms.tolist() == [0, 4, 6, 7, 14, 15, 16]
    assert region.cuts.tolist() == [[0, 1]]
    sub = region.system
    assert sub.numbers.tolist() == [6, 1, 1, 1, 8, 1, 1, 1]
    g = (covalent_radii[6] + covalent_radii[1]) / (2 * covalent_radii[6])
    link = s.positions[0] + g * (s.positions[1] - s.positions[0])
    assert np.allclose(sub.positions[-1], link)
    assert np.linalg.norm(sub.positions[-1] - sub.positions[0]) == pytest.approx(1.52 * g, abs=0.02)
    assert np.allclose(sub.positions[:7], s.positions[region.atoms])
    # a force on the link atom goes to C0 and C1 by the chain rule; the total is kept
    f = np.zeros((8, 3))
    f[-1] = [0.0, 1.0, 0.0]
    full = region.scatter(f)
    assert np.allclose(full[0], (1 - g) * f[-1]) and np.allclose(full[1], g * f[-1])
    assert np.allclose(full.sum(0), f.sum(0))
    # with the default size limit butane is one unit: the whole molecule comes along, no cut
    whole = uncertain_cluster(s, [4], 2.0)
    assert whole.atoms.tolist() == list(range(17)) and len(whole.cuts) == 0


def test_cluster_inputs_are_checked():
    s = butane_and_waters()
    units = fragment_units(s)
    with pytest.raises(InputError, match="centre atom 40 is outside a system of 20 atoms"):
        cluster_atoms(s, [40], 2.0, units)
    with pytest.raises(InputError, match="radius must be a positive"):
        cluster_atoms(s, [4], 0.0, units)
    with pytest.raises(InputError, match="cover atom 17 0 times"):
        cluster_atoms(s, [4], 2.0, units[:-1])
    with pytest.raises(InputError, match="cover atom 0 2 times"):
        cluster_atoms(s, [4], 2.0, units + [np.array([0])])
    with pytest.raises(InputError, match="unit 3 holds atom 25, outside a system of 20 atoms"):
        cluster_atoms(s, [4], 2.0, units + [np.array([25])])


# -- one step at a time -------------------------------------------------------------------
def test_candidate_failed_and_unchecked_steps():
    s = water_cluster(2, seed=1)
    com = random_committee()
    eps = float(com.compute(s).force_std.max())
    xtb = XTBPotential()
    ref = xtb.compute(s)

    # candidate: labelled, but the step keeps the committee's forces
    al = ActiveLearner(com, XTBPotential(), levels=TrustLevels(eps / 2, 2 * eps), retrain_every=50)
    r = al.compute(s)
    assert r.info["status"] == "candidate" and r.info["trusted"] and r.info["label_id"] == 0
    assert np.allclose(r.forces, com.compute(s).forces)
    assert r.info["max_force_deviation"] == pytest.approx(eps)
    assert [e["event"] for e in al.events] == ["start", "trigger", "label"]
    assert al.labels[0].energy == pytest.approx(ref.energy) and np.allclose(al.labels[0].forces, ref.forces)

    # failed, FLARE-like: the step's energy and forces are the reference label's
    al = ActiveLearner(com, XTBPotential(), levels=TrustLevels(eps / 4, eps / 2), retrain_every=50)
    r = al.compute(s)
    assert r.info["status"] == "failed" and not r.info["trusted"] and r.info["source"] == "reference"
    assert r.energy == pytest.approx(ref.energy) and np.allclose(r.forces, ref.forces)
    assert np.allclose(r.force_std, com.compute(s).force_std)
    untrusted = [e for e in al.events if e["event"] == "untrusted"]
    assert untrusted[0]["action"] == "reference" and untrusted[0]["label_id"] == 0

    # failed, strict: stop before any QM call
    al = ActiveLearner(com, XTBPotential(), levels=TrustLevels(eps / 4, eps / 2), on_untrusted="raise")
    with pytest.raises(UntrustedStepError, match="step 0: model deviation") as err:
        al.compute(s)
    assert err.value.deviation == pytest.approx(eps) and not al.labels and al.n_qm_calls == 0
    assert al.events[-1]["event"] == "untrusted" and al.events[-1]["action"] == "raise"

    # only every second step is checked
    al = ActiveLearner(com, XTBPotential(), levels=TrustLevels(eps / 2, 2 * eps), check_every=2,
                       retrain_every=50)
    statuses = [al.compute(s.with_positions(s.positions + 0.01 * k)).info["status"] for k in range(3)]
    assert statuses == ["candidate", "unchecked", "candidate"]
    assert [f.info["step"] for f in al.labels] == [0, 2] and al.summary()["checks"] == 2


def test_failed_step_with_a_cluster_is_reference_inside_committee_outside():
    s = AtomicSystem.from_ase(molecule("trans-butane"))
    s = s.with_positions(s.positions + np.random.default_rng(5).normal(scale=0.03, size=(14, 3)))  # no ties
    com = random_committee(species=(1, 6))
    sigma = com.compute(s).force_std
    top = float(sigma.max())
    # only the most uncertain atom is uncertain; its united atom (C + H's) becomes CH4 with link atoms
    al = ActiveLearner(com, XTBPotential(), levels=TrustLevels(0.999 * top, 0.9995 * top),
                       cluster_radius=0.5, max_molecule_atoms=4, retrain_every=50)
    r = al.compute(s)
    assert r.info["uncertain_atoms"] == [int(np.argmax(sigma))]
    assert r.info["source"] == "committee+reference(cluster)"
    frame = al.labels[0]
    atoms = frame.info["cluster_atoms"]
    assert int(np.argmax(sigma)) in atoms and frame.info["n_links"] >= 1
    assert sorted(frame.system.numbers.tolist()) == [1, 1, 1, 1, 6]            # capped: a methane
    region = uncertain_cluster(s, [int(np.argmax(sigma))], 0.5, max_molecule_atoms=4)
    assert region.atoms.tolist() == atoms
    full, ml_c, qm_c = com.compute(s), com.compute(region.system), XTBPotential().compute(region.system)
    assert r.energy == pytest.approx(full.energy + qm_c.energy - ml_c.energy)
    assert np.allclose(r.forces, full.forces + region.scatter(qm_c.forces - ml_c.forces))
    outside = np.setdiff1d(np.arange(len(s)), np.unique(np.concatenate([region.atoms, region.cuts.ravel()])))
    assert np.allclose(r.forces[outside], full.forces[outside])


def test_promotion_puts_the_uncertain_molecule_in_the_reference_region():
    s = water_cluster(3, seed=2)
    com = random_committee()
    sigma = com.compute(s).force_std
    su = np.array([sigma[3 * k:3 * k + 3].max() for k in range(3)])
    order = np.argsort(-su)
    s1, s2 = su[order[0]], su[order[1]]
    levels = TrustLevels(s2 + 0.25 * (s1 - s2), s2 + 0.5 * (s1 - s2))   # molecule order[0]: w = 1, others 0
    al = ActiveLearner(com, functools.partial(XTBPotential), levels=levels, promote=True, retrain_every=50)
    r = al.compute(s)
    mol = np.arange(3 * order[0], 3 * order[0] + 3)
    assert r.info["promoted"]["inner_atoms"] == mol.tolist() and r.info["promoted"]["buffer_atoms"] == []
    sub = s.subset(mol)
    full, ml_m, qm_m = com.compute(s), com.compute(sub), XTBPotential().compute(sub)
    assert r.energy == pytest.approx(full.energy + qm_m.energy - ml_m.energy)
    expect = full.forces.copy()
    expect[mol] += qm_m.forces - ml_m.forces
    assert np.allclose(r.forces, expect)
    assert r.info["source"] == "promoted" and r.info["n_qm_calls"] == 2     # the label and the region
    assert al.events[-1]["action"] == "promote"


def test_in_a_blend_only_whole_system_calls_are_steps():
    s = water_cluster(3, seed=3)
    com = random_committee()
    al = ActiveLearner(com, XTBPotential(), levels=TrustLevels(50.0, 100.0))
    model = blended(al, XTBPotential(), FixedPartitioner([0, 1, 2]))
    model.compute(s)     # the learner runs on the whole system and on the capped region
    model.compute(s)
    assert al.step == 1 and al.summary()["checks"] == 2 and not al.labels


def test_retrain_every_n_steps_from_fresh_weights():
    s = water_cluster(2, seed=4)
    com = random_committee(hidden=(4,))
    old_models = [m.model for m in com.members]
    before = [p.detach().clone() for p in old_models[0].parameters()]
    al = ActiveLearner(com, XTBPotential(), levels=TrustLevels(0.0, 1e6), retrain="train", retrain_every=50,
                       retrain_interval=2, retrain_kwargs=dict(epochs=3, batch_size=2))
    infos = [al.compute(s.with_positions(s.positions + 0.02 * k)).info for k in range(3)]
    assert [i["retrained"] for i in infos] == [False, True, False]
    (ev,) = [e for e in al.events if e["event"] == "retrain"]
    assert ev["step"] == 1 and ev["n_new"] == 2 and ev["mode"] == "train" and len(ev["members"]) == 2
    assert all(m.model is not old for m, old in zip(com.members, old_models))
    assert not all(torch.equal(a, b) for a, b in zip(before, com.members[0].model.parameters()))
    assert len(al.pending) == 1 and al.summary()["retrains"] == 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(check_every=0), "check_every must be an integer >= 1"),
    (dict(retrain="scratch"), "retrain='scratch' is not one of"),
    (dict(on_untrusted="ignore"), "on_untrusted='ignore' is not one of"),
    (dict(cluster_radius=-1.0), "cluster_radius must be a positive distance"),
    (dict(retrain_kwargs={"seed": 3}), "may not set 'seed'"),
    (dict(levels=(0.1, 0.2)), "levels must be TrustLevels"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(InputError, match=message):
        ActiveLearner(random_committee(), XTBPotential(), **kwargs)


def test_members_must_be_trainable():
    com = Committee([XTBPotential(), XTBPotential()])
    with pytest.raises(InputError, match="committee member 0 .* is a XTBPotential, not an MLPotential"):
        ActiveLearner(com, XTBPotential())


# -- the done-when run ----------------------------------------------------------------------
def xtb_frames(system, seed, steps, every):
    """Frames of a GFN2-xTB Langevin run at 300 K (0.5 fs), every ``every`` steps."""
    atoms = system.to_ase()
    atoms.calc = HybridCalculator(XTBPotential())
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(seed))
    md = Langevin(atoms, 0.5 * ase_units.fs, temperature_K=300, friction=0.02, fixcm=False,
                  rng=np.random.default_rng(seed))
    out = []
    for k in range(steps):
        md.run(1)
        if k % every == every - 1:
            r = atoms.calc.result
            out.append(Frame(system.with_positions(atoms.positions), r.energy, r.forces.copy()))
    return out


def test_active_learning_from_a_poor_model_lowers_the_held_out_error(tmp_path):
    s = water_cluster(3, seed=0)
    xtb = XTBPotential()
    held_out = xtb_frames(s, seed=1, steps=60, every=5)                 # 12 thermal frames at 300 K
    rng = np.random.default_rng(0)
    narrow = []                                                          # 4 frames, 0.01 Å rattles
    for _ in range(4):
        g = s.with_positions(s.positions + rng.normal(scale=0.01, size=s.positions.shape))
        r = xtb.compute(g)
        narrow.append(Frame(g, r.energy, r.forces))
    com, _ = train_committee(AtomicMLP((1, 8), cutoff=4.0, n_radial=4, hidden=(16,)), narrow, 3, epochs=60,
                             lr=5e-3, batch_size=4)
    before = committee_errors(com, held_out)

    labels, log = tmp_path / "labels.xyz", tmp_path / "active.jsonl"
    al = ActiveLearner(com, functools.partial(XTBPotential), train_frames=narrow, check_every=2,
                       retrain_every=6, replay=1.0, retrain_kwargs=dict(epochs=40, lr=5e-3, batch_size=8),
                       label_output=labels, log_path=log, monitor_frames=held_out)
    atoms = s.to_ase()
    atoms.calc = HybridCalculator(al)
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(2))
    Langevin(atoms, 0.5 * ase_units.fs, temperature_K=300, friction=0.02, fixcm=False,
             rng=np.random.default_rng(2)).run(60)
    after = committee_errors(com, held_out)

    summary = al.summary()
    retrains = [e for e in al.events if e["event"] == "retrain"]
    print(f"held-out force RMSE {before['force_rmse']:.3f} -> {after['force_rmse']:.3f} eV/Å, "
          f"energy RMSE {before['energy_rmse']:.3f} -> {after['energy_rmse']:.3f} eV; {summary}; "
          f"monitor after each retrain {[round(e['monitor']['force_rmse'], 3) for e in retrains]}")
    assert after["force_rmse"] < 0.75 * before["force_rmse"]     # 0.23-0.32 vs 0.505 over 6 MD seeds
    assert al.events[0]["monitor"]["force_rmse"] == pytest.approx(before["force_rmse"])
    assert retrains[-1]["monitor"]["force_rmse"] == pytest.approx(after["force_rmse"])

    # the log: every checked step that triggered has its label; retrains every 6 labels
    assert summary["steps"] == 61 and summary["checks"] == 31
    assert summary["triggers"] == summary["labels"] == summary["qm_calls"] >= 18
    assert summary["retrains"] == summary["labels"] // 6 >= 3
    assert all(e["n_new"] == 6 and len(e["members"]) == 3 for e in retrains)
    triggers = [e for e in al.events if e["event"] == "trigger"]
    label_events = [e for e in al.events if e["event"] == "label"]
    assert [e["step"] for e in triggers] == [e["step"] for e in label_events]
    assert [e["label_id"] for e in label_events] == list(range(summary["labels"]))
    assert all(e["deviation"] >= al.levels.lower for e in triggers)
    for e in al.events:
        if e["event"] == "untrusted":
            assert e["action"] == "reference" and e["label_id"] is not None
    on_file = [json.loads(line) for line in log.read_text().splitlines()]
    assert on_file == json.loads(json.dumps(al.events))

    # labels persist: the file holds every one; a new learner on it loads them and continues the ids
    stored = load_labels(labels)
    assert [f.info["config_id"] for f in stored] == list(range(summary["labels"]))
    again = ActiveLearner(com, functools.partial(XTBPotential), levels=TrustLevels(0.0, 1e6),
                          label_output=labels, retrain_every=1000)
    assert len(again.labels) == len(again.pending) == summary["labels"]
    again.compute(s)
    assert again.labels[-1].info["config_id"] == summary["labels"]
