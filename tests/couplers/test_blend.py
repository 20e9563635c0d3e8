"""The blended Hamiltonian: exact forces with 0-3 molecules in the buffer, weight
crossings, smoothness of the C² switch along a path, zero net force, overflow,
link atoms and no double counting."""
import numpy as np
import pytest
import torch
from ase.data import atomic_masses

from couplers.blend import BlendedCorrection, blended, multilayer
from couplers.partition import DistancePartitioner, FixedPartitioner, ScorePartitioner, find_molecules
from fdtools import WATER, fd_forces
from hybrid.errors import InputError
from hybrid.ml.model import AtomicMLP
from hybrid.ml.potential import MLPotential
from hybrid.system import AtomicSystem

R_IN, WIDTH = 2.5, 2.0         # buffer: centre-of-mass distance 2.5 ... 4.5 Å
DIRS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0], [0, -1, 0], [0, 0, -1.0]])


def mlp(seed, species=(1, 8)):
    torch.manual_seed(seed)
    return MLPotential(AtomicMLP(species, cutoff=4.0, n_radial=4, hidden=(8,)))


LOW, HIGH, MID = mlp(0), mlp(1), mlp(2)


def cluster(distances, seed=0, dirs=DIRS):
    """A water at the origin and one water per distance (COM, Å) along ``dirs`` (±x, ±y, ±z)."""
    rng = np.random.default_rng(seed)
    base = np.array(WATER) - np.array(WATER)[0]   # O at the origin
    pos = [base]
    for d, u in zip(distances, dirs):
        rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        mol = base @ rot.T
        m = atomic_masses[[8, 1, 1]]
        com = (mol * m[:, None]).sum(0) / m.sum()
        pos.append(mol - com + d * u)
    pos = np.vstack(pos)
    return AtomicSystem([8, 1, 1] * (len(distances) + 1), pos)


def partitioner(switch="quintic"):
    return DistancePartitioner(("atom", 0), R_IN, WIDTH, switch=switch)


CONFIGS = {0: [5.5, 6.0, 5.2], 1: [3.4, 5.5, 6.0], 2: [3.0, 4.0, 5.5], 3: [2.9, 3.5, 4.1],
           "crossing": [3.3, 3.301, 5.5]}   # two weights 1e-3 Å from crossing


@pytest.mark.parametrize("scheme", ["product", "sorted"])
@pytest.mark.parametrize("case", list(CONFIGS))
def test_forces_are_exact_gradients(scheme, case):
    s = cluster(CONFIGS[case])
    pot = blended(LOW, HIGH, partitioner(), scheme=scheme)
    r = pot.compute(s)
    info = r.info[pot.labels[1]]
    n_buf = {0: 0, 1: 1, 2: 2, 3: 3, "crossing": 2}[case]
    assert info["n_buffer"] == n_buf
    assert info["n_high_calls"] == (2 ** n_buf if scheme == "product" else n_buf + 1)
    # no molecule is split and the inner region holds the centre water
    assert info["inner_atoms"][:3] == [0, 1, 2]
    assert np.abs(fd_forces(pot, s, h=1e-5) - r.forces).max() < 1e-5
    # translation-invariant layers and a centre that moves with the atoms: no net force
    assert np.abs(r.forces.sum(0)).max() < 1e-8


def test_sorted_forces_jump_where_weights_cross_product_do_not():
    # two buffer waters close enough to interact, so the corrections are not additive
    dirs = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1.0]])

    def forces(scheme, d):
        return blended(LOW, HIGH, partitioner(), scheme=scheme).compute(cluster([3.3, d, 5.5], dirs=dirs)).forces
    eps = 1e-7
    jump_sorted = np.abs(forces("sorted", 3.3 - eps) - forces("sorted", 3.3 + eps)).max()
    jump_product = np.abs(forces("product", 3.3 - eps) - forces("product", 3.3 + eps)).max()
    assert jump_product < 1e-5 < jump_sorted


def _energy_path(switch, lam):
    """One water carried radially through the buffer; the others stay outside."""
    pot = blended(LOW, HIGH, partitioner(switch))
    return np.array([pot.compute(cluster([l, 6.0, 6.5])).energy for l in lam])


