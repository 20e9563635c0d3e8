"""Harmonic normal modes and Wigner sampling: initial conditions for excited-state dynamics.

At a minimum R₀ (N, 3) Å with Hessian H (3N, 3N) eV/Å² and masses m (N,) amu, the mass-weighted Hessian
K = M^{-1/2} H M^{-1/2}, with rigid translations and rotations projected out (Eckart), has 3N − 6
vibrations (3N − 5 for a linear molecule): eigenvalues ω_j² and orthonormal eigenvectors L_j.

The Wigner function of mode j at temperature T (the ground state at T = 0) in mass-weighted coordinates
q_j and velocities p_j = q̇_j (amu^½ Å, amu^½ Å/fs; ħ in amu Å²/fs) is Gaussian,

    W(q, p) ∝ exp(−α_j [ω_j q² + p²/ω_j] / ħ),   α_j = tanh(ħω_j / 2k_BT)  (α = 1 at T = 0),

so ⟨q²⟩ = ħ / (2α ω),  ⟨p²⟩ = ħω / (2α): ħω/4 of kinetic and of potential energy per mode at T = 0, k_BT/2
each at high T. A sample is R = R₀ + M^{-1/2} Σ_j q_j L_j, v = M^{-1/2} Σ_j p_j L_j: no net momentum and no
angular momentum about the centre of mass at R₀.

Units: Å, fs, amu, eV (ħ = :data:`hybrid.units.HBAR` eV·fs; ω in 1/fs, from ω² in eV/(Å² amu) through
:data:`hybrid.units.ACCEL`); wavenumbers in cm⁻¹ for reports only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import units
from ..errors import InputError

CM1_PER_INV_FS = 1e15 / (2 * np.pi * 2.99792458e10)      # ω (rad/fs) → wavenumber (cm⁻¹)


@dataclass
class NormalModes:
    """positions: (N, 3) Å; masses: (N,) amu; omega: (M,) rad/fs, ascending; vectors: (M, N, 3)
    mass-weighted, orthonormal (Σ_ia L_jia L_kia = δ_jk)."""
    positions: np.ndarray
    masses: np.ndarray
    omega: np.ndarray
    vectors: np.ndarray

    @property
    def wavenumbers(self) -> np.ndarray:
        """(M,) cm⁻¹."""
        return self.omega * CM1_PER_INV_FS


def numerical_hessian(potential, system, step: float = 1e-3) -> np.ndarray:
    """(3N, 3N) eV/Å² by central differences of the forces of ``potential`` (6N force calls), symmetrised.
    Its error is O(step²) in the third derivatives."""
    x0 = system.positions
    n = len(x0)
    H = np.zeros((3 * n, 3 * n))
    for a in range(n):
        for k in range(3):
            x = x0.copy()
            x[a, k] += step
            fp = potential.compute(system.with_positions(x)).forces
            x[a, k] -= 2 * step
            fm = potential.compute(system.with_positions(x)).forces
            H[3 * a + k] = -(fp - fm).ravel() / (2 * step)
    return 0.5 * (H + H.T)


def _rigid_basis(positions, masses) -> np.ndarray:
    """Orthonormal mass-weighted translations and rotations about the centre of mass, (r, 3N), r = 6 or 5."""
    sq = np.sqrt(masses)
    com = (masses[:, None] * positions).sum(0) / masses.sum()
    r = positions - com
    vecs = []
    for k in range(3):
        t = np.zeros_like(r)
        t[:, k] = 1.0
        vecs.append((sq[:, None] * t).ravel())
    for k in range(3):
        e = np.zeros(3)
        e[k] = 1.0
        vecs.append((sq[:, None] * np.cross(e, r)).ravel())
    q, s, _ = np.linalg.svd(np.array(vecs).T, full_matrices=False)
    return q[:, s > 1e-6 * s.max()].T


def normal_modes(hessian, positions, masses) -> NormalModes:
    """The vibrations of a minimum (module docstring). A vibration with ω² < 0 (not a minimum) is an
    InputError naming it and its wavenumber."""
    x = np.asarray(positions, float)
    m = np.asarray(masses, float)
    n = len(x)
    H = np.asarray(hessian, float)
    if H.shape != (3 * n, 3 * n) or m.shape != (n,) or np.any(m <= 0):
        raise InputError(f"normal_modes: need a ({3 * n}, {3 * n}) Hessian and {n} positive masses, got "
                         f"{H.shape} and {m.shape}")
    w = np.repeat(1.0 / np.sqrt(m), 3)
    K = w[:, None] * H * w[None, :] * units.ACCEL            # (rad/fs)²
    R = _rigid_basis(x, m)
    P = np.eye(3 * n) - R.T @ R
    vals, vecs = np.linalg.eigh(P @ K @ P)
    # the rigid motions are exact null vectors of PKP: drop the eigenvectors that lie in their span
    rigid = np.linalg.norm(R @ vecs, axis=0) > 0.5
    vals, vecs = vals[~rigid], vecs[:, ~rigid]
    if np.any(vals < 0):
        j = int(np.argmin(vals))
        raise InputError(f"normal_modes: vibration {j} has ω² < 0 (an imaginary frequency, "
                         f"{np.sqrt(-vals[j]) * CM1_PER_INV_FS:.1f}i cm⁻¹): the geometry is not a minimum")
    return NormalModes(x.copy(), m.copy(), np.sqrt(vals), vecs.T.reshape(-1, n, 3))


def wigner_sample(modes: NormalModes, n_samples: int, seed, temperature: float = 0.0):
    """positions (S, N, 3) Å and velocities (S, N, 3) Å/fs drawn from the harmonic Wigner distribution at
    ``temperature`` K (module docstring)."""
    if n_samples < 1 or temperature < 0:
        raise InputError(f"wigner_sample: need n_samples >= 1 and temperature >= 0 K, got {n_samples}, "
                         f"{temperature}")
    om = modes.omega
    if temperature > 0:
        alpha = np.tanh(units.HBAR * om / (2 * units.KB_EV * temperature))
    else:
        alpha = np.ones_like(om)
    rng = np.random.default_rng(seed)
    hbar = units.HBAR * units.ACCEL                           # ħ in amu Å²/fs (1 eV = ACCEL amu Å²/fs²)
    q = rng.normal(size=(n_samples, len(om))) * np.sqrt(hbar / (2 * alpha * om))     # amu^½ Å
    p = rng.normal(size=(n_samples, len(om))) * np.sqrt(hbar * om / (2 * alpha))     # amu^½ Å/fs
    inv = 1.0 / np.sqrt(modes.masses)[None, :, None]
    dx = np.einsum("sj,jna->sna", q, modes.vectors) * inv
    v = np.einsum("sj,jna->sna", p, modes.vectors) * inv
    return modes.positions[None] + dx, v
