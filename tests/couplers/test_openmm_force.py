"""The OpenMM bridge: any Potential as an OpenMM force, units converted at the edge."""
import numpy as np
import openmm
import pytest
import torch
from ase import units as ase_units
from ase.md.verlet import VelocityVerlet
from openmm import app, unit

from couplers.ase_calculator import HybridCalculator
from couplers.openmm_force import PotentialForce, atomic_numbers, group_energies
from fdtools import water_box
from hybrid import units
from hybrid.errors import InputError
from hybrid.ml.model import AtomicMLP
from hybrid.ml.potential import MLPotential
from hybrid.potential import Potential, Result

KJ_NM = unit.kilojoule_per_mole / unit.nanometer


def _mlp():
    torch.manual_seed(0)
    return MLPotential(AtomicMLP((1, 8), cutoff=3.5, n_radial=5, hidden=(16,)))


def _openmm_system(masses, cell=None, extra=0):
    s = openmm.System()
    for m in list(masses) + [1.0] * extra:
        s.addParticle(float(m))
    if cell is not None:
        s.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*(v / units.NM)) for v in cell])
    return s


def _state(ctx, positions_nm=None, **kw):
    if positions_nm is not None:
        ctx.setPositions(positions_nm)
    st = ctx.getState(getEnergy=True, getForces=True, **kw)
    e = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * units.KJ_PER_MOL
    f = st.getForces(asNumpy=True).value_in_unit(KJ_NM) * units.KJ_PER_MOL / units.NM
    return e, f


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
@pytest.mark.parametrize("periodic", [True, False], ids=["periodic", "cluster"])
def test_energy_and_forces_match_direct_call(platform, periodic):
    """Atoms given in a shuffled order inside a larger System; the other particles feel nothing."""
    box = water_box(2, spacing=3.0)
    system = box if periodic else box.subset(np.arange(len(box)))
    if not periodic:
        system.cell, system.pbc = np.zeros((3, 3)), np.zeros(3, bool)
    pot = _mlp()
    direct = pot.compute(system)
    n = len(system)
    rng = np.random.default_rng(1)
    where = rng.permutation(n + 3)[:n]          # particle index of atom k; 3 spectators
    omm = _openmm_system(np.ones(n + 3), box.cell if periodic else None)
    force = PotentialForce(pot, where, system.numbers, force_group=3, periodic=periodic or None)
    force.add_to(omm)          # periodic=None: judged from the System's forces (none here: not periodic)
    assert force.periodic == periodic and omm.usesPeriodicBoundaryConditions() == periodic
    pos = np.zeros((n + 3, 3))
    pos[where] = system.positions
    spectators = np.setdiff1d(np.arange(n + 3), where)
    pos[spectators] = [[30.0, 0, 0], [0, 30.0, 0], [0, 0, 30.0]] if not periodic else [[1.0, 1.0, 1.0]] * 3
    ctx = openmm.Context(omm, openmm.VerletIntegrator(1e-4), openmm.Platform.getPlatformByName(platform))
    e, f = _state(ctx, pos / units.NM)
    assert abs(e - direct.energy) <= 1e-6 * abs(direct.energy)
    assert _rel(f[where], direct.forces) <= 1e-6
    assert np.all(f[spectators] == 0)
    assert np.allclose(force.system.positions, system.positions, atol=1e-12) or periodic
    assert force.result.contributions and force.n_evaluations == 1


