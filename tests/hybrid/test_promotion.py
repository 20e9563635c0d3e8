"""Uncertainty-driven promotion as a Hamiltonian: exact forces and virial inside the buffer, the
fixed-field mode's missing switching term (flagged), NVE drift of both, the conservative flag on
reference steps and retrains (also in a run's CSV), and molecules that a stretched bond at step 0
does not split."""
import copy
import inspect
import textwrap
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import units as ase_units
from ase.md.verlet import VelocityVerlet

try:
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:   # ASE < 3.27
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

from couplers.ase_calculator import HybridCalculator
from couplers.partition import find_molecules
from fdtools import fd_forces
from hybrid.build import water_box, water_cluster
from hybrid.config import load_config
from hybrid.errors import InputError
from hybrid.md.outputs import read_csv
from hybrid.md.runner import Runner
from hybrid.ml.active import ActiveLearner
from hybrid.ml.committee import Committee
from hybrid.ml.potential import MLPotential
from hybrid.ml.promotion import UncertaintyPartitioner, smooth_max
from hybrid.ml.uncertainty import TrustLevels
from hybrid.system import AtomicSystem

ROOT = Path(__file__).resolve().parents[2]
MLIP = ROOT / "models" / "water_gfn2xtb.pt"


def perturbed_committee(reference: MLPotential, scale=0.1, n=3):
    """Members = the reference model with its network weights perturbed by scale · mean|w| noise:
    a committee that approximates the reference and disagrees where the perturbations matter."""
    members = []
    for seed in range(n):
        model = copy.deepcopy(reference.model)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.nets.parameters():
                p.add_(scale * p.abs().mean() * torch.randn(p.shape, generator=g, dtype=p.dtype))
        members.append(MLPotential(model, name=f"m{seed}"))
    return Committee(members)


@pytest.fixture(scope="module")
def levels3():
    """(reference MLIP, committee, 3 waters, unit max σ_F (eV/Å)) with every water's score distinct."""
    ref = MLPotential.load(MLIP, name="ref")
    com = perturbed_committee(ref)
    s = water_cluster(3, seed=2)
    sigma = com.compute(s).force_std
    return ref, com, s, np.array([sigma[3 * k:3 * k + 3].max() for k in range(3)])


def buffer_levels(unit_max):
    """Trust levels with every unit inside the band (lo below the smallest, hi above the largest score)."""
    return TrustLevels(0.8 * unit_max.min(), 1.1 * unit_max.max())


def learner(ref, com, levels, promote, **kw):
    return ActiveLearner(com, ref, levels=levels, promote=promote, check_every=10**6, retrain_every=10**6, **kw)


# -- exact forces ------------------------------------------------------------------------------
def test_conservative_promotion_forces_are_minus_the_gradient_inside_the_buffer(levels3):
    ref, com, s, unit_max = levels3
    al = learner(ref, com, buffer_levels(unit_max), True)
    r = al.compute(s)
    w = r.info["promoted"]["weights"]
    assert sorted(w) == [0, 1, 2] and all(0.0 < v < 1.0 for v in w.values())     # all three in the buffer
    assert r.info["promoted"]["n_high_calls"] == 7 and r.info["source"] == "promoted"   # 2³ - 1 (empty: none)
    fd = fd_forces(al, s, h=1e-4)
    err = np.abs(fd - r.forces).max()
    print(f"conservative promotion: max |F - F_FD| = {err:.2e} eV/Å at weights {w}")
    assert err < 1e-4
    # the switching term is there and large: without it the forces would be off by far more
    part = al._blend.partitioner
    assert max(np.abs(g).max() for g in part.weights(s).grad.values()) > 1.0      # 1/Å
    assert r.info["conservative"] and al.n_nonconservative == 0


def test_fixed_field_promotion_misses_the_switching_term_and_is_flagged(levels3):
    ref, com, s, unit_max = levels3
    al = learner(ref, com, buffer_levels(unit_max), "fixed_field")
    r = al.compute(s)
    w = r.info["promoted"]["weights"]
    assert all(0.0 < v < 1.0 for v in w.values()) and len(w) == 3
    assert r.info["conservative"] is False
    err = np.abs(fd_forces(al, s, h=1e-4) - r.forces).max()
    print(f"fixed-field promotion: max |F - F_FD| = {err:.3g} eV/Å at weights {w}")
    assert err > 1e-2
    assert al.n_nonconservative == 1 + 6 * len(s)              # every evaluation had a buffer unit


