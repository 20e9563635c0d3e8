"""The expansion scheme (product partitions truncated in many-body terms about a fixed core):
exact forces and virial, exactness at full order, coefficients, caps and errors, and
continuity of E, dE/ds and d²E/ds² along a path through the buffer, with the naive
moving-base truncation as the negative control."""
import numpy as np
import pytest

from couplers.blend import BlendedCorrection, blended
from couplers.expansion import alternating, coefficients, n_calls
from couplers.partition import DistancePartitioner, FixedPartitioner
from fdtools import fd_forces, water_box
from hybrid.errors import InputError
from hybrid.system import AtomicSystem
from test_blend import HIGH, LOW, R_IN, WIDTH, cluster, partitioner

DIRS2 = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1.0]])   # two waters close enough to interact


def corr(scheme="expansion", part=None, **kw):
    return BlendedCorrection(HIGH, LOW, part or partitioner(), scheme=scheme, **kw)


# -- the coefficients -----------------------------------------------------------------------------------
def test_coefficients_sum_to_one_match_product_at_full_order_and_have_exact_derivatives():
    rng = np.random.default_rng(3)
    m = 5
    w = {u: rng.random() for u in range(m)}
    for order in (1, 2, 3, 5, 7):
        cs = coefficients(w, range(m), order)
        assert len(cs) == n_calls(m, order)
        assert abs(sum(c for _, c, _ in cs) - 1.0) < 1e-13          # Σ_S c_S = 1: a constant ΔE is exact
        for u in range(m):
            h = 1e-6
            up, dn = dict(w), dict(w)
            up[u] += h
            dn[u] -= h
            for (S, _, dc), (_, cp, _), (_, cm, _) in zip(cs, coefficients(up, range(m), order),
                                                          coefficients(dn, range(m), order)):
                assert abs((cp - cm) / (2 * h) - dc[u]) < 1e-8, (order, S, u)
        if order >= m:
            for S, c, _ in cs:
                prod = np.prod([w[u] if u in S else 1 - w[u] for u in range(m)])
                assert abs(c - prod) < 1e-14
    w1 = coefficients(w, range(m), 1)
    assert w1[0][1] == pytest.approx(1 - sum(w.values()), abs=1e-14)
    assert [c for _, c, _ in w1[1:]] == pytest.approx([w[u] for u in range(m)], abs=1e-14)
    assert alternating([0.3, 0.5], -1) == 0.0 and alternating([0.3, 0.5], 2) == pytest.approx(1 - 0.8 + 0.15)


# -- forces, virial, exactness --------------------------------------------------------------------------
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("dists", [[3.0, 4.0, 5.5], [2.9, 3.5, 4.1], [2.0, 3.0, 4.0], [3.3, 3.301, 5.5]])
def test_forces_are_exact_gradients(order, dists):
    """Molecules in the buffer (and one inner, non-core member in [2.0, 3.0, 4.0]); FD to 1e-5 eV/Å."""
    s = cluster(dists)
    pot = blended(LOW, HIGH, partitioner(), scheme="expansion", order=order)
    r = pot.compute(s)
    info = r.info[pot.labels[1]]
    m = sum(d < R_IN + WIDTH for d in dists)
    assert info["n_members"] == m and info["core_atoms"] == [0, 1, 2] and info["order"] == order
    assert info["n_high_calls"] == n_calls(m, order)
    assert np.abs(fd_forces(pot, s, h=1e-5) - r.forces).max() < 1e-5
    assert np.abs(r.forces.sum(0)).max() < 1e-8


def test_virial_is_the_strain_derivative_with_switching_terms():
    """W = -dE/dε for a periodic box with waters inside and in the buffer (order 2 and 1)."""
    box = water_box(3, spacing=3.1, seed=4, jitter=0.15)
    part = DistancePartitioner(("group", [0, 1, 2]), 2.9, 0.6)
    for order in (2, 1):
        c = BlendedCorrection(HIGH, LOW, part, scheme="expansion", order=order, max_buffer=10)
        pot = LOW + c
        r = pot.compute(box)
        W = c.last_weights
        assert 1 <= len(W.buffer) and r.info[pot.labels[1]]["n_members"] == len(W.inner) - 1 + len(W.buffer)
        assert max(np.abs(W.strain[k]).max() for k in W.buffer) > 0.1
        h, worst = 1e-5, 0.0
        for a, b in [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]:
            eps = np.zeros((3, 3))
            eps[a, b] = eps[b, a] = h
            e = [pot.compute(AtomicSystem(box.numbers, box.positions @ (np.eye(3) + k * eps),
                                          box.cell @ (np.eye(3) + k * eps), True)).energy for k in (1, -1)]
            want = r.virial[a, b] if a == b else r.virial[a, b] + r.virial[b, a]
            worst = max(worst, abs(-(e[0] - e[1]) / (2 * h) - want))
        assert worst < 1e-5, (order, worst)


