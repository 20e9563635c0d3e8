"""QM/ML/MM systems built from an OpenMM System: no double counting, no lost term.

The reference test: when the "models" are the same MM force field evaluated
on the region alone (MMRegion, a sub-topology Context), the mixed system
must reproduce pure MM energies and forces exactly; this holds for every
layering (ML only, QM only, QM + ML), for mechanical and electrostatic
embedding, for a protein with torsions, for a periodic box and for LJ in a
CustomNonbondedForce. Then the real thing: HF/STO-3G water in TIP3P water,
finite-difference forces on QM and MM atoms and the QM–MM Coulomb term
counted once.
"""
import numpy as np
import openmm
import pytest
from openmm import app, unit

from couplers.mixed_system import (ClusterRegion, create_mixed_system,
                                   split_interaction_groups)
from hybrid import units
from hybrid.errors import InputError
from hybrid.potential import Potential, Result
from hybrid.qm.pyscf_layer import PySCFPotential
from hybrid.system import AtomicSystem

DATA = app.__file__.replace("__init__.py", "data/")


# ------------------------------------------------------------------------------------------
# systems and the MM stand-in model
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """PySCF and torch on one thread: small SCFs on a shared 2-core machine are 20x faster without OpenMP spin."""
    import torch
    from pyscf import lib
    n_omp, n_torch = lib.num_threads(), torch.get_num_threads()
    lib.num_threads(1)
    torch.set_num_threads(1)
    yield
    lib.num_threads(n_omp)
    torch.set_num_threads(n_torch)


@pytest.fixture(scope="module")
def ff():
    return app.ForceField("amber14-all.xml", "amber14/tip3p.xml")


def water_cluster(ff, n_waters, box=1.0):
    """The n_waters waters of a TIP3P box nearest its centre, as a non-periodic cluster."""
    m = app.Modeller(app.Topology(), [])
    m.addSolvent(ff, boxSize=openmm.Vec3(box, box, box) * unit.nanometer)
    pos = np.array(m.positions.value_in_unit(unit.nanometer))
    res = list(m.topology.residues())
    d = [np.linalg.norm(pos[next(r.atoms()).index] - box / 2) for r in res]
    keep = set(np.argsort(d)[:n_waters])
    m.delete([r for k, r in enumerate(res) if k not in keep])
    m.topology.setPeriodicBoxVectors(None)
    return m.topology, np.array(m.positions.value_in_unit(unit.nanometer))


def water_box(ff, box=1.25):
    m = app.Modeller(app.Topology(), [])
    m.addSolvent(ff, boxSize=openmm.Vec3(box, box, box) * unit.nanometer)
    return m.topology, np.array(m.positions.value_in_unit(unit.nanometer))


def villin_with_waters(n_waters=12):
    pdb = app.PDBFile(DATA + "test.pdb")
    m = app.Modeller(pdb.topology, pdb.positions)
    pos = np.array(m.positions.value_in_unit(unit.nanometer))
    prot = [a.index for a in m.topology.atoms() if a.residue.name != "HOH" and a.residue.name.upper() != "CL"]
    from scipy.spatial import cKDTree
    tree = cKDTree(pos[prot])
    waters = [r for r in m.topology.residues() if r.name == "HOH"]
    dist = np.array([tree.query(pos[next(r.atoms()).index])[0] for r in waters])
    keep = {waters[k] for k in np.argsort(dist)[:n_waters]}
    m.delete([r for r in m.topology.residues() if r.name != "HOH" and r.name.upper() == "CL"] +
             [r for r in waters if r not in keep])
    m.topology.setPeriodicBoxVectors(None)
    return m.topology, np.array(m.positions.value_in_unit(unit.nanometer))


CREATE = {"nocutoff": dict(nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False),
          "periodic": dict(nonbondedMethod=app.CutoffPeriodic, nonbondedCutoff=0.5 * unit.nanometer,
                           constraints=None, rigidWater=False)}


def build(ff, topology, kind):
    """ff.createSystem with the CREATE settings; the long-range dispersion correction is off, because
    it is a property of the whole box (E ∝ N²/V over all atom types), not a sum of region terms."""
    system = ff.createSystem(topology, **CREATE[kind])
    for f in system.getForces():
        if isinstance(f, openmm.NonbondedForce):
            f.setUseDispersionCorrection(False)
    return system