class ChargedPair(Potential):
    """Two atoms with charges q_a, harmonic bond k(r - r0)², and Coulomb to external charges Q_J (no cutoff)."""

    name = "charged-pair"
    min_distance = 0.1

    def __init__(self, q=(0.5, -0.5), k=2.0, r0=1.0):
        self.q, self.k, self.r0 = np.array(q), k, r0

    def _compute(self, system):
        x = system.positions
        d = x[0] - x[1]
        r = np.linalg.norm(d)
        e = self.k * (r - self.r0) ** 2
        f = np.zeros((2, 3))
        f[0] = -2 * self.k * (r - self.r0) * d / r
        f[1] = -f[0]
        ext = None
        if system.n_ext:
            dv = x[:, None] - system.ext_positions[None]
            rr = np.linalg.norm(dv, axis=2)
            qq = units.COULOMB * self.q[:, None] * system.ext_charges[None]
            e += float((qq / rr).sum())
            pair = (qq / rr**3)[:, :, None] * dv
            f += pair.sum(axis=1)
            ext = -pair.sum(axis=0)
        return Result(e, f, ext_forces=ext)


def test_embedded_charges_get_their_forces():
    pot = ChargedPair()
    pos = np.array([[0.0, 0, 0], [1.1, 0, 0], [3.0, 1.0, 0], [-2.0, 0.5, 1.0], [9.0, 9.0, 9.0]])  # Å
    omm = _openmm_system(np.ones(5))
    force = PotentialForce(pot, [0, 1], [8, 1], ext_atoms=[2, 3], ext_charges=[0.8, -0.3])
    force.add_to(omm)
    ctx = openmm.Context(omm, openmm.VerletIntegrator(1e-4), openmm.Platform.getPlatformByName("Reference"))
    e, f = _state(ctx, pos / units.NM)
    assert np.all(f[4] == 0)
    # finite differences of the OpenMM energy on atoms and on embedded charges
    h = 1e-5
    for a in range(4):
        for k in range(3):
            x = pos.copy()
            x[a, k] += h
            ep, _ = _state(ctx, x / units.NM)
            x[a, k] -= 2 * h
            em, _ = _state(ctx, x / units.NM)
            assert abs(-(ep - em) / (2 * h) - f[a, k]) < 1e-6 * max(1.0, abs(f[a, k]))
    assert np.abs(f[2:4]).max() > 0.1


def test_missing_ext_forces_is_an_error():
    class Blind(ChargedPair):
        def _compute(self, system):
            r = super()._compute(system)
            r.ext_forces = None
            return r

    omm = _openmm_system(np.ones(3))
    force = PotentialForce(Blind(), [0, 1], [8, 1], ext_atoms=[2], ext_charges=[1.0])
    force.add_to(omm)
    ctx = openmm.Context(omm, openmm.VerletIntegrator(1e-4), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(np.array([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0]]) / units.NM)
    with pytest.raises(openmm.OpenMMException, match="returned no ext_forces"):
        ctx.getState(getEnergy=True)
    assert isinstance(force.last_error, InputError)


class Drifting(Potential):
    """E = c Σ|R|², with c moving on every call: a stand-in for a blend whose partition changes."""

    name = "drifting"
    min_distance = 0.0

    def __init__(self):
        self.c = 1.0

    def _compute(self, system):
        self.c += 0.5
        return Result(self.c * float((system.positions ** 2).sum()), -2 * self.c * system.positions)


def test_stateful_potential_is_reevaluated_every_time():
    pos = np.array([[0.1, 0.2, 0.3], [1.0, 0.0, 0.0]])
    seen = []

    def run(pot, **kw):
        omm = _openmm_system(np.ones(2))
        force = PotentialForce(pot, [0, 1], [1, 1], **kw)
        force.add_to(omm)
        ctx = openmm.Context(omm, openmm.VerletIntegrator(1e-4), openmm.Platform.getPlatformByName("Reference"))
        ctx.setPositions(pos / units.NM)
        return force, [_state(ctx)[0] for _ in range(3)]

    force, energies = run(Drifting(), before_compute=seen.append)
    assert len(set(energies)) == 3 and force.n_evaluations == 3 and len(seen) == 3
    assert np.allclose(seen[-1].positions, pos)
    # opt-in reuse answers identical positions from the cache: right for stateless models only ...
    force, energies = run(Drifting(), reuse=True)
    assert len(set(energies)) == 1 and force.n_reused == 2
    # ... and a stateful model that exposes state_key() is re-evaluated whenever its state moved
    keyed = Drifting()
    keyed.state_key = lambda: keyed.c
    force, energies = run(keyed, reuse=True)
    assert len(set(energies)) == 3 and force.n_reused == 0