def test_weight_gradients_and_strain_derivatives_are_exact_in_a_periodic_box():
    ref = MLPotential.load(MLIP, name="ref")
    com = perturbed_committee(ref)
    s = water_box(2, spacing=3.1, seed=1)
    units = [np.arange(3 * k, 3 * k + 3) for k in range(8)]
    sigma = com.compute(s).force_std
    sc = np.sort(smooth_max(sigma, units, 0.005))
    part = UncertaintyPartitioner(com, sc[-3], sc[-1] + 0.01, units)
    W = part.weights(s)
    assert 1 <= len(W.buffer) and all(0.0 < W.w[k] < 1.0 for k in W.buffer)
    h = 1e-5
    for k in W.buffer:
        fd = W.grad[k].copy()
        near = np.argsort(np.linalg.norm(s.positions - s.positions[units[k][0]], axis=1))[:9]   # the unit, neighbours
        for a in near:
            for c in range(3):
                x = s.positions.copy()
                x[a, c] += h
                wp = part.weights(s.with_positions(x)).w[k]
                x[a, c] -= 2 * h
                fd[a, c] = (wp - part.weights(s.with_positions(x)).w[k]) / (2 * h)
        assert np.abs(fd - W.grad[k]).max() < 1e-6 * max(1.0, np.abs(fd).max())
        fe = np.zeros((3, 3))
        for a in range(3):
            for b in range(3):
                e = np.zeros((3, 3))
                e[a, b] = h
                ws = [part.weights(AtomicSystem(s.numbers, s.positions @ (np.eye(3) + sgn * e),
                                                cell=s.cell @ (np.eye(3) + sgn * e), pbc=s.pbc)).w[k]
                      for sgn in (1, -1)]
                fe[a, b] = (ws[0] - ws[1]) / (2 * h)
        assert np.abs(fe - W.strain[k]).max() < 1e-6 * max(1.0, np.abs(fe).max())


def test_conservative_promotion_virial_is_minus_the_strain_derivative():
    ref = MLPotential.load(MLIP, name="ref")
    com = perturbed_committee(ref)
    s = water_box(2, spacing=3.1, seed=1)
    sc = np.sort(smooth_max(com.compute(s).force_std, [np.arange(3 * k, 3 * k + 3) for k in range(8)], 0.005))
    # one unit in the buffer: a periodic region of scattered units can exceed half of this small box
    al = learner(ref, com, TrustLevels((sc[-2] + sc[-1]) / 2, 1.1 * sc[-1]), True)
    r = al.compute(s)
    assert len(r.info["promoted"]["weights"]) == 1 and 0 < list(r.info["promoted"]["weights"].values())[0] < 1
    h = 1e-5
    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = np.zeros((3, 3))
            e[a, b] = h
            ep, em = (al.compute(AtomicSystem(s.numbers, s.positions @ (np.eye(3) + sg * e),
                                              cell=s.cell @ (np.eye(3) + sg * e), pbc=s.pbc)).energy
                      for sg in (1, -1))
            fd[a, b] = -(ep - em) / (2 * h)
    assert np.abs(fd - r.virial).max() < 1e-5


# -- energy conservation -------------------------------------------------------------------------
def nve_drift(al, system, steps, dt_fs, seed=0):
    """max |E_tot - E_tot(0)| (eV) of velocity Verlet from 300 K velocities, and the weights seen."""
    atoms = system.to_ase()
    atoms.calc = HybridCalculator(al)
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(seed))
    atoms.set_momenta(atoms.get_momenta() - atoms.get_momenta().mean(0))
    md = VelocityVerlet(atoms, dt_fs * ase_units.fs)
    e, weights = [], []
    for _ in range(steps):
        e.append(atoms.get_potential_energy() + atoms.get_kinetic_energy())
        weights += list(atoms.calc.result.info["promoted"]["weights"].values())
        md.run(1)
    return float(np.abs(np.array(e) - e[0]).max()), np.array(weights)


