"""Force-matching training on EMT copper labels: offset, reports, Δ-ML frames, committees, fine-tuning,
minimum replay, and clear errors for bad settings and for fits in which no epoch is usable."""
import copy
import json

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from hybrid.errors import InputError
from hybrid.ml.adapters import ASECalculatorPotential
from hybrid.ml.committee import Committee
from hybrid.ml.model import AtomicMLP
from hybrid.ml.potential import MLPotential
from hybrid.ml.training import (Frame, TrainingError, delta_frames, errors, fine_tune, train, train_committee,
                                write_training_report)
from hybrid.system import AtomicSystem
from fdtools import fd_forces


def emt_frames(n, seed, shift=0.0, a=3.61, rattle=0.08, vacancies=True):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat([(1, 1, 2), (2, 1, 2), (2, 2, 2)][k % 3])
        for _ in range(k % 2 if vacancies else 0):  # cell size and vacancies: N varies 7-32
            del atoms[int(rng.integers(len(atoms)))]
        atoms.rattle(rattle, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        out.append(Frame(AtomicSystem.from_ase(atoms), atoms.get_potential_energy() + shift, atoms.get_forces(),
                         info={"config_id": k, "level_of_theory": "EMT"}))
    return out


@pytest.fixture(scope="module")
def data():
    return emt_frames(30, 0, shift=5.0), emt_frames(8, 1, shift=5.0)


@pytest.fixture(scope="module")
def fitted(data):
    frames, held_out = data
    torch.manual_seed(0)
    model = AtomicMLP((29,), cutoff=4.0, n_radial=6, hidden=(16, 16))
    before = errors(model, held_out)
    report = train(model, frames, epochs=80, lr=5e-3, batch_size=8, w_forces=10.0, seed=0)
    return model, report, before


def test_training_cuts_force_error_and_learns_offset(data, fitted):
    frames, held_out = data
    model, report, before = fitted
    after = errors(model, held_out)
    assert after["force_rmse"] < 0.3 * before["force_rmse"]
    assert after["energy_per_atom_rmse"] < 0.03
    # a non-extensive constant in the labels goes into b, not into the network
    assert float(model.energy_offset) == pytest.approx(-5.0, abs=0.5)
    pot = MLPotential(model)
    assert pot.compute(held_out[0].system).energy == pytest.approx(held_out[0].energy, abs=0.3)
    assert report.best_epoch <= report.epochs and "val" in report.metrics
    assert len(report.history) == report.epochs
    tr, va = report.split_frames(frames)
    assert len(tr) + len(va) == 30 and len(va) == 3 and not {id(f) for f in tr} & {id(f) for f in va}
    assert errors(model, va) == pytest.approx(report.metrics["val"])


def test_training_report_writes_parity_png_and_metrics(data, fitted, tmp_path):
    import matplotlib.image
    frames, held_out = data
    model, report, _ = fitted
    tr, va = report.split_frames(frames)
    out = write_training_report(model, tmp_path / "report", {"train": tr, "val": va, "test": held_out},
                                report=report, title="Cu EMT")
    png = matplotlib.image.imread(out["files"]["parity"])
    assert png.ndim == 3 and png.shape[0] > 300 and png.shape[1] > 2 * 300
    assert png[..., :3].std() > 0.05                        # not a blank canvas
    assert matplotlib.image.imread(out["files"]["learning_curve"]).shape[0] > 200
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    test = errors(model, held_out)
    for key in ("energy_mae", "energy_rmse", "force_mae", "force_rmse"):
        assert saved["metrics"]["test"][key] == pytest.approx(test[key])
        assert saved["metrics"]["train"][key] == pytest.approx(report.metrics["train"][key])
    assert saved["metrics"]["test"]["force_mae"] <= saved["metrics"]["test"]["force_rmse"]
    assert saved["best_epoch"] == report.best_epoch and saved["metrics"]["test"]["n_atoms"] == 132


def test_committee_mean_spread_and_forces(data):
    frames, held_out = data
    com, reports = train_committee(AtomicMLP((29,), cutoff=4.0, n_radial=4, hidden=(8,)), frames[:12], 2,
                                   seed=1, epochs=5)
    members = com.members
    assert isinstance(com, Committee) and [r.info["seed"] for r in reports] == [1, 2]
    s = held_out[1].system
    r = com.compute(s)
    parts = [m.compute(s) for m in members]
    assert r.energy == pytest.approx(np.mean([p.energy for p in parts]))
    assert r.energy_std == pytest.approx(np.std([p.energy for p in parts]))
    df = parts[0].forces - parts[1].forces
    assert np.allclose(r.force_std, 0.5 * np.linalg.norm(df, axis=1))
    assert np.abs(fd_forces(com, s, h=1e-4, atoms=[0, 5]) - r.forces)[[0, 5]].max() < 1e-5


def test_training_rejects_bad_labels(data):
    frames, _ = data
    model = AtomicMLP((29,), cutoff=4.0)
    bad = Frame(frames[0].system, frames[0].energy, frames[0].forces[:-1])
    with pytest.raises(InputError, match="training frame 0: forces have shape"):
        train(model, [bad])
    with pytest.raises(InputError, match="atom 0: element O is not among"):
        train(model, [Frame(AtomicSystem([8], [[0, 0, 0]]), 0.0, np.zeros((1, 3)))])


def test_committee_from_seeds_and_from_bootstrap(data):
    frames, held_out = data
    template = AtomicMLP((29,), cutoff=4.0, n_radial=4, hidden=(8,))
    s = held_out[2].system
    for mode in ("seeds", "bootstrap"):
        com, reports = train_committee(template, frames[:16], 3, mode=mode, seed=3, epochs=4, batch_size=8)
        assert len(com.members) == 3 and len(reports) == 3
        assert [r.info["member"] for r in reports] == [0, 1, 2] and all(r.info["mode"] == mode for r in reports)
        assert all(m.model.config == template.config for m in com.members)
        f = np.stack([m.compute(s).forces for m in com.members])
        assert np.abs(f[0] - f[1]).max() > 1e-4 and np.abs(f[1] - f[2]).max() > 1e-4   # members differ
        r = com.compute(s)
        assert r.force_std.shape == (len(s),) and r.force_std.max() > 0
        # one validation set shared by all members: 2 of 16 frames held out
        assert {r.metrics["val"]["n_frames"] for r in reports} == {2}
        if mode == "bootstrap":
            samples = [r.info["sample"] for r in reports]
            assert all(len(x) == 14 for x in samples) and samples[0] != samples[1] != samples[2]
            assert all(len(set(x)) < 14 for x in samples)        # with replacement: repeats
            assert all(r.info["unique_fraction"] == len(set(x)) / 14 for r, x in zip(reports, samples))
        else:
            assert all("sample" not in r.info for r in reports)
    with pytest.raises(InputError, match="mode 'jackknife'"):
        train_committee(template, frames[:16], 3, mode="jackknife")
    with pytest.raises(InputError, match="at least 2 members"):
        train_committee(template, frames[:16], 1)


def test_delta_frames_from_label_sets_and_from_a_baseline_potential(data):
    frames, _ = data
    target = frames[:5]
    lj = ASECalculatorPotential(LennardJones(sigma=2.3, epsilon=0.4, rc=5.0), name="LJ")
    by_potential = delta_frames(target, lj)
    baseline = [Frame(f.system, lj.compute(f.system).energy, lj.compute(f.system).forces,
                      info={"config_id": f.info["config_id"], "level_of_theory": "LJ"}) for f in target]
    by_labels = delta_frames(target, baseline[::-1])             # paired by config_id, not by order
    for t, b, d1, d2 in zip(target, baseline, by_potential, by_labels):
        assert d2.energy == pytest.approx(t.energy - b.energy, abs=1e-12)
        assert np.allclose(d2.forces, t.forces - b.forces, atol=1e-12)
        assert d1.energy == pytest.approx(d2.energy, abs=1e-12) and np.allclose(d1.forces, d2.forces)
        assert d2.info["config_id"] == t.info["config_id"] and d2.info["level_of_theory"] == "EMT - LJ"
        assert abs(d2.energy - t.energy) > 0.1                   # the baseline really was subtracted
    moved = copy.deepcopy(baseline)
    moved[3].system.positions[4] += [0.0, 0.01, 0.0]
    with pytest.raises(InputError, match="target frame 3 .config_id 3., atom 4 .Cu.: positions differ by 0.01"):
        delta_frames(target, moved)
    with pytest.raises(InputError, match="no baseline frame for config_id \\[4\\]"):
        delta_frames(target, baseline[:4])
    unpaired = [Frame(b.system, b.energy, b.forces) for b in baseline]
    unpaired[1] = Frame(AtomicSystem([8] * len(target[1].system), target[1].system.positions),
                        0.0, target[1].forces)
    with pytest.raises(InputError, match="target frame 1 .config_id 1., atom 0: Cu in the target, O in the baseline"):
        delta_frames(target, unpaired)


def test_fine_tuning_fits_new_data_and_keeps_the_old_fit(data, fitted):
    """Compressed, hotter copper: fine-tuning with replay learns it and keeps the old error; without replay it forgets."""
    frames, held_out = data
    model0, _, _ = fitted
    new = emt_frames(16, 5, shift=5.0, a=3.45, rattle=0.12, vacancies=False)
    new_test = emt_frames(6, 6, shift=5.0, a=3.45, rattle=0.12, vacancies=False)
    old_err, new_err = errors(model0, held_out), errors(model0, new_test)
    model = copy.deepcopy(model0)
    rep = fine_tune(model, new, old_frames=frames, replay=1.0, lr=2e-3, epochs=30, batch_size=8)
    after_new, after_old = errors(model, new_test), errors(model, held_out)
    assert after_new["force_rmse"] < 0.6 * new_err["force_rmse"]
    assert after_new["energy_per_atom_rmse"] < 0.6 * new_err["energy_per_atom_rmse"]
    assert after_old["force_rmse"] < 1.5 * old_err["force_rmse"]
    assert after_old["energy_per_atom_rmse"] < 1.5 * old_err["energy_per_atom_rmse"] + 0.005
    # the standardisation and the species are kept; the report holds before/after errors and the replay size
    assert torch.equal(model.feat_mean, model0.feat_mean) and torch.equal(model.feat_std, model0.feat_std)
    assert model.species == model0.species and rep.info["n_replay"] == 16
    assert rep.info["new_after"]["force_rmse"] < rep.info["new_before"]["force_rmse"]
    assert set(rep.info) >= {"old_before", "old_after", "new_before", "new_after"}
    forgetful = copy.deepcopy(model0)
    fine_tune(forgetful, new, replay=0.0, lr=2e-3, epochs=30, batch_size=8)
    assert errors(forgetful, held_out)["force_rmse"] > 2 * after_old["force_rmse"]
    with pytest.raises(InputError, match="fine-tuning frame 0, atom 0: element O"):
        fine_tune(model, [Frame(AtomicSystem([8], [[0, 0, 0]]), 0.0, np.zeros((1, 3)))])


# -- clear errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda m, fr: train(m, fr, batch_size=0), r"train: batch_size must be an integer >= 1, got 0"),
    (lambda m, fr: train(m, fr, val_fraction=1.5), r"train: val_fraction must be a finite number >= 0 and < 1, "
                                                   r"got 1.5"),
    (lambda m, fr: train(m, fr, val_fraction=1.0), r"val_fraction must be .* got 1.0"),
    (lambda m, fr: train(m, fr, epochs=0), r"train: epochs must be an integer >= 1, got 0"),
    (lambda m, fr: train(m, fr, lr=0.0), r"train: lr must be a finite number > 0, got 0.0"),
    (lambda m, fr: train(m, fr, w_forces=-1.0), r"train: w_forces must be a finite number >= 0, got -1.0"),
    (lambda m, fr: train(m, fr, w_energy=0, w_forces=0), r"w_energy and w_forces are both 0"),
    (lambda m, fr: train(m, fr, batch_size=2.5), r"batch_size must be an integer >= 1, got 2.5"),
    (lambda m, fr: fine_tune(m, fr[:2], old_frames=fr, replay=-1), r"fine_tune: replay must be a finite number "
                                                                   r">= 0, got -1"),
    (lambda m, fr: fine_tune(m, fr[:2], old_frames=fr, replay=float("nan")), r"replay must be .* got nan"),
    (lambda m, fr: fine_tune(m, fr[:2], min_replay=-2), r"fine_tune: min_replay must be an integer >= 0, got -2"),
    (lambda m, fr: fine_tune(m, fr[:2], batch_size=0), r"train: batch_size must be an integer >= 1, got 0"),
    (lambda m, fr: train_committee(m, fr, 2, val_fraction=1.5), r"train_committee: val_fraction must be"),
    (lambda m, fr: errors(m, fr, batch_size=0), r"predictions: batch_size must be an integer >= 1, got 0"),
])
def test_bad_training_settings_are_named_before_any_work(data, call, message):
    frames, _ = data
    model = AtomicMLP((29,), cutoff=4.0, n_radial=4, hidden=(8,))
    state = copy.deepcopy(model.state_dict())
    with pytest.raises(InputError, match=message):
        call(model, frames[:6])
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())      # nothing was done


