"""A learned diabatic Hamiltonian H_d(R): adiabatic energies, forces and couplings that agree with each other.

A torch network maps features f(R) (T, F) to the S(S+1)/2 independent entries of a real symmetric S × S
matrix H_d (eV). Everything else follows from it (:func:`hybrid.states.adiabatic`): E_k are its
eigenvalues, F_k = −u_kᵀ ∇H_d u_k, d_kl = u_kᵀ ∇H_d u_l / (E_l − E_k); ∇H_d (eV/Å) comes from autograd
through the features, so forces and couplings are exact derivatives of the same model.

**Training from adiabatic labels** (:func:`fit_adiabatic`): the loss is

    L = mean_tk (E_k − E_k^ref)² / s_E² + w_F mean_tkia (F_k,ia − F^ref)² / s_F²
        + w_d mean_t,k<l min_± ‖d_kl ∓ d_kl^ref‖² / s_d²

with E_k = eigvalsh(H_d) and F_k by autograd of E_k (create_graph, so the loss is differentiable in the
weights). The scales s are the labels' standard deviations. The coupling term is optional and blind to the
sign of each state (d_kl and −d_kl are the same physics).

Energies and forces alone do not fix the couplings: H_d(R) and O(R) H_d(R) O(R)ᵀ for any smooth rotation
O(R) have the same eigenvalues everywhere but couplings that differ by the rotation's derivative. A fit
without coupling labels therefore returns *a* diabatisation, whose d is whatever the network's smoothness
selects; with coupling labels (``couplings=``) it returns the one that reproduces them.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..states import DiabaticModel

FORMAT = "qmml-hybrid-diabatic"


class DiabaticMLP(nn.Module):
    """H_d(f): features (T, F) → (T, S, S) symmetric, eV. An MLP (SiLU) with S(S+1)/2 outputs, plus a
    learnable diagonal offset per state. ``scale``: (F,) divides the features (their natural length)."""

    def __init__(self, n_states: int, n_features: int, hidden=(32, 32), scale=None):
        super().__init__()
        if n_states < 2:
            raise InputError(f"DiabaticMLP: n_states must be >= 2, got {n_states}")
        self.config = {"n_states": int(n_states), "n_features": int(n_features), "hidden": [int(h) for h in hidden]}
        self.n_states = int(n_states)
        layers, n = [], int(n_features)
        for h in hidden:
            layers += [nn.Linear(n, int(h)), nn.SiLU()]
            n = int(h)
        iu = torch.triu_indices(n_states, n_states)
        layers.append(nn.Linear(n, iu.shape[1]))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("iu", iu)
        self.offset = nn.Parameter(torch.zeros(n_states))
        self.register_buffer("scale", torch.ones(n_features) if scale is None
                             else torch.as_tensor(scale, dtype=torch.get_default_dtype()))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.mlp(features / self.scale)
        S = self.n_states
        H = features.new_zeros(features.shape[0], S, S)
        H[:, self.iu[0], self.iu[1]] = out
        H = H + H.transpose(1, 2) - torch.diag_embed(torch.diagonal(H, dim1=1, dim2=2))
        return H + torch.diag(self.offset)


def inverse_distances(positions: torch.Tensor) -> torch.Tensor:
    """Features of one molecule of fixed atom order: 1/r_ij (1/Å) for i < j, (T, N(N−1)/2). Invariant to
    translation and rotation, not to swapping like atoms (a molecule whose atoms keep their identity)."""
    n = positions.shape[1]
    i, j = torch.triu_indices(n, n, offset=1)
    return 1.0 / torch.linalg.norm(positions[:, j] - positions[:, i], dim=-1)


FEATURIZERS = {"inverse_distances": inverse_distances}


def _grad_H(H: torch.Tensor, pos: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """∇H (T, S, S, N, 3) by autograd; each geometry's H depends only on its own positions."""
    S = H.shape[1]
    dH = pos.new_zeros(H.shape[0], S, S, *pos.shape[1:])
    for a in range(S):
        for b in range(a, S):
            g = torch.autograd.grad(H[:, a, b].sum(), pos, create_graph=create_graph, retain_graph=True)[0]
            dH[:, a, b] = g
            if b != a:
                dH[:, b, a] = g
    return dH