def test_nve_drift_of_conservative_promotion_is_small_against_the_fixed_field(levels3):
    ref, com, s, unit_max = levels3
    levels = buffer_levels(unit_max)
    cons, w_c = nve_drift(learner(ref, com, levels, True), s, 120, 0.25)
    fixed, w_f = nve_drift(learner(ref, com, levels, "fixed_field"), s, 120, 0.25)
    print(f"NVE 30 fs (0.25 fs steps), 3 waters: max |ΔE_tot| conservative {1e3 * cons:.3f} meV, "
          f"fixed field {1e3 * fixed:.3f} meV")
    for w in (w_c, w_f):      # units sat in the buffer for most of the run
        assert np.mean((w > 0) & (w < 1)) > 0.9
    assert cons < 0.25 * fixed and cons < 1e-3


# -- the flag ---------------------------------------------------------------------------------------
def test_reference_steps_and_model_changes_are_flagged(levels3):
    ref, com, s, unit_max = levels3
    com = copy.deepcopy(com)
    eps = float(com.compute(s).force_std.max())
    al = ActiveLearner(com, ref, levels=TrustLevels(eps / 4, eps / 2), check_every=3, retrain_every=10**6)
    flags, sources = [], []
    for k in range(5):     # step 0: failed, answered from the reference; 1, 2 unchecked; 3 failed
        r = al.compute(s.with_positions(s.positions + 0.001 * k))
        flags.append(r.info["conservative"])
        sources.append(r.info["source"])
    assert sources == ["reference", "committee", "committee", "reference", "committee"]
    # step 0 starts the run; 1 is back on the committee's surface, 3 leaves it, 4 returns
    assert flags == [True, False, True, False, False]
    assert r.info["n_nonconservative"] == 3 == al.n_nonconservative
    # a retrain (here: weights changed in place, as fine-tuning does) flags the next step only
    al.levels = TrustLevels(10 * eps, 20 * eps)
    assert al.compute(s).info["conservative"]
    with torch.no_grad():
        next(com.members[0].model.parameters()).mul_(1.01)
    assert [al.compute(s).info["conservative"] for _ in range(2)] == [False, True]


def test_conservative_promotion_keeps_failed_steps_on_its_surface(levels3):
    ref, com, s, unit_max = levels3
    # every unit above hi: failed step, all promoted (w = 1), no reference answer of its own
    al = ActiveLearner(com, ref, levels=TrustLevels(0.1 * unit_max.min(), 0.5 * unit_max.min()), promote=True,
                       retrain_every=10**6)
    infos = [al.compute(s.with_positions(s.positions + 0.001 * k)).info for k in range(3)]
    assert [i["status"] for i in infos] == ["failed"] * 3 and not infos[0]["trusted"]
    assert all(i["conservative"] for i in infos) and all(i["source"] == "promoted" for i in infos)


def test_a_runs_csv_has_the_conservative_column(tmp_path):
    ase.io.write(tmp_path / "w3.xyz", water_cluster(3, seed=2).to_ase(), format="extxyz")
    (tmp_path / "level.py").write_text(textwrap.dedent('''
        import copy
        import torch
        from hybrid.ml.active import ActiveLearner
        from hybrid.ml.committee import Committee
        from hybrid.ml.potential import MLPotential
        from hybrid.ml.uncertainty import TrustLevels
        ''') + inspect.getsource(perturbed_committee) + textwrap.dedent('''

        def make_potential(model, promote, lo, hi):
            ref = MLPotential.load(model, name="ref")
            return ActiveLearner(perturbed_committee(ref), ref, levels=TrustLevels(lo, hi), promote=promote,
                                 check_every=10**6, retrain_every=10**6)
        '''))
    ref = MLPotential.load(MLIP)
    s = water_cluster(3, seed=2)
    sigma = perturbed_committee(ref).compute(s).force_std
    levels = buffer_levels(np.array([sigma[3 * k:3 * k + 3].max() for k in range(3)]))
    out = {}
    for mode in ("conservative", "fixed_field"):
        d = tmp_path / mode
        d.mkdir()
        (d / "config.toml").write_text(textwrap.dedent(f'''
            [structure]
            file = "../w3.xyz"
            [[levels]]
            name = "active"
            kind = "python"
            file = "../level.py"
            options = {{model = "{MLIP}", promote = "{mode}", lo = {levels.lower}, hi = {levels.upper}}}
            [md]
            integrator = "verlet"
            timestep_fs = 0.25
            steps = 8
            temperature_K = 300
            seed = 1
            [output]
            report_interval = 2
            progress = false
            '''))
        summary = Runner(load_config(d / "config.toml")).run()
        out[mode] = (read_csv(d / "output" / "energies.csv"), summary)
    (dc, sc), (df, sf) = out["conservative"], out["fixed_field"]
    assert dc["step"].tolist() == [0, 2, 4, 6, 8]
    assert dc["conservative"].tolist() == [1.0] * 5 and sc.nonconservative_rows == 0
    assert df["conservative"].tolist() == [0.0] * 5 and sf.nonconservative_rows == 5
    assert "5 CSV rows with conservative = 0" in sf.text()


