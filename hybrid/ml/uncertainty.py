"""Uncertainty of MLIP predictions: when to ask for a label, and how far to trust σ.

**Committee trigger** (DP-GEN's model deviation). A committee of M members
with forces F_m,i (eV/Å) on atom i gives

    F̄_i = (1/M) Σ_m F_m,i,    σ_F,i = sqrt((1/M) Σ_m ‖F_m,i - F̄_i‖²)    (eV/Å)
    ε   = max_i σ_F,i          (or max_i σ_F,i / (‖F̄_i‖ + f₀), "relative")

and with trust levels lo < hi a structure is *accurate* (ε < lo: no label
needed), a *candidate* (lo ≤ ε < hi: label it) or *failed* (ε ≥ hi: so far
off that the geometry itself is suspect; DP-GEN discards these).
Defaults lo = 0.05, hi = 0.15 eV/Å.

**Descriptor distance** (out-of-distribution signal, no committee needed).
With x_i the model's standardised descriptor of atom i (``AtomicMLP.descriptors``,
then (D - μ)/σ as the network sees it), for each species s fitted on the
training atoms of that species:

    u_i = (x_i - m_s) / s_s                           (per feature)
    d_i = sqrt(u_iᵀ C_s⁻¹ u_i)                         (dimensionless)
    r_i = d_i / q_s,      q_s = the ``quantile`` (0.99) of d over training atoms of s

m_s, s_s are the per-feature mean and standard deviation over the training
atoms of s, and C_s the Ledoit–Wolf shrunk covariance of u (descriptors have
more dimensions than a small training set has atoms; shrinking the
correlation matrix toward the identity keeps C_s invertible). Without
shrinkage d_i is the plain Mahalanobis distance (x - m)ᵀ Σ⁻¹ (x - m).
r_i > 1 means atom i lies farther from the training data than 99 % of its
training atoms.

**Calibration** on held-out data: the per-atom error e_i = F̄_i - F_ref,i
against σ_F,i. If the committee were a calibrated Gaussian, each component
of e_i would be N(0, σ_F,i²/3), so z_i² = 3‖e_i‖²/σ_F,i² ~ χ²₃. Reported:

* bins of equal atom count by σ: RMV_b = sqrt(⟨σ²⟩_b) against RMSE_b = sqrt(⟨‖e‖²⟩_b)
  (equal when calibrated), and ENCE = (1/B) Σ_b |RMV_b - RMSE_b| / RMV_b;
* Spearman rank correlation of σ_F,i with ‖e_i‖ (per atom) and of max_i σ
  with max_i ‖e_i‖ (per frame);
* miscalibration area ∫₀¹ |P_obs(p) - p| dp, with P_obs(p) the fraction of
  atoms whose z² lies below the χ²₃ quantile p (0: calibrated, 0.5: worst);
* the calibration factor c = sqrt(⟨‖e‖²/σ²⟩) (multiply σ by c to calibrate
  on average) and the Gaussian negative log-likelihood per atom.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InputError, UnknownElementError
from ..potential import Result
from ..system import AtomicSystem, symbol

ACCURATE, CANDIDATE, FAILED = "accurate", "candidate", "failed"


# -- committee trigger -----------------------------------------------------------
@dataclass(frozen=True)
class TrustLevels:
    """Model-deviation trust levels in eV/Å: ε < lower accurate, < upper candidate, else failed."""

    lower: float = 0.05
    upper: float = 0.15

    def __post_init__(self):
        if not (np.isfinite(self.lower) and np.isfinite(self.upper) and 0 <= self.lower < self.upper):
            raise InputError(f"trust levels must satisfy 0 <= lower < upper, got lower={self.lower}, "
                             f"upper={self.upper}")

    def classify(self, deviation: float) -> str:
        """"accurate", "candidate" or "failed" for a model deviation ε (eV/Å)."""
        if not np.isfinite(deviation):
            return FAILED
        if deviation < self.lower:
            return ACCURATE
        return CANDIDATE if deviation < self.upper else FAILED


def max_force_deviation(result, atoms=None, relative: float | None = None) -> float:
    """ε = max_i σ_F,i over ``atoms`` (indices or a boolean mask; default all), eV/Å.

    result : a committee :class:`Result` (with ``force_std``), or σ_F (N,) itself
    relative : f₀ in eV/Å: use σ_F,i / (‖F̄_i‖ + f₀) instead (dimensionless;
        needs a Result for F̄)
    """
    if isinstance(result, Result):
        if result.force_std is None:
            raise InputError("max_force_deviation: this result has no force_std; it is not from a committee")
        sigma = np.asarray(result.force_std, float)
    else:
        sigma = np.asarray(result, float)
        if relative is not None:
            raise InputError("max_force_deviation: relative deviation needs a committee Result (for the mean forces)")
    if sigma.ndim != 1:
        raise InputError(f"max_force_deviation: force_std must have shape (N,), got {sigma.shape}")
    if relative is not None:
        sigma = sigma / (np.linalg.norm(result.forces, axis=1) + float(relative))
    if atoms is not None:
        sel = np.asarray(atoms)
        sigma = sigma[sel]
    if sigma.size == 0:
        raise InputError("max_force_deviation: no atoms selected")
    return float(sigma.max())


@dataclass
class Selection:
    """Structures sorted by trust level: indices into the list given, and every ε (eV/Å)."""

    deviation: np.ndarray
    status: list
    accurate: list = field(default_factory=list)
    candidate: list = field(default_factory=list)
    failed: list = field(default_factory=list)

    def counts(self) -> dict:
        return {ACCURATE: len(self.accurate), CANDIDATE: len(self.candidate), FAILED: len(self.failed)}


def select(results, levels: TrustLevels | None = None, atoms=None, relative: float | None = None) -> Selection:
    """Classify committee results (or σ_F arrays) by :class:`TrustLevels` (default 0.05/0.15 eV/Å)."""
    levels = levels or TrustLevels()
    dev = np.array([max_force_deviation(r, atoms, relative) for r in results], float)
    status = [levels.classify(d) for d in dev]
    sel = Selection(dev, status)
    for k, st in enumerate(status):
        getattr(sel, st).append(k)
    return sel


def committee_deviation(committee, systems, levels: TrustLevels | None = None, atoms=None) -> Selection:
    """Run ``committee`` on each system and :func:`select` by its model deviation."""
    return select([committee.compute(s) for s in systems], levels, atoms)


# -- descriptor-space distance -----------------------------------------------------
def atomic_descriptors(model, system: AtomicSystem) -> np.ndarray:
    """Standardised descriptors (D_i - μ)/σ of every atom, shape (N, n_features), as the networks see them."""
    import torch

    from .potential import graph, pair_vectors

    known = set(model.species)
    for a, z in enumerate(system.numbers):
        if int(z) not in known:
            raise UnknownElementError(f"atom {a} is {symbol(z)}, an element the model does not know "
                                      f"(it knows {', '.join(symbol(s) for s in model.species)})")
    dtype = model.feat_mean.dtype
    i, j, s = graph(system, model.cutoff)
    with torch.no_grad():
        pos = torch.tensor(system.positions, dtype=dtype)
        cell = torch.tensor(system.cell, dtype=dtype)
        species = model.species_index(torch.from_numpy(system.numbers))
        d = model.descriptors(species, i, j, pair_vectors(pos, cell, i, j, s))
        return ((d - model.feat_mean) / model.feat_std).numpy().astype(float)


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit–Wolf shrunk covariance of rows ``x`` (n, d): ((1-α) S + α tr(S)/d I, α)."""
    n, d = x.shape
    xc = x - x.mean(0)
    s = xc.T @ xc / n
    mu = np.trace(s) / d
    x2 = xc**2
    beta_ = np.sum(x2.T @ x2) / n
    delta_ = np.sum(s**2)
    beta = (beta_ / n - delta_ / n) / d
    delta = (delta_ - 2 * mu * np.trace(s) + d * mu**2) / d
    alpha = 0.0 if delta <= 0 else float(min(beta, delta) / delta)
    return (1 - alpha) * s + alpha * mu * np.eye(d), alpha


