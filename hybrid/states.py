"""Several electronic states: adiabatic energies, per-state forces and nonadiabatic couplings.

A multi-state model returns, for a batch of T geometries of N atoms and S states (adiabatic, ascending):

    energies  (T, S)          E_k, eV
    forces    (T, S, N, 3)    F_k = −∇E_k, eV/Å
    couplings (T, S, S, N, 3) d_kl = ⟨k|∇l⟩, 1/Å, antisymmetric in (k, l)

From a diabatic matrix H_d(R) (real symmetric S × S, eV) with gradient ∇H_d (S, S, N, 3; eV/Å):
H_d = U diag(E) Uᵀ, the columns u_k of U are the adiabatic states, and by Hellmann–Feynman

    F_k = −u_kᵀ ∇H_d u_k,        d_kl = u_kᵀ ∇H_d u_l / (E_l − E_k)   (k ≠ l).

Near a degeneracy the denominator is regularised: 1/ΔE → ΔE / (ΔE² + ε²) with ε = ``eps`` (eV), which
is exact to O(ε²/ΔE²) where the states are apart and keeps d finite (it passes through 0 at ΔE = 0, where
the true coupling is a δ-like spike that no finite time step resolves). ``eps = 0`` gives the bare
formula and an error at an exact degeneracy.

Phases: an eigenvector is defined up to sign. :func:`align_phases` flips each u_k to overlap positively
with a previous step's, which is what a trajectory needs for its couplings to be continuous in time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError


@dataclass
class StatesResult:
    """What a multi-state model returns for a batch (module docstring): energies (T, S) eV, forces
    (T, S, N, 3) eV/Å, couplings (T, S, S, N, 3) 1/Å or None, vectors (T, S, S) the adiabatic states in the
    diabatic basis (columns) when there is one, info."""
    energies: np.ndarray
    forces: np.ndarray
    couplings: np.ndarray | None = None
    vectors: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def n_states(self) -> int:
        return self.energies.shape[-1]


def adiabatic(H, dH, eps: float = 0.0, previous=None) -> StatesResult:
    """Adiabatic states of a batch of diabatic matrices (module docstring).

    H: (T, S, S) eV, symmetric; dH: (T, S, S, N, 3) eV/Å; eps: regularisation of 1/(E_l − E_k), eV;
    previous: (T, S, S) eigenvectors of the previous step, to which the signs are aligned.
    """
    H = np.asarray(H, float)
    dH = np.asarray(dH, float)
    if H.ndim != 3 or H.shape[1] != H.shape[2]:
        raise InputError(f"adiabatic: H must be (T, S, S), got {H.shape}")
    if dH.shape[:3] != H.shape or dH.ndim != 5 or dH.shape[-1] != 3:
        raise InputError(f"adiabatic: dH must be (T, S, S, N, 3) for H of shape {H.shape}, got {dH.shape}")
    if not np.allclose(H, H.transpose(0, 2, 1), atol=1e-12 * max(1.0, np.abs(H).max())):
        raise InputError("adiabatic: H is not symmetric")
    E, U = _eigh(H)
    if previous is not None:
        U = align_phases(U, previous)
    G = np.einsum("tik,tijna,tjl->tklna", U, dH, U)          # ⟨k|∇H|l⟩
    S = H.shape[1]
    forces = -G[:, np.arange(S), np.arange(S)]               # (T, S, N, 3)
    dE = E[:, None, :] - E[:, :, None]                       # E_l − E_k
    off = ~np.eye(S, dtype=bool)
    if eps > 0:
        inv = dE / (dE**2 + eps**2)
    else:
        if np.any(np.abs(dE[:, off]) == 0.0):
            raise InputError("adiabatic: degenerate states; pass eps > 0 to regularise the couplings")
        with np.errstate(divide="ignore"):
            inv = np.where(off, 1.0 / np.where(off, dE, 1.0), 0.0)
    inv = inv * off
    couplings = G * inv[:, :, :, None, None]
    return StatesResult(E, forces, couplings, U)


def _eigh(H):
    """Ascending eigenvalues and eigenvectors (columns) of (T, S, S) real symmetric matrices; for S = 2 in
    closed form, H = h₀ + (r/2)[[cos θ, sin θ], [sin θ, −cos θ]] with E = h₀ ∓ r/2 and states
    (−sin θ/2, cos θ/2), (cos θ/2, sin θ/2)."""
    if H.shape[1] != 2:
        return np.linalg.eigh(H)
    a, d, b = H[:, 0, 0], H[:, 1, 1], H[:, 0, 1]
    h0 = 0.5 * (a + d)
    r = np.hypot(a - d, 2 * b)
    half = 0.5 * np.arctan2(2 * b, a - d)
    c, s = np.cos(half), np.sin(half)
    E = np.stack([h0 - 0.5 * r, h0 + 0.5 * r], axis=1)
    U = np.empty_like(H)
    U[:, 0, 0], U[:, 1, 0], U[:, 0, 1], U[:, 1, 1] = -s, c, c, s
    return E, U


def align_phases(U, previous):
    """U (T, S, S) with each column's sign flipped so that u_k · u_k(previous) ≥ 0."""
    U = np.array(U, float, copy=True)
    s = np.sign(np.einsum("tik,tik->tk", U, np.asarray(previous, float)))
    s[s == 0] = 1.0
    return U * s[:, None, :]


class DiabaticModel:
    """A model defined by its diabatic matrix: subclasses implement :meth:`diabatic`.

    ``states(positions)`` takes (T, N, 3) Å and returns the :class:`StatesResult` of :func:`adiabatic`;
    ``eps`` (eV) regularises the couplings near degeneracies.
    """

    n_states: int = 2
    eps: float = 0.0

    def diabatic(self, positions) -> tuple[np.ndarray, np.ndarray]:
        """(H (T, S, S) eV, ∇H (T, S, S, N, 3) eV/Å) at positions (T, N, 3) Å."""
        raise NotImplementedError

    def states(self, positions, previous=None) -> StatesResult:
        H, dH = self.diabatic(np.asarray(positions, float))
        return adiabatic(H, dH, self.eps, previous)
