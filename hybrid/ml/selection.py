"""Which frames to label: committee uncertainty with diversity (query by committee, made diverse in
descriptor space).

Consecutive frames of a trajectory are near-duplicates: taking the k most uncertain frames of a run
labels one excursion k times. The batch is therefore chosen greedily, each pick maximising

    g_c = s_c · (1 - exp(-d_c² / ℓ²))

over the candidates c not yet chosen, where

* s_c = max_i σ_F,i (eV/Å): the committee's largest per-atom force disagreement on frame c (a
  calibration a σ^b, :mod:`hybrid.ml.calibration`, is monotonic and leaves the ranking unchanged);
* x_c: the frame's fingerprint, per species the mean and the maximum over its atoms of the model's
  standardised descriptors (:func:`hybrid.ml.uncertainty.atomic_descriptors`), concatenated
  (dimensionless, length 2 × n_species × n_features);
* d_c = min ‖x_c - x_p‖ over the frames p already chosen and the ``known`` frames (labelled before),
  infinite when there are none;
* ℓ = ``diversity`` × the median pairwise fingerprint distance of the candidates (default 0.5);
  ``diversity=0`` picks by s_c alone.

A candidate next to a chosen frame (d_c ≪ ℓ) has g_c ≈ 0, one far from every chosen frame keeps its
score. Candidates below ``min_score`` (the lower trust level: accurate, no label needed) are never
chosen, so a batch can hold fewer than k frames.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..system import AtomicSystem


def fingerprints(model, systems) -> np.ndarray:
    """(n_frames, 2 × n_species × n_features) per-species mean and max of standardised descriptors."""
    from .uncertainty import atomic_descriptors
    out = []
    for k, item in enumerate(systems):
        system = getattr(item, "system", item)
        if not isinstance(system, AtomicSystem):
            raise InputError(f"fingerprints: item {k} is a {type(item).__name__}, not a Frame or AtomicSystem")
        x = atomic_descriptors(model, system)
        parts = []
        for z in model.species:
            sel = x[system.numbers == z]
            if len(sel):
                parts += [sel.mean(0), sel.max(0)]
            else:
                parts += [np.zeros(x.shape[1]), np.zeros(x.shape[1])]
        out.append(np.concatenate(parts))
    return np.array(out)


def diverse_batch(scores, features, k: int, known=None, diversity: float = 0.5,
                  min_score: float = 0.0) -> list:
    """Indices of up to ``k`` candidates chosen greedily by g_c (module docstring).

    scores : (C,) s_c (eV/Å); features : (C, D) fingerprints; known : (K, D) fingerprints of frames labelled
    before (chosen frames are kept away from them too)
    """
    s = np.asarray(scores, float).reshape(-1)
    x = np.asarray(features, float)
    if x.ndim != 2 or len(x) != len(s):
        raise InputError(f"diverse_batch: features must have shape ({len(s)}, D), got {x.shape}")
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise InputError(f"diverse_batch: k must be an integer >= 1, got {k!r}")
    if not (np.isfinite(diversity) and diversity >= 0):
        raise InputError(f"diverse_batch: diversity must be >= 0, got {diversity!r}")
    eligible = np.isfinite(s) & (s >= min_score)
    if not eligible.any():
        return []
    from scipy.spatial.distance import cdist, pdist
    cand = np.flatnonzero(eligible)
    length = 0.0
    if diversity > 0 and len(cand) > 1:
        length = diversity * float(np.median(pdist(x[cand])))
    d = np.full(len(s), np.inf)
    if known is not None and len(known):
        d = cdist(x, np.asarray(known, float)).min(1)
    chosen = []
    for _ in range(min(int(k), len(cand))):
        if length > 0:
            gain = s * (1.0 - np.exp(-(d / length) ** 2))
        else:
            gain = s.copy()
        gain[~eligible] = -np.inf
        gain[chosen] = -np.inf
        best = int(np.argmax(gain))
        if not np.isfinite(gain[best]):
            break
        chosen.append(best)
        d = np.minimum(d, np.linalg.norm(x - x[best], axis=1))
    return chosen
