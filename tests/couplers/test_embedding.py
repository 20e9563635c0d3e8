"""Electrostatic embedding of a blend's regions (couplers.embedding): exact forces on every atom (region,
buffer molecules whose charges switch to QM atoms, charge-only environment), the Coulomb term that keeps
the bookkeeping exact, continuity where a molecule enters the buffer, NVE, and the errors."""
import numpy as np
import pytest
from ase.data import atomic_masses

from couplers.blend import BlendedCorrection
from couplers.embedding import COULOMB_EV_ANGSTROM, Embedding
from couplers.partition import DistancePartitioner
from fdtools import WATER, fd_forces
from hybrid.errors import InputError
from hybrid.potential import Potential, Result
from hybrid.system import AtomicSystem
from test_blend import HIGH, LOW, cluster

TIP3P = {"O": -0.834, "H": 0.417}
R_IN, WIDTH = 2.5, 2.0         # buffer: centre-of-mass distance 2.5 ... 4.5 Å


class ChargeResponse(Potential):
    """A toy high level that takes external charges: E = E_ml(R) + s Σ_{a,b} k q_a Q_b φ(r_ab), q_a the TIP3P
    charges of its own atoms, Q_b, R_b the external ones (point or Gaussian, φ as in couplers.embedding).
    With s = 1 it is exactly what the embedding subtracts; s ≠ 1 stands for a polarisable response."""

    def __init__(self, ml, scale):
        self.ml, self.scale = ml, scale
        self.name, self.species, self.min_distance = "charge-response", None, None

    def _compute(self, system):
        r = self.ml._compute(AtomicSystem(system.numbers, system.positions, charge=system.charge))
        if not system.n_ext:
            return r
        emb = Embedding(TIP3P, 0.0 if system.ext_radii is None else float(system.ext_radii[0]))
        n = len(system)
        both = AtomicSystem(np.concatenate([system.numbers, np.full(system.n_ext, 1)]),
                            np.vstack([system.positions, system.ext_positions]))
        emb.q = np.concatenate([[TIP3P["O"] if z == 8 else TIP3P["H"] for z in system.numbers], system.ext_charges])
        e, f = emb.coulomb(both, np.arange(n), np.arange(n, n + system.n_ext))
        return Result(r.energy + self.scale * e, r.forces + self.scale * f[:n], ext_forces=self.scale * f[n:])


def corr(high, scheme="product", sigma=0.0, **kw):
    return BlendedCorrection(high, LOW, DistancePartitioner(("atom", 0), R_IN, WIDTH), scheme=scheme,
                             embedding=Embedding(TIP3P, sigma), **kw)


def test_coulomb_term_is_exact_and_its_forces_are_its_gradient():
    s = cluster([3.2, 5.0])
    for sigma in (0.0, 0.6):
        emb = Embedding(TIP3P, sigma)
        emb.setup(s, [np.arange(k, k + 3) for k in range(0, 9, 3)], np.zeros(9))
        a, b = np.arange(3), np.arange(3, 9)
        e, f = emb.coulomb(s, a, b)
        r = np.linalg.norm(s.positions[a][:, None] - s.positions[b][None], axis=2)
        phi = 1 / r if sigma == 0 else __import__("scipy.special").special.erf(r / sigma) / r
        want = COULOMB_EV_ANGSTROM * (emb.q[a][:, None] * emb.q[b][None] * phi).sum()
        assert e == pytest.approx(want, rel=1e-12)

        class C(Potential):
            name, species, min_distance = "c", None, None

            def _compute(self, system):
                ee, ff = emb.coulomb(system, a, b)
                return Result(ee, ff)
        assert np.abs(fd_forces(C(), s, h=1e-4) - f).max() < 1e-7     # analytic, smooth: FD error ~h²
        assert np.abs(f.sum(0)).max() < 1e-12                            # Newton's third law


