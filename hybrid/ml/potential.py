"""Torch MLIPs as potentials: neighbour list in, autograd forces out.

For a model returning per-atom energies e_i(R), E = Σ_i e_i - b, and

    F = -∂E/∂R,      W = -∂E/∂ε|_{ε=0}   (R → R(1+ε), cell → cell(1+ε)),

both by one backward pass. The virial is returned for periodic systems.
"""
from __future__ import annotations

import numpy as np
import torch

from ..neighbors import neighbor_pairs
from ..potential import Potential, Result
from ..system import AtomicSystem
from .model import AtomicMLP, load_model


def graph(system: AtomicSystem, cutoff: float):
    """Neighbour pairs (i, j, shifts) as torch tensors (long)."""
    i, j, s = neighbor_pairs(system.positions, system.cell, system.pbc, cutoff)
    return torch.from_numpy(i), torch.from_numpy(j), torch.from_numpy(s)


def pair_vectors(pos: torch.Tensor, cell: torch.Tensor, i, j, shifts) -> torch.Tensor:
    """r_ij = R_j - R_i + shift @ cell, shape (P, 3)."""
    return pos[j] - pos[i] + shifts.to(pos.dtype) @ cell


class MLPotential(Potential):
    """The built-in :class:`AtomicMLP` as a potential.

    model : an AtomicMLP (or a path to a file written by ``save_model``)
    dtype : torch.float64 (default, for exact force tests and MD) or float32
    """

    def __init__(self, model, dtype: torch.dtype = torch.float64, name: str | None = None,
                 metadata: dict | None = None):
        if not isinstance(model, AtomicMLP):
            model, metadata = load_model(model, dtype)
        self.model = model.to(dtype).eval()
        self.dtype = dtype
        self.metadata = dict(metadata or {})
        self.species = model.species
        self.name = name or f"mlp[{self.metadata.get('level_of_theory', 'untrained')}]"

    @classmethod
    def load(cls, path, dtype: torch.dtype = torch.float64, name: str | None = None) -> "MLPotential":
        model, meta = load_model(path, dtype)
        return cls(model, dtype, name, meta)

    def atom_energies(self, system: AtomicSystem, positions: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Per-atom energies e_i (N,) in eV, offset b included (Σ_i e_i = E), as a torch graph of
        ``positions`` (N, 3) and ``cell`` (3, 3) in Å (tensors of ``self.dtype``; the neighbour
        pairs are those of ``system.positions``), for autograd forces and their derivatives."""
        i, j, s = graph(system, self.model.cutoff)
        species = self.model.species_index(torch.from_numpy(system.numbers))
        e_atoms = self.model(species, i, j, pair_vectors(positions, cell, i, j, s))
        return e_atoms - self.model.energy_offset / len(system)

    def atom_virials(self, system: AtomicSystem, reference: AtomicSystem | None = None) -> np.ndarray:
        """Per-atom virials W_a (N, 3, 3) in eV: each pair's −(∂E/∂r_ij) ⊗ R_ij split equally between i and j,
        W_a,iJ = −½ Σ_{pairs ∋ a} (∂E/∂r_ij)_i (R_ij)_J (first index: force direction).

        R_ij are the pair vectors of ``system`` itself (default: Σ_a W_a = −∂E/∂ε, the virial of ``compute``,
        also for open systems, where it is Σ_a F_a ⊗ r_a; local Cauchy stress σ_a = −W_a/V_a), or those of the
        same pairs (same images) in ``reference``, an undeformed state of the same atoms (positions and cell
        in Å): then Σ_a W_a = −∂E/∂F for a homogeneous deformation r = F R, and P_a = −W_a/V_a is the local
        first Piola–Kirchhoff stress (reference volume V_a), the stress of finite-strain J-integrals."""
        i, j, s = graph(system, self.model.cutoff)
        species = self.model.species_index(torch.from_numpy(system.numbers))
        pos = torch.tensor(system.positions, dtype=self.dtype)
        cell = torch.tensor(system.cell, dtype=self.dtype)
        vec = pair_vectors(pos, cell, i, j, s).requires_grad_(True)
        (g,) = torch.autograd.grad(self.model(species, i, j, vec).sum(), vec)
        if reference is None:
            arm = vec.detach()
        else:
            if len(reference) != len(system) or np.any(reference.numbers != system.numbers):
                raise ValueError(f"atom_virials: the reference holds {len(reference)} atoms, not the system's "
                                 f"{len(system)} of the same elements")
            arm = pair_vectors(torch.tensor(reference.positions, dtype=self.dtype),
                               torch.tensor(reference.cell, dtype=self.dtype), i, j, s)
        w = -(g[:, :, None] * arm[:, None, :])
        out = torch.zeros(len(system), 3, 3, dtype=self.dtype).index_add(0, i, 0.5 * w).index_add(0, j, 0.5 * w)
        return out.numpy().astype(float)

    def _compute(self, system: AtomicSystem) -> Result:
        pos = torch.tensor(system.positions, dtype=self.dtype)
        cell = torch.tensor(system.cell, dtype=self.dtype)
        eps = torch.zeros(3, 3, dtype=self.dtype, requires_grad=True)
        pos.requires_grad_(True)
        strain = torch.eye(3, dtype=self.dtype) + eps
        e_atoms = self.atom_energies(system, pos @ strain, cell @ strain)
        energy = e_atoms.sum()
        g_pos, g_eps = torch.autograd.grad(energy, (pos, eps))
        virial = -g_eps.detach().numpy().astype(float)
        return Result(energy=float(energy.detach()), forces=-g_pos.numpy().astype(float),
                      energies=e_atoms.detach().numpy().astype(float),
                      virial=0.5 * (virial + virial.T) if system.periodic else None,
                      contributions={self.name: float(energy.detach())})
