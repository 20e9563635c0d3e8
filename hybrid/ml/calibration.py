"""Calibrated committee uncertainty: σ_cal = a σ^b, fitted on held-out labels.

A committee's force disagreement σ_F,i (eV/Å, :mod:`hybrid.ml.committee`)
ranks atoms by their error but underestimates it (members trained on the
same data agree more than they are right; measured 2-2.8x on water). A
calibration maps it to a predicted error

    σ_cal,i = a σ_F,i^b            (eV/Å; a in (eV/Å)^(1-b), b > 0)

fitted on held-out atoms by maximum likelihood under the model that each
Cartesian component of the error e_i = F̄_i - F_ref,i is N(0, σ_cal,i²/3)
(so that E‖e_i‖² = σ_cal,i², the quantity σ_F itself measures between
members). Per atom the negative log-likelihood is

    NLL_i = 3‖e_i‖² / (2 σ_cal,i²) + (3/2) ln(2π σ_cal,i² / 3),

and for a fixed b its minimum over a is closed-form,
a² = ⟨‖e_i‖² / σ_F,i^(2b)⟩; b is found by a bounded 1-D search (b = 1 is
a single scale factor, i-PI's committee ``alpha``; b > 1 lets the large
σ of configurations off the training data grow faster than the small ones,
which is what a committee needs when its spread saturates). σ_F is floored
at ``SIGMA_FLOOR`` before the power so that an atom on which the members
agree exactly still has a finite predicted error.

The check of a calibration is the ratio of the root mean predicted variance
to the observed error on a set of atoms,

    ratio = sqrt(⟨σ_cal,i²⟩) / sqrt(⟨‖e_i‖²⟩)        (1 when calibrated on average),

measured on held-out atoms like the training data and on a shifted set
(:func:`calibration_ratio`); :func:`hybrid.ml.uncertainty.calibration` draws
the reliability diagram (bins of σ_cal against the binned RMSE).

Trust levels set from the calibrated error instead of fixed numbers
(:meth:`Calibration.trust_levels`): the levels are multiples of the model's
own held-out RMSE in σ_cal, converted back to raw σ_F (σ_cal is monotonic in
σ_F), so that the active learner's trigger and its promotion weights (which
work on raw σ_F) need no change.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import InputError
from .uncertainty import TrustLevels, committee_sigma_errors

#: eV/Å, the floor of σ_F before the power law (members agreeing to 1e-6 eV/Å are "exact" to this model)
SIGMA_FLOOR = 1e-6
#: the bounds of the exponent b searched by :meth:`Calibration.fit`
POWER_BOUNDS = (0.25, 3.0)


def _check(sigma, errors, who: str) -> tuple[np.ndarray, np.ndarray]:
    sigma = np.asarray(sigma, float).reshape(-1)
    e = np.asarray(errors, float)
    if e.ndim != 2 or e.shape != (len(sigma), 3):
        raise InputError(f"{who}: errors must have shape ({len(sigma)}, 3) (eV/Å), got {e.shape}")
    if len(sigma) < 2:
        raise InputError(f"{who}: {len(sigma)} atom(s) are too few; give the atoms of held-out frames")
    if not np.all(np.isfinite(sigma)) or np.any(sigma < 0):
        raise InputError(f"{who}: σ_F must be finite and non-negative (eV/Å)")
    if not np.all(np.isfinite(e)):
        raise InputError(f"{who}: the errors hold NaN or inf: a reference or a prediction failed")
    return sigma, (e**2).sum(1)


@dataclass(frozen=True)
class Calibration:
    """σ_cal = a σ_F^b (module docstring), with the held-out statistics it was fitted on.

    a, b : the power law; σ in eV/Å
    rmse : eV/Å, sqrt(⟨‖e_i‖²⟩) of the committee's mean force on the fitting atoms
    n_atoms : atoms it was fitted on
    """

    a: float
    b: float = 1.0
    rmse: float | None = None
    n_atoms: int = 0

    def __post_init__(self):
        if not (np.isfinite(self.a) and self.a > 0):
            raise InputError(f"Calibration: a must be a positive number, got {self.a!r}")
        if not (np.isfinite(self.b) and self.b > 0):
            raise InputError(f"Calibration: b must be a positive number, got {self.b!r}")

    def __call__(self, sigma) -> np.ndarray:
        """σ_cal (eV/Å) of raw σ_F (eV/Å), any shape."""
        return self.a * np.maximum(np.asarray(sigma, float), SIGMA_FLOOR) ** self.b

    def raw(self, sigma_cal) -> np.ndarray:
        """The raw σ_F whose calibrated value is ``sigma_cal`` (eV/Å): the inverse of __call__."""
        s = np.asarray(sigma_cal, float)
        if np.any(s <= 0):
            raise InputError("Calibration.raw: calibrated σ must be positive (eV/Å)")
        return (s / self.a) ** (1.0 / self.b)

    @classmethod
    def fit(cls, sigma, errors, power: bool = True) -> "Calibration":
        """Maximum-likelihood a (and b if ``power``) on held-out atoms: σ_F (N,) and errors (N, 3) eV/Å."""
        from scipy.optimize import minimize_scalar

        sigma, err2 = _check(sigma, errors, "Calibration.fit")
        if not err2.sum() > 0:
            raise InputError("Calibration.fit: the errors are all zero; nothing to calibrate against")
        s = np.maximum(sigma, SIGMA_FLOOR)
        log_s = np.log(s)

        def a2(b):
            return float(np.mean(err2 / s ** (2 * b)))

        def nll(b):                      # per atom, constants dropped; at the optimal a for this b
            return 1.5 + 1.5 * np.log(a2(b)) + 3.0 * b * float(np.mean(log_s))
        b = 1.0
        if power:
            b = float(minimize_scalar(nll, bounds=POWER_BOUNDS, method="bounded",
                                      options={"xatol": 1e-4}).x)
        a = np.sqrt(a2(b))
        return cls(float(a), b, float(np.sqrt(np.mean(err2))), len(sigma))

    def ratio(self, sigma, errors) -> float:
        """sqrt(⟨σ_cal²⟩) / sqrt(⟨‖e‖²⟩) on these atoms (1: calibrated on average)."""
        return calibration_ratio(self(sigma), errors)

    def trust_levels(self, lower: float = 2.0, upper: float = 6.0) -> TrustLevels:
        """Raw-σ_F trust levels at which σ_cal is ``lower`` and ``upper`` times the held-out RMSE.

        Defaults: label an atom predicted to be off by twice the model's typical error; treat one
        predicted off by six times it as failed (answered from the reference)."""
        if self.rmse is None or not self.rmse > 0:
            raise InputError("Calibration.trust_levels: this calibration has no held-out RMSE; fit it with "
                             "Calibration.fit or fit_calibration")
        if not (0 < lower < upper):
            raise InputError(f"Calibration.trust_levels: need 0 < lower < upper (multiples of the held-out "
                             f"RMSE), got {lower}, {upper}")
        lo, hi = self.raw([lower * self.rmse, upper * self.rmse])
        return TrustLevels(float(lo), float(hi))

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path) -> None:
        """Write the calibration as JSON (written to a temporary file, then renamed)."""
        path = os.fspath(path)
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"calibration": "power", **self.to_dict()}, fh, indent=1)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path) -> "Calibration":
        path = os.fspath(path)
        try:
            with open(path) as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a calibration file ({exc})") from None
        if not isinstance(data, dict) or data.get("calibration") != "power":
            raise InputError(f"{path}: not a calibration file (no \"calibration\": \"power\" key)")
        missing = {"a", "b"} - set(data)
        if missing:
            raise InputError(f"{path}: calibration file without {sorted(missing)}")
        return cls(float(data["a"]), float(data["b"]), data.get("rmse"), int(data.get("n_atoms", 0)))


def calibration_ratio(sigma_cal, errors) -> float:
    """sqrt(⟨σ_cal,i²⟩) / sqrt(⟨‖e_i‖²⟩) of predicted σ (N,) and errors (N, 3), eV/Å."""
    sigma, err2 = _check(sigma_cal, errors, "calibration_ratio")
    if not err2.sum() > 0:
        raise InputError("calibration_ratio: the errors are all zero")
    return float(np.sqrt(np.mean(sigma**2) / np.mean(err2)))


def fit_calibration(committee, frames, power: bool = True, atoms=None) -> Calibration:
    """:meth:`Calibration.fit` on the committee's σ_F and errors over held-out labelled ``frames``
    (frames the committee was not trained on, nor early-stopped on)."""
    sigma, errors, _ = committee_sigma_errors(committee, frames, atoms)
    return Calibration.fit(sigma, errors, power)