class LearnedDiabatic(DiabaticModel):
    """A :class:`hybrid.states.DiabaticModel` from a :class:`DiabaticMLP` and a featurizer, a torch function
    positions (T, N, 3) Å → features (T, F). ``eps``: regularisation of the couplings, eV."""

    def __init__(self, net: DiabaticMLP, featurizer, eps: float = 0.0):
        self.net = net
        self.featurizer = featurizer
        self.n_states = net.n_states
        self.eps = float(eps)

    def save(self, path, **metadata) -> None:
        """Write the network, the featurizer's name (a key of :data:`FEATURIZERS`) and ``metadata`` (at least
        the level of theory, and the energy zero if the labels were shifted) to one file, atomically."""
        name = next((k for k, f in FEATURIZERS.items() if f is self.featurizer), None)
        if name is None:
            raise InputError(f"LearnedDiabatic.save: the featurizer {self.featurizer!r} is not one of "
                             f"{sorted(FEATURIZERS)}; a file must name how to rebuild it")
        import io

        from ..files import atomic_write_bytes
        buf = io.BytesIO()
        torch.save({"format": FORMAT, "config": self.net.config, "featurizer": name, "eps": self.eps,
                    "dtype": str(next(self.net.parameters()).dtype).replace("torch.", ""),
                    "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                    "metadata": dict(metadata)}, buf)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path) -> tuple["LearnedDiabatic", dict]:
        """(model, metadata) from a file written by :meth:`save`; a missing or foreign file is a
        :class:`~hybrid.errors.ModelFileError` naming it."""
        from .model import read_payload
        payload = read_payload(path, FORMAT)
        net = DiabaticMLP(**payload["config"]).to(getattr(torch, payload["dtype"]))
        net.load_state_dict(payload["state_dict"])
        return cls(net, FEATURIZERS[payload["featurizer"]], eps=payload["eps"]), payload["metadata"]

    def diabatic(self, positions):
        dtype = next(self.net.parameters()).dtype
        pos = torch.tensor(np.asarray(positions, float), dtype=dtype, requires_grad=True)
        with torch.enable_grad():
            H = self.net(self.featurizer(pos))
            dH = _grad_H(H, pos, create_graph=False)
        return H.detach().double().numpy(), dH.detach().double().numpy()


def fit_adiabatic(net: DiabaticMLP, featurizer, positions, energies, forces, couplings=None, *,
                  w_forces: float = 1.0, w_couplings: float = 1.0, epochs: int = 2000, lr: float = 3e-3,
                  seed: int = 0) -> list:
    """Fit ``net`` to adiabatic labels (module docstring); returns the loss per epoch.

    positions (T, N, 3) Å; energies (T, S) eV, ascending; forces (T, S, N, 3) eV/Å; couplings
    (T, S, S, N, 3) 1/Å or None. Full-batch Adam with a cosine learning-rate decay.
    """
    dtype = next(net.parameters()).dtype
    pos = torch.tensor(np.asarray(positions, float), dtype=dtype, requires_grad=True)
    E_ref = torch.tensor(np.asarray(energies, float), dtype=dtype)
    F_ref = torch.tensor(np.asarray(forces, float), dtype=dtype)
    T, S = E_ref.shape
    if pos.shape[0] != T or F_ref.shape != (T, S) + tuple(pos.shape[1:]):
        raise InputError(f"fit_adiabatic: shapes disagree: positions {tuple(pos.shape)}, energies {(T, S)}, "
                         f"forces {tuple(F_ref.shape)}")
    if S != net.n_states:
        raise InputError(f"fit_adiabatic: labels have {S} states, the network {net.n_states}")
    d_ref = None
    if couplings is not None:
        d_ref = torch.tensor(np.asarray(couplings, float), dtype=dtype)
        if d_ref.shape != (T, S, S) + tuple(pos.shape[1:]):
            raise InputError(f"fit_adiabatic: couplings must be {(T, S, S) + tuple(pos.shape[1:])}, "
                             f"got {tuple(d_ref.shape)}")
    torch.manual_seed(seed)
    with torch.no_grad():                      # start with the diagonal offsets at the states' mean energies
        net.offset.copy_(E_ref.mean(0))
    s_E = E_ref.std().clamp_min(1e-12)
    s_F = F_ref.std().clamp_min(1e-12)
    pairs = torch.triu_indices(S, S, offset=1)
    s_d = d_ref[:, pairs[0], pairs[1]].std().clamp_min(1e-12) if d_ref is not None else None
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    history = []
    for _ in range(epochs):
        opt.zero_grad()
        H = net(featurizer(pos))
        E, U = torch.linalg.eigh(H)
        loss = ((E - E_ref) ** 2).mean() / s_E**2
        F = torch.stack([-torch.autograd.grad(E[:, k].sum(), pos, create_graph=True)[0] for k in range(S)], 1)
        loss = loss + w_forces * ((F - F_ref) ** 2).mean() / s_F**2
        if d_ref is not None:
            dH = _grad_H(H, pos, create_graph=True)
            G = torch.einsum("tik,tijna,tjl->tklna", U, dH, U)
            gap = (E[:, None, :] - E[:, :, None])[:, pairs[0], pairs[1]]
            d = G[:, pairs[0], pairs[1]] / gap[..., None, None]
            r = d_ref[:, pairs[0], pairs[1]]
            miss = torch.minimum(((d - r) ** 2).sum((-2, -1)), ((d + r) ** 2).sum((-2, -1)))
            loss = loss + w_couplings * miss.mean() / (s_d**2 * np.prod(pos.shape[1:]))
        loss.backward()
        opt.step()
        sched.step()
        history.append(float(loss.detach()))
    return history
