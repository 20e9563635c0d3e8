"""Path-integral estimators on ring-polymer samples, and ring-polymer contraction.

A ring polymer of P beads r_k (k = 0..P-1, r_P ≡ r_0) at temperature T samples

    exp(-(β/P) Σ_k [½ m ω_P² |r_k - r_k+1|² + V(r_k)]),   ω_P = P / (β ħ),

whose position marginal is the quantum Boltzmann distribution as P → ∞. Per atom i (3 Cartesian
degrees of freedom), the quantum kinetic energy has two estimators:

* primitive:         K_i = 3P / (2β) - (1/P) Σ_k ½ m_i ω_P² |r_ik - r_i,k+1|²
* centroid virial:   K_i = 3 / (2β) - (1/(2P)) Σ_k (r_ik - r̄_i) · F_ik,   F_ik = -∂V/∂r_ik

with the same mean; the virial one's variance does not grow with P. The potential energy estimator is
(1/P) Σ_k V(r_k).

Contraction (Markland & Manolopoulos 2008): a smooth part of the potential is evaluated on m < P beads
r̃_j, the ring's m lowest Fourier modes evaluated at m points (:func:`contract`, the same truncation as
OpenMM's ``RPMDIntegrator``; m = 1 is the centroid). The contracted Hamiltonian's potential is
(1/P) Σ_k V_0(r_k) + (1/m) Σ_j ΔV(r̃_j), and its centroid-virial term for ΔV is
-(1/(2m)) Σ_j (r̃_j - r̄) · ΔF(r̃_j) (r̃ is linear in r with the centroid fixed).

Units: positions Å, forces eV/Å, masses amu, energies eV, temperature K.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..units import ACCEL, HBAR, KB_EV


def _beads(beads) -> np.ndarray:
    r = np.asarray(beads, float)
    if r.ndim != 3 or r.shape[2] != 3:
        raise InputError(f"bead positions must have shape (P beads, N atoms, 3), got {r.shape}")
    return r


def spring_frequency(n_beads: int, temperature: float) -> float:
    """ω_P = P k_B T / ħ in 1/fs."""
    return n_beads * KB_EV * temperature / HBAR


def primitive_kinetic(beads, masses, temperature: float) -> np.ndarray:
    """(N,) primitive kinetic energy estimator per atom (eV) of one ring-polymer configuration (P, N, 3) Å."""
    r = _beads(beads)
    p = len(r)
    m = np.asarray(masses, float)
    wp = spring_frequency(p, temperature)
    stretch = np.sum((r - np.roll(r, -1, axis=0)) ** 2, axis=(0, 2))          # Σ_k |r_k - r_k+1|², (N,)
    return 1.5 * p * KB_EV * temperature - 0.5 * m * wp**2 * stretch / (p * ACCEL)


def centroid_virial_kinetic(beads, forces, temperature: float) -> np.ndarray:
    """(N,) centroid-virial kinetic energy estimator per atom (eV).

    beads (P, N, 3) Å, forces (P, N, 3) eV/Å: -∂V/∂r at each bead.
    """
    r = _beads(beads)
    f = np.asarray(forces, float)
    if f.shape != r.shape:
        raise InputError(f"forces must have the beads' shape {r.shape}, got {f.shape}")
    return 1.5 * KB_EV * temperature - 0.5 / len(r) * np.sum((r - r.mean(0)) * f, axis=(0, 2))


def contract(beads, m: int) -> np.ndarray:
    """(m, N, 3) contracted beads: the m lowest Fourier modes of the ring evaluated at m points.

    Keeps frequency indices 0..⌈m/2⌉-1 and the ⌊m/2⌋ most negative ones of the P-point FFT, transforms
    back on m points and scales by m/P (real part): m = 1 gives the centroid, m = P the beads.
    """
    r = _beads(beads)
    p = len(r)
    if isinstance(m, bool) or int(m) != m or not 1 <= m <= p:
        raise InputError(f"contracted bead number must be an integer in 1..{p}, got {m!r}")
    m = int(m)
    if m == p:
        return r.copy()
    c = np.fft.fft(r, axis=0)
    start = (m + 1) // 2
    kept = np.concatenate([c[:start], c[p - (m - start):]], axis=0)
    return np.real(np.fft.ifft(kept, axis=0)) * (m / p)


def harmonic_quantum_energy(omega: float, temperature: float, dimensions: int = 3) -> float:
    """⟨E⟩ = d (ħω/2) coth(βħω/2) in eV of a d-dimensional quantum harmonic oscillator (ω in 1/fs)."""
    x = HBAR * omega / (2 * KB_EV * temperature)
    return dimensions * HBAR * omega / 2 / np.tanh(x)


def harmonic_ring_energy(omega: float, temperature: float, n_beads: int, dimensions: int = 3) -> float:
    """⟨E⟩ (eV) of a d-dimensional harmonic oscillator (ω in 1/fs) sampled by a P-bead ring polymer: the exact
    value of the discretised path integral, which tends to :func:`harmonic_quantum_energy` as P → ∞
    (P = 1 gives the classical d k_B T). With s_j = sin(πj/P) and a_j = 4P s_j²/(βħ²), b = ω²/P,

        E_P = dP/(2β) + (d/2) Σ_j (b - a_j/β) / (a_j + βb).
    """
    beta = 1.0 / (KB_EV * temperature)
    j = np.arange(int(n_beads))
    a = 4 * n_beads * np.sin(np.pi * j / n_beads) ** 2 / (beta * HBAR**2)
    b = omega**2 / n_beads
    return float(dimensions * n_beads / (2 * beta) + dimensions / 2 * np.sum((b - a / beta) / (a + beta * b)))