@pytest.mark.parametrize("spoil", ["nan_weights", "labels_far_too_large"])
def test_a_fit_with_no_finite_epoch_says_so_and_leaves_the_model_as_given(data, spoil):
    frames, _ = data
    torch.manual_seed(0)
    model = AtomicMLP((29,), cutoff=4.0, n_radial=4, hidden=(8,))
    frames = frames[:6]
    if spoil == "nan_weights":
        with torch.no_grad():
            model.nets[0][0].weight[0, 0] = float("nan")
    else:      # finite labels whose squared errors overflow: the loss is inf in every epoch
        frames = [Frame(f.system, f.energy * 1e160, f.forces) for f in frames]
    state = copy.deepcopy(model.state_dict())
    loss = "nan" if spoil == "nan_weights" else "inf"
    with pytest.raises(TrainingError, match=rf"train: no epoch of 3 gave a finite validation loss \(last epoch: "
                                            rf"train loss {loss}, validation loss {loss}\); the model is left as "
                                            r"it was given"):
        train(model, frames, epochs=3, batch_size=4)
    for k, v in model.state_dict().items():      # the same values (train works in float64)
        assert torch.allclose(state[k].to(v.dtype), v, rtol=0, atol=0, equal_nan=True), k


def test_fine_tuning_replays_at_least_min_replay_old_frames(data, fitted):
    frames, _ = data
    model0, _, _ = fitted
    for replay, min_replay, expect in ((1.0, 0, 1), (1.0, 5, 5), (3.0, 2, 3), (1.0, 100, 30)):
        rep = fine_tune(copy.deepcopy(model0), frames[:1], old_frames=frames, replay=replay, min_replay=min_replay,
                        epochs=1, batch_size=8)
        assert rep.info["n_replay"] == expect, (replay, min_replay)


def test_held_out_split_is_seeded_disjoint_and_the_model_scripts_split():
    from hybrid.ml.training import held_out_split
    for n in range(1, 400):
        test, rest = held_out_split(n, 0.1, 0)
        assert len(test) == n // 10 and sorted(test + rest) == list(range(n))
    order = np.random.default_rng(0).permutation(300)       # what models/make_water_gfn2xtb.py took before
    assert held_out_split(300, 0.1, 0)[0] == [int(k) for k in order[:30]]
