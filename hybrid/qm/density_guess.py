"""Initial SCF densities for MD: polynomial extrapolation in the Löwdin basis.

Atom-centred AOs move with the nuclei, so AO density matrices of different
geometries live in different bases. In the Löwdin-orthogonalised basis
(P̃ = S^{1/2} P S^{1/2}) a rigid motion leaves P̃ unchanged, so P̃ can be
extrapolated along a trajectory:

    P̃_guess = Σ_k c_k P̃_{n-k},  c = (1), (2, -1), (3, -3, 1), (4, -6, 4, -1)

(orders 0..3; error O(Δt^{order+1}) on a smooth path). The guess is made
idempotent again by keeping the ``nocc`` leading eigenvectors of P̃_guess,
and mapped back with the new overlap: C = S^{-1/2} C̃, P = occ · C Cᵀ.
"""
from __future__ import annotations

from collections import deque

import numpy as np

_COEFFS = {0: (1.0,), 1: (2.0, -1.0), 2: (3.0, -3.0, 1.0), 3: (4.0, -6.0, 4.0, -1.0)}


def _sqrt_and_inv_sqrt(s: np.ndarray):
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(w)) @ v.T, (v / np.sqrt(w)) @ v.T


class DensityExtrapolator:
    """Keeps the last few orthogonalised densities and predicts the next.

    Densities are (nao, nao) for restricted and (2, nao, nao) for
    unrestricted references; ``nocc`` is an int or an (nα, nβ) pair.
    """

    def __init__(self, order: int = 2):
        if order not in _COEFFS:
            raise ValueError(f"extrapolation order must be one of {sorted(_COEFFS)}, got {order}")
        self.order = order
        self.history: deque = deque(maxlen=order + 1)

    def clear(self) -> None:
        self.history.clear()

    def push(self, dm: np.ndarray, s: np.ndarray) -> None:
        s_half, _ = _sqrt_and_inv_sqrt(s)
        self.history.appendleft(np.einsum("ij,...jk,kl->...il", s_half, dm, s_half))

    def guess(self, s: np.ndarray, nocc, restricted: bool) -> np.ndarray | None:
        if not self.history:
            return None
        coeffs = _COEFFS[min(self.order, len(self.history) - 1)]
        p = sum(c * h for c, h in zip(coeffs, self.history))
        _, s_inv_half = _sqrt_and_inv_sqrt(s)
        if restricted:
            return 2.0 * _project(p / 2.0, int(nocc), s_inv_half)
        return np.stack([_project(p[k], int(nocc[k]), s_inv_half) for k in (0, 1)])


def _project(p_orth: np.ndarray, nocc: int, s_inv_half: np.ndarray) -> np.ndarray:
    """Idempotent density (occupation 1) from the leading ``nocc`` natural orbitals."""
    if nocc == 0:
        return np.zeros_like(p_orth)
    w, v = np.linalg.eigh((p_orth + p_orth.T) / 2)
    c = s_inv_half @ v[:, -nocc:]
    return c @ c.T