def test_second_derivative_continuous_for_c2_not_for_cubic():
    h = 5e-4
    edges = (R_IN, R_IN + WIDTH)
    jumps = {}
    for switch in ("quintic", "cubic"):
        worst = 0.0
        for edge in edges:
            lam = np.array([edge - 2 * h, edge - h, edge, edge + h, edge + 2 * h])
            lam = np.concatenate([lam - 3 * h, lam + 3 * h])   # two stencils, either side of the edge
            e = _energy_path(switch, lam)
            d2_left = (e[0] - 2 * e[2] + e[4]) / (2 * h) ** 2
            d2_right = (e[5] - 2 * e[7] + e[9]) / (2 * h) ** 2
            worst = max(worst, abs(d2_right - d2_left))
        jumps[switch] = worst
    # the cubic's second derivative jumps by ~6 ΔE / width²; the quintic's changes by O(h)
    assert jumps["cubic"] > 20 * jumps["quintic"], jumps


def test_fixed_point_centre_and_report():
    s = cluster(CONFIGS[2])
    pot = BlendedCorrection(HIGH, LOW, DistancePartitioner(("point", (0.0, 0.0, 0.0)), R_IN, WIDTH))
    r = pot.compute(s)
    assert np.abs(fd_forces(pot, s, h=1e-5) - r.forces).max() < 1e-5
    assert set(r.info["weights"]) == {0, 1, 2} and r.info["buffer_atoms"] == list(range(3, 9))
    assert r.contributions[pot.name] == pytest.approx(r.energy)


def test_overflow_cap():
    s = cluster(CONFIGS[3])
    strict = blended(LOW, HIGH, partitioner(), max_buffer=2)
    with pytest.raises(InputError, match="3 units in the buffer exceed max_buffer=2"):
        strict.compute(s)
    with pytest.raises(TypeError):       # the discontinuous fallback to sorted partitions is gone
        blended(LOW, HIGH, partitioner(), max_buffer=2, on_overflow="sorted")


def test_force_mixing_is_not_conservative_but_reports():
    s = cluster(CONFIGS[2])
    pot = blended(LOW, HIGH, partitioner(), scheme="force_mixing")
    r = pot.compute(s)
    assert r.info[pot.labels[1]]["scheme"] == "force_mixing"
    assert np.abs(fd_forces(pot, s, h=1e-5) - r.forces).max() > 1e-3


def test_three_layers_nest_and_conserve():
    s = cluster(CONFIGS[3])
    outer = DistancePartitioner(("atom", 0), 3.2, 1.5)
    inner = DistancePartitioner(("atom", 0), 0.5, 2.8)
    pot = multilayer([LOW, MID, HIGH], [outer, inner])
    r = pot.compute(s)
    assert np.abs(fd_forces(pot, s, h=1e-5) - r.forces).max() < 1e-5
    assert np.abs(r.forces.sum(0)).max() < 1e-8
    assert len(r.contributions) >= 3
    # identical levels: the blend is exactly the low level (nothing counted twice)
    same = multilayer([LOW, LOW, LOW], [outer, inner]).compute(s)
    assert same.energy == pytest.approx(LOW.compute(s).energy, abs=1e-12)


def test_concurrent_regions_match_serial():
    s = cluster(CONFIGS[3])
    a = blended(LOW, HIGH, partitioner()).compute(s)
    b = blended(LOW, HIGH, partitioner(), workers=2).compute(s)
    assert a.energy == pytest.approx(b.energy, abs=1e-12) and np.allclose(a.forces, b.forces, atol=1e-12)


def test_qm_high_level_exact_forces_and_private_warm_starts():
    from hybrid.qm import PySCFPotential
    s = cluster([3.2, 3.9])
    part = DistancePartitioner(("atom", 0), R_IN, WIDTH)
    corr = BlendedCorrection(PySCFPotential("HF", "sto-3g", conv_tol=1e-11), LOW, part)
    pot = LOW + corr
    r = pot.compute(s)
    assert corr.last_weights is not None and len(corr.last_weights.buffer) == 2
    assert len(corr._instances) == 4                    # one warm-started PySCF per partition
    assert np.abs(r.forces.sum(0)).max() < 1e-8
    fd = fd_forces(pot, s, h=2e-4, atoms=[0, 3, 7])   # ΔE(HF - MLP) ~ 10³ eV: small steps
    assert np.abs(fd - r.forces)[[0, 3, 7]].max() < 2e-4


def test_a_setting_changed_on_the_qm_template_reaches_every_region():
    """Regions run private copies of a stateful level; a setting changed on the template after they were made
    (here the basis) reaches them all: the blend then equals a fresh one built with that setting."""
    from hybrid.qm import PySCFPotential
    s = cluster([3.2, 3.9])
    part = DistancePartitioner(("atom", 0), R_IN, WIDTH)
    qm = PySCFPotential("HF", "sto-3g", conv_tol=1e-11)
    corr = BlendedCorrection(qm, LOW, part)
    before = corr.compute(s).energy
    qm.basis = "6-31g"
    after = corr.compute(s)
    fresh = BlendedCorrection(PySCFPotential("HF", "6-31g", conv_tol=1e-11), LOW, part).compute(s)
    assert abs(after.energy - before) > 1.0                      # the basis matters by eV here
    # both SCFs converge to 1e-11 Eh from different starts: equal to ~1e-9 eV; 1e-6 eV leaves room
    assert abs(after.energy - fresh.energy) < 1e-6 and np.abs(after.forces - fresh.forces).max() < 1e-5