def test_force_groups_split_energies_by_layer():
    pot_a, pot_b = ChargedPair(r0=1.0), ChargedPair(k=5.0, r0=0.9)
    pos = np.array([[0.0, 0, 0], [1.2, 0, 0], [5.0, 0, 0], [6.3, 0.2, 0]])
    omm = _openmm_system(np.ones(4))
    fa = PotentialForce(pot_a, [0, 1], [8, 1], force_group=1, name="layer A")
    fb = PotentialForce(pot_b, [2, 3], [8, 1], force_group=2)
    fa.add_to(omm), fb.add_to(omm)
    assert fb.force_group == 2 and omm.getForce(0).getName() == "layer A"
    ctx = openmm.Context(omm, openmm.VerletIntegrator(1e-4), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pos / units.NM)
    split = group_energies(ctx, {"a": 1, "b": {2}, "both": {1, 2}})
    from hybrid.system import AtomicSystem
    ea = pot_a.compute(AtomicSystem([8, 1], pos[:2])).energy
    eb = pot_b.compute(AtomicSystem([8, 1], pos[2:])).energy
    assert abs(split["a"] - ea) < 1e-12 and abs(split["b"] - eb) < 1e-12
    assert abs(split["both"] - ea - eb) < 1e-12
    with pytest.raises(InputError, match="force group 40"):
        fa.force_group = 40


def test_bad_indices_are_named():
    pot = ChargedPair()
    with pytest.raises(InputError, match="particle 1 is both"):
        PotentialForce(pot, [0, 1], [8, 1], ext_atoms=[1], ext_charges=[1.0])
    with pytest.raises(InputError, match="particle 0 listed twice"):
        PotentialForce(pot, [0, 0], [8, 1])
    with pytest.raises(InputError, match="2 atoms but 3 atomic numbers"):
        PotentialForce(pot, [0, 1], [8, 1, 1])
    omm = _openmm_system(np.ones(3))
    with pytest.raises(InputError, match="atom index 5 outside a System of 3"):
        PotentialForce(pot, [0, 5], [8, 1]).add_to(omm)
    omm.setVirtualSite(2, openmm.TwoParticleAverageSite(0, 1, 0.5, 0.5))
    with pytest.raises(InputError, match="particle 2 is a virtual site"):
        PotentialForce(pot, [1, 2], [8, 1]).add_to(omm)
    top = app.Topology()
    res = top.addResidue("HOH", top.addChain())
    top.addAtom("O", app.element.oxygen, res)
    top.addAtom("M", None, res)
    with pytest.raises(InputError, match="atom 1 \\(M in residue HOH"):
        atomic_numbers(top, [0, 1])