@pytest.mark.parametrize("dists", [[2.9, 3.5, 4.1], [2.0, 3.0, 4.0, 3.8]])
def test_equals_the_product_sum_at_full_order(dists):
    """Order >= m members: the product sum (E, F, W to 1e-10); order 2 < m: not (the members interact)."""
    dirs = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0.6, 0.8], [-0.6, 0, 0.8]])
    s = cluster(dists, dirs=dirs)
    prod = corr("product").compute(s)
    m = sum(d < R_IN + WIDTH for d in dists)
    for order in (m, m + 2):
        r = corr(order=order).compute(s)
        assert abs(r.energy - prod.energy) < 1e-10 and np.abs(r.forces - prod.forces).max() < 1e-10
        assert np.abs(r.virial - prod.virial).max() < 1e-10
    lower = corr(order=2).compute(s)                           # m >= 3: truncated, and the error is felt
    assert abs(lower.energy - prod.energy) > 1e-6


def test_fixed_point_and_fixed_region_cores():
    """A fixed point has no core (every unit is a member); a fixed region is its own core (one call)."""
    s = cluster([3.0, 4.0, 5.5])
    c = corr(part=DistancePartitioner(("point", (0.1, 0.0, 0.0)), R_IN, WIDTH))
    r = c.compute(s)
    assert r.info["core_atoms"] == [] and r.info["n_members"] == 3 and r.info["n_high_calls"] == 6   # ∅ is no call
    assert np.abs(fd_forces(c, s, h=1e-5) - r.forces).max() < 1e-5
    full = corr(part=DistancePartitioner(("point", (0.1, 0.0, 0.0)), R_IN, WIDTH), order=3).compute(s)
    prod = corr("product", part=DistancePartitioner(("point", (0.1, 0.0, 0.0)), R_IN, WIDTH)).compute(s)
    assert abs(full.energy - prod.energy) < 1e-10
    # an explicit empty core on a molecule-centred region: the centre water becomes a member too
    nocore = corr(core=[], order=4).compute(s)
    assert nocore.info["n_members"] == 3 and abs(nocore.energy - corr("product").compute(s).energy) < 1e-10
    fixed = corr(part=FixedPartitioner([0, 1, 2, 6, 7, 8])).compute(s)
    assert fixed.info["n_high_calls"] == 1 and fixed.info["n_members"] == 0
    assert abs(fixed.energy - corr("product", part=FixedPartitioner([0, 1, 2, 6, 7, 8])).compute(s).energy) < 1e-12


def test_order_cap_and_core_errors():
    with pytest.raises(InputError, match="order must be an integer >= 1"):
        corr(order=0)
    s = cluster([2.9, 3.5, 4.1])
    with pytest.raises(InputError, match=r"3 expansion members exceed max_buffer=2 \(order 2 would need 7 region"):
        corr(max_buffer=2).compute(s)
    # the centre atom's own molecule outside r_inner: the core is not inner
    with pytest.raises(InputError, match="core unit of atoms \\[0, 1, 2\\] has weight"):
        corr(part=DistancePartitioner(("atom", 1), 0.1, WIDTH)).compute(s)


def test_region_calls_are_small_clusters():
    """Order k calls regions of at most |core| + k molecules."""
    s = cluster([2.0, 2.9, 3.5, 4.1])
    c = corr(order=2)
    parts = c._partitions(c.partitioner.weights(s), [], [], "expansion")
    assert len(parts) == n_calls(4, 2) and max(len(p) for p, _, _ in parts) == 3
    assert sorted(map(len, (p for p, _, _ in parts))) == [1] + [2] * 4 + [3] * 6


# -- continuity along a path ----------------------------------------------------------------------------
class NaiveMovingBase(BlendedCorrection):
    """Negative control, never shipped: first order about the moving inner set I,
    E₁ = ΔE(I) + Σ_{u∈B} w_u [ΔE(I∪u) − ΔE(I)]; it jumps by Σ_v w_v ε_uv when u joins I."""

    def _partitions(self, W, inner, buf, scheme):
        w = W.w
        out = [(inner, 1.0 - sum(w[k] for k in buf), {k: -1.0 for k in buf})]
        return out + [(inner + [k], float(w[k]), {k: 1.0}) for k in buf]


