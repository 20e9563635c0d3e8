"""The Δ-ML layer: a cheap baseline plus a learned correction toward a target level.

    E_Δ(R) = E_baseline(R) + E_θ(R),   E_θ trained on E_target - E_baseline
                                        (and F_target - F_baseline) at the same geometries.

The baseline is any potential (a cheaper PySCF method, GFN2-xTB, an MLIP);
the correction is usually the built-in MLIP. A Δ-ML layer is a potential and
plugs into the blends of :mod:`couplers.blend` like any other level.
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


def delta_frames(frames, baseline: Potential):
    """Δ labels at the same geometries: (E_target - E_baseline, F_target - F_baseline).

    ``frames`` are :class:`hybrid.ml.training.Frame` labelled at the target
    level; the baseline is evaluated here on each frame's system.
    """
    from .ml.training import Frame
    out = []
    for fr in frames:
        r = baseline.compute(fr.system)
        out.append(Frame(fr.system, fr.energy - r.energy, fr.forces - r.forces))
    return out
