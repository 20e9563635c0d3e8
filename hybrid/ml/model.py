"""The built-in MLIP: a species-aware, atom-decomposed model with a C² cutoff.

E = Σ_i [ MLP_{s_i}((D_i - μ)/σ) + e_{s_i} ]

Descriptor D_i of atom i from its neighbours j within r_c (species s_j):

    g_k(r)      = exp(-((r - μ_k)/w)²) · f_c(r/r_c),   f_c(x) = 1 - 10x³ + 15x⁴ - 6x⁵
    R_i[c]      = Σ_j g_k(r_ij) δ(s_j, s)                 channel c = (s, k)
    V_i[c]      = Σ_j g_k(r_ij) δ(s_j, s) r̂_ij            (3,)
    T_i[c]      = Σ_j g_k(r_ij) δ(s_j, s) (r̂_ij r̂_ijᵀ - I/3)  (3, 3)
    D_i         = [R_i[c], V_i[c]·V_i[c'], T_i[c]:T_i[c'] for c <= c']

All terms are rotation and permutation invariant and, through f_c, go to
zero with two continuous derivatives at the cutoff. Per-atom MLPs use SiLU,
so the energy is smooth; forces are -∂E/∂R by autograd. e_s are per-species
reference energies (eV).

Shapes: species (N,) long index into ``species``; pair lists i, j (P,);
vectors r_ij = R_j - R_i (+ periodic shift) (P, 3) in Å. Energies in eV.
"""
from __future__ import annotations

import os
import tempfile

import torch
from torch import nn

from ..errors import ModelFileError

FORMAT = "qmml-hybrid.atomic-mlp"
FORMAT_VERSION = 1


def cutoff_function(r: torch.Tensor, rc: float) -> torch.Tensor:
    """f_c(x) = 1 - 10x³ + 15x⁴ - 6x⁵ for x = r/r_c < 1, else 0 (C² at r_c)."""
    x = (r / rc).clamp(max=1.0)
    return 1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x * x)