class MMRegion(Potential):
    """The same force field on whole residues alone, as a Potential (the 'ML'/'QM' stand-in).

    One sub-topology Context per region given (chosen by atom count, numbers
    checked). External point charges add Σ_iJ k_e q_i q_J / r_iJ (no cutoff)
    and return forces on them, so it can stand in for an embedded QM model.
    """

    name = "mm-region"

    def __init__(self, ff, topology, positions_nm, regions, kind="nocutoff"):
        self.contexts = {}
        for atoms in regions:
            atoms = set(int(i) for i in atoms)
            m = app.Modeller(topology, positions_nm * unit.nanometer)
            m.delete([r for r in m.topology.residues() if not any(a.index in atoms for a in r.atoms())])
            assert m.topology.getNumAtoms() == len(atoms), "regions must be whole residues"
            s = build(ff, m.topology, kind)
            nb = [f for f in s.getForces() if isinstance(f, openmm.NonbondedForce)][0]
            q = np.array([nb.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
                          for i in range(s.getNumParticles())])
            ctx = openmm.Context(s, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("Reference"))
            z = np.array([a.element.atomic_number for a in m.topology.atoms()])
            self.contexts[len(atoms)] = (ctx, z, q)
        self.calls = 0

    def _compute(self, system):
        ctx, z, q = self.contexts[len(system)]
        assert np.array_equal(z, system.numbers)
        self.calls += 1
        if system.periodic:
            ctx.setPeriodicBoxVectors(*(system.cell / units.NM))
        ctx.setPositions(system.positions / units.NM)
        st = ctx.getState(getEnergy=True, getForces=True)
        e = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * units.KJ_PER_MOL
        f = st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer) \
            * units.KJ_PER_MOL / units.NM
        ext = None
        if system.n_ext:
            d = system.positions[:, None, :] - system.ext_positions[None, :, :]
            r = np.linalg.norm(d, axis=2)
            qq = units.COULOMB * q[:, None] * system.ext_charges[None, :]
            e += float((qq / r).sum())
            pair = (qq / r**3)[:, :, None] * d          # force on QM atom i from charge J
            f = f + pair.sum(axis=1)
            ext = -pair.sum(axis=0)
        return Result(e, f, ext_forces=ext, contributions={self.name: e})


def mm_energy_forces(system, positions_nm, box=None):
    ctx = openmm.Context(system, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("Reference"))
    if box is not None:
        ctx.setPeriodicBoxVectors(*box)
    ctx.setPositions(positions_nm)
    st = ctx.getState(getEnergy=True, getForces=True)
    return (st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer), ctx)


def residue_atoms(topology, residue_indices):
    res = list(topology.residues())
    return sorted(a.index for k in residue_indices for a in res[k].atoms())


def assert_same(e1, f1, e2, f2, rtol=1e-7):
    assert abs(e1 - e2) <= rtol * max(1.0, abs(e2)), (e1, e2)
    assert np.abs(f1 - f2).max() <= rtol * max(1.0, np.abs(f2).max()) * 10, np.abs(f1 - f2).max()


# ------------------------------------------------------------------------------------------
# no double counting, no lost term
# ------------------------------------------------------------------------------------------
def test_empty_regions_reproduce_mm(ff):
    top, pos = water_cluster(ff, 5)
    system = build(ff, top, "nocutoff")
    mixed = create_mixed_system(top, system)
    assert mixed.system.getNumForces() == system.getNumForces() and not mixed.forces
    e0, f0, _ = mm_energy_forces(system, pos)
    e1, f1, _ = mm_energy_forces(mixed.system, pos)
    assert_same(e1, f1, e0, f0, rtol=1e-12)


