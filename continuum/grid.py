"""Cell-centred finite-volume grids in one dimension (SI: positions in m).

A grid of n cells is defined by its n+1 face positions.  The transport
solvers use the *extended node* array

    nodes = [faces[0], centers[0], ..., centers[n-1], faces[n]]     (n+2,)

so that every face f (0..n) joins node f and node f+1, a distance
``node_spacing[f]`` apart (half a cell at the two boundary faces).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """A 1D cell-centred grid.

    faces: (n+1,) strictly increasing face positions in m.
    """
    faces: np.ndarray

    def __post_init__(self):
        faces = np.asarray(self.faces, dtype=float)
        if faces.ndim != 1 or faces.size < 2:
            raise ValueError(f"Grid faces must be a 1D array of at least 2 positions, got shape {faces.shape}")
        if not np.all(np.diff(faces) > 0):
            raise ValueError("Grid faces must be strictly increasing")
        object.__setattr__(self, "faces", faces)

    @classmethod
    def uniform(cls, length: float, n_cells: int, start: float = 0.0) -> "Grid":
        """n_cells equal cells on [start, start + length] (m)."""
        if length <= 0 or n_cells < 1:
            raise ValueError(f"uniform grid needs length > 0 and n_cells >= 1, got {length}, {n_cells}")
        return cls(start + np.linspace(0.0, length, n_cells + 1))

    @classmethod
    def graded(cls, length: float, n_cells: int, first_width: float, start: float = 0.0) -> "Grid":
        """Geometrically graded cells, the finest (``first_width``, m) at ``start``.

        Widths h_i = first_width * q**i with q chosen so that Σ h_i = length;
        useful to resolve a double layer next to a wall at x = start.
        """
        if not 0 < first_width * n_cells <= length:
            raise ValueError(f"graded grid needs 0 < first_width*n_cells <= length, got "
                             f"first_width={first_width}, n_cells={n_cells}, length={length}")
        from scipy.optimize import brentq

        if np.isclose(first_width * n_cells, length, rtol=1e-12, atol=0.0):
            q = 1.0
        else:
            ratio = length / first_width
            growth = lambda q: np.log(np.expm1(n_cells * np.log(q)) / (q - 1)) - np.log(ratio)
            q_max = min(2.0, np.exp(600.0 / n_cells))
            if growth(q_max) < 0:
                raise ValueError(f"graded grid: length/first_width = {ratio:.3g} needs cells growing "
                                 f"faster than a factor {q_max:.3g}; use more cells")
            q = brentq(growth, 1 + 1e-9, q_max, xtol=1e-14)
        widths = first_width * q ** np.arange(n_cells)
        faces = start + np.concatenate([[0.0], np.cumsum(widths)])
        faces[-1] = start + length
        return cls(faces)

    @property
    def n_cells(self) -> int:
        return self.faces.size - 1

    @property
    def length(self) -> float:
        return float(self.faces[-1] - self.faces[0])

    @property
    def centers(self) -> np.ndarray:
        """(n,) cell centres in m."""
        return 0.5 * (self.faces[1:] + self.faces[:-1])

    @property
    def widths(self) -> np.ndarray:
        """(n,) cell widths in m."""
        return np.diff(self.faces)

    @property
    def nodes(self) -> np.ndarray:
        """(n+2,) extended nodes: left face, cell centres, right face (m)."""
        return np.concatenate([self.faces[:1], self.centers, self.faces[-1:]])

    @property
    def node_spacing(self) -> np.ndarray:
        """(n+1,) distance between the two nodes joined by each face (m)."""
        return np.diff(self.nodes)


def sample(value, points: np.ndarray, name: str) -> np.ndarray:
    """Evaluate a field given as a number, an array already on ``points``,
    or a callable f(x) (for example a :class:`continuum.profiles.Profile`)
    at ``points`` (m).  Returns an array shaped like ``points``."""
    points = np.asarray(points, dtype=float)
    if callable(value):
        out = np.asarray(value(points), dtype=float)
    else:
        out = np.asarray(value, dtype=float)
        if out.ndim == 0:
            out = np.full(points.shape, float(out))
    if out.shape != points.shape:
        raise ValueError(f"{name}: expected a number, a callable or an array of shape "
                         f"{points.shape}, got shape {out.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name}: non-finite values on the grid")
    return out