class AtomicMLP(nn.Module):
    """Species-aware atom-decomposed network (see module docstring).

    species : atomic numbers the model knows, e.g. (1, 8)
    cutoff : r_c in Å; n_radial : Gaussians per species channel; hidden : MLP widths
    """

    def __init__(self, species, cutoff: float = 5.0, n_radial: int = 6, hidden=(32, 32),
                 r_min: float = 0.7):
        super().__init__()
        self.config = {"species": [int(z) for z in species], "cutoff": float(cutoff),
                       "n_radial": int(n_radial), "hidden": [int(h) for h in hidden], "r_min": float(r_min)}
        self.species = tuple(self.config["species"])
        self.cutoff = float(cutoff)
        ns = len(self.species)
        self.n_channels = ns * n_radial
        mu = torch.linspace(r_min, cutoff, n_radial)
        self.register_buffer("mu", mu)
        self.width = float(mu[1] - mu[0]) if n_radial > 1 else cutoff / 2
        tri = torch.triu_indices(self.n_channels, self.n_channels)
        self.register_buffer("tri", tri)
        n_feat = self.n_channels + 2 * tri.shape[1]
        self.n_features = n_feat
        self.register_buffer("feat_mean", torch.zeros(n_feat))
        self.register_buffer("feat_std", torch.ones(n_feat))
        self.register_buffer("energy_offset", torch.zeros(()))   # trained offset b, eV
        self.ref_energies = nn.Parameter(torch.zeros(ns))       # e_s, eV
        self.nets = nn.ModuleList(_mlp(n_feat, hidden) for _ in self.species)
        zmap = torch.full((max(self.species) + 1,), -1, dtype=torch.long)
        zmap[list(self.species)] = torch.arange(ns)
        self.register_buffer("zmap", zmap)

    def descriptors(self, species: torch.Tensor, i: torch.Tensor, j: torch.Tensor,
                    vec: torch.Tensor) -> torch.Tensor:
        """D (N, n_features) from species (N,), pairs i, j (P,) and vectors (P, 3)."""
        n = species.shape[0]
        r = torch.linalg.norm(vec, dim=1)
        unit = vec / r[:, None]
        g = torch.exp(-(((r[:, None] - self.mu) / self.width) ** 2)) * cutoff_function(r, self.cutoff)[:, None]
        nr, ns = self.mu.shape[0], len(self.species)
        # sum each pair into row (i, species of j): channel c = s_j·nr + k, no zero padding per pair
        row = i * ns + species[j]
        rad = vec.new_zeros(n * ns, nr).index_add(0, row, g).reshape(n, self.n_channels)
        v = vec.new_zeros(n * ns, nr, 3).index_add(0, row, g[:, :, None] * unit[:, None, :])
        outer = unit[:, :, None] * unit[:, None, :] - torch.eye(3, dtype=vec.dtype, device=vec.device) / 3
        t = vec.new_zeros(n * ns, nr, 9).index_add(0, row, g[:, :, None] * outer.reshape(-1, 1, 9))
        v, t = v.reshape(n, self.n_channels, 3), t.reshape(n, self.n_channels, 9)
        # Gram matrices V·Vᵀ and T:Tᵀ over channels (batched matmul), upper triangle c <= c'
        flat = self.tri[0] * self.n_channels + self.tri[1]
        vv = torch.bmm(v, v.transpose(1, 2)).reshape(n, -1)[:, flat]
        tt = torch.bmm(t, t.transpose(1, 2)).reshape(n, -1)[:, flat]
        return torch.cat([rad, vv, tt], dim=1)

    def forward(self, species: torch.Tensor, i: torch.Tensor, j: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        """Per-atom energies (N,) in eV, before the offset b."""
        d = (self.descriptors(species, i, j, vec) - self.feat_mean) / self.feat_std
        e = vec.new_zeros(species.shape[0])
        for s, net in enumerate(self.nets):
            mask = species == s
            if bool(mask.any()):
                e = e.index_put((mask.nonzero().squeeze(1),), net(d[mask]).squeeze(1) + self.ref_energies[s])
        return e

    def species_index(self, numbers: torch.Tensor) -> torch.Tensor:
        return self.zmap[numbers]


def _mlp(n_in: int, hidden) -> nn.Sequential:
    layers, last = [], n_in
    for h in hidden:
        layers += [nn.Linear(last, h), nn.SiLU()]
        last = h
    layers.append(nn.Linear(last, 1))
    return nn.Sequential(*layers)


def save_model(model: AtomicMLP, path, **metadata) -> None:
    """Write ``model`` and its metadata to one file, atomically.

    ``metadata`` should name at least the level of theory the model was
    trained on (``level_of_theory="B3LYP/def2-SVP"``); species, cutoff and
    units are added here.
    """
    meta = {"species": list(model.species), "cutoff_angstrom": model.cutoff,
            "units": {"energy": "eV", "length": "angstrom", "forces": "eV/angstrom"},
            "dtype": str(next(model.parameters()).dtype).replace("torch.", "")}
    meta.update(metadata)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.config,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "metadata": meta}
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".pt")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.chmod(tmp, 0o644)            # mkstemp makes 0600; a model file is meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_payload(path, fmt: str) -> dict:
    """The dict stored by torch.save in ``path`` (weights only), whose "format" is ``fmt``; a missing file,
    a file torch cannot read, or one of another format is a :class:`ModelFileError` naming it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign files
        raise ModelFileError(f"{path}: not a readable qmml-hybrid model file ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        kind = repr(payload.get("format")) if isinstance(payload, dict) and payload.get("format") else "torch"
        raise ModelFileError(f"{path}: a {kind} file of another kind, not a {fmt!r} model file")
    return payload


def load_model(path, dtype: torch.dtype | None = None) -> tuple[AtomicMLP, dict]:
    """(model, metadata) from a file written by :func:`save_model`.

    Raises :class:`ModelFileError` naming the file if it is missing, not a
    torch file, or a torch file of another kind.
    """
    path = os.fspath(path)
    payload = read_payload(path, FORMAT)
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{path}: format version {payload['format_version']} is newer than this "
                             f"qmml-hybrid reads ({FORMAT_VERSION})")
    cfg = payload["config"]
    model = AtomicMLP(cfg["species"], cfg["cutoff"], cfg["n_radial"], cfg["hidden"], cfg["r_min"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: weights do not fit the stored configuration: {exc}") from None
    model.to(dtype or getattr(torch, payload["metadata"].get("dtype", "float64")))
    return model, payload["metadata"]