CASES = {  # name: (system kind, QM residues, ML residues, embedding)
    "ml-only": ("cluster", [], [1, 2], "mechanical"),
    "qm-only": ("cluster", [0], [], "mechanical"),
    "qm+ml": ("cluster", [0], [1, 2, 3], "mechanical"),
    "qm-electrostatic": ("cluster", [0], [], "electrostatic"),
    "qm+ml-electrostatic": ("cluster", [0], [1, 2], "electrostatic"),
    "protein-ml+qm-water": ("villin", "water0", "protein", "mechanical"),
    "protein-ml+qm-water-electrostatic": ("villin", "water0", "protein", "electrostatic"),
    "periodic-qm+ml": ("box", [0], [1, 2, 3, 4], "mechanical"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_mm_models_reproduce_pure_mm(ff, case):
    kind, qm_res, ml_res, embedding = CASES[case]
    box = None
    if kind == "cluster":
        top, pos = water_cluster(ff, 7)
        sysk = "nocutoff"
    elif kind == "box":
        top, pos = water_box(ff)
        sysk = "periodic"
        box = top.getPeriodicBoxVectors()
    else:
        top, pos = villin_with_waters()
        sysk = "nocutoff"
        res = list(top.residues())
        qm_res = [[k for k, r in enumerate(res) if r.name == "HOH"][0]]
        ml_res = [k for k, r in enumerate(res) if r.name != "HOH"]
    system = build(ff, top, sysk)
    qm, ml = residue_atoms(top, qm_res), residue_atoms(top, ml_res)
    inner = sorted(qm + ml)
    qm_model = MMRegion(ff, top, pos, [qm], kind=sysk) if qm else None
    ml_model = MMRegion(ff, top, pos, [inner, qm] if qm else [inner], kind=sysk) if ml else None
    mixed = create_mixed_system(top, system, qm_atoms=qm, ml_atoms=ml, qm_potential=qm_model,
                                ml_potential=ml_model, embedding=embedding, charge_model="point")
    e0, f0, _ = mm_energy_forces(system, pos, box)
    e1, f1, ctx = mm_energy_forces(mixed.system, pos, box)
    assert_same(e1, f1, e0, f0)
    # the layers are really there: the models were called and carry energy of their own
    layers = mixed.energies(ctx)
    assert abs(sum(layers[k] for k in ("mm", "ml", "qm") if k in layers) - layers["total"]) < 1e-9 * abs(
        layers["total"]) + 1e-9
    if qm:
        assert qm_model.calls > 0 and mixed.forces["qm"].result is not None
        assert abs(layers["qm"] - mixed.forces["qm"].result.energy) < 1e-9
    if ml:
        assert ml_model.calls > 0 and abs(layers["ml"]) > 0
    n_inner_bonds = sum(1 for b in top.bonds() if b[0].index in set(inner) and b[1].index in set(inner))
    assert mixed.removed["HarmonicBondForce"] == n_inner_bonds
    if embedding == "electrostatic":
        assert len(mixed.embedded_atoms) == system.getNumParticles() - len(inner)


def test_layers_are_needed(ff):
    """Leaving out a model's force changes the energy by exactly that model's energy (nothing hidden in MM)."""
    top, pos = water_cluster(ff, 6)
    system = build(ff, top, "nocutoff")
    qm, ml = residue_atoms(top, [0]), residue_atoms(top, [1, 2])
    ml_model = MMRegion(ff, top, pos, [sorted(qm + ml), qm], "nocutoff")
    mixed = create_mixed_system(top, system, qm_atoms=qm, ml_atoms=ml, qm_potential=MMRegion(
        ff, top, pos, [qm], "nocutoff"), ml_potential=ml_model, embedding="electrostatic",
        charge_model="point")
    e0, _, _ = mm_energy_forces(system, pos)
    _, _, ctx = mm_energy_forces(mixed.system, pos)
    layers = mixed.energies(ctx)
    mm_only = layers["mm"] / units.KJ_PER_MOL
    # the MM part alone is the full MM energy minus what the models hold
    ml_e = mixed.forces["ml"].result.energy / units.KJ_PER_MOL
    qm_e = mixed.forces["qm"].result.energy / units.KJ_PER_MOL
    assert abs(mm_only + ml_e + qm_e - e0) < 1e-6 * abs(e0)
    assert abs(mm_only - e0) > 1.0 and abs(qm_e) > 1.0 and abs(ml_e) > 1.0


def test_custom_nonbonded_lj_reproduces_mm(ff):
    """LJ moved from NonbondedForce into a CustomNonbondedForce: interaction groups exclude ML–ML pairs."""
    top, pos = water_cluster(ff, 6)
    system = build(ff, top, "nocutoff")
    nb = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)][0]
    lj = openmm.CustomNonbondedForce("4*eps*((sig/r)^12-(sig/r)^6); sig=0.5*(s1+s2); eps=sqrt(e1*e2)")
    lj.addPerParticleParameter("s")
    lj.addPerParticleParameter("e")
    for i in range(nb.getNumParticles()):
        q, s, e = nb.getParticleParameters(i)
        lj.addParticle([s, e])
        nb.setParticleParameters(i, q, s, 0.0)
    for k in range(nb.getNumExceptions()):
        lj.addExclusion(*nb.getExceptionParameters(k)[:2])
    system.addForce(lj)
    e_ref, f_ref, _ = mm_energy_forces(build(ff, top, "nocutoff"), pos)
    e0, f0, _ = mm_energy_forces(system, pos)
    assert_same(e0, f0, e_ref, f_ref)
    ml = residue_atoms(top, [0, 1, 2])
    mixed = create_mixed_system(top, system, ml_atoms=ml,
                                ml_potential=MMRegion(ff, top, pos, [ml], "nocutoff"))
    e1, f1, _ = mm_energy_forces(mixed.system, pos)
    assert_same(e1, f1, e_ref, f_ref)