def path(s):
    """Water A carried radially from 5.0 Å to 2.0 Å along x (outside → buffer → inner, R_IN = 2.5); water B
    sits at 3.5 Å, 37° away, so A's weight crosses B's at s = 3.5."""
    return cluster([s, 3.5, 6.0], dirs=DIRS2, seed=5)


EVENTS = (R_IN + WIDTH, 3.5, R_IN)         # A enters the buffer, A's weight crosses B's, A becomes inner


def jumps(pot, h, half=6):
    """Largest change between consecutive samples of E, of its first and of its second finite difference,
    on grids of step h around each event (the event between two samples, off-centre)."""
    out = np.zeros(3)
    for x in EVENTS:
        grid = x + (np.arange(-half, half + 1) + 0.3) * h
        e = np.array([pot.compute(path(g)).energy for g in grid])
        d0 = np.abs(np.diff(e)).max()
        d1 = np.abs(np.diff(np.diff(e) / h)).max()
        d2 = np.abs(np.diff(np.diff(e, 2) / h ** 2)).max()
        out = np.maximum(out, [d0, d1, d2])
    return out


def test_energy_and_two_derivatives_are_continuous_along_a_path_naive_truncation_is_not():
    """E, dE/ds, d²E/ds²: the largest jump between consecutive samples halves with the step for the
    expansion (order 1 and 2); the naive moving-base truncation keeps a finite energy jump where A joins
    the inner set; sorted partitions keep a finite jump in dE/ds where the weights cross; the expansion
    with the cubic (C¹) switch keeps a finite jump in d²E/ds² at the buffer's edges."""
    h1, h2 = 2e-3, 1e-3
    found = {}
    for name, pot in [("expansion-1", corr(order=1)), ("expansion-2", corr(order=2)),
                      ("naive", NaiveMovingBase(HIGH, LOW, partitioner(), scheme="sorted")),
                      ("sorted", corr("sorted")), ("cubic", corr(order=2, part=partitioner("cubic")))]:
        found[name] = (jumps(pot, h1), jumps(pot, h2))
    for name in ("expansion-1", "expansion-2"):
        a, b = found[name]
        assert np.all(b < 0.6 * a), (name, a, b)                   # every jump shrinks ~linearly with h
    a, b = found["naive"]
    assert b[0] > 0.8 * a[0] and b[0] > 1e-3, (a, b)              # a finite energy jump: not continuous
    a, b = found["sorted"]
    assert b[0] < 0.6 * a[0] and b[1] > 0.8 * a[1], (a, b)         # E continuous, dE/ds jumps
    a, b = found["cubic"]
    assert b[1] < 0.6 * a[1] and b[2] > 0.8 * a[2], (a, b)         # a C¹ switch: d²E/ds² jumps
    print({k: (v[0].tolist(), v[1].tolist()) for k, v in found.items()})


# -- configuration ----------------------------------------------------------------------------------------
def test_config_keys_reach_the_blend_and_the_preflight(tmp_path):
    """scheme = "expansion" and order round-trip from TOML to the BlendedCorrection; order 0 is refused;
    the preflight lists the expansion's step-0 region calls and names max_buffer when they are too many."""
    from pathlib import Path

    import ase.io

    from hybrid.build import water_cluster
    from hybrid.config import ConfigError, load_config
    from hybrid.md.preflight import _LevelChecks, evaluate_step0, preflight
    mlip = Path(__file__).resolve().parents[2] / "models" / "water_gfn2xtb.pt"
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
name = "ml2"
kind = "mlip"
file = "{mlip}"
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

    cfg = config('scheme = "expansion"\norder = 1')
    assert (cfg.levels[1].region.scheme, cfg.levels[1].region.order) == ("expansion", 1)
    assert config('scheme = "expansion"').levels[1].region.order == 2
    pre = preflight(cfg)
    blend = pre.model.potential.terms[1][1]
    assert (blend.scheme, blend.order) == ("expansion", 1)
    W = blend.partitioner.weights(pre.system)
    parts = _LevelChecks.partitions(blend, W)
    assert sorted(map(len, parts)) == [1, 2, 2]                # core; core + each of the 2 members
    evaluate_step0(pre)
    with pytest.raises(ConfigError, match=r"region.order = 0: must be >= 1"):
        config('scheme = "expansion"\norder = 0')
    with pytest.raises(ConfigError, match=r"region.max_buffer = 1: 2 molecules besides the centre's have weight "
                                          r"> 0 at step 0 \(the expansion of order 2 would need 4 region calls\)"):
        preflight(config('scheme = "expansion"\nmax_buffer = 1'))