# -- molecules ------------------------------------------------------------------------------------
def stretched(s: AtomicSystem, length: float) -> AtomicSystem:
    """``s`` with the O0-H1 bond of the first water stretched to ``length`` Å along its direction."""
    x = s.positions.copy()
    d = x[1] - x[0]
    x[1] = x[0] + length * d / np.linalg.norm(d)
    return s.with_positions(x)


def test_an_oh_stretched_at_step_0_does_not_split_the_water(levels3):
    ref, com, s, unit_max = levels3
    hot = stretched(s, 1.22)
    assert len(find_molecules(hot)) == 4          # the couplers' 1.2 criterion splits this water
    al = learner(ref, com, buffer_levels(unit_max), True, cluster_radius=2.0)
    r = al.compute(hot)
    assert sorted(u.tolist() for u in al._run_units(hot)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert r.info["promoted"]["n_high_calls"] >= 1 and np.all(np.isfinite(r.forces))


def test_a_molecule_split_at_step_0_is_refused_naming_the_atoms(levels3):
    ref, com, s, unit_max = levels3
    broken = stretched(s, 1.5)
    al = learner(ref, com, buffer_levels(unit_max), True)
    with pytest.raises(InputError, match=r"molecule of atoms \[0 O, 2 H\] \(bonded where d_ij < 1.3 .* at step 0\) "
                                         r"has 9 electrons .* atom 0 \(O\) is 1.500 Å from atom 1 \(H\).*units="):
        al.compute(broken)
    # the topology's molecules, given explicitly, are used as they are
    waters = [np.arange(3 * k, 3 * k + 3) for k in range(3)]
    al = learner(ref, com, buffer_levels(unit_max), True, units=waters)
    r = al.compute(broken)
    assert np.all(np.isfinite(r.forces)) and r.info["conservative"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(promote="sometimes"), "promote='sometimes' is not False, True or one of"),
    (dict(promote=True, promote_softness=0.0), "promote_softness must be a positive"),
])
def test_bad_promotion_settings_are_named(levels3, kwargs, message):
    ref, com, _, _ = levels3
    with pytest.raises(InputError, match=message):
        ActiveLearner(com, ref, **kwargs)


def test_odd_electron_molecules_are_checked_only_where_their_charge_is_known():
    from hybrid.ml.promotion import check_molecules
    water = water_cluster(1).positions
    nh4 = AtomicSystem([7, 1, 1, 1, 1], [[0, 0, 0], [0.6, 0.6, 0.6], [-0.6, -0.6, 0.6], [0.6, -0.6, -0.6],
                                         [-0.6, 0.6, -0.6]], charge=1)
    check_molecules(nh4, [np.arange(5)])                            # charge unknown without ions: not checked
    with pytest.raises(InputError, match="has 11 electrons at charge 0"):
        check_molecules(nh4, [np.arange(5)], charge=lambda atoms: 0)
    check_molecules(nh4, [np.arange(5)], charge=lambda atoms: 1)
    nacl_water = AtomicSystem([11, 17, 8, 1, 1], np.vstack([[[5.0, 0, 0], [-5.0, 0, 0]], water]))
    check_molecules(nacl_water, [np.array([0]), np.array([1]), np.arange(2, 5)])     # Na⁺, Cl⁻: recognised
    radical = AtomicSystem([8, 1, 1], water, multiplicity=2)
    check_molecules(radical, [np.array([0, 1]), np.array([2])])     # open shell: not checked
    with pytest.raises(InputError, match=r"molecule of atoms \[0 O, 1 H\] has 9 electrons.*atom 2 \(H\)"):
        check_molecules(AtomicSystem([8, 1, 1], water), [np.array([0, 1]), np.array([2])])