def _pairs(groups, n):
    """Multiset of unordered pairs OpenMM computes for interaction groups (each group: unique pairs)."""
    from collections import Counter
    c = Counter()
    for a, b in groups:
        seen = {(min(i, j), max(i, j)) for i in a for j in b if i != j}
        c.update(seen)
    return c


def test_split_interaction_groups_counts_each_pair_once():
    rng = np.random.default_rng(3)
    n = 12
    inner = {1, 2, 5, 8, 9}
    for _ in range(20):
        groups = [(set(rng.choice(n, rng.integers(1, n), replace=False).tolist()),
                   set(rng.choice(n, rng.integers(1, n), replace=False).tolist())) for _ in range(2)]
        want = _pairs(groups, n)
        for p in list(want):
            if p[0] in inner and p[1] in inner:
                del want[p]
        got = _pairs(split_interaction_groups(groups, inner), n)
        assert got == want
    # and OpenMM agrees: a pair energy E = Σ r_ij over the groups
    x = rng.random((n, 3))
    groups = [({0, 1, 2, 3, 5, 8}, {2, 3, 4, 8, 9, 10, 11}), ({5, 6, 7}, {1, 9})]

    def energy(gs):
        s = openmm.System()
        f = openmm.CustomNonbondedForce("r")
        for _ in range(n):
            s.addParticle(1.0)
            f.addParticle([])
        for a, b in gs:
            f.addInteractionGroup(sorted(a), sorted(b))
        s.addForce(f)
        c = openmm.Context(s, openmm.VerletIntegrator(1.0), openmm.Platform.getPlatformByName("Reference"))
        c.setPositions(x)
        return c.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    inner_pairs = sum(np.linalg.norm(x[i] - x[j]) for (i, j), k in _pairs(groups, n).items()
                      if i in inner and j in inner for _ in range(k))
    assert abs(energy(split_interaction_groups(groups, inner)) - (energy(groups) - inner_pairs)) < 1e-9


# ------------------------------------------------------------------------------------------
# electrostatic embedding with a real QM method
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hf_in_water(ff):
    top, pos = water_cluster(ff, 6)
    system = build(ff, top, "nocutoff")
    qm = residue_atoms(top, [0])
    mixed = create_mixed_system(top, system, qm_atoms=qm, qm_potential=PySCFPotential("HF", "sto-3g"),
                                embedding="electrostatic")
    ctx = openmm.Context(mixed.system, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("Reference"))
    return top, pos, system, qm, mixed, ctx


def _energy_ev(ctx, pos_nm):
    ctx.setPositions(pos_nm)
    return ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) \
        * units.KJ_PER_MOL


def test_electrostatic_hf_fd_forces_on_qm_and_mm_atoms(hf_in_water):
    top, pos, system, qm, mixed, ctx = hf_in_water
    assert isinstance(mixed.qm_potential, PySCFPotential) and mixed.embedded_radii is not None
    ctx.setPositions(pos)
    f = ctx.getState(getForces=True).getForces(asNumpy=True).value_in_unit(
        unit.kilojoule_per_mole / unit.nanometer) * units.KJ_PER_MOL / units.NM
    qm_pos = pos[qm]
    mm = [i for i in range(len(pos)) if i not in qm]
    near = sorted(mm, key=lambda i: np.min(np.linalg.norm(qm_pos - pos[i], axis=1)))[:2]
    h = 1e-3 / units.NM     # 1e-3 Å in nm
    for a in [qm[0], qm[1]] + near:
        for k in range(3):
            x = pos.copy()
            x[a, k] += h
            ep = _energy_ev(ctx, x)
            x[a, k] -= 2 * h
            em = _energy_ev(ctx, x)
            fd = -(ep - em) / (2 * h * units.NM)
            assert abs(fd - f[a, k]) < 2e-4, (a, k, fd, f[a, k])
    assert np.abs(f[near]).max() > 1e-2       # the MM atoms do feel the QM density


