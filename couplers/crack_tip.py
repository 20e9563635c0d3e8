"""A high-level region that follows a crack tip, with exact forces.

The tip is located from the structure at every call as a smooth function of all positions, so the
blended Hamiltonian stays conservative while the tip moves. Crack frame (Å): x the propagation
direction, y the crack-plane normal, z the front; the box must not be periodic in x or y (it may be
along the front).

Tip (:class:`CrackTipLocator`):

    c(R) = Σ_i a_i r_i / Σ_i a_i,    a_i = u(n_i) · m(x_i, y_i) · exp(x_i/λ)

* n_i = Σ_j f(r_ij), a smooth coordination: f = 1 below r_on, a C² switch to 0 at r_off;
* u(n) = s(n − (n_bulk − 1)): 1 for an atom missing at least one bond (the crack faces), 0 in the bulk;
* m: a smooth window in x and y about the centroid of all atoms (C² steps of width ``window_width``) that
  keeps the outer surfaces of the slab out;
* exp(x/λ): a soft maximum along x: the under-coordinated atoms furthest ahead, i.e. at the tip, dominate
  (λ ~ 2 Å).

Its Jacobian ∂c_γ/∂R_kα (N, 3, 3) and strain derivative ∂c_γ/∂ε_αβ follow from the chain rule through
r_i and through n_i (every bond within r_off).

Region (:class:`CrackTipPartitioner`): every atom its own unit, w_i = s((ρ_i − r_inner)/width) with
ρ_i = |r_i − c| (minimum image along the front), a ball about the tip, and

    ∂w_i/∂R_k = w'(ρ_i) [δ_ik ρ̂_i − ρ̂_i · ∂c/∂R_k],
    ∂w_i/∂ε_αβ = w'(ρ_i) [ρ̂_β r_iα − Σ_γ ρ̂_γ ∂c_γ/∂ε_αβ]

(positions and cell strained as R(1 + ε), the convention of :class:`couplers.partition.Weights`).
Cut Si–Si bonds are capped by the blend's hydrogen link atoms (:mod:`couplers.link_atoms`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybrid.errors import InputError
from hybrid.system import AtomicSystem

from .partition import Weights, _unwrap
from .switching import Switch, radial_weight


@dataclass
class TipLocation:
    """position: (3,) Å; jacobian: (N, 3, 3) with [k, γ, α] = ∂c_γ/∂R_kα; strain: (3, 3, 3) with
    [α, β, γ] = ∂c_γ/∂ε_αβ (Å); weights: (N,) a_i/Σa, the atoms that define the tip;
    coordination: (N,) n_i."""
    position: np.ndarray
    jacobian: np.ndarray
    strain: np.ndarray
    weights: np.ndarray
    coordination: np.ndarray


class CrackTipLocator:
    """The crack tip as a smooth function of the positions (module docstring).

    window: ((x_lo, x_hi), (y_lo, y_hi)) Å from the centroid of all atoms, where tip atoms are looked for (it
    moves with the slab, so c is translation invariant: Σ_k ∂c/∂R_k = 1; not rotation invariant: the crack
    frame is fixed); window_width: Å of the window's
    smooth edges; softness: λ (Å); coordination: (r_on, r_off) Å of the bond count (Si: 2.6, 3.5 — the
    nearest neighbours at 2.35 Å, the second at 3.84); bulk: the bulk coordination (4 for Si).
    The defaults trade sharpness for smoothness: on a K-field crack moved 3 Å, max |∂c/∂R| is 5.9 with them,
    18 with (λ = 1, 2.7–3.2 Å) and 44 with λ = 0.5 Å; a large ∂c/∂R puts large forces on the atoms that
    define the tip wherever ΔE of the region changes with it.
    """

    def __init__(self, window, window_width: float = 2.0, softness: float = 2.0,
                 coordination=(2.6, 3.5), bulk: int = 4, switch="quintic"):
        (x_lo, x_hi), (y_lo, y_hi) = window
        if not (x_hi - x_lo > 2 * window_width and y_hi - y_lo > 2 * window_width and window_width > 0):
            raise InputError(f"CrackTipLocator: the window {window} must be wider than twice its edge "
                             f"width {window_width} Å in x and y")
        r_on, r_off = coordination
        if not 0 < r_on < r_off:
            raise InputError(f"CrackTipLocator: coordination radii need 0 < r_on < r_off, got {coordination}")
        if softness <= 0:
            raise InputError(f"CrackTipLocator: softness must be > 0 Å, got {softness}")
        self.window = ((float(x_lo), float(x_hi)), (float(y_lo), float(y_hi)))
        self.window_width, self.softness = float(window_width), float(softness)
        self.r_on, self.r_off, self.bulk = float(r_on), float(r_off), int(bulk)
        self.switch = switch if isinstance(switch, Switch) else Switch(switch)

    def _step_up(self, t):
        """h(t) = 1 − s(t): 0 below 0, 1 above 1, and dh/dt."""
        s, ds, _ = self.switch(t)
        return 1.0 - s, -ds

    def _window(self, r):
        """m (N,) = m_x m_y, each a product of two smooth steps, and ∇m (N, 3)."""
        vals, ders = [], []
        for axis, (lo, hi) in enumerate(self.window):
            a, da = self._step_up((r[:, axis] - lo) / self.window_width)
            b, db = self._step_up((hi - r[:, axis]) / self.window_width)
            vals.append(a * b)
            ders.append((da * b - a * db) / self.window_width)
        grad = np.zeros((len(r), 3))
        grad[:, 0], grad[:, 1] = ders[0] * vals[1], ders[1] * vals[0]
        return vals[0] * vals[1], grad

    def __call__(self, system: AtomicSystem) -> TipLocation:
        if system.pbc[0] or system.pbc[1]:
            raise InputError("CrackTipLocator: the crack frame needs a box open along x (propagation) and y "
                             f"(plane normal); pbc is {system.pbc.tolist()}")
        from ase.neighborlist import neighbor_list
        r = system.positions
        n_atoms = len(r)
        i, j, D = neighbor_list("ijD", system.to_ase(), self.r_off)
        dist = np.linalg.norm(D, axis=1)
        f, df, _ = self.switch((dist - self.r_on) / (self.r_off - self.r_on))
        df = df / (self.r_off - self.r_on)
        n = np.bincount(i, f, minlength=n_atoms)
        u, du, _ = self.switch(n - (self.bulk - 1))
        centroid = r.mean(axis=0)
        rel = r - centroid                                      # the window moves with the slab
        m, dm = self._window(rel)
        x = r[:, 0] / self.softness
        e = np.exp(x - x[(u * m) > 0].max()) if np.any(u * m > 0) else np.zeros(n_atoms)
        g = m * e                                              # the position-only factor
        a = u * g
        total = a.sum()
        if not total > 0:
            raise InputError("CrackTipLocator: no under-coordinated atom inside the window: no crack tip to "
                             f"follow (window {self.window} Å about the centroid, bonds counted to {self.r_off} Å)")
        c = a @ r / total
        q = (r - c) / total                                     # (N, 3)
        dwin = (u * e)[:, None] * dm                            # ∂a_i/∂(r_i − centroid) through the window
        dsoft = np.zeros((n_atoms, 3))
        dsoft[:, 0] = a / self.softness                         # ∂a_i/∂x_i through the soft maximum
        # ∂a_i/∂R_k = (dwin_i + dsoft_i) δ_ik − dwin_i / N + g_i u'_i Σ_j f'_ij r̂_ij (δ_jk − δ_ik)
        J = np.zeros((n_atoms, 3, 3))
        J[:, np.arange(3), np.arange(3)] = (a / total)[:, None]
        J += np.einsum("kg,ka->kga", q, dwin + dsoft)
        J -= np.einsum("ig,ia->ga", q, dwin)[None] / n_atoms
        rhat = D / dist[:, None]
        coef = (g * du)[i] * df                                 # per pair (i, j)
        term = np.einsum("pg,pa->pga", q[i], coef[:, None] * rhat)
        np.add.at(J, j, term)
        np.add.at(J, i, -term)
        # ∂c_γ/∂ε_αβ = c_α δ_βγ + Σ_i q_iγ [dwin_iβ rel_iα + dsoft_iβ r_iα + g_i u'_i Σ_j f'_ij D_α D_β / r_ij]
        S = np.einsum("a,bg->abg", c, np.eye(3))
        S += np.einsum("ig,ib,ia->abg", q, dwin, rel) + np.einsum("ig,ib,ia->abg", q, dsoft, r)
        S += np.einsum("pg,pa,pb->abg", q[i], coef[:, None] * D, rhat)
        return TipLocation(c, J, S, a / total, n)


def block_units(positions, size) -> list[np.ndarray]:
    """Atoms grouped by the block of edge lengths ``size`` (Å, a number or (3,)) their positions fall in:
    fixed units of a few atoms for :class:`CrackTipPartitioner`, so that fewer units sit in the buffer."""
    r = np.asarray(positions, dtype=float)
    cell = np.floor((r - r.min(axis=0)) / np.broadcast_to(np.asarray(size, dtype=float), (3,))).astype(int)
    _, label = np.unique(cell, axis=0, return_inverse=True)
    return [np.flatnonzero(label.ravel() == k) for k in range(label.max() + 1)]


class CrackTipPartitioner:
    """Units weighted by the distance of their centroid from the tip located by ``locator`` at every call:
    w_u = s((ρ_u − r_inner)/width), ρ_u = |r̄_u − c| (minimum image along a periodic front). Units: every
    atom its own (default), or fixed groups (:func:`block_units`); ∂ρ_u/∂R_k = ρ̂_u·(δ_{k∈u}/n_u − ∂c/∂R_k).

    The region is a ball about the tip point, not a cylinder along the front: each region is an isolated,
    capped cluster, so a periodic front must be thicker than the region's diameter 2 (r_inner + width)
    (checked). ``last_tip`` holds the :class:`TipLocation` of the last call (for monitoring a run).

    Per-atom units put 10-30 atoms in a buffer shell 1.5 Å wide, too many for the ``product`` scheme's 2^n
    partitions; with ``sorted`` partitions the forces are exact except where two buffer weights cross,
    where they jump (benchmarks/bench_crack_tip_nve.py measures what that costs in NVE); groups of a few
    atoms bring the buffer within the product scheme's reach."""

    def __init__(self, locator: CrackTipLocator, r_inner: float, width: float, switch="quintic", units=None):
        if r_inner < 0 or width <= 0:
            raise InputError(f"CrackTipPartitioner: need r_inner >= 0 and width > 0 Å, got {r_inner}, {width}")
        self.locator = locator
        self.r_inner, self.width = float(r_inner), float(width)
        self.switch = switch if isinstance(switch, Switch) else Switch(switch)
        self.units = None if units is None else [np.asarray(u, int) for u in units]
        self.core_atoms = np.zeros(0, int)
        self.last_tip: TipLocation | None = None

    def weights(self, system: AtomicSystem) -> Weights:
        n_atoms = len(system)
        units = [np.array([k]) for k in range(n_atoms)] if self.units is None else self.units
        covered = np.sort(np.concatenate(units))
        if covered.size != n_atoms or np.any(covered != np.arange(n_atoms)):
            raise InputError(f"CrackTipPartitioner: the units must cover each of the {n_atoms} atoms once")
        tip = self.locator(system)
        self.last_tip = tip
        period = system.cell[2] if system.pbc[2] else None
        if period is not None:
            height = float(np.linalg.norm(period))
            if height <= 2 * (self.r_inner + self.width):
                diameter = 2 * (self.r_inner + self.width)
                raise InputError(f"CrackTipPartitioner: the periodic front is {height:.2f} Å thick, not more than "
                                 f"the region's diameter 2 (r_inner + width) = {diameter:.2f} Å; "
                                 "use a thicker slab or a smaller region")
        centroids = np.array([_unwrap(system, u).mean(axis=0) for u in units])
        d = centroids - tip.position
        if period is not None:
            d -= np.outer(np.round(d @ period / height**2), period)      # minimum image along the front
        rho = np.linalg.norm(d, axis=1)
        w, dw = radial_weight(self.switch, rho, self.r_inner, self.width)
        grads, strain = {}, {}
        for k in np.flatnonzero((w > 0) & (w < 1)):
            rhat = d[k] / rho[k]
            gk = -dw[k] * np.einsum("g,nga->na", rhat, tip.jacobian)
            gk[units[k]] += dw[k] * rhat / len(units[k])
            grads[int(k)] = gk
            strain[int(k)] = dw[k] * (np.outer(centroids[k], rhat) - np.einsum("g,abg->ab", rhat, tip.strain))
        return Weights(units, np.asarray(w, float), grads, strain, np.array(tip.position, float))
