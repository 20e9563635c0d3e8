"""The Δ-ML layer: a cheap baseline plus a learned correction toward a target level.

    E_Δ(R) = E_baseline(R) + E_θ(R),   E_θ trained on E_target - E_baseline
                                        (and F_target - F_baseline) at the same geometries.

The baseline is any potential (a cheaper PySCF method, GFN2-xTB, an MLIP);
the correction is usually the built-in MLIP, trained on the frames that
:func:`hybrid.ml.training.delta_frames` makes. A Δ-ML layer is a potential
and plugs into the blends of :mod:`couplers.blend` like any other level.
"""
from __future__ import annotations

from .potential import LinearCombination, Potential


class DeltaMLPotential(LinearCombination):
    """E = E_baseline + E_correction; contributions keep both parts."""

    stateful = False

    def __init__(self, baseline: Potential, correction: Potential, name: str | None = None):
        super().__init__([(1.0, baseline), (1.0, correction)], name=name or f"Δ-ML[{baseline.name}]")
        self.baseline, self.correction = baseline, correction
        self.stateful = bool(getattr(baseline, "stateful", False) or getattr(correction, "stateful", False))