def test_electrostatic_qm_mm_coulomb_counted_once(hf_in_water):
    top, pos, system, qm, mixed, ctx = hf_in_water
    e_total = _energy_ev(ctx, pos)
    e_mm_full = mm_energy_forces(system, pos)[0] * units.KJ_PER_MOL
    nb = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)][0]
    q = np.array([nb.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
                  for i in range(system.getNumParticles())])
    mm = np.setdiff1d(np.arange(len(pos)), qm)
    r = np.linalg.norm(pos[qm][:, None] - pos[mm][None], axis=2) * units.NM
    e_coul = units.COULOMB * float((q[qm][:, None] * q[mm][None] / r).sum())
    e_mm_water = MMRegion(mixed_ff(), top, pos, [qm], "nocutoff").compute(
        AtomicSystem([8, 1, 1], pos[qm] * units.NM)).energy
    hf = PySCFPotential("HF", "sto-3g")
    e_hf = hf.compute(AtomicSystem([8, 1, 1], pos[qm] * units.NM, ext_charges=q[mm],
                                   ext_positions=pos[mm] * units.NM, ext_radii=mixed.embedded_radii)).energy
    assert abs(e_total - (e_mm_full - e_coul - e_mm_water + e_hf)) < 1e-6
    assert abs(e_coul) > 0.05      # the term at stake is not negligible
    # the MM side has no Coulomb energy left on the QM atoms
    nb_new = [f for f in mixed.system.getForces() if isinstance(f, openmm.NonbondedForce)][0]
    assert all(nb_new.getParticleParameters(int(i))[0].value_in_unit(unit.elementary_charge) == 0 for i in qm)
    assert all(nb_new.getParticleParameters(int(i))[2].value_in_unit(unit.kilojoule_per_mole) ==
               nb.getParticleParameters(int(i))[2].value_in_unit(unit.kilojoule_per_mole) for i in qm)


def mixed_ff():
    return app.ForceField("amber14-all.xml", "amber14/tip3p.xml")


def test_gaussian_charges_damp_close_charges_only(hf_in_water):
    top, pos, system, qm, mixed, ctx = hf_in_water
    # the default widths are the covalent radii of the embedded atoms
    from ase.data import covalent_radii
    z = np.array([a.element.atomic_number for a in top.atoms()])[mixed.embedded_atoms]
    assert np.allclose(mixed.embedded_radii, covalent_radii[z])
    # a TIP3P-like H (+0.417 e) on the lone-pair side of a QM water: in contact (0.8 Å from O), at an H-bond
    # distance (1.8 Å = 6 σ_H) and far away
    water = AtomicSystem([8, 1, 1], [[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]])

    def induced_dipole(r_charge, radii):
        """|μ(with the charge) − μ(without)| of the QM electrons + nuclei, Debye."""
        mu = []
        for ext in (False, True):
            p = PySCFPotential("HF", "sto-3g")
            s = water if not ext else AtomicSystem(water.numbers, water.positions, ext_charges=[0.417],
                                                   ext_positions=[r_charge], ext_radii=radii)
            p.compute(s)
            mf = p._mf
            mu.append(mf.undo_qmmm().dip_moment(mf.mol, mf.make_rdm1(), verbose=0) if ext else
                      mf.dip_moment(mf.mol, mf.make_rdm1(), verbose=0))
        return float(np.linalg.norm(mu[1] - mu[0]))

    def interaction(r_charge, radii):
        p = PySCFPotential("HF", "sto-3g")
        s = AtomicSystem(water.numbers, water.positions, ext_charges=[0.417], ext_positions=[r_charge],
                         ext_radii=radii)
        return p.compute(s).energy - p.compute(water).energy

    far, hbond, contact = ([0.0, 0.0, 0.1173 + d] for d in (9.0, 1.8, 0.8))
    assert abs(interaction(far, [0.31]) - interaction(far, None)) < 1e-6
    assert abs(induced_dipole(hbond, [0.31]) / induced_dipole(hbond, None) - 1) < 0.01
    point, smeared = induced_dipole(contact, None), induced_dipole(contact, [0.31])
    assert smeared < 0.97 * point
    assert abs(interaction(contact, [0.31]) - interaction(contact, None)) > 0.05