# ------------------------------------------------------------------------------------------
# NVE through OpenMM and through ASE
# ------------------------------------------------------------------------------------------
def test_nve_drift_openmm_matches_ase():
    """Same MLP, start and 0.25 fs step: OpenMM VerletIntegrator vs ASE VelocityVerlet.

    OpenMM's leapfrog stores v(t - dt/2); starting it from v(0) - a(0) dt/2
    makes its positions those of velocity Verlet step for step, so the two
    trajectories must agree to round-off and their energy drifts alike.
    """
    dt_fs, n_steps = 0.25, 120
    pot = _mlp()
    atoms = water_box(2, spacing=3.0).to_ase()
    rng = np.random.default_rng(0)
    atoms.set_velocities(rng.normal(size=(len(atoms), 3)) * np.sqrt(units.KB_EV * 300 / atoms.get_masses())[:, None])
    atoms.calc = HybridCalculator(pot)
    x0, v0 = atoms.get_positions(), atoms.get_velocities() * ase_units.fs      # Å, Å/fs
    masses = atoms.get_masses()
    a0 = atoms.get_forces() / masses[:, None] * units.ACCEL                    # Å/fs²

    md = VelocityVerlet(atoms, timestep=dt_fs * ase_units.fs)
    ase_e, ase_x = [], []
    for _ in range(n_steps):
        md.run(1)
        ase_e.append(atoms.get_total_energy())
        ase_x.append(atoms.get_positions())

    omm = _openmm_system(masses, np.array(atoms.cell[:]))
    force = PotentialForce(pot, np.arange(len(atoms)), atoms.numbers, periodic=True)
    force.add_to(omm)
    integ = openmm.VerletIntegrator(dt_fs / units.PS)
    ctx = openmm.Context(omm, integ, openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(x0 / units.NM)
    ctx.setVelocities((v0 - 0.5 * dt_fs * a0) * units.PS / units.NM)         # v(-dt/2), nm/ps
    omm_e, omm_x = [], []
    for _ in range(n_steps):
        integ.step(1)
        st = ctx.getState(getEnergy=True, getPositions=True)
        omm_e.append((st.getPotentialEnergy() + st.getKineticEnergy()).value_in_unit(unit.kilojoule_per_mole)
                     * units.KJ_PER_MOL)
        omm_x.append(st.getPositions(asNumpy=True).value_in_unit(unit.nanometer) * units.NM)

    assert np.abs(np.array(omm_x) - np.array(ase_x)).max() < 1e-6         # same trajectory
    t_ps = np.arange(1, n_steps + 1) * dt_fs / units.PS
    drift_omm = np.polyfit(t_ps, omm_e, 1)[0]                                # eV/ps
    drift_ase = np.polyfit(t_ps, ase_e, 1)[0]
    ke = 1.5 * len(atoms) * units.KB_EV * 300
    assert abs(drift_ase) < 0.05 * ke and abs(drift_omm) < 0.05 * ke        # both conserve (per ps)
    assert abs(drift_omm - drift_ase) < 0.01 * ke + 0.2 * abs(drift_ase)
    assert force.n_evaluations >= n_steps


def test_lambda_is_a_context_parameter_so_one_system_serves_every_window():
    """A LambdaCoupled potential with ``lambda_parameter``: context.setParameter switches λ, and OpenMM's
    energy and forces are (1 - λ) E_0 + λ E_1 at each λ (kJ/mol round trip: 1e-9 relative)."""
    from hybrid.analytic import Harmonic
    from hybrid.sampling.coupling import LambdaCoupled
    from hybrid.system import AtomicSystem
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(3, 3))
    a, b = Harmonic(1.0, name="a"), Harmonic(2.5, centres=rng.normal(size=(3, 3)), name="b")
    coupled = LambdaCoupled(a, b, 0.0)
    system = openmm.System()
    for _ in range(3):
        system.addParticle(1.0)
    PotentialForce(coupled, [0, 1, 2], [1, 8, 1], lambda_parameter="lam").add_to(system)
    ctx = openmm.Context(system, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pos / units.NM)
    s = AtomicSystem([1, 8, 1], pos)
    ra, rb = a.compute(s), b.compute(s)
    for lam in (0.0, 0.4, 1.0):
        ctx.setParameter("lam", lam)
        st = ctx.getState(getEnergy=True, getForces=True)
        e = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * units.KJ_PER_MOL
        f = st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer) * units.KJ_PER_MOL / units.NM
        assert e == pytest.approx((1 - lam) * ra.energy + lam * rb.energy, rel=1e-9, abs=1e-12)
        np.testing.assert_allclose(f, (1 - lam) * ra.forces + lam * rb.forces, rtol=1e-9, atol=1e-12)
    ctx.setParameter("lam", 1.5)
    with pytest.raises(Exception, match=r"λ must be in \[0, 1\]"):
        ctx.getState(getEnergy=True)
    with pytest.raises(InputError, match="needs a LambdaCoupled"):
        PotentialForce(a, [0], [1], lambda_parameter="lam")