class DescriptorDistance:
    """Per-species Mahalanobis distance in the model's descriptor space (see module docstring).

    model : the :class:`~hybrid.ml.model.AtomicMLP` whose descriptors are used
    quantile : training-distance quantile q_s that scales the relative distance r_i
    shrinkage : "ledoit-wolf" (default) or a fixed α in [0, 1]
    """

    def __init__(self, model, quantile: float = 0.99, shrinkage="ledoit-wolf"):
        if not 0 < quantile <= 1:
            raise InputError(f"quantile must be in (0, 1], got {quantile}")
        if shrinkage != "ledoit-wolf" and not (isinstance(shrinkage, (int, float)) and 0 <= shrinkage <= 1):
            raise InputError(f"shrinkage must be 'ledoit-wolf' or a number in [0, 1], got {shrinkage!r}")
        self.model = model
        self.quantile = float(quantile)
        self.shrinkage = shrinkage
        self.mean: dict = {}
        self.std: dict = {}
        self.precision: dict = {}
        self.scale: dict = {}
        self.alpha: dict = {}
        self.n_atoms: dict = {}

    def fit(self, data) -> "DescriptorDistance":
        """Fit m_s, Σ_s⁻¹ and q_s on the atoms of ``data`` (Frames or AtomicSystems)."""
        feats: dict = {}
        data = list(data)
        if not data:
            raise InputError("DescriptorDistance.fit: no training structures")
        for k, item in enumerate(data):
            system = getattr(item, "system", item)
            if not isinstance(system, AtomicSystem):
                raise InputError(f"DescriptorDistance.fit: item {k} is a {type(item).__name__}, "
                                 "not a Frame or AtomicSystem")
            x = atomic_descriptors(self.model, system)
            for z in np.unique(system.numbers):
                feats.setdefault(int(z), []).append(x[system.numbers == z])
        for z in self.model.species:
            if z not in feats:
                raise InputError(f"DescriptorDistance.fit: the training data have no {symbol(z)} atoms")
            x = np.concatenate(feats[z])
            if len(x) < 2:
                raise InputError(f"DescriptorDistance.fit: one {symbol(z)} atom is too few for a covariance")
            m, sd = x.mean(0), x.std(0)
            sd = np.maximum(sd, 1e-6 * max(sd.max(), 1e-12))   # features constant in training: tiny, not zero
            self.mean[z], self.std[z] = m, sd
            u = (x - m) / sd
            if self.shrinkage == "ledoit-wolf":
                cov, alpha = ledoit_wolf(u)
            else:
                s = u.T @ u / len(u)
                alpha = float(self.shrinkage)
                cov = (1 - alpha) * s + alpha * np.trace(s) / s.shape[0] * np.eye(s.shape[0])
            w, v = np.linalg.eigh(cov)
            w = np.maximum(w, 1e-12 * max(w.max(), 1e-300))
            self.precision[z] = (v / w) @ v.T
            self.alpha[z], self.n_atoms[z] = alpha, len(x)
            d = self._mahalanobis(x, z)
            self.scale[z] = float(np.quantile(d, self.quantile)) or 1.0
        return self

    def _mahalanobis(self, x: np.ndarray, z: int) -> np.ndarray:
        u = (x - self.mean[z]) / self.std[z]
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", u, self.precision[z], u), 0.0))

    def distances(self, system: AtomicSystem) -> np.ndarray:
        """d_i (N,), the Mahalanobis distance of each atom from its species' training atoms."""
        if not self.mean:
            raise InputError("DescriptorDistance: call fit() first")
        x = atomic_descriptors(self.model, system)
        out = np.empty(len(system))
        for z in np.unique(system.numbers):
            mask = system.numbers == z
            out[mask] = self._mahalanobis(x[mask], int(z))
        return out

    def relative(self, system: AtomicSystem) -> np.ndarray:
        """r_i = d_i / q_s (N,): above 1, farther out than the ``quantile`` of training atoms."""
        d = self.distances(system)
        scale = np.array([self.scale[int(z)] for z in system.numbers])
        return d / scale

    def score(self, system: AtomicSystem) -> float:
        """max_i r_i: the structure's out-of-distribution score."""
        return float(self.relative(system).max())

    def is_outlier(self, system: AtomicSystem, threshold: float = 1.0) -> bool:
        return self.score(system) > threshold

    def save(self, path) -> None:
        """The fitted statistics as .npz (the model itself is saved with ``save_model``)."""
        arrays = {}
        for z in self.mean:
            arrays[f"mean_{z}"], arrays[f"precision_{z}"] = self.mean[z], self.precision[z]
            arrays[f"std_{z}"] = self.std[z]
            arrays[f"scale_{z}"], arrays[f"alpha_{z}"] = self.scale[z], self.alpha[z]
            arrays[f"n_atoms_{z}"] = self.n_atoms[z]
        np.savez(os.fspath(path), species=np.array(sorted(self.mean)), quantile=self.quantile,
                 n_features=self.model.n_features, **arrays)

    @classmethod
    def load(cls, model, path) -> "DescriptorDistance":
        path = os.fspath(path)
        try:
            data = np.load(path)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a descriptor-distance file ({exc})") from None
        if int(data["n_features"]) != model.n_features:
            raise InputError(f"{path}: fitted on {int(data['n_features'])} descriptor features, the model has "
                             f"{model.n_features}")
        out = cls(model, float(data["quantile"]))
        for z in data["species"].tolist():
            out.mean[z], out.precision[z] = data[f"mean_{z}"], data[f"precision_{z}"]
            out.std[z] = data[f"std_{z}"]
            out.scale[z], out.alpha[z] = float(data[f"scale_{z}"]), float(data[f"alpha_{z}"])
            out.n_atoms[z] = int(data[f"n_atoms_{z}"])
        return out


