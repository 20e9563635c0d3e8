"""Profiles along one axis: number and charge density with block-average
error bars, and the :class:`Profile` container every continuum solver accepts.

Units: a :class:`Profile` is in SI (positions in m; number density in m⁻³,
charge density in C/m³, potential in V, field in V/m, D in m²/s, free energy
in J).  Trajectories are in the project's internal units (Å, fs, e); the
conversion happens once, here.

Error bars: the frames are cut into ``n_blocks`` contiguous blocks, the
profile is averaged in each block, and the error is the standard error of
the block means, s/√n_blocks (s with ddof = 1).  Blocks must be longer than
the correlation time for this to be honest; :func:`blocking_curve` shows
the error against block length so the plateau can be checked.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybrid.units import E_CHARGE

ANGSTROM_M = 1e-10   # m per Å


@dataclass(frozen=True)
class Profile:
    """A quantity sampled along one axis (SI units).

    x: (n,) sample positions in m, increasing (bin centres or bin edges);
    values: (n,); errors: (n,) standard errors or None; domain: (lo, hi) in m,
    the range over which the profile may be evaluated; blocks: (n_blocks, n)
    block averages the errors came from, or None; period: box length in m if
    the profile is periodic, else None; edges: (n+1,) bin edges in m when
    the values are bin averages (x are then the bin centres), else None.

    Calling the profile, ``p(x)``, interpolates linearly between samples (and
    holds the end values out to the domain limits); a periodic profile wraps
    x into its period.  This is how D(x), φ(x) and F(x) reach the
    Nernst–Planck solver.
    """
    x: np.ndarray
    values: np.ndarray
    errors: np.ndarray | None = None
    quantity: str = ""
    unit: str = ""
    domain: tuple[float, float] | None = None
    blocks: np.ndarray | None = None
    period: float | None = None
    edges: np.ndarray | None = None

    def __post_init__(self):
        x = np.asarray(self.x, dtype=float)
        v = np.asarray(self.values, dtype=float)
        if x.ndim != 1 or x.shape != v.shape:
            raise ValueError(f"Profile {self.quantity!r}: x {x.shape} and values {v.shape} must be "
                             f"1D arrays of one length")
        if x.size > 1 and not np.all(np.diff(x) > 0):
            raise ValueError(f"Profile {self.quantity!r}: x must be strictly increasing")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "values", v)
        if self.errors is not None:
            e = np.asarray(self.errors, dtype=float)
            if e.shape != v.shape:
                raise ValueError(f"Profile {self.quantity!r}: errors {e.shape} do not match values {v.shape}")
            object.__setattr__(self, "errors", e)
        if self.edges is not None:
            edges = np.asarray(self.edges, dtype=float)
            if edges.shape != (x.size + 1,) or not np.all(np.diff(edges) > 0):
                raise ValueError(f"Profile {self.quantity!r}: edges must be {x.size + 1} increasing positions")
            object.__setattr__(self, "edges", edges)
            if self.domain is None:
                object.__setattr__(self, "domain", (float(edges[0]), float(edges[-1])))
        if self.domain is None:
            object.__setattr__(self, "domain", (float(x[0]), float(x[-1])))

    def __call__(self, x):
        """Linear interpolation at x (m); raises if x leaves the domain."""
        x = np.asarray(x, dtype=float)
        if self.period is not None:
            lo = self.domain[0]
            xp = np.concatenate([self.x - self.period, self.x, self.x + self.period])
            vp = np.tile(self.values, 3)
            return np.interp(lo + np.mod(x - lo, self.period), xp, vp)
        lo, hi = self.domain
        tol = 1e-9 * max(hi - lo, 1e-300)
        if np.any(x < lo - tol) or np.any(x > hi + tol):
            raise ValueError(f"Profile {self.quantity!r} is defined on [{lo:.6g}, {hi:.6g}] m; asked "
                             f"for x in [{x.min():.6g}, {x.max():.6g}] m")
        return np.interp(x, self.x, self.values)


def block_average(samples, n_blocks: int):
    """Mean and block standard error along axis 0.

    samples: (n_frames, ...) ; returns (mean (...), sem (...), block_means
    (n_blocks, ...)).  Trailing frames that do not fill a block are dropped.
    """
    samples = np.asarray(samples, dtype=float)
    n = samples.shape[0]
    if n_blocks < 2 or n < n_blocks:
        raise ValueError(f"block averaging needs 2 <= n_blocks <= n_frames, got n_blocks={n_blocks}, "
                         f"n_frames={n}")
    size = n // n_blocks
    blocks = samples[:size * n_blocks].reshape((n_blocks, size) + samples.shape[1:]).mean(axis=1)
    return blocks.mean(axis=0), blocks.std(axis=0, ddof=1) / np.sqrt(n_blocks), blocks


def blocking_curve(samples, min_blocks: int = 4):
    """Standard error of the mean against block length (frames).

    samples: (n_frames, ...); block lengths 1, 2, 4, ... while at least
    ``min_blocks`` blocks remain.  Returns (lengths (m,), sem (m, ...)); the
    error rises with block length until blocks decorrelate and then levels
    off: read the error bar from the plateau.
    """
    samples = np.asarray(samples, dtype=float)
    lengths, sems = [], []
    size = 1
    while samples.shape[0] // size >= min_blocks:
        sems.append(block_average(samples, samples.shape[0] // size)[1])
        lengths.append(size)
        size *= 2
    if not lengths:
        raise ValueError(f"need at least {min_blocks} frames for a blocking curve")
    return np.array(lengths), np.array(sems)


def density_profile(trajectory, axis: int = 2, bins=100, range_=None, atoms=None,
                    weights: str | np.ndarray = "number", n_blocks: int = 5,
                    area: float | None = None) -> Profile:
    """Number or charge density along ``axis`` with block-average errors.

    trajectory: a :class:`continuum.trajectories.Trajectory` (Å, e).
    bins: number of bins or (n+1,) bin edges in Å; range_: (lo, hi) in Å
    (default: the mean box height along the axis); atoms: indices or a
    boolean mask of the atoms to count (default all); weights: "number",
    "charge" (per-atom charges in e) or an (N,) array of per-atom weights;
    area: cross-section in Å² (default: from the cell, frame by frame).

    ρ(x) = ⟨Σ_i w_i δ(x − x_i)⟩ / A, binned: per frame, the weighted count in
    a bin divided by A·Δx.  Returned in SI: m⁻³ for "number", C/m³ for
    "charge", (weight unit)·m⁻³ otherwise.
    """
    sel = np.arange(trajectory.n_atoms) if atoms is None else np.asarray(atoms)
    if sel.dtype == bool:
        if sel.shape != (trajectory.n_atoms,):
            raise ValueError(f"atom mask has shape {sel.shape}, trajectory has {trajectory.n_atoms} atoms")
        sel = np.flatnonzero(sel)
    if isinstance(weights, str):
        if weights == "number":
            w, quantity, unit, factor = np.ones(sel.size), "number density", "1/m^3", 1.0
        elif weights == "charge":
            if trajectory.charges is None:
                raise ValueError("charge density needs per-atom charges: the trajectory has none "
                                 "(pass charges= to the reader)")
            w, quantity, unit, factor = trajectory.charges[sel], "charge density", "C/m^3", E_CHARGE
        else:
            raise ValueError(f"weights must be 'number', 'charge' or an array, got {weights!r}")
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != (trajectory.n_atoms,):
            raise ValueError(f"weights have shape {w.shape}, expected ({trajectory.n_atoms},)")
        w, quantity, unit, factor = w[sel], "weighted density", "1/m^3", 1.0
    if sel.size == 0:
        raise ValueError("atoms: the selection is empty: no atom to count")
    z = trajectory.coordinate(axis)[:, sel]                       # (F, n) Å
    areas = trajectory.area(axis) if area is None else np.full(trajectory.n_frames, float(area))
    if np.any(areas <= 0):
        raise ValueError("cross-section area must be positive: the trajectory has no cell, pass area=")
    if np.ndim(bins) == 0:
        if int(bins) != bins or bins < 1:
            raise ValueError(f"bins must be a number of bins >= 1 or an array of bin edges (Å), got {bins!r}")
        if range_ is None:
            range_ = (0.0, float(np.mean(trajectory.height(axis))))
        if not range_[1] > range_[0]:
            raise ValueError(f"range_ must be (lo, hi) with hi > lo (Å), got {range_!r}")
        edges = np.linspace(range_[0], range_[1], int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
            raise ValueError("bins given as edges must be at least 2 strictly increasing positions (Å)")
    if trajectory.pbc[axis] and np.all(np.abs(np.linalg.det(trajectory.cells)) > 0):
        top = float(trajectory.height(axis).max())
        tol = 1e-6 * top
        if edges[0] < -tol or edges[-1] > top + tol:
            raise ValueError(f"bins: edges [{edges[0]:g}, {edges[-1]:g}] Å reach beyond the periodic box "
                             f"[0, {top:g}] Å along axis {axis}: positions are wrapped into it, so those "
                             "bins would stay empty")
    nb = edges.size - 1
    idx = np.searchsorted(edges, z, side="right") - 1
    inside = (idx >= 0) & (idx < nb)
    frame = np.broadcast_to(np.arange(z.shape[0])[:, None], z.shape)
    counts = np.bincount(frame[inside] * nb + idx[inside],
                         weights=np.broadcast_to(w, z.shape)[inside],
                         minlength=z.shape[0] * nb).reshape(z.shape[0], nb)
    dens = counts / (areas[:, None] * np.diff(edges)[None, :]) / ANGSTROM_M**3 * factor
    mean, err, blocks = block_average(dens, n_blocks)
    edges_m = edges * ANGSTROM_M
    centers = 0.5 * (edges_m[1:] + edges_m[:-1])
    return Profile(centers, mean, err, quantity, unit, blocks=blocks, edges=edges_m)
