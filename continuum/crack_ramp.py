"""Quasi-static K ramps of an atomistic crack: lattice trapping K₋ < K_G < K₊, and J from atoms.

Set-up (:func:`crack_disc`): a disc of radius R (Å, in the x–y plane of the crack frame, periodic along
the front z) cut from a slab about the tip c₀ of the applied field. Atoms with |r − c₀| > R − r_fix are the
boundary: they sit at the continuum K_I field of :class:`continuum.fracture.AnisotropicCrack`,

    r_a(K) = R_a + u(R_a − c₀; K),    u linear in K,

and the others are relaxed (ASE FIRE on any ASE calculator) at each load. A load step K → K' adds
u(K') − u(K) to every atom, so the boundary lands exactly on the new field and the interior starts from
its last relaxed state plus the same increment.

Crack state: the bonds across the crack plane in the reference slab (i below, j above, both inside the
disc). A bond is *broken* when its length exceeds ``r_break`` (Å); the tip is the x of the foremost
broken bond's midpoint and n_broken counts them. On a ramp up, K₊ is the first load at which n_broken
grows (the crack advances); on a ramp down, K₋ the first at which it shrinks (the crack heals). Each is
reported as the bracket (last load without the event, first load with it) — a trapping range is only as
sharp as the load step, refined here by bisection.

J (:func:`atomistic_j`): the domain integral of :func:`continuum.fracture.j_integral_domain` over atoms,
with per-atom stress σ_a = W_a / V_a from the potential's per-atom virials W_a (eV; V_a = a₀³/8, the
atomic volume of the diamond lattice), the displacement gradient H_a = ∂u/∂X by least squares over the
reference neighbours within ``r_grad`` and the elastic energy density W = ½ σ:ε with ε = sym H (not the
atomic energy, which would add the surface energy of the faces crossing the domain: J would then measure
G − 2γ). J (eV/Å² per unit front length) is compared with G(K) of the same field.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .crack_slab import k_field_positions


@dataclass
class CrackDisc:
    """reference: ase.Atoms of the undeformed disc (positions R, Å); crack: the AnisotropicCrack whose field
    loads it; tip: (2,) c₀ (Å); fixed: (N,) bool, the boundary; bonds: (B, 2) reference bonds across the
    crack plane (i below, j above), sorted by the x of their midpoints; r_break: Å; y_plane: the crack
    plane's y (Å)."""
    reference: object
    crack: object
    tip: np.ndarray
    fixed: np.ndarray
    bonds: np.ndarray
    r_break: float
    y_plane: float

    def loaded(self, K: float) -> np.ndarray:
        """(N, 3) positions of the whole disc displaced by the field at K (eV/Å^{5/2})."""
        return k_field_positions(self.reference, self.crack, K, self.tip)

    def _broken(self, positions):
        """(broken (B,) bool, midpoints (B, 3) Å) of the crack-plane bonds."""
        d = positions[self.bonds[:, 1]] - positions[self.bonds[:, 0]]
        d[:, 2] -= np.round(d[:, 2] / self.reference.cell[2, 2]) * self.reference.cell[2, 2]
        return np.linalg.norm(d, axis=1) > self.r_break, positions[self.bonds[:, 0]] + 0.5 * d

    def broken_bonds(self, positions) -> np.ndarray:
        """(K, 2) atom index pairs of the crack-plane bonds broken in ``positions`` (N, 3), rows of ``bonds``."""
        return self.bonds[self._broken(positions)[0]]

    def state(self, positions) -> tuple[float, int]:
        """(tip x in Å, number of broken bonds) of a configuration (N, 3)."""
        broken, mid = self._broken(positions)
        if not broken.any():
            return float("-inf"), 0
        return float(mid[broken, 0].max()), int(broken.sum())

    def tip_bond(self, positions) -> np.ndarray:
        """(3,) Å: the midpoint of the bond that breaks next, the rearmost intact crack-plane bond ahead of the
        foremost broken one."""
        broken, mid = self._broken(positions)
        x_tip = mid[broken, 0].max() if broken.any() else -np.inf
        ahead = np.flatnonzero(~broken & (mid[:, 0] > x_tip))
        if not len(ahead):
            raise ValueError("no intact crack-plane bond is left ahead of the tip")
        return mid[ahead[np.argmin(mid[ahead, 0])]]