# ------------------------------------------------------------------------------------------
# periodic clusters for the QM region
# ------------------------------------------------------------------------------------------
class PointChargeModel(Potential):
    """E = Σ_{i<j} k q_i q_j / r_ij (intra, ε = 1) + Σ_iJ k q_i Q_J / r_iJ with charges by element."""

    name = "point-charges"

    def _compute(self, system):
        q = np.where(system.numbers == 8, -0.8, 0.4)
        pos = system.positions
        pts, chg = pos, q
        n = len(pos)
        if system.n_ext:
            pts = np.vstack([pos, system.ext_positions])
            chg = np.concatenate([q, system.ext_charges])
        d = pts[:, None] - pts[None]
        r = np.linalg.norm(d, axis=2)
        np.fill_diagonal(r, np.inf)
        qq = units.COULOMB * chg[:, None] * chg[None]
        mask = np.ones_like(r, bool)
        mask[n:, n:] = False            # charges do not interact with each other
        e = 0.5 * float((qq / r)[mask].sum())
        f = ((qq / r**3 * mask)[:, :, None] * d).sum(axis=1)
        return Result(e, f[:n], ext_forces=f[n:] if system.n_ext else None)


def test_cluster_region_images_whole_residues():
    rng = np.random.default_rng(0)
    L = 12.0
    base = np.array([[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]])
    centres = [[1.0, 1.0, 1.0], [4.5, 1.2, 0.8], [1.0, 7.5, 3.0], [9.0, 9.5, 10.0]]
    mol = [base + c for c in centres]
    qm_pos, mm_pos = mol[0], np.vstack(mol[1:])
    mm_q = np.tile([-0.8, 0.4, 0.4], 3)
    groups = np.repeat([0, 1, 2], 3)
    region = ClusterRegion(PointChargeModel(), ext_groups=groups)
    # reference: every molecule placed by hand at its image nearest the QM water
    ref_mm = mm_pos.copy()
    ref_mm[3:6] -= [0, L, 0]          # y = 7.5 -> -4.5
    ref_mm[6:9] -= [L, L, L]          # (9, 9.5, 10) -> (-3, -2.5, -2)
    ref = PointChargeModel().compute(AtomicSystem([8, 1, 1], qm_pos, ext_charges=mm_q, ext_positions=ref_mm))
    # wrapped atom by atom (as OpenMM may hand them over), shifted by random lattice vectors
    shift = rng.integers(-2, 3, size=(12, 3)) * L
    wrapped = np.vstack([qm_pos, mm_pos]) + shift
    system = AtomicSystem([8, 1, 1], wrapped[:3], cell=np.eye(3) * L, pbc=True, ext_charges=mm_q,
                          ext_positions=wrapped[3:])
    res = region.compute(system)
    assert abs(res.energy - ref.energy) < 1e-10
    assert np.allclose(res.forces, ref.forces, atol=1e-10) and np.allclose(res.ext_forces, ref.ext_forces,
                                                                          atol=1e-10)
    # cutoff: residues with an atom within 4 Å of a QM atom, whole
    cut = ClusterRegion(PointChargeModel(), ext_groups=groups, cutoff=4.0).compute(system)
    assert cut.info["n_embedded"] == 3 and np.all(cut.ext_forces[3:] == 0) and np.any(cut.ext_forces[:3] != 0)