@pytest.mark.parametrize("scheme", ["product", "expansion"])
@pytest.mark.parametrize("sigma", [0.0, 0.5])
def test_forces_are_exact_on_every_atom_while_charges_switch(scheme, sigma):
    """Two waters in the buffer (each a charge set in some partitions, QM atoms in others), one outside (charges
    only): forces equal -dE/dR on the centre, on both buffer waters and on the charge-only water."""
    s = cluster([3.2, 3.9, 5.2])
    pot = LOW + corr(ChargeResponse(HIGH, 1.3), scheme, sigma, order=1)
    r = pot.compute(s)
    c = pot.terms[1][1]
    assert len(c.last_weights.buffer) == 2 and 0 < min(c.last_weights.w[1:3]) < max(c.last_weights.w[1:3]) < 1
    assert np.abs(r.forces.sum(0)).max() < 1e-9
    fd = fd_forces(pot, s, h=1e-4)
    assert np.abs(fd - r.forces).max() < 1e-5
    assert np.abs(r.forces[9:12]).max() > 1e-3       # the charge-only water feels the embedding


def test_qm_high_level_forces_are_exact_with_embedding():
    from hybrid.qm import PySCFPotential
    s = cluster([3.2, 3.9, 5.2])
    c = corr(PySCFPotential("HF", "sto-3g", conv_tol=1e-11), "expansion", 0.5, order=1)
    pot = LOW + c
    r = pot.compute(s)
    assert len(c.last_weights.buffer) == 2
    atoms = [0, 4, 6, 9]                   # centre O, an H of each buffer water, the outside water's O
    fd = fd_forces(pot, s, h=2e-4, atoms=atoms)
    assert np.abs(fd - r.forces)[atoms].max() < 1e-4
    assert np.abs(r.forces.sum(0)).max() < 1e-6


def test_no_double_counting_when_the_high_level_is_the_low_level_plus_the_same_coulomb_term():
    """High = low + exactly the Coulomb term the embedding subtracts: every ΔE_P vanishes, so the blend adds
    nothing. Without the subtraction it would add the region-environment Coulomb energy (60 meV here)."""
    s = cluster([3.2, 3.9, 5.2])
    c = BlendedCorrection(ChargeResponse(LOW, 1.0), LOW, DistancePartitioner(("atom", 0), R_IN, WIDTH),
                          embedding=Embedding(TIP3P))
    r = c.compute(s)
    assert abs(r.energy) < 1e-10 and np.abs(r.forces).max() < 1e-10
    emb = Embedding(TIP3P)
    emb.setup(s, [np.arange(k, k + 3) for k in range(0, 12, 3)], np.zeros(12))
    assert abs(emb.coulomb(s, np.arange(3), np.arange(3, 12))[0]) > 0.01


def test_energy_and_forces_continuous_where_a_molecule_enters_the_buffer():
    """A water carried across the buffer's outer edge (4.5 Å): outside it is embedding charges only, inside
    it also enters QM partitions with weight → 0; E and F agree on both sides to what the step moves them."""
    pot = LOW + corr(ChargeResponse(HIGH, 1.3))
    e, f = [], []
    for d in (R_IN + WIDTH - 1e-7, R_IN + WIDTH + 1e-7):
        r = pot.compute(cluster([3.2, d]))
        e.append(r.energy)
        f.append(r.forces)
    assert abs(e[1] - e[0]) < 1e-5 and np.abs(f[1] - f[0]).max() < 1e-5


def test_nve_with_embedding_and_buffer_crossings_conserves_like_the_low_level():
    """Velocity Verlet (0.25 fs) with the shipped HF/6-31G* water MLIP as the low level and, as the high
    level, the same model with a charge response 1.3x the embedding's Coulomb term (so ΔE_P = 0.3 E_C(P):
    the charges of a buffer water switch on and off with its weight): a water pushed out across the buffer's
    outer edge; the total energy's spread stays within 2x of the low level alone from the same start."""
    from pathlib import Path

    from ase import units
    from ase.md.verlet import VelocityVerlet

    from couplers.ase_calculator import HybridCalculator
    from hybrid.ml.potential import MLPotential
    low = MLPotential.load(Path(__file__).resolve().parents[2] / "models" / "water_hf631gs.pt")
    s = cluster([2.9, 4.2, 5.2])
    v0 = np.random.default_rng(3).normal(scale=0.01, size=(len(s), 3))      # Å/fs
    v0[6:9] += np.array([0.0, 0.05, 0.0])           # the second water moves out across 4.5 Å

    def run(pot, blend=None):
        atoms = s.to_ase()
        atoms.calc = HybridCalculator(pot)
        atoms.set_velocities(v0 / units.fs)
        md = VelocityVerlet(atoms, 0.25 * units.fs)
        etot, w = [], []
        for _ in range(200):
            md.run(1)
            etot.append(atoms.get_potential_energy() + atoms.get_kinetic_energy())
            if blend is not None:
                w.append(blend.last_weights.w[2])
        return np.ptp(etot), w
    blend = BlendedCorrection(ChargeResponse(low, 1.3), low, DistancePartitioner(("atom", 0), R_IN, WIDTH),
                              scheme="expansion", order=1, embedding=Embedding(TIP3P, 0.5))
    spread_low, _ = run(low)
    spread, w = run(low + blend, blend)
    assert w[0] > 0.0 and w[-1] == 0.0                   # it was in the buffer, then left it
    assert spread < 2.0 * spread_low


