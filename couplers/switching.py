"""Switching functions s(t): 1 at t <= 0 (high level), 0 at t >= 1 (low level).

    cubic   s = 1 - (3t² - 2t³)                        C¹ (s'' jumps at the ends)
    quintic s = 1 - (10t³ - 15t⁴ + 6t⁵)                C² (default)
    septic  s = 1 - (35t⁴ - 84t⁵ + 70t⁶ - 20t⁷)        C³
    step    s = 1 for t < 1/2, else 0                   abrupt (no buffer; for comparison)

Each switch returns (s, ds/dt, d²s/dt²) on arrays. A weight over a buffer of
width Δ beyond an inner radius r₀ is w(r) = s((r - r₀)/Δ); see
:func:`radial_weight`.
"""
from __future__ import annotations

import numpy as np

# s(t) = 1 - p(t), p a polynomial with p(0)=0, p(1)=1 and vanishing derivatives to order k-1 at both ends
_POLYS = {
    "cubic": (np.array([0, 0, 3, -2.0]), 1),
    "quintic": (np.array([0, 0, 0, 10, -15, 6.0]), 2),
    "septic": (np.array([0, 0, 0, 0, 35, -84, 70, -20.0]), 3),
}


class Switch:
    """A polynomial switch by name: "cubic", "quintic", "septic", or "step"."""

    def __init__(self, kind: str = "quintic"):
        if kind not in _POLYS and kind != "step":
            raise ValueError(f"unknown switch {kind!r}; choose from {sorted(_POLYS) + ['step']}")
        self.kind = kind
        self.continuity = _POLYS[kind][1] if kind != "step" else -1
        if kind != "step":
            c = _POLYS[kind][0]
            self._p = np.polynomial.Polynomial(c)
            self._dp, self._d2p = self._p.deriv(1), self._p.deriv(2)

    def __call__(self, t):
        """(s, s', s'') at t (any shape), clamped to the constant ends outside [0, 1]."""
        t = np.asarray(t, float)
        if self.kind == "step":
            return (t < 0.5).astype(float), np.zeros_like(t), np.zeros_like(t)
        inside = (t > 0) & (t < 1)
        tc = np.clip(t, 0.0, 1.0)
        s = 1.0 - self._p(tc)
        return s, np.where(inside, -self._dp(tc), 0.0), np.where(inside, -self._d2p(tc), 0.0)

    def __repr__(self):
        return f"Switch({self.kind!r})"


def radial_weight(switch: Switch, r, r_inner: float, width: float):
    """w(r) = s((r - r_inner)/width) and dw/dr; width 0 gives the abrupt step at r_inner."""
    r = np.asarray(r, float)
    if width <= 0:
        return (r < r_inner).astype(float), np.zeros_like(r)
    s, ds, _ = switch((r - r_inner) / width)
    return s, ds / width
