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
with per-atom stress −W_a / V_a from the potential's per-atom virials W_a (eV; V_a = a₀³/8, the atomic
volume of the diamond lattice) and the displacement gradient H_a = ∂u/∂X by least squares over the
reference neighbours within ``r_grad``. Linear form: Cauchy virials and W = ½ σ:ε with ε = sym H.
Finite-strain form: first Piola–Kirchhoff virials (pair vectors of the reference) and the stored energy
per atom (:func:`stored_energy_density`: the atomic energy less that of a reference whose faces are apart
behind the tip, since the faces' surface energy is not stored elastic energy; with the intact reference
everywhere J would measure G − 2γ). J is in eV/Å² per unit front length. The finite-strain form is exact
against the strip of :mod:`continuum.crack_strip` at strains where the linear one is not.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .crack_slab import k_field_positions


@dataclass
class CrackPlane:
    """Atoms about a crack plane y = y_plane. reference: ase.Atoms of the undeformed atoms (positions R, Å);
    tip: (2,) Å, the crack's reference tip (a disc's field centre c₀, a strip's starting tip); fixed: (N,)
    bool, the boundary; bonds: (B, 2) reference bonds across the crack plane (i below, j above), sorted by
    the x of their midpoints; r_break: Å; y_plane: Å."""
    reference: object
    tip: np.ndarray
    fixed: np.ndarray
    bonds: np.ndarray
    r_break: float
    y_plane: float

    def bond_states(self, positions) -> tuple[np.ndarray, np.ndarray]:
        """(broken (B,) bool, midpoints (B, 3) Å) of the crack-plane bonds in ``positions`` (N, 3) Å."""
        d = positions[self.bonds[:, 1]] - positions[self.bonds[:, 0]]
        d[:, 2] -= np.round(d[:, 2] / self.reference.cell[2, 2]) * self.reference.cell[2, 2]
        return np.linalg.norm(d, axis=1) > self.r_break, positions[self.bonds[:, 0]] + 0.5 * d

    def broken_bonds(self, positions) -> np.ndarray:
        """(K, 2) atom index pairs of the crack-plane bonds broken in ``positions`` (N, 3), rows of ``bonds``."""
        return self.bonds[self.bond_states(positions)[0]]

    def state(self, positions) -> tuple[float, int]:
        """(tip x in Å, number of broken bonds) of a configuration (N, 3)."""
        broken, mid = self.bond_states(positions)
        if not broken.any():
            return float("-inf"), 0
        return float(mid[broken, 0].max()), int(broken.sum())

    def tip_bond(self, positions) -> np.ndarray:
        """(3,) Å: the midpoint of the bond that breaks next, the rearmost intact crack-plane bond ahead of the
        foremost broken one."""
        broken, mid = self.bond_states(positions)
        x_tip = mid[broken, 0].max() if broken.any() else -np.inf
        ahead = np.flatnonzero(~broken & (mid[:, 0] > x_tip))
        if not len(ahead):
            raise ValueError("no intact crack-plane bond is left ahead of the tip")
        return mid[ahead[np.argmin(mid[ahead, 0])]]

    def opened(self, separation: float = 8.0):
        """ase.Atoms: the reference with the atoms above the plane moved up by ``separation`` Å (beyond the
        potential's cutoff), so that its crack faces are free surfaces. Along a periodic y (a strip, its atoms
        inside the cell) the cell grows by ``separation``: one gap per period."""
        atoms = self.reference.copy()
        if atoms.pbc[1]:
            cell = atoms.cell.array.copy()
            cell[1, 1] += separation
            atoms.set_cell(cell)
        atoms.positions[atoms.positions[:, 1] > self.y_plane, 1] += separation
        return atoms


@dataclass
class CrackDisc(CrackPlane):
    """A disc about the applied field's centre ``tip`` = c₀, its boundary held on the K_I field of
    ``crack`` (an AnisotropicCrack)."""
    crack: object = None

    def loaded(self, K: float) -> np.ndarray:
        """(N, 3) positions of the whole disc displaced by the field at K (eV/Å^{5/2})."""
        return k_field_positions(self.reference, self.crack, K, self.tip)


