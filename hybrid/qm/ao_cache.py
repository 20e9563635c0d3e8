"""AO values on the DFT grid, computed once per geometry instead of once per SCF cycle.

PySCF's ``NumInt.block_loop`` evaluates every atomic orbital (and its
derivatives) on every grid block at every SCF cycle. Within one geometry the
AOs and the grid do not change, so for the SCF grid this subclass keeps the
blocks of the first pass and replays them. The cache is dropped when the
grid is rebuilt (new geometry) and is skipped when it would exceed
``max_cache_mb``. The arrays of the previous geometry are refilled in
place (``np.copyto``) when their shapes still fit: a fresh allocation of a
few hundred MB costs more in page faults than evaluating the AOs once.
"""
from __future__ import annotations

import numpy as np
from pyscf.dft import numint


class CachedNumInt(numint.NumInt):
    max_cache_mb = 2000.0

    def __init__(self, grids=None):
        super().__init__()
        self.cached_grids = grids
        self._cache_key = None
        self._blocks = None

    def block_loop(self, mol, grids, nao=None, deriv=0, max_memory=2000, non0tab=None, blksize=None, buf=None):
        if grids is not self.cached_grids or grids.coords is None or non0tab is not None:
            yield from super().block_loop(mol, grids, nao, deriv, max_memory, non0tab, blksize, buf)
            return
        key = (id(grids.coords), grids.coords.shape, deriv, mol.atom_coords().tobytes(), nao, blksize)
        if key == self._cache_key:
            yield from self._blocks
            return
        comp = (deriv + 1) * (deriv + 2) * (deriv + 3) // 6
        size_mb = comp * grids.coords.shape[0] * (nao or mol.nao) * 8 / 1e6
        keep = size_mb <= self.max_cache_mb
        pool = [b[0] for b in self._blocks or ()]
        self._cache_key, self._blocks = None, None
        blocks = []
        for k, (ao, mask, weight, coords) in enumerate(
                super().block_loop(mol, grids, nao, deriv, max_memory, non0tab, blksize, buf)):
            if keep:
                if k < len(pool) and pool[k].shape == ao.shape and pool[k].strides == ao.strides:
                    np.copyto(pool[k], ao)
                    ao = pool[k]
                else:
                    ao = ao.copy(order="K")   # keep PySCF's strided layout
                blocks.append((ao, mask, weight, coords))
            yield ao, mask, weight, coords
        if keep:
            self._cache_key, self._blocks = key, blocks
