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

Reweighting (:func:`reweight`): samples of the ring polymer on V are samples of V + ΔV with weights
w ∝ exp(-(β/P) Σ_k ΔV(r_k)); the kinetic estimators of V + ΔV add -(1/(2P)) Σ_k (r_k - r̄)·ΔF(r_k) to the
virial one (the primitive one depends on positions alone). One PES and any correction, evaluated after
the run on stored beads.

Units: positions Å, forces eV/Å, masses amu, energies eV, temperature K.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError
from ..units import ACCEL, HBAR, KB_EV


@dataclass
class PIMDRun:
    """Estimator time series of a ring-polymer run, one row per sample.

    kinetic_primitive, kinetic_virial : (n, N) per-atom quantum kinetic energy estimators (eV)
    potential : (n,) potential energy of the simulated (contracted) Hamiltonian, bead-averaged (eV)
    correction : (n,) its correction part (1/m) Σ_j ΔV(r̃_j) (eV), or None
    centroids : (n, N, 3) Å; evaluations : {"potential": calls, "correction": calls}; wall : s
    beads : (n, P, N, 3) Å when the run kept them (needed by :func:`reweight`)
    weights : (n,) normalised importance weights of a reweighted run (None: all samples weigh alike)
    """

    temperature: float
    n_beads: int
    contracted_beads: int | None
    masses: np.ndarray
    kinetic_primitive: np.ndarray
    kinetic_virial: np.ndarray
    potential: np.ndarray
    correction: np.ndarray | None
    centroids: np.ndarray
    evaluations: dict
    wall: float
    info: dict = field(default_factory=dict)
    beads: np.ndarray | None = None
    weights: np.ndarray | None = None

    def mean(self, series) -> tuple[float, float]:
        """(mean, standard error with the statistical inefficiency g) of a 1-D series over the samples.

        Unweighted: σ √(g/n). Weighted (w normalised): x̄ = Σ w x, error² = g Σ w² (x - x̄)², g taken from
        the series n w (x - x̄), whose correlation is what the weighted mean inherits.
        """
        from .estimators import statistical_inefficiency
        x = np.asarray(series, float)
        n = len(x)
        if n < 2:
            return (float(x.mean()) if n else float("nan")), float("nan")
        if self.weights is None:
            g = statistical_inefficiency(x) if n > 3 and np.ptp(x) > 0 else 1.0
            return float(x.mean()), float(x.std(ddof=1) * np.sqrt(g / n))
        w = self.weights
        m = float(np.sum(w * x))
        dev = w * (x - m)
        g = statistical_inefficiency(n * dev) if n > 3 and np.ptp(dev) > 0 else 1.0
        return m, float(np.sqrt(g * np.sum(dev**2)))

    def effective_samples(self) -> float:
        """Kish's (Σ w)² / Σ w² for a reweighted run, else the number of samples."""
        n = len(self.potential)
        return float(n) if self.weights is None else float(1.0 / np.sum(self.weights**2))

    def kinetic(self, atoms=None, estimator: str = "virial") -> tuple[float, float]:
        """(mean, error) of the quantum kinetic energy summed over ``atoms`` (default all), eV."""
        k = {"virial": self.kinetic_virial, "primitive": self.kinetic_primitive}.get(estimator)
        if k is None:
            raise InputError(f"estimator must be 'virial' or 'primitive', got {estimator!r}")
        idx = np.arange(k.shape[1]) if atoms is None else np.asarray(atoms, int)
        return self.mean(k[:, idx].sum(1))

    def energy(self, estimator: str = "virial") -> tuple[float, float]:
        """(mean, error) of the total energy ⟨K⟩ + ⟨V⟩ (eV), from one series so correlations are kept."""
        k = self.kinetic_virial if estimator == "virial" else self.kinetic_primitive
        return self.mean(k.sum(1) + self.potential)



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


def reweight(run: PIMDRun, correction, system, min_fraction: float = 0.1) -> PIMDRun:
    """``run`` (ring polymer on V, beads kept) reweighted to V + ``correction`` on every bead.

    Per sample s: ΔV_s = (1/P) Σ_k ΔV(r_sk), w_s ∝ exp(-β ΔV_s); kinetic_virial gains
    -(1/(2P)) Σ_k (r_sk - r̄_s)·ΔF(r_sk) per atom, potential gains ΔV_s, ``correction`` holds ΔV_s. Costs P
    evaluations of ``correction`` per sample. ``system`` gives the atoms (numbers, charge, cell) of the
    beads. Warns (:class:`~hybrid.sampling.estimators.FreeEnergyWarning`) when Kish's effective sample
    size is below ``min_fraction`` of the samples or below 50: then the run should be made on V + ΔV.
    """
    from ..potential import Potential
    from .estimators import MIN_ESS, FreeEnergyWarning
    if not isinstance(correction, Potential):
        raise InputError(f"reweight: correction must be a Potential, got {type(correction).__name__}")
    if run.beads is None:
        raise InputError("reweight: the run kept no beads (run it with keep_beads=True)")
    if run.correction is not None or run.weights is not None:
        raise InputError("reweight: the run already carries a correction or weights; reweight a run of the "
                         "cheap level alone")
    n, p, n_atoms, _ = run.beads.shape
    if len(system) != n_atoms:
        raise InputError(f"reweight: system has {len(system)} atoms, the run's beads {n_atoms}")
    beta = 1.0 / (KB_EV * run.temperature)
    dv = np.zeros(n)
    kv = run.kinetic_virial.copy()
    for s in range(n):
        r = run.beads[s]
        centroid = r.mean(0)
        for k in range(p):
            res = correction.compute(system.with_positions(r[k]))
            dv[s] += res.energy / p
            kv[s] -= 0.5 / p * np.sum((r[k] - centroid) * res.forces, axis=1)
    lw = -beta * dv
    w = np.exp(lw - lw.max())
    w /= w.sum()
    evals = dict(run.evaluations)
    evals["correction"] = evals.get("correction", 0) + n * p
    out = replace(run, kinetic_virial=kv, potential=run.potential + dv, correction=dv, weights=w,
                  evaluations=evals, info={**run.info, "reweighted": True})
    ess = out.effective_samples()
    if ess < min_fraction * n or ess < MIN_ESS:
        warnings.warn(f"PIMD reweighting: effective sample size {ess:.1f} of {n} samples; the correction's "
                      "fluctuations are too large for reweighting, sample V + ΔV directly",
                      FreeEnergyWarning, stacklevel=2)
    return out