def plane_bonds(atoms, y_plane: float, bond_length: float | None = None) -> tuple[np.ndarray, float]:
    """((B, 2) bonds (i below, j above) crossing y = y_plane, sorted by the x of their midpoints;
    bond_length) of ``atoms`` (ase.Atoms; periodic directions by minimum image). bond_length: Å, default
    the shortest interatomic distance; bonds are the pairs within 1.1 × bond_length."""
    from ase.neighborlist import neighbor_list
    i, j, D = neighbor_list("ijD", atoms, 1.2 * (bond_length or 2.6))
    d = np.linalg.norm(D, axis=1)
    if bond_length is None:
        bond_length = float(d.min())
    y = atoms.positions[:, 1]
    across = (d < 1.1 * bond_length) & (y[i] < y_plane) & (y[i] + D[:, 1] > y_plane)
    bonds = np.stack([i[across], j[across]], axis=1)
    mid = atoms.positions[bonds[:, 0], 0] + 0.5 * D[across, 0]
    return bonds[np.argsort(mid, kind="stable")], bond_length


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
    bonds, bond_length = plane_bonds(disc, y_plane, bond_length)
    return CrackDisc(reference=disc, tip=tip, fixed=rho > radius - r_fix, bonds=bonds,
                     r_break=float(r_break if r_break is not None else 1.3 * bond_length), y_plane=float(y_plane),
                     crack=crack)


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


def relax(disc: CrackPlane, positions, calculator, fmax: float = 0.01, max_steps: int = 1000, cell=None):
    """(positions, energy, steps, converged): FIRE on the free atoms of a disc or strip at ``positions``
    (N, 3) Å, in ``cell`` (3, 3) Å (default the reference's)."""
    from ase.constraints import FixAtoms
    from ase.optimize import FIRE
    atoms = disc.reference.copy()
    if cell is not None:
        atoms.set_cell(cell)
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
        before, after = disc.bond_states(self.start.positions)[0], disc.bond_states(end.positions)[0]
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


def displacement_gradients(reference, displacements, r_grad: float, cut=None, cell=None) -> np.ndarray:
    """H_a = ∂u/∂X (N, 2, 2) in the x–y plane: least squares of u_b − u_a ≈ H (X_b − X_a) over the
    reference neighbours b within ``r_grad`` Å (minimum image along the periodic directions; a pair that
    crosses a periodic boundary adds the boundary's own displacement, zero unless the deformed ``cell``
    (3, 3) Å differs from the reference's). cut = (y_plane, x_tip): pairs across y = y_plane whose midpoint
    lies behind x_tip are left out (the displacement jumps across the open crack faces)."""
    from ase.neighborlist import neighbor_list
    i, j, D, S = neighbor_list("ijDS", reference, r_grad)
    X = reference.positions
    if cut is not None:
        y0, x0 = cut
        across = (X[i, 1] - y0) * (X[i, 1] + D[:, 1] - y0) < 0
        keep = ~(across & (X[i, 0] + 0.5 * D[:, 0] < x0))
        i, j, D, S = i[keep], j[keep], D[keep], S[keep]
    du = displacements[j, :2] - displacements[i, :2]
    if cell is not None:
        du += (S @ (np.asarray(cell, float) - reference.cell.array))[:, :2]
    dx = D[:, :2]
    n = len(reference)
    A = np.zeros((n, 2, 2))
    B = np.zeros((n, 2, 2))
    np.add.at(A, i, dx[:, :, None] * dx[:, None, :])        # Σ dX dXᵀ
    np.add.at(B, i, du[:, :, None] * dx[:, None, :])        # Σ du dXᵀ
    return np.einsum("nij,njk->nik", B, np.linalg.pinv(A))


def open_tip_x(disc: CrackPlane, positions, tip=None) -> float:
    """x (Å) up to which the crack is open: the foremost broken bond's midpoint, or ``tip``'s x if that lies
    further ahead (default the plane's reference tip)."""
    tip = disc.tip if tip is None else tip
    return max(float(tip[0]), disc.state(positions)[0])