# -- shortest contacts ----------------------------------------------------------------------
class ContactDomain:
    """The shortest contact of each element pair in the training data: a geometry closer than that is outside
    the trained domain, whatever the committee says.

    fit: d_min(Z_a, Z_b) = min over the training structures of |R_i - R_j| (Å) for i of element Z_a and j
    of Z_b within ``cutoff`` (minimum image). For a structure, atom i's contact ratio is

        c_i = max_j d_min(Z_i, Z_j) / d_ij        (j within ``cutoff`` of i)

    (> 1: i is closer to some atom than any training pair of those elements was; a pair of elements never
    within ``cutoff`` in training gives c_i = inf). The atoms outside the domain with tolerance τ are those
    with c_i > 1 / (1 - τ), i.e. d_ij < (1 - τ) d_min.

    Measured (benchmarks/bench_calibration.py, water trimer): a descriptor-space Mahalanobis distance
    (:class:`DescriptorDistance`) of an O-H collapsed to 0.5 Å reads 7 while held-out thermal frames read up
    to 12 (the radial features saturate at short range); the O-H contact ratio reads ~1.8.
    """

    def __init__(self, cutoff: float = 4.0):
        if not (np.isfinite(cutoff) and cutoff > 0):
            raise InputError(f"ContactDomain: cutoff must be a positive distance in Å, got {cutoff!r}")
        self.cutoff = float(cutoff)
        self.d_min: dict = {}            # {(Z_a, Z_b) with Z_a <= Z_b: Å}

    @staticmethod
    def _pairs(system: AtomicSystem, cutoff: float):
        from ..neighbors import neighbor_pairs
        i, j, s = neighbor_pairs(system.positions, system.cell, system.pbc, cutoff)
        d = np.linalg.norm(system.positions[j] - system.positions[i] + s @ system.cell, axis=1)
        return i, j, d

    def fit(self, data) -> "ContactDomain":
        """Record d_min of every element pair within ``cutoff`` over ``data`` (Frames or AtomicSystems)."""
        data = list(data)
        if not data:
            raise InputError("ContactDomain.fit: no training structures")
        self.d_min = {}
        for k, item in enumerate(data):
            system = getattr(item, "system", item)
            if not isinstance(system, AtomicSystem):
                raise InputError(f"ContactDomain.fit: item {k} is a {type(item).__name__}, not a Frame or "
                                 "AtomicSystem")
            i, j, d = self._pairs(system, self.cutoff)
            za, zb = system.numbers[i], system.numbers[j]
            keys = np.minimum(za, zb) * 1000 + np.maximum(za, zb)
            for key in np.unique(keys):
                pair = (int(key) // 1000, int(key) % 1000)
                self.d_min[pair] = min(self.d_min.get(pair, np.inf), float(d[keys == key].min()))
        self._table = np.full((119, 119), np.inf)            # d_min by atomic numbers, symmetric
        for (a, b), dist in self.d_min.items():
            self._table[a, b] = self._table[b, a] = dist
        return self

    def ratios(self, system: AtomicSystem) -> np.ndarray:
        """c_i (N,), dimensionless (class docstring)."""
        if not self.d_min:
            raise InputError("ContactDomain: call fit() first")
        out = np.zeros(len(system))
        i, j, d = self._pairs(system, self.cutoff)
        ref = self._table[system.numbers[i], system.numbers[j]]
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.where(np.isinf(ref), np.inf, ref / np.maximum(d, 1e-12))
        np.maximum.at(out, i, c)
        np.maximum.at(out, j, c)
        return out

    def outside(self, system: AtomicSystem, tolerance: float = 0.1) -> np.ndarray:
        """Indices of the atoms closer to another than (1 - ``tolerance``) of the training minimum."""
        if not 0 <= tolerance < 1:
            raise InputError(f"ContactDomain.outside: tolerance must be in [0, 1), got {tolerance!r}")
        return np.flatnonzero(self.ratios(system) > 1.0 / (1.0 - tolerance))


# -- calibration ----------------------------------------------------------------------------
@dataclass
class CalibrationReport:
    """Predicted σ_F against observed force errors on held-out atoms (see module docstring).

    bins : per σ bin: sigma_min, sigma_max, count, rmv, rmse (eV/Å)
    png : path of the figure, if one was written
    """

    n_frames: int
    n_atoms: int
    bins: list
    spearman_atom: float
    spearman_frame: float | None
    ence: float
    miscalibration_area: float
    calibration_factor: float
    nll: float
    png: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def calibration(sigma, errors, frame=None, n_bins: int = 10, path=None, title: str | None = None
                ) -> CalibrationReport:
    """Calibration of predicted σ (N,) eV/Å against error vectors e (N, 3) eV/Å.

    frame : (N,) index of each atom's frame, for the per-frame Spearman of
        maxima (needs 3 or more frames)
    path : write the figure there (PNG)
    """
    from scipy import stats

    sigma = np.asarray(sigma, float).reshape(-1)
    e = np.asarray(errors, float)
    if e.shape != (len(sigma), 3):
        raise InputError(f"calibration: errors must have shape ({len(sigma)}, 3), got {e.shape}")
    if len(sigma) < 2 * n_bins or n_bins < 1:
        raise InputError(f"calibration: {len(sigma)} atoms are too few for {n_bins} bins (need 2 per bin)")
    if not np.all(np.isfinite(sigma)) or np.any(sigma < 0):
        raise InputError("calibration: σ must be finite and non-negative")
    err2 = (e**2).sum(1)
    s = np.maximum(sigma, 1e-12)
    order = np.argsort(sigma, kind="stable")
    bins = []
    for chunk in np.array_split(order, n_bins):
        bins.append({"sigma_min": float(sigma[chunk].min()), "sigma_max": float(sigma[chunk].max()),
                     "count": int(len(chunk)), "rmv": float(np.sqrt(np.mean(sigma[chunk] ** 2))),
                     "rmse": float(np.sqrt(np.mean(err2[chunk])))})
    ence = float(np.mean([abs(b["rmv"] - b["rmse"]) / max(b["rmv"], 1e-12) for b in bins]))
    z2 = 3.0 * err2 / s**2
    p = np.linspace(0.0, 1.0, 101)
    observed = np.array([np.mean(z2 <= stats.chi2.ppf(q, 3)) if 0 < q < 1 else q for q in p])
    gap = np.abs(observed - p)
    area = float(np.sum(0.5 * (gap[1:] + gap[:-1]) * np.diff(p)))   # trapezoid rule
    rho_atom = float(stats.spearmanr(sigma, np.sqrt(err2)).statistic)
    rho_frame = None
    n_frames = 1
    if frame is not None:
        frame = np.asarray(frame, int).reshape(-1)
        if frame.shape != sigma.shape:
            raise InputError(f"calibration: frame has shape {frame.shape}, expected {sigma.shape}")
        ids = np.unique(frame)
        n_frames = len(ids)
        if n_frames >= 3:
            smax = np.array([sigma[frame == k].max() for k in ids])
            emax = np.array([np.sqrt(err2[frame == k].max()) for k in ids])
            rho_frame = float(stats.spearmanr(smax, emax).statistic)
    nll = float(np.mean(0.5 * z2 + 1.5 * np.log(2 * np.pi * s**2 / 3.0)))
    report = CalibrationReport(n_frames, len(sigma), bins, rho_atom, rho_frame, ence, area,
                               float(np.sqrt(np.mean(err2 / s**2))), nll)
    if path is not None:
        report.png = _calibration_png(report, p, observed, os.fspath(path), title)
    return report


def committee_sigma_errors(committee, frames, atoms=None, who: str = "committee_sigma_errors"
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(σ_F (N,), errors F̄ - F_ref (N, 3), frame index (N,)) of ``committee`` on labelled ``frames``.

    atoms : per-frame selection (indices or mask) applied to every frame, default all atoms
    """
    frames = list(frames)
    if not frames:
        raise InputError(f"{who}: no frames")
    sig, err, owner = [], [], []
    for k, fr in enumerate(frames):
        r = committee.compute(fr.system)
        if r.force_std is None:
            raise InputError(f"{who}: {getattr(committee, 'name', committee)!r} returned no "
                             "force_std; a committee is needed")
        ref = np.asarray(fr.forces, float)
        if ref.shape != r.forces.shape:
            raise InputError(f"{who} frame {k}: forces have shape {ref.shape}, expected "
                             f"{r.forces.shape}")
        sel = np.arange(len(fr.system)) if atoms is None else np.arange(len(fr.system))[np.asarray(atoms)]
        sig.append(np.asarray(r.force_std, float)[sel])
        err.append((r.forces - ref)[sel])
        owner.append(np.full(len(sel), k))
    return np.concatenate(sig), np.concatenate(err), np.concatenate(owner)


def calibration_report(committee, frames, n_bins: int = 10, path=None, atoms=None,
                       title: str | None = None) -> CalibrationReport:
    """Run ``committee`` on held-out ``frames`` and report how well σ_F predicts the force error.

    atoms : per-frame atom selection (indices or mask) applied to every frame, default all
    """
    sigma, errors, owner = committee_sigma_errors(committee, frames, atoms, who="calibration_report")
    return calibration(sigma, errors, owner, n_bins, path, title)


def _calibration_png(rep: CalibrationReport, p, observed, path: str, title) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.4))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    rmv = np.array([b["rmv"] for b in rep.bins])
    rmse = np.array([b["rmse"] for b in rep.bins])
    ax1.loglog(rmv, rmse, "o-", label=f"binned ({len(rep.bins)} bins, equal counts)")
    lo = max(min(rmv.min(), rmse.min()) * 0.8, 1e-6)
    hi = max(rmv.max(), rmse.max()) * 1.25
    ax1.loglog([lo, hi], [lo, hi], "k", lw=0.8, label="calibrated")
    ax1.set_xlabel("RMV: predicted σ_F (eV/Å)")
    ax1.set_ylabel("RMSE: observed |F - F_ref| (eV/Å)")
    ax1.set_title(f"ENCE {rep.ence:.2f}, Spearman ρ {rep.spearman_atom:.2f}", fontsize=9)
    ax1.legend(fontsize=8)
    ax2.plot(p, observed, label="observed")
    ax2.plot([0, 1], [0, 1], "k", lw=0.8, label="calibrated")
    ax2.fill_between(p, p, observed, alpha=0.3, label=f"miscalibration area {rep.miscalibration_area:.3f}")
    ax2.set_xlabel("expected fraction (χ²₃ quantile)")
    ax2.set_ylabel("observed fraction of atoms")
    ax2.set_title(f"calibration factor {rep.calibration_factor:.2f}", fontsize=9)
    ax2.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