def test_errors_name_what_is_wrong():
    s = cluster([3.2, 5.0])
    with pytest.raises(InputError, match="no charge for element O"):
        BlendedCorrection(HIGH, LOW, DistancePartitioner(("atom", 0), R_IN, WIDTH),
                          embedding=Embedding({"H": 0.4})).compute(s)
    with pytest.raises(InputError, match="add up to"):
        BlendedCorrection(HIGH, LOW, DistancePartitioner(("atom", 0), R_IN, WIDTH),
                          embedding=Embedding({"O": -0.8, "H": 0.417})).compute(s)
    with pytest.raises(InputError, match="'Xx' is not an element"):
        Embedding({"Xx": 1.0})
    with pytest.raises(InputError, match="sigma"):
        Embedding(TIP3P, -1.0)
    with pytest.raises(InputError, match="force_mixing"):
        corr(ChargeResponse(HIGH, 1.0), "force_mixing")
    with pytest.raises(InputError, match="non-periodic"):
        box = AtomicSystem(s.numbers, s.positions + 5.0, cell=np.eye(3) * 20.0, pbc=True)
        corr(ChargeResponse(HIGH, 1.0)).compute(box)
    with pytest.raises(InputError, match="no forces on the"):
        corr(HIGH).compute(s)                           # an MLIP cannot take charges


def test_config_keys_reach_the_blend_and_bad_charges_are_named(tmp_path):
    """embed_charges/embed_sigma of a level's region build an Embedding on its blend; an unknown element is a
    ConfigError naming the key; a missing element stops the preflight before any output exists."""
    from pathlib import Path

    import ase.io

    from hybrid.build import water_cluster
    from hybrid.config import ConfigError, load_config
    from hybrid.md.preflight import evaluate_step0, preflight
    mlip = Path(__file__).resolve().parents[2] / "models" / "water_hf631gs.pt"
    ase.io.write(tmp_path / "w.xyz", water_cluster(3, spacing=2.9, seed=3).to_ase(), format="extxyz")

    def config(region):
        p = tmp_path / "config.toml"
        p.write_text(f"""
[structure]
file = "w.xyz"
[[levels]]
name = "ml"
kind = "mlip"
file = "{mlip}"
[[levels]]
name = "qm"
kind = "pyscf"
method = "HF"
basis = "sto-3g"
accept_energy_offset = true     # STO-3G over an HF/6-31G* model: this test is about the keys
[levels.region]
center = {{molecule = 0}}
r_inner = 1.0
width = 4.0
{region}
[md]
timestep_fs = 0.5
steps = 2
[output]
directory = "{tmp_path / 'out'}"
progress = false
""")
        return load_config(p)

    pre = preflight(config("embed_charges = {O = -0.834, H = 0.417}\nembed_sigma = 0.4"))
    emb = pre.model.potential.terms[1][1].embedding
    assert emb is not None and emb.sigma == 0.4 and emb.by_element == {8: -0.834, 1: 0.417}
    evaluate_step0(pre)
    assert preflight(config("")).model.potential.terms[1][1].embedding is None
    with pytest.raises(ConfigError, match=r"region.embed_charges: embedding: 'Xx' is not an element"):
        preflight(config("embed_charges = {Xx = 1.0}"))
    with pytest.raises((ConfigError, InputError), match="no charge for element O"):
        evaluate_step0(preflight(config("embed_charges = {H = 0.417}")))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
