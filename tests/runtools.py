"""Comparing two runs of ``hybrid run`` (a resumed one against an uninterrupted one).

A resumed run repeats the uninterrupted run's arithmetic, so its numbers agree far below what one
lost, repeated or shifted step would change (a 0.5 fs MD step moves the energies by ~1e-4 eV and
the positions by ~1e-3 Å). The comparison asks for the same steps, exactly, and the same numbers
within tolerances that sit between the two: 1e-9 relative (1e-9 absolute near zero) on every CSV
column, and float32 round-off on DCD coordinates (stored in Å as float32: ~1e-6 relative).
"""
import struct

import numpy as np

from hybrid.md.outputs import dcd_frames, read_csv

RTOL_CSV = 1e-9
RTOL_DCD = 2e-6


def assert_same_csv(a, b, rtol: float = RTOL_CSV) -> None:
    """Two CSV logs have the same columns, the same steps and the same numbers within ``rtol``."""
    x, y = read_csv(a), read_csv(b)
    assert list(x) == list(y), (list(x), list(y))
    assert x["step"].tolist() == y["step"].tolist(), (x["step"], y["step"])
    for col in x:
        np.testing.assert_allclose(y[col], x[col], rtol=rtol, atol=rtol, err_msg=col)


def dcd_coordinates(path) -> np.ndarray:
    """(n_frames, n_atoms, 3) float32 coordinates of a DCD file (box records skipped)."""
    head, frames = dcd_frames(path)
    box = struct.unpack("<i", head[48:52])[0]            # the header's unit-cell flag
    out = []
    for f in frames:
        f = f[56:] if box else f
        n = (len(f) // 3 - 8) // 4
        xyz = [np.frombuffer(f[k * (8 + 4 * n) + 4: k * (8 + 4 * n) + 4 + 4 * n], dtype="<f4") for k in range(3)]
        out.append(np.stack(xyz, axis=1))
    return np.array(out)


def assert_same_frames(a, b, rtol: float = RTOL_DCD) -> None:
    """Two DCD files hold the same number of frames with the same coordinates (float32 round-off)."""
    x, y = dcd_coordinates(a), dcd_coordinates(b)
    assert x.shape == y.shape, (x.shape, y.shape)
    np.testing.assert_allclose(y, x, rtol=rtol, atol=rtol * np.abs(x).max())