def test_score_partitioner_and_fixed_regions():
    s = cluster(CONFIGS[1])
    score = ScorePartitioner(lambda sys: np.r_[np.full(3, 0.2), np.full(len(sys) - 3, 0.0)], 0.05, 0.15)
    w = score.weights(s)
    assert list(w.w) == [1.0, 0.0, 0.0, 0.0]
    mols = find_molecules(s)
    assert [m.tolist() for m in mols[:2]] == [[0, 1, 2], [3, 4, 5]]
    fixed = FixedPartitioner.from_molecules(mols, [0, 2])
    r = blended(LOW, HIGH, fixed).compute(s)
    pot = blended(LOW, HIGH, fixed)
    assert pot.compute(s).info[pot.labels[1]]["inner_atoms"] == [0, 1, 2, 6, 7, 8]
    assert np.abs(fd_forces(pot, s, h=1e-5) - r.forces).max() < 1e-5


def test_periodic_box_regions_are_whole_clusters():
    """In a periodic box the regions are isolated, whole clusters (a QM code needs no PBC)."""
    from hybrid.build import water_box
    from hybrid.potential import Potential

    class NonPeriodicOnly(Potential):
        """LOW, refusing periodic input, on whole molecules only."""
        name = "cluster-only"

        def _compute(self, s):
            assert not s.periodic
            d = np.linalg.norm(s.positions[1::3] - s.positions[0::3], axis=1)
            assert d.max() < 1.3, d            # no molecule split by the box
            return LOW._compute(s)

    box = water_box(3, spacing=3.1, seed=2)
    shift = np.repeat(np.random.default_rng(1).normal(scale=0.2, size=(27, 3)), 3, axis=0)
    box = AtomicSystem(box.numbers, box.positions - 1.0 + shift, box.cell, box.pbc)   # molecules cross the boundary
    part = DistancePartitioner(("atom", 0), 3.0, 0.3)
    pot = LOW + BlendedCorrection(NonPeriodicOnly(), LOW, part)
    r = pot.compute(box)
    assert 0 < r.info[pot.labels[1]]["n_buffer"] <= 4
    atoms = [0, 4, int(r.info[pot.labels[1]]["buffer_atoms"][0])]
    assert np.abs(fd_forces(pot, box, h=1e-5, atoms=atoms) - r.forces)[atoms].max() < 1e-5
    assert r.energy == pytest.approx(LOW.compute(box).energy + r.contributions[pot.labels[1]], abs=1e-12)


@pytest.mark.parametrize("scheme", ["product", "sorted"])
def test_net_force_vanishes_with_xtb_and_dft_high_levels(scheme):
    """Translation-invariant levels (GFN2-xTB; B3LYP with grid response) and a centre that moves with
    the atoms: the blended forces sum to zero."""
    from hybrid.ml.adapters import XTBPotential
    from hybrid.qm import PySCFPotential
    s = cluster([3.0, 3.9])
    for high in (XTBPotential("GFN2-xTB", accuracy=0.01),
                 PySCFPotential("B3LYP", "sto-3g", grids_level=0, conv_tol=1e-12)):
        pot = blended(LOW, high, partitioner(), scheme=scheme)
        r = pot.compute(s)
        assert r.info[pot.labels[1]]["n_buffer"] == 2
        assert np.abs(r.forces.sum(0)).max() < 1e-8, (high.name, r.forces.sum(0))


def test_sorted_energy_is_continuous_where_weights_cross():
    """The one remaining change of partitions (two buffer weights swapping rank in the sorted scheme):
    the energy jump across it shrinks with the step (the forces' jump does not, test above)."""
    dirs = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1.0]])
    pot = blended(LOW, HIGH, partitioner(), scheme="sorted")

    def jump(eps):
        return abs(pot.compute(cluster([3.3, 3.3 + eps, 5.5], dirs=dirs)).energy
                   - pot.compute(cluster([3.3, 3.3 - eps, 5.5], dirs=dirs)).energy)
    big, small = jump(1e-4), jump(1e-6)
    assert small < 1e-6 and small < 0.05 * big, (big, small)
