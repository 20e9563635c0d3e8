"""Truncated many-body expansion of the product partitions about a fixed core (scheme "expansion").

The product sum over the members M (every unit with w_u > 0 outside a core C
whose weight is 1 by construction, e.g. the region centre's own molecule) is

    Σ_{S⊆M} Π_{u∈S} w_u Π_{u∈M∖S} (1 - w_u) ΔE(C ∪ S) = Σ_{Q⊆M} (Π_{u∈Q} w_u) ε(Q),
    ε(Q) = Σ_{S⊆Q} (-1)^{|Q|-|S|} ΔE(C ∪ S)          (the |Q|-body correction about C).

Keeping the terms |Q| <= k (the order) and collecting them by region gives
partitions C ∪ S, |S| <= k, with coefficients

    c_S = Σ_{Q⊇S, |Q|<=k} (-1)^{|Q|-|S|} Π_{u∈Q} w_u = Π_{u∈S} w_u · A_{k-|S|}(M∖S),
    A_j(R) = Σ_{i=0}^{j} (-1)^i e_i(w_R)               (e_i: elementary symmetric polynomials),
    ∂c_S/∂w_u = Π_{v∈S∖u} w_v · A_{k-|S|}(M∖S)         (u ∈ S),
    ∂c_S/∂w_u = -Π_{v∈S} w_v · A_{k-|S|-1}(M∖S∖u)      (u ∉ S; A_{-1} = 0),

since ∂e_i(R)/∂w_u = e_{i-1}(R∖u). Order 1: c_∅ = 1 - Σ w, c_u = w_u (n+1 calls);
order 2: c_∅ = 1 - e₁ + e₂, c_u = w_u (1 - e₁ + w_u), c_uv = w_u w_v (1 + n + n(n-1)/2 calls).
With k >= |M| this is the product sum exactly. A member enters or leaves at
w = 0, where every term that holds it vanishes to the order of the switch, and
nothing is ever reclassified, so the energy is as smooth as the switch at any
order. The truncation acts on the whole region's many-body correction about C
(members of weight 1 included), not only on the buffer.
"""
from __future__ import annotations

import itertools
from math import comb

import numpy as np


def alternating(w, j: int) -> float:
    """A_j = Σ_{i=0}^{j} (-1)^i e_i(w) for weights ``w`` (n,); 0 for j < 0."""
    if j < 0:
        return 0.0
    e = np.zeros(j + 1)
    e[0] = 1.0
    for x in w:                                  # e_i ← e_i + x e_{i-1}, highest i first
        e[1:] = e[1:] + x * e[:-1]
    return float(sum((-1) ** i * e[i] for i in range(j + 1)))


def n_calls(m: int, order: int) -> int:
    """Region calls of the expansion over ``m`` members: Σ_{j<=min(order, m)} C(m, j) (the core's included)."""
    return sum(comb(m, j) for j in range(min(order, m) + 1))


def coefficients(w: dict, members, order: int):
    """[(S, c_S, {u: ∂c_S/∂w_u})] for every S ⊆ ``members`` with |S| <= ``order``.

    w : {unit: weight in [0, 1]}; members : unit ids (the order of the output follows them).
    """
    members = list(members)
    out = []
    for size in range(min(order, len(members)) + 1):
        for S in itertools.combinations(members, size):
            rest = [u for u in members if u not in S]
            ws = [w[u] for u in S]
            a = alternating([w[u] for u in rest], order - size)
            c = float(np.prod(ws)) * a
            dc = {}
            for i, u in enumerate(S):
                dc[u] = float(np.prod(ws[:i] + ws[i + 1:])) * a
            for u in rest:
                dc[u] = -float(np.prod(ws)) * alternating([w[v] for v in rest if v != u], order - size - 1)
            out.append((S, c, dc))
    return out