def face_reference_energies(disc: CrackPlane, calculator, separation: float = 8.0, depth: float = 6.0,
                            fmax: float = 0.005, max_steps: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """(intact, opened): per-atom energies (N,) eV, from ``calculator`` (an ASE calculator that gives
    ``get_potential_energies``), of the undeformed reference and of :meth:`CrackPlane.opened`, whose atoms
    within ``depth`` Å of a face (and as far from the ends along x) are relaxed (FIRE, ``fmax`` eV/Å: the
    faces relax as they do behind a real tip), for :func:`stored_energy_density`."""
    intact = disc.reference.copy()
    intact.calc = calculator
    opened = disc.opened(separation)
    X = disc.reference.positions
    free = ((np.abs(X[:, 1] - disc.y_plane) < depth) & (X[:, 0] > X[:, 0].min() + depth)
            & (X[:, 0] < X[:, 0].max() - depth))
    held = CrackPlane(disc.reference, disc.tip, disc.fixed | ~free, disc.bonds, disc.r_break, disc.y_plane)
    pos, _, _, ok = relax(held, opened.positions, calculator, fmax=fmax, max_steps=max_steps, cell=opened.cell)
    if not ok:
        raise RuntimeError(f"face_reference_energies: the opened reference's faces did not relax to fmax {fmax} "
                           f"eV/Å in {max_steps} FIRE steps")
    opened.positions = pos
    opened.calc = calculator
    return intact.get_potential_energies(), opened.get_potential_energies()


def stored_energy_density(disc: CrackPlane, positions, energies, intact, opened, atomic_volume: float,
                          tip=None) -> np.ndarray:
    """W_a = (e_a − e°_a)/V_a (N,) eV/Å³ per reference volume: per-atom energies ``energies`` (N,) eV of the
    deformed state less those of its undeformed reference, ``opened`` (N,) (the energies of
    :meth:`CrackPlane.opened`, faces apart) for atoms behind the open crack (:func:`open_tip_x`) and
    ``intact`` (N,) (the reference's) ahead of it. The faces' surface energy is thus not counted as stored
    elastic energy (with the intact reference everywhere, J would measure G − 2γ)."""
    behind = disc.reference.positions[:, 0] < open_tip_x(disc, positions, tip)
    return (np.asarray(energies, float) - np.where(behind, opened, intact)) / atomic_volume


def atomistic_j(disc: CrackPlane, positions, atom_virials, atomic_volume: float, radii, r_grad: float = 4.2,
                tip=None, energy_density=None, cell=None) -> np.ndarray:
    """J (eV/Å² per unit length of front) on the domains [r_k, r_k+1] about ``tip`` (default the plane's
    reference tip) for consecutive pairs in ``radii`` (Å), by :func:`continuum.fracture.j_integral_domain`
    over atoms of area V_a/L_z, with H_a from :func:`displacement_gradients` (``cell``: the deformed cell,
    when it differs from the reference's, as in a strained strip).

    atom_virials: (N, 3, 3) eV in the convention of :meth:`hybrid.ml.potential.MLPotential.atom_virials`
    (force direction first), stress −W_a/V_a. Two forms:

    * linear (``energy_density`` None): the deformed state's own virials, σ_a the local Cauchy stress, and
      W = ½ σ:ε with ε = sym H. Exact for a linear-elastic solid;
    * finite strain: virials about the reference (first Piola–Kirchhoff stress P_a) and ``energy_density``
      (N,) eV/Å³ per reference volume (:func:`stored_energy_density`). J = ∫ (P_ij H_i1 − W δ_1j) ∂q/∂X_j
      is then path independent for any hyperelastic solid, as the linear form is not at the strains of a
      nanometre-scale crack (several per cent at 20 Å from the tip at K_G in silicon)."""
    from .fracture import j_integral_domain
    ref = disc.reference.positions
    tip = disc.tip if tip is None else np.asarray(tip, float)
    H = displacement_gradients(disc.reference, positions - ref, r_grad,
                               cut=(disc.y_plane, open_tip_x(disc, positions, tip)), cell=cell)
    stress = -np.asarray(atom_virials)[:, :2, :2] / atomic_volume
    if energy_density is None:
        eps = 0.5 * (H + H.transpose(0, 2, 1))
        W = 0.5 * np.einsum("nij,nij->n", 0.5 * (stress + stress.transpose(0, 2, 1)), eps)
    else:
        W = np.asarray(energy_density, float)
    area = np.full(len(ref), atomic_volume / disc.reference.cell[2, 2])
    radii = np.asarray(radii, float)
    return np.array([j_integral_domain(ref[:, :2], area, stress, H, W, tip, r0, r1)
                     for r0, r1 in zip(radii[:-1], radii[1:])])
