"""Ideal brittle solid on a 2D triangular lattice (linearised springs).

Nearest neighbours (rest length a) are joined by springs of stiffness k in
the linearised form used by Marder (Int. J. Fract. 130, 517 (2004)): the
stretch of a bond is s = n̂₀·(u_j − u_i) with n̂₀ its reference direction, and
its energy

    e(s) = ½ k s²              while the bond is intact and s ≤ s_c = r_c − a
    e    = ½ k s_c²            once it has broken (irreversibly)

so a broken bond carries no force and its energy is the cost of the new
surface.  Closed forms of this lattice (2D, forces per length):

    Lamé λ = μ = √3 k / 4,  E₂D = 2k/√3,  ν₂D = 1/3,  C₁₁ = 3√3 k / 4
    G_c = 2γ = k (r_c − a)² / a       (two bonds cut per a of crack)

Rows run along x (close-packed), row spacing b = √3 a / 2; the crack plane
lies between two rows.  Everything is in the lattice's units (k, a).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


def triangular_lattice(n_cols: int, n_rows: int, a: float = 1.0, periodic_x: bool = False):
    """Positions (N, 2), bonds (B, 2) and reference bond vectors (B, 2).

    Row j sits at y = j b and is shifted by a/2 when j is odd; with
    ``periodic_x`` (n_cols even, ≥ 3) bonds wrap across x = n_cols·a.
    """
    from scipy.spatial import cKDTree

    if n_cols < 3 or n_rows < 2:
        raise ValueError(f"need n_cols >= 3 and n_rows >= 2, got {n_cols}, {n_rows}")
    b = np.sqrt(3) / 2 * a
    j, i = np.divmod(np.arange(n_cols * n_rows), n_cols)
    pos = np.stack([i * a + (j % 2) * a / 2, j * b], axis=1)
    Lx = n_cols * a
    if periodic_x:
        tree = cKDTree(np.stack([np.mod(pos[:, 0], Lx), pos[:, 1]], 1), boxsize=[Lx, 1e6 * Lx])
    else:
        tree = cKDTree(pos)
    pairs = np.array(sorted(tree.query_pairs(1.01 * a)), dtype=int)
    d = pos[pairs[:, 1]] - pos[pairs[:, 0]]
    if periodic_x:
        d[:, 0] -= Lx * np.round(d[:, 0] / Lx)
    return pos, pairs, d


@dataclass
class BrittleLattice:
    """A linearised ideal brittle lattice.

    positions: (N, 2) reference positions; bonds: (B, 2) atom pairs;
    bond_vectors: (B, 2) reference vectors r_j − r_i; k, a, r_c: spring
    constant, lattice constant, breaking length; broken: (B,) bool.
    """
    positions: np.ndarray
    bonds: np.ndarray
    bond_vectors: np.ndarray
    k: float = 1.0
    a: float = 1.0
    r_c: float = 1.2
    broken: np.ndarray = field(default=None)

    def __post_init__(self):
        if self.r_c <= self.a:
            raise ValueError(f"breaking length r_c={self.r_c} must exceed the lattice constant a={self.a}")
        if self.broken is None:
            self.broken = np.zeros(len(self.bonds), dtype=bool)
        self.n_hat = self.bond_vectors / np.linalg.norm(self.bond_vectors, axis=1)[:, None]

    @classmethod
    def build(cls, n_cols: int, n_rows: int, k=1.0, a=1.0, r_c=1.2, periodic_x=False):
        return cls(*triangular_lattice(n_cols, n_rows, a, periodic_x), k=k, a=a, r_c=r_c)

    # closed forms -----------------------------------------------------------
    @property
    def s_c(self) -> float:
        return self.r_c - self.a

    @property
    def atom_area(self) -> float:
        return np.sqrt(3) / 2 * self.a**2

    @property
    def youngs_modulus(self) -> float:
        """E₂D = 2k/√3."""
        return 2 * self.k / np.sqrt(3)

    poisson_ratio = 1.0 / 3.0

    @property
    def uniaxial_strain_modulus(self) -> float:
        """C₁₁ = 3√3 k/4 = E₂D/(1 − ν₂D²)."""
        return 3 * np.sqrt(3) / 4 * self.k

    @property
    def griffith_G(self) -> float:
        """G_c = 2γ = k (r_c − a)² / a."""
        return self.k * self.s_c**2 / self.a

    # mechanics ----------------------------------------------------------------
    def stretch(self, u) -> np.ndarray:
        """(B,) linearised bond stretches s = n̂₀·(u_j − u_i)."""
        du = u[self.bonds[:, 1]] - u[self.bonds[:, 0]]
        return np.einsum("bi,bi->b", du, self.n_hat)

    def _carrying(self, s):
        return ~self.broken & (s <= self.s_c)

    def bond_energies(self, u) -> np.ndarray:
        s = self.stretch(u)
        return np.where(self._carrying(s), 0.5 * self.k * s**2, 0.5 * self.k * self.s_c**2)

    def energy(self, u) -> float:
        """Total energy of displacements u (N, 2), broken bonds at ½ k s_c²."""
        return float(self.bond_energies(u).sum())

    def atom_energies(self, u) -> np.ndarray:
        """(N,) half of each bond's energy to each end."""
        e = 0.5 * self.bond_energies(u)
        n = len(self.positions)
        return np.bincount(self.bonds[:, 0], e, n) + np.bincount(self.bonds[:, 1], e, n)

    def forces(self, u) -> np.ndarray:
        """(N, 2) forces −∂E/∂u."""
        s = self.stretch(u)
        t = np.where(self._carrying(s), self.k * s, 0.0)[:, None] * self.n_hat
        f = np.zeros_like(self.positions)
        np.add.at(f, self.bonds[:, 0], t)
        np.add.at(f, self.bonds[:, 1], -t)
        return f

    def stiffness(self) -> sp.csr_matrix:
        """(2N, 2N) stiffness of the intact bonds (dof 2i + c)."""
        ok = ~self.broken
        i, j, n = self.bonds[ok, 0], self.bonds[ok, 1], self.n_hat[ok]
        blk = self.k * np.einsum("bp,bq->bpq", n, n)
        rows, cols, vals = [], [], []
        for p in range(2):
            for q in range(2):
                for a_, b_, sign in ((i, i, 1), (j, j, 1), (i, j, -1), (j, i, -1)):
                    rows.append(2 * a_ + p)
                    cols.append(2 * b_ + q)
                    vals.append(sign * blk[:, p, q])
        N = 2 * len(self.positions)
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), (N, N))

    def relax(self, fixed, u_fixed) -> np.ndarray:
        """Equilibrium displacements with the atoms in ``fixed`` (mask or
        indices) held at ``u_fixed`` (n_fixed, 2); intact bonds only."""
        mask = np.zeros(len(self.positions), dtype=bool)
        mask[fixed] = True
        dof_fixed = np.repeat(mask, 2)
        K = self.stiffness().tocsc()
        u = np.zeros(2 * len(self.positions))
        u[dof_fixed] = np.asarray(u_fixed, dtype=float).ravel()
        free = ~dof_fixed
        Kff = K[free][:, free]
        rhs = -K[free][:, dof_fixed] @ u[dof_fixed]
        u[free] = spla.spsolve(Kff.tocsc(), rhs)
        if not np.all(np.isfinite(u)):
            raise np.linalg.LinAlgError("singular stiffness: some atoms are not held by any bond path")
        return u.reshape(-1, 2)

    def relax_and_break(self, fixed, u_fixed, max_breaks: int = 10000):
        """Quasi-static relaxation with irreversible bond breaking: relax,
        break the most stretched bond beyond s_c, repeat until none is.
        Returns (u (N, 2), number of bonds broken)."""
        for n_broken in range(max_breaks + 1):
            u = self.relax(fixed, u_fixed)
            s = np.where(self.broken, -np.inf, self.stretch(u))
            worst = int(np.argmax(s))
            if s[worst] <= self.s_c:
                return u, n_broken
            self.broken[worst] = True
        raise RuntimeError(f"more than {max_breaks} bonds broke: the load is far above the Griffith load")

    def cut(self, y_cut: float, x_tip: float = np.inf):
        """Break every bond crossing the line y = y_cut left of x_tip (a crack
        running from the left edge to the tip)."""
        yi = self.positions[self.bonds[:, 0], 1]
        yj = yi + self.bond_vectors[:, 1]
        mid_x = self.positions[self.bonds[:, 0], 0] + 0.5 * self.bond_vectors[:, 0]
        crossing = (np.minimum(yi, yj) < y_cut) & (np.maximum(yi, yj) > y_cut) & (mid_x < x_tip)
        self.broken |= crossing
        return int(crossing.sum())

    def atom_stress(self, u) -> np.ndarray:
        """(N, 3) per-atom Voigt stress (σ_xx, σ_yy, σ_xy), forces per length:
        σ_i = (1/2Ω) Σ_bonds k s a n̂₀ ⊗ n̂₀, Ω the area per atom."""
        s = self.stretch(u)
        t = np.where(self._carrying(s), self.k * s * self.a, 0.0)
        n = self.n_hat
        comp = 0.5 * t[:, None] * np.stack([n[:, 0] ** 2, n[:, 1] ** 2, n[:, 0] * n[:, 1]], 1)
        N = len(self.positions)
        out = np.zeros((N, 3))
        for c in range(3):
            out[:, c] = np.bincount(self.bonds[:, 0], comp[:, c], N) + np.bincount(self.bonds[:, 1], comp[:, c], N)
        return out / self.atom_area

    def elastic_energy_density(self, u) -> np.ndarray:
        """(N,) per-atom elastic energy per area: half of each carrying
        bond's ½ k s² to each end, over Ω (broken-bond energy excluded: it
        is surface energy, not stored elastic energy)."""
        s = self.stretch(u)
        e = 0.25 * self.k * np.where(self._carrying(s), s**2, 0.0)
        n = len(self.positions)
        return (np.bincount(self.bonds[:, 0], e, n) + np.bincount(self.bonds[:, 1], e, n)) / self.atom_area

    def j_integral(self, u, tip, annuli) -> np.ndarray:
        """Domain J-integral (continuum.fracture.j_integral_domain) from the
        per-atom stress, displacement gradient and elastic energy density,
        one value per (r_inner, r_outer) annulus around ``tip``."""
        from .fracture import j_integral_domain

        sig, H, W = self.atom_stress(u), self.displacement_gradient(u), self.elastic_energy_density(u)
        vol = np.full(len(self.positions), self.atom_area)
        return np.array([j_integral_domain(self.positions, vol, sig, H, W, tip, a, b) for a, b in annuli])

    def displacement_gradient(self, u) -> np.ndarray:
        """(N, 2, 2) H = ∂u/∂x per atom, least squares over its intact bonds:
        H = (Σ Δu d₀ᵀ)(Σ d₀ d₀ᵀ)⁻¹ (pseudo-inverse for under-bonded atoms)."""
        ok = ~self.broken
        i, j, d = self.bonds[ok, 0], self.bonds[ok, 1], self.bond_vectors[ok]
        du = u[j] - u[i]
        N = len(self.positions)
        A = np.zeros((N, 2, 2))
        B = np.zeros((N, 2, 2))
        dd = np.einsum("bp,bq->bpq", d, d)
        ud = np.einsum("bp,bq->bpq", du, d)
        np.add.at(A, i, ud)
        np.add.at(A, j, ud)
        np.add.at(B, i, dd)
        np.add.at(B, j, dd)
        return np.einsum("npq,nqr->npr", A, np.linalg.pinv(B))
