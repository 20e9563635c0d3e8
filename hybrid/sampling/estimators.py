"""Free-energy differences between two or more levels (potentials) from samples, with errors that account
for correlation and diagnostics that say when an estimate cannot be trusted.

Conventions at this seam: energies in eV, temperature in K, ΔA = A_1 - A_0 in eV, errors one standard
error in eV. Inside, everything is reduced by β = 1/(k_B T).

Estimators (pymbar does the numerics):

* exponential averaging (Zwanzig), forward from samples of state 0 with Δu_n = U_1(x_n) - U_0(x_n):
  ΔA = -kT ln ⟨exp(-β Δu)⟩_0; reverse from samples of state 1: ΔA = kT ln ⟨exp(+β Δu)⟩_1;
* BAR (Bennett), from both: the ΔA that solves Σ_F f(βΔu - βΔA) = Σ_R f(βΔA - βΔu) with the Fermi
  function f (pymbar ``bar``);
* MBAR, from K states' energies at every sample (pymbar ``MBAR``);
* thermodynamic integration, ΔA = ∫₀¹ ⟨∂U/∂λ⟩_λ dλ by the trapezoid rule over the windows, with the
  statistical error Σ w_k² σ_k² and a quadrature error (trapezoid against Simpson, or half the
  trapezoid against its every-other-window version when Simpson does not apply).

Correlation: each time series is reduced to its uncorrelated samples with pymbar's statistical
inefficiency g (the integrated autocorrelation time in samples, 1 + 2 Σ_t ρ(t)) before an estimator
sees it, so the errors are those of N/g independent samples. Pass ``correlated=False`` for samples
known to be independent.

Diagnostics, each also turned into a warning (:class:`FreeEnergyWarning`) and listed in
``FreeEnergy.warnings``:

* exponential averaging: Kish's effective sample size n_eff = (Σ w)² / Σ w² of the weights
  w_n = exp(-β Δu_n) over the independent samples; below 10 % of them the average is carried by a few
  samples (poor overlap) and is biased, whatever its error bar says; below ``min_ess`` (default 50) there
  are too few samples for the error bar itself to be trusted;
* BAR: the overlap of the two work distributions (pymbar ``bar_overlap``), below ``min_overlap``
  (default 0.03) the estimate is unreliable;
* MBAR: the smallest off-diagonal element of the overlap matrix between neighbouring states, and each
  state's effective sample number;
* TI: a quadrature error larger than the statistical error (add windows where ⟨∂U/∂λ⟩ curves).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..units import KB_EV, KCAL_PER_MOL

MIN_ESS = 50.0
MIN_OVERLAP = 0.03


class FreeEnergyWarning(UserWarning):
    """An estimate whose diagnostics say it cannot be trusted (poor overlap, few effective samples)."""


@dataclass
class FreeEnergy:
    """ΔA = A_1 - A_0 and its one-standard-error ``error`` (both eV) by ``method`` at ``temperature`` K.

    n_samples : samples given; n_independent : after subsampling by the statistical inefficiency;
    diagnostics : method-specific numbers (ess, overlap, g, quadrature_error, ...);
    warnings : the diagnostics that failed, as sentences.
    """

    delta: float
    error: float
    method: str
    temperature: float
    n_samples: int
    n_independent: float
    diagnostics: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    @property
    def kT(self) -> float:
        return KB_EV * self.temperature

    def in_kT(self) -> tuple[float, float]:
        return self.delta / self.kT, self.error / self.kT

    def in_kcal_per_mol(self) -> tuple[float, float]:
        return self.delta / KCAL_PER_MOL, self.error / KCAL_PER_MOL

    @property
    def trusted(self) -> bool:
        return not self.warnings

    def __str__(self) -> str:
        flag = "" if self.trusted else f" [{'; '.join(self.warnings)}]"
        return (f"{self.method}: ΔA = {self.delta:.6f} ± {self.error:.6f} eV "
                f"({self.delta / KCAL_PER_MOL:.3f} ± {self.error / KCAL_PER_MOL:.3f} kcal/mol, "
                f"{self.n_independent:.0f} of {self.n_samples} samples independent){flag}")


def _pymbar():
    """pymbar, imported quietly (it logs a banner about JAX at import)."""
    log = logging.getLogger("pymbar")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        import pymbar
        from pymbar import other_estimators, timeseries
    except ImportError as exc:
        raise ImportError("free-energy estimators need pymbar: pip install 'qmml-hybrid[sampling]'") from exc
    finally:
        log.setLevel(level)
    return pymbar, other_estimators, timeseries


def _beta(temperature) -> float:
    t = float(temperature)
    if not (np.isfinite(t) and t > 0):
        raise InputError(f"temperature must be a positive number of kelvin, got {temperature!r}")
    return 1.0 / (KB_EV * t)


def _series(x, name: str, min_len: int = 2) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise InputError(f"{name} must be a 1-D series of energies (eV), got shape {a.shape}")
    if len(a) < min_len:
        raise InputError(f"{name} has {len(a)} samples; at least {min_len} are needed")
    bad = np.flatnonzero(~np.isfinite(a))
    if len(bad):
        raise InputError(f"{name}: sample {bad[0]} is {a[bad[0]]} (not finite)")
    return a


def statistical_inefficiency(x) -> float:
    """g = 1 + 2 Σ_t (1 - t/N) ρ(t) ≥ 1 of the series ``x`` (pymbar), in samples: N/g of N are independent."""
    _, _, ts = _pymbar()
    a = _series(x, "statistical_inefficiency: x", 3)
    if np.ptp(a) == 0:
        return 1.0
    return float(max(ts.statistical_inefficiency(a), 1.0))


def subsample(x, correlated: bool = True) -> tuple[np.ndarray, float]:
    """(the uncorrelated samples of ``x``, g): every ⌈g⌉-th sample by pymbar, or all of them with g = 1."""
    a = np.asarray(x, dtype=float)
    if not correlated:
        return a, 1.0
    g = statistical_inefficiency(a)
    if g <= 1.0:
        return a, 1.0
    _, _, ts = _pymbar()
    idx = ts.subsample_correlated_data(a, g=g)
    return a[np.asarray(idx, dtype=int)], g


def kish_ess(log_w) -> float:
    """(Σ w)² / Σ w² for weights given as logarithms (any constant offset)."""
    lw = np.asarray(log_w, float)
    lw = lw - lw.max()
    w = np.exp(lw)
    return float(w.sum() ** 2 / (w**2).sum())


def _warn(out: FreeEnergy) -> FreeEnergy:
    for text in out.warnings:
        warnings.warn(f"{out.method}: {text}", FreeEnergyWarning, stacklevel=3)
    return out


def exponential_averaging(du, temperature: float, direction: str = "forward", correlated: bool = True,
                          min_ess: float = MIN_ESS) -> FreeEnergy:
    """ΔA = A_1 - A_0 by exponential averaging (module docstring).

    du : (N,) U_1(x_n) - U_0(x_n) in eV at samples x_n of state 0 (``direction="forward"``) or of state 1
    (``"reverse"``), in the order they were sampled (for the correlation analysis).
    """
    if direction not in ("forward", "reverse"):
        raise InputError(f"exponential_averaging: direction must be 'forward' or 'reverse', got {direction!r}")
    beta = _beta(temperature)
    a = _series(du, "exponential_averaging: du")
    w = beta * a if direction == "forward" else -beta * a          # pymbar's work: ΔA = -ln<exp(-w)>
    _, other, _ = _pymbar()
    sub, g = subsample(w, correlated)
    r = other.exp(sub)
    sign = 1.0 if direction == "forward" else -1.0
    ess = kish_ess(-sub)
    out = FreeEnergy(sign * r["Delta_f"] / beta, float(r["dDelta_f"]) / beta, f"EXP ({direction})",
                     float(temperature), len(a), len(sub), {"g": g, "ess": ess})
    if ess < 0.1 * len(sub):
        out.warnings.append(f"effective sample size {ess:.1f} of {len(sub)} independent samples: the average "
                            "is carried by a few samples (poor overlap); the estimate is biased")
    elif ess < min_ess:
        out.warnings.append(f"effective sample size {ess:.1f} (< {min_ess:g}): too few samples for the error bar "
                            "to be reliable; sample longer")
    return _warn(out)


def bar(du_forward, du_reverse, temperature: float, correlated: bool = True,
        min_overlap: float = MIN_OVERLAP) -> FreeEnergy:
    """ΔA = A_1 - A_0 by Bennett's acceptance ratio.

    du_forward : U_1 - U_0 (eV) at samples of state 0; du_reverse : U_1 - U_0 (eV) at samples of state 1
    """
    beta = _beta(temperature)
    f = _series(du_forward, "bar: du_forward")
    r = _series(du_reverse, "bar: du_reverse")
    _, other, _ = _pymbar()
    wf, gf = subsample(beta * f, correlated)
    wr, gr = subsample(-beta * r, correlated)
    res = other.bar(wf, wr)
    try:
        overlap = float(other.bar_overlap(wf, wr))
    except (AssertionError, other.ParameterError, other.ConvergenceError, FloatingPointError):
        overlap = 0.0             # pymbar's overlap runs a 2-state MBAR, which fails when nothing overlaps
    out = FreeEnergy(float(res["Delta_f"]) / beta, float(res["dDelta_f"]) / beta, "BAR", float(temperature),
                     len(f) + len(r), len(wf) + len(wr), {"g_forward": gf, "g_reverse": gr, "overlap": overlap})
    if overlap < min_overlap:
        out.warnings.append(f"overlap {overlap:.3g} of the forward and reverse work distributions is below "
                            f"{min_overlap}: add intermediate states")
    return _warn(out)


@dataclass
class MBARResult:
    """MBAR over K states: ``delta`` (K, K) A_j - A_i in eV, ``error`` (K, K), ``overlap`` (K, K),
    ``ess`` (K,) effective samples per state, ``g`` (K,) statistical inefficiencies, ``warnings``."""

    delta: np.ndarray
    error: np.ndarray
    overlap: np.ndarray
    ess: np.ndarray
    g: np.ndarray
    n_independent: np.ndarray
    temperature: float
    warnings: list = field(default_factory=list)

    def between(self, i: int = 0, j: int = -1) -> FreeEnergy:
        """A_j - A_i as a :class:`FreeEnergy`."""
        k = len(self.delta)
        i, j = range(k)[i], range(k)[j]
        return FreeEnergy(float(self.delta[i, j]), float(self.error[i, j]), "MBAR", self.temperature,
                          int(self.n_independent.sum()), float(self.n_independent.sum()),
                          {"min_neighbour_overlap": float(min(self.overlap[a, a + 1] for a in range(k - 1)))
                           if k > 1 else 1.0, "ess": self.ess.tolist()}, list(self.warnings))


def mbar(energies, n_samples, temperature: float, correlated: bool = True,
         min_overlap: float = MIN_OVERLAP) -> MBARResult:
    """MBAR free energies of K states.

    energies : (K, N) U_k(x_n) in eV, every sample n under every state k; samples are grouped by the state
    that drew them, in ``n_samples`` (K,) consecutive blocks, each in sampling order
    """
    beta = _beta(temperature)
    u = np.asarray(energies, float)
    nk = np.asarray(n_samples)
    if u.ndim != 2:
        raise InputError(f"mbar: energies must have shape (K states, N samples), got {u.shape}")
    if nk.shape != (u.shape[0],) or np.any(nk < 0) or nk.sum() != u.shape[1] or np.any(nk != nk.astype(int)):
        raise InputError(f"mbar: n_samples must be {u.shape[0]} non-negative counts summing to {u.shape[1]}, "
                         f"got {nk.tolist()}")
    if not np.all(np.isfinite(u)):
        k, n = np.argwhere(~np.isfinite(u))[0]
        raise InputError(f"mbar: energy of sample {n} under state {k} is {u[k, n]} (not finite)")
    nk = nk.astype(int)
    pymbar, _, _ = _pymbar()
    keep, g, n_ind = [], np.ones(len(nk)), np.zeros(len(nk), int)
    start = 0
    for k, n in enumerate(nk):
        idx = np.arange(start, start + n)
        start += n
        if n == 0:
            continue
        if correlated and n > 3:
            g[k] = statistical_inefficiency(beta * u[k, idx])
            idx = idx[::max(int(np.ceil(g[k])), 1)]
        keep.append(idx)
        n_ind[k] = len(idx)
    keep = np.concatenate(keep)
    m = pymbar.MBAR(beta * u[:, keep], n_ind)
    res = m.compute_free_energy_differences()
    overlap = np.asarray(m.compute_overlap()["matrix"])
    ess = np.asarray(m.compute_effective_sample_number())
    out = MBARResult(np.asarray(res["Delta_f"]) / beta, np.asarray(res["dDelta_f"]) / beta, overlap, ess, g,
                     n_ind, float(temperature))
    for a in range(len(nk) - 1):
        if overlap[a, a + 1] < min_overlap:
            out.warnings.append(f"overlap between states {a} and {a + 1} is {overlap[a, a + 1]:.3g} "
                                f"(< {min_overlap}): add a state between them")
    for text in out.warnings:
        warnings.warn(f"MBAR: {text}", FreeEnergyWarning, stacklevel=2)
    return out


def thermodynamic_integration(lambdas, dudl, temperature: float, correlated: bool = True) -> FreeEnergy:
    """ΔA = ∫₀¹ ⟨∂U/∂λ⟩ dλ by the trapezoid rule.

    lambdas : (K,) increasing window positions covering [λ_0, λ_K-1]; dudl : K series of ∂U/∂λ (eV) at
    each window's samples, in sampling order. ``diagnostics`` holds per-window means and errors and the
    quadrature error estimate (module docstring); the returned ``error`` is the statistical one.
    """
    lam = np.asarray(lambdas, float)
    if lam.ndim != 1 or len(lam) < 2 or np.any(np.diff(lam) <= 0):
        raise InputError(f"thermodynamic_integration: lambdas must be >= 2 increasing values, got {lam.tolist()}")
    if len(dudl) != len(lam):
        raise InputError(f"thermodynamic_integration: {len(lam)} lambdas but {len(dudl)} series of dU/dλ")
    _beta(temperature)
    means, sems, n, n_ind = [], [], 0, 0.0
    for k, series in enumerate(dudl):
        a = _series(series, f"thermodynamic_integration: dudl[{k}] (λ = {lam[k]:g})")
        g = statistical_inefficiency(a) if correlated else 1.0
        means.append(a.mean())
        sems.append(a.std(ddof=1) * np.sqrt(g / len(a)))
        n += len(a)
        n_ind += len(a) / g
    means, sems = np.array(means), np.array(sems)
    h = np.diff(lam)
    w = np.zeros(len(lam))
    w[:-1] += h / 2
    w[1:] += h / 2
    value = float(w @ means)
    error = float(np.sqrt(np.sum((w * sems) ** 2)))
    quad = _quadrature_error(lam, means, value)
    out = FreeEnergy(value, error, "TI", float(temperature), n, n_ind,
                     {"means": means.tolist(), "errors": sems.tolist(), "quadrature_error": quad})
    if quad > max(error, 1e-12):
        out.warnings.append(f"quadrature error {quad:.3g} eV exceeds the statistical error {error:.3g} eV: "
                            "add windows where <dU/dλ> curves")
    return _warn(out)


def _quadrature_error(lam, y, trapezoid: float) -> float:
    """|trapezoid - Simpson| over the windows (scipy), or, with 2 windows, NaN (no estimate possible)."""
    if len(lam) < 3:
        return float("nan")
    from scipy.integrate import simpson
    return float(abs(trapezoid - simpson(y, x=lam)))