def crack_disc(slab, y_plane: float, crack, radius: float, r_fix: float, tip=None,
               bond_length: float | None = None, r_break: float | None = None) -> CrackDisc:
    """The disc of ``slab`` (ase.Atoms from :func:`continuum.crack_slab.silicon_crack_slab`) within
    ``radius`` Å of ``tip`` (default: the slab's centre on the crack plane), its outer ``r_fix`` Å the
    boundary. bond_length: the nearest-neighbour distance (Å; default the shortest in the slab); r_break:
    default 1.3 × bond_length."""
    pos = slab.positions
    if tip is None:
        tip = (0.5 * (pos[:, 0].min() + pos[:, 0].max()), y_plane)
    tip = np.asarray(tip, dtype=float)
    rho = np.linalg.norm(pos[:, :2] - tip, axis=1)
    half_width = 0.5 * min(np.ptp(pos[:, 0]), np.ptp(pos[:, 1]))
    if not 0 < r_fix < radius <= half_width:
        raise ValueError(f"crack_disc: need 0 < r_fix ({r_fix}) < radius ({radius}) <= half the slab's "
                         f"smaller width ({half_width:.1f} Å)")
    disc = slab[rho <= radius]
    rho = rho[rho <= radius]
    from ase.neighborlist import neighbor_list
    i, j, d = neighbor_list("ijd", disc, 1.2 * (bond_length or 2.6))
    if bond_length is None:
        bond_length = float(d.min())
        keep = d < 1.1 * bond_length
        i, j = i[keep], j[keep]
    y = disc.positions[:, 1]
    across = (y[i] < y_plane) & (y[j] > y_plane)
    bonds = np.stack([i[across], j[across]], axis=1)
    mid = 0.5 * (disc.positions[bonds[:, 0], 0] + disc.positions[bonds[:, 1], 0])
    bonds = bonds[np.argsort(mid)]
    return CrackDisc(disc, crack, tip, rho > radius - r_fix, bonds,
                     float(r_break if r_break is not None else 1.3 * bond_length), float(y_plane))


@dataclass
class RampPoint:
    """One relaxed load: K (eV/Å^{5/2}), tip x (Å), broken bonds, energy (eV), FIRE steps, converged."""
    K: float
    tip: float
    n_broken: int
    energy: float
    steps: int
    converged: bool
    positions: np.ndarray = field(repr=False)


def relax(disc: CrackDisc, positions, calculator, fmax: float = 0.01, max_steps: int = 1000):
    """(positions, energy, steps, converged): FIRE on the free atoms of the disc at ``positions``."""
    from ase.constraints import FixAtoms
    from ase.optimize import FIRE
    atoms = disc.reference.copy()
    atoms.positions = positions
    atoms.set_constraint(FixAtoms(indices=np.flatnonzero(disc.fixed)))
    atoms.calc = calculator
    opt = FIRE(atoms, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=max_steps))
    return atoms.positions.copy(), float(atoms.get_potential_energy()), int(opt.nsteps), converged


def load_step(disc: CrackDisc, positions, K_from: float, K_to: float, calculator, **relax_kw) -> RampPoint:
    """Move from a relaxed state at K_from to the relaxed state at K_to."""
    start = positions + disc.loaded(K_to) - disc.loaded(K_from)
    pos, e, steps, ok = relax(disc, start, calculator, **relax_kw)
    tip, n = disc.state(pos)
    return RampPoint(float(K_to), tip, n, e, steps, ok, pos)


@dataclass
class TrappingRange:
    """K₋ and K₊ brackets (eV/Å^{5/2}): (last load without the event, first load with it); the ramps'
    points in the order they were computed; the starting state; the relaxed states at the brackets' event
    ends (the crack advanced at K₊'s upper load, healed at K₋'s lower one)."""
    k_minus: tuple
    k_plus: tuple
    start: RampPoint
    up: list
    down: list
    advanced: RampPoint | None = None
    healed: RampPoint | None = None

    def changed_bonds(self, disc: "CrackDisc", event: str = "advanced") -> np.ndarray:
        """(K, 2) crack-plane bonds whose state differs between the start and the ``event`` state
        ("advanced": the bonds that broke at K₊; "healed": those that re-formed at K₋)."""
        end = getattr(self, event)
        if end is None:
            raise ValueError(f"this TrappingRange holds no {event!r} state")
        before, after = disc._broken(self.start.positions)[0], disc._broken(end.positions)[0]
        return disc.bonds[before != after]


def _ramp(disc, start: RampPoint, step: float, event, calculator, max_loads: int, bisections: int,
          **relax_kw) -> tuple:
    """((K without, K with the event), points, the first state with it): ramp from ``start`` by ``step`` until
    event(point) is true; bisect the last interval."""
    points, last = [], start
    for _ in range(max_loads):
        p = load_step(disc, last.positions, last.K, last.K + step, calculator, **relax_kw)
        points.append(p)
        if event(p):
            break
        last = p
    else:
        raise RuntimeError(f"no crack event within {max_loads} loads of {step:+.4g} from K = {start.K:.4g}")
    lo, hi = last, points[-1]
    for _ in range(bisections):
        p = load_step(disc, lo.positions, lo.K, 0.5 * (lo.K + hi.K), calculator, **relax_kw)
        points.append(p)
        if event(p):
            hi = p
        else:
            lo = p
    return (lo.K, hi.K), points, hi


