import numpy as np
import pytest

from hybrid.errors import InputError, UnknownElementError
from hybrid.potential import LinearCombination, Potential, Result
from hybrid.system import AtomicSystem
from fdtools import WATER, fd_forces


class Harmonic(Potential):
    """E = k/2 Σ_i |R_i - R0_i|², virial W = -Σ_i (R_i - R0_i) ⊗ ∂E/∂R_i."""

    def __init__(self, k, r0, name):
        self.k, self.r0, self.name = k, np.asarray(r0), name
        self.species = (1, 8)

    def _compute(self, s):
        d = s.positions - self.r0
        f = -self.k * d
        return Result(0.5 * self.k * (d**2).sum(), f, energies=0.5 * self.k * (d**2).sum(1),
                      virial=np.einsum("ia,ib->ab", d, f), contributions={"spring": 0.5 * self.k * (d**2).sum()})


def test_weighted_sum_keeps_parts_and_gradients(water):
    a = Harmonic(1.0, np.zeros((3, 3)), "a")
    b = Harmonic(2.0, np.ones((3, 3)), "b")
    combo = 0.25 * a + b - a
    assert isinstance(combo, LinearCombination)
    r = combo.compute(water)
    ra, rb = a.compute(water), b.compute(water)
    assert r.energy == pytest.approx(0.25 * ra.energy + rb.energy - ra.energy)
    assert set(r.contributions) == {"a", "b", "a#2", "a/spring", "b/spring", "a#2/spring"}
    assert r.contributions["a#2"] == pytest.approx(-ra.energy)
    assert sum(r.contributions[k] for k in ("a", "b", "a#2")) == pytest.approx(r.energy)
    assert np.allclose(r.energies.sum(), r.energy)
    assert np.allclose(r.virial, 0.25 * ra.virial + rb.virial - ra.virial)
    assert np.abs(fd_forces(combo, water, h=1e-4) - r.forces).max() < 1e-7


def test_combination_checks_species_of_every_part():
    a = Harmonic(1.0, np.zeros((2, 3)), "a")
    with pytest.raises(UnknownElementError, match="atom 1 is C"):
        (a + a).compute(AtomicSystem([8, 6], WATER[:2]))
    with pytest.raises(InputError, match="not a Potential"):
        LinearCombination([(1.0, "not a potential")])


def test_subset_region_with_embedding(water):
    from hybrid.potential import Subset
    from hybrid.qm import PySCFPotential
    two = AtomicSystem([8, 1, 1, 8, 1, 1], np.vstack([WATER, np.array(WATER) + [2.9, 0.2, 0.1]]))
    tip3p = np.array([-0.834, 0.417, 0.417] * 2)
    sub = Subset(PySCFPotential("HF", "sto-3g", conv_tol=1e-11), [0, 1, 2], embed_charges=tip3p)
    r = sub.compute(two)
    assert np.abs(fd_forces(sub, two, atoms=[1, 3]) - r.forces)[[1, 3]].max() < 2e-4
    assert np.abs(r.forces.sum(0)).max() < 1e-6       # atoms + embedding charges: no net force
    with pytest.raises(InputError, match="region index 7 outside a system of 6 atoms"):
        Subset(PySCFPotential("HF", "sto-3g"), [0, 7]).compute(two)


class Slow(Harmonic):
    """A Harmonic that sleeps: lets a test see whether terms overlap in time."""

    def __init__(self, *args, delay=0.2, stateful=False):
        super().__init__(*args)
        self.delay, self.stateful = delay, stateful

    def _compute(self, s):
        import time
        time.sleep(self.delay)
        return super()._compute(s)


def test_concurrent_terms_give_the_same_result_in_less_time(water):
    import time
    from hybrid.potential import Subset
    a, b = Slow(1.0, np.zeros(3), "a"), Slow(2.0, np.ones(3), "b")     # r0 broadcast over any atoms
    terms = [(1.0, a), (-0.5, Subset(a, [0, 1])), (1.0, b)]
    serial, parallel = LinearCombination(terms), LinearCombination(terms, workers=3)
    r1 = serial.compute(water)
    t0 = time.perf_counter()
    r2 = parallel.compute(water)
    dt = time.perf_counter() - t0
    assert dt < 0.45                     # three 0.2 s terms overlapped, not 0.6 s in a row
    # the same terms summed in term order whichever finishes first: equal to round-off (1e-12 eV)
    assert abs(r2.energy - r1.energy) < 1e-12 and np.abs(r2.forces - r1.forces).max() < 1e-12
    assert r2.contributions == r1.contributions and list(r2.info) == list(r1.info)
    q = Slow(1.0, np.zeros(3), "qm", delay=0.0, stateful=True)
    with pytest.raises(InputError, match="stateful potential appears in more than one term"):
        LinearCombination([(1.0, q), (-1.0, Subset(q, [0]))], workers=2)
    LinearCombination([(1.0, q), (-1.0, Subset(a, [0]))], workers=2).compute(water)