def test_periodic_qm_ml_electrostatic_box_runs(ff):
    """HF water + MLIP waters + TIP3P in a periodic box: layers add up, the embedding is whole residues."""
    import torch
    from hybrid.ml.model import AtomicMLP
    from hybrid.ml.potential import MLPotential
    top, pos = water_box(ff)
    system = build(ff, top, "periodic")
    qm, ml = residue_atoms(top, [0]), residue_atoms(top, [1, 2, 3])
    torch.manual_seed(0)
    mlp = MLPotential(AtomicMLP((1, 8), cutoff=3.5, n_radial=4, hidden=(8,)))
    mixed = create_mixed_system(top, system, qm_atoms=qm, ml_atoms=ml, qm_potential=PySCFPotential("HF", "sto-3g"),
                                ml_potential=mlp, embedding="electrostatic", embedding_cutoff=5.0)
    integ = openmm.VerletIntegrator(0.25e-3)
    ctx = openmm.Context(mixed.system, integ, openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pos)
    ctx.setPeriodicBoxVectors(*top.getPeriodicBoxVectors())
    integ.step(2)
    layers = mixed.energies(ctx)
    assert abs(layers["mm"] + layers["ml"] + layers["qm"] - layers["total"]) < 1e-8 * abs(layers["total"])
    n_emb = mixed.forces["qm"].result.info["n_embedded"]
    assert 0 < n_emb < len(mixed.embedded_atoms) and n_emb % 3 == 0
    f_qm = ctx.getState(getForces=True, groups=mixed.groups["qm"]).getForces(asNumpy=True)._value
    assert np.count_nonzero(np.abs(f_qm[mixed.embedded_atoms]).sum(axis=1)) == n_emb
    assert mixed.groups["ml"] != mixed.groups["qm"] and not (mixed.groups["mm"] & mixed.groups["qm"])


# ------------------------------------------------------------------------------------------
# clear errors
# ------------------------------------------------------------------------------------------
def test_covalent_qm_boundary_is_refused(ff):
    top, pos = villin_with_waters(2)
    system = build(ff, top, "nocutoff")
    res = list(top.residues())
    with pytest.raises(InputError, match="crosses the QM boundary"):
        create_mixed_system(top, system, qm_atoms=residue_atoms(top, [3]),
                            qm_potential=PySCFPotential("HF", "sto-3g"))
    assert res[3].name != "HOH"


def test_bad_inputs_are_named(ff):
    top, pos = water_cluster(ff, 3)
    system = build(ff, top, "nocutoff")
    hf = PySCFPotential("HF", "sto-3g")
    with pytest.raises(InputError, match="both the QM and the ML region"):
        create_mixed_system(top, system, qm_atoms=[0, 1, 2], ml_atoms=[2, 3], qm_potential=hf, ml_potential=hf)
    with pytest.raises(InputError, match="ml_group=0 is used by an MM force"):
        create_mixed_system(top, system, ml_atoms=[3, 4, 5], ml_potential=hf, ml_group=0)
    with pytest.raises(InputError, match="needs an ml_potential"):
        create_mixed_system(top, system, ml_atoms=[3, 4, 5])
    with pytest.raises(InputError, match="outside a System of 9"):
        create_mixed_system(top, system, qm_atoms=[9], qm_potential=hf)
    with pytest.raises(InputError, match="cannot smear charges"):
        create_mixed_system(top, system, qm_atoms=[0, 1, 2], qm_potential=PointChargeModel(),
                            embedding="electrostatic")
    extra = build(ff, top, "nocutoff")
    cv = openmm.CustomCentroidBondForce(2, "distance(g1,g2)")
    cv.addGroup([0, 1, 2])
    cv.addGroup([3, 4, 5])
    cv.addBond([0, 1], [])
    cv.setName("restraint")
    extra.addForce(cv)
    with pytest.raises(InputError, match="force 'restraint'"):
        create_mixed_system(top, extra, qm_atoms=[0, 1, 2], qm_potential=hf)


def test_virtual_site_in_region_is_refused():
    ff4 = app.ForceField("amber14-all.xml", "amber14/tip4pew.xml")
    m = app.Modeller(app.Topology(), [])
    m.addSolvent(ff4, model="tip4pew", boxSize=openmm.Vec3(1.0, 1.0, 1.0) * unit.nanometer)
    system = ff4.createSystem(m.topology, nonbondedMethod=app.CutoffPeriodic,
                              nonbondedCutoff=0.45 * unit.nanometer, rigidWater=False, constraints=None)
    with pytest.raises(InputError, match="virtual site 3 \\(M in HOH"):
        create_mixed_system(m.topology, system, qm_atoms=[0, 1, 2], qm_potential=PySCFPotential("HF", "sto-3g"))