def lattice_trapping(disc: CrackDisc, calculator, K_start: float, step: float, max_loads: int = 40,
                     bisections: int = 2, start_positions=None, **relax_kw) -> TrappingRange:
    """K₋ and K₊ by ramping down and up by ``step`` from a state relaxed at K_start (module docstring),
    relaxed from ``start_positions`` ((N, 3) Å, e.g. another potential's relaxed state at K_start; default
    the field at K_start)."""
    first = disc.loaded(K_start) if start_positions is None else np.asarray(start_positions, float)
    pos, e, steps, ok = relax(disc, first, calculator, **relax_kw)
    tip, n = disc.state(pos)
    start = RampPoint(float(K_start), tip, n, e, steps, ok, pos)
    k_plus, up, advanced = _ramp(disc, start, abs(step), lambda p: p.n_broken > start.n_broken, calculator, max_loads,
                       bisections, **relax_kw)
    k_minus, down, healed = _ramp(disc, start, -abs(step), lambda p: p.n_broken < start.n_broken, calculator,
                          max_loads, bisections, **relax_kw)
    return TrappingRange((k_minus[1], k_minus[0]), k_plus, start, up, down, advanced, healed)


def displacement_gradients(reference, displacements, r_grad: float, cut=None) -> np.ndarray:
    """H_a = ∂u/∂X (N, 2, 2) in the x–y plane: least squares of u_b − u_a ≈ H (X_b − X_a) over the
    reference neighbours b within ``r_grad`` Å (minimum image along z, where a displacement does not vary).
    cut = (y_plane, x_tip): pairs across y = y_plane whose midpoint lies behind x_tip are left out (the
    displacement jumps across the open crack faces)."""
    from ase.neighborlist import neighbor_list
    i, j, D = neighbor_list("ijD", reference, r_grad)
    if cut is not None:
        y0, x0 = cut
        X = reference.positions
        across = (X[i, 1] - y0) * (X[j, 1] - y0) < 0
        keep = ~(across & (X[i, 0] + 0.5 * D[:, 0] < x0))
        i, j, D = i[keep], j[keep], D[keep]
    du = displacements[j, :2] - displacements[i, :2]
    dx = D[:, :2]
    n = len(reference)
    A = np.zeros((n, 2, 2))
    B = np.zeros((n, 2, 2))
    np.add.at(A, i, dx[:, :, None] * dx[:, None, :])        # Σ dX dXᵀ
    np.add.at(B, i, du[:, :, None] * dx[:, None, :])        # Σ du dXᵀ
    return np.einsum("nij,njk->nik", B, np.linalg.pinv(A))


def atomistic_j(disc: CrackDisc, positions, atom_virials, atomic_volume: float, radii, r_grad: float = 4.2,
                tip=None) -> np.ndarray:
    """J (eV/Å²) on domains [r_k, r_k + Δ] about ``tip`` (default the disc's c₀), for each consecutive pair in
    ``radii`` (Å). atom_virials: (N, 3, 3) eV, Σ_a W_a = −∂E/∂ε (the convention of
    :meth:`hybrid.ml.potential.MLPotential.atom_virials`); σ_a = −W_a/V_a."""
    from .fracture import j_integral_domain
    ref = disc.reference.positions
    tip = disc.tip if tip is None else np.asarray(tip, float)
    x_open = max(tip[0], disc.state(positions)[0])
    H = displacement_gradients(disc.reference, positions - ref, r_grad, cut=(disc.y_plane, x_open))
    sig3 = -np.asarray(atom_virials) / atomic_volume
    stress = np.stack([sig3[:, 0, 0], sig3[:, 1, 1], 0.5 * (sig3[:, 0, 1] + sig3[:, 1, 0])], axis=1)
    eps = 0.5 * (H + H.transpose(0, 2, 1))
    W = 0.5 * (stress[:, 0] * eps[:, 0, 0] + stress[:, 1] * eps[:, 1, 1] + 2 * stress[:, 2] * eps[:, 0, 1])
    area = np.full(len(ref), atomic_volume / disc.reference.cell[2, 2])   # per unit length of front
    radii = np.asarray(radii, float)
    return np.array([j_integral_domain(ref[:, :2], area, stress, H, W, tip, r0, r1)
                     for r0, r1 in zip(radii[:-1], radii[1:])])
