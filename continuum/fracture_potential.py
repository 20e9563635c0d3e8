"""A learned "fracture potential": local stress descriptors near a crack tip
→ an energy-release-like scalar G_pred, and a Griffith-type advance rule.

Descriptors (:func:`tip_descriptors`): the stress field (σ_xx, σ_yy, σ_xy)
averaged over the points (atoms) in each of ``n_sectors`` angular sectors of
each annulus around the tip, in units of a reference stress, giving
3·n_sectors·n_annuli numbers.  For a K-field these scale linearly with K
and G ∝ K², so the map is smooth but not linear.

Model (:class:`FracturePotential`): inputs standardised with the training
statistics, an MLP with tanh hidden layers, a softplus output so that
G_pred ≥ 0 (in units of G_c).  The crack is predicted to advance when
G_pred ≥ threshold, where threshold = G_c (Griffith) unless calibrated
otherwise (e.g. to the lattice-trapping load G₊ of a discrete lattice).

Training (:func:`train_fracture_potential`) is a plain full-batch Adam loop
on the mean squared error of G/G_c with a random validation split and the
best-validation weights kept.  It is the one place to route through the
project's trainer later.

torch is imported inside the functions and the class factory.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def tip_descriptors(positions, stress, tip, radii=(2.0, 4.0, 6.0), n_sectors: int = 8,
                    stress_unit: float = 1.0) -> np.ndarray:
    """Sector-averaged stresses around a crack tip.

    positions: (N, 2) reference positions; stress: (N, 3) Voigt stresses
    (or (S, N, 3) for S load cases sharing the positions); tip: (2,);
    radii: increasing outer radii of the annuli (the first starts at 0);
    stress_unit: divides the stresses.  Returns (3·n_sectors·len(radii),)
    or (S, 3·n_sectors·len(radii)).  Empty sectors raise.
    """
    d = np.asarray(positions, dtype=float) - np.asarray(tip, dtype=float)
    r = np.hypot(d[:, 0], d[:, 1])
    sector = np.floor((np.arctan2(d[:, 1], d[:, 0]) + np.pi) / (2 * np.pi) * n_sectors).astype(int)
    sector = np.clip(sector, 0, n_sectors - 1)
    edges = np.concatenate([[0.0], np.asarray(radii, dtype=float)])
    shell = np.searchsorted(edges, r, side="right") - 1
    inside = (shell >= 0) & (shell < len(radii))
    label = np.where(inside, shell * n_sectors + sector, -1)
    n_cells = len(radii) * n_sectors
    counts = np.bincount(label[inside], minlength=n_cells)
    if np.any(counts == 0):
        raise ValueError(f"{np.sum(counts == 0)} descriptor sectors contain no points: "
                         f"use larger radii or fewer sectors")
    s = np.asarray(stress, dtype=float) / stress_unit
    single = s.ndim == 2
    s = s[None] if single else s
    out = np.empty((s.shape[0], n_cells, 3))
    for c in range(3):
        for k in range(s.shape[0]):
            out[k, :, c] = np.bincount(label[inside], s[k, inside, c], n_cells) / counts
    out = out.reshape(s.shape[0], -1)
    return out[0] if single else out


def _build_module(n_in: int, hidden: tuple[int, ...]):
    import torch

    layers, width = [], n_in
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.Tanh()]
        width = h
    layers += [torch.nn.Linear(width, 1), torch.nn.Softplus()]
    return torch.nn.Sequential(*layers).double()


class FracturePotential:
    """Descriptors → G_pred (same units as G_c) and the advance rule.

    net: the torch module (input standardised descriptors, output G/G_c);
    mean, std: (n_in,) descriptor statistics; G_c: critical energy release
    rate; threshold: G at which the crack advances (default G_c).
    """

    def __init__(self, net, mean, std, G_c: float, threshold: float | None = None):
        self.net, self.mean, self.std = net, np.asarray(mean), np.asarray(std)
        self.G_c = float(G_c)
        self.threshold = self.G_c if threshold is None else float(threshold)

    def predict_G(self, descriptors) -> np.ndarray:
        """(S,) predicted energy release rate for descriptors (S, n_in)."""
        import torch

        x = np.atleast_2d(np.asarray(descriptors, dtype=float))
        if x.shape[1] != self.mean.size:
            raise ValueError(f"descriptors have {x.shape[1]} features, the model expects {self.mean.size}")
        with torch.no_grad():
            y = self.net(torch.from_numpy((x - self.mean) / self.std)).numpy()[:, 0]
        return y * self.G_c

    def advances(self, descriptors) -> np.ndarray:
        """(S,) bool: G_pred ≥ threshold."""
        return self.predict_G(descriptors) >= self.threshold

    def state_dict(self) -> dict:
        """Everything needed to rebuild the model (for torch.save)."""
        return {"net": self.net.state_dict(), "mean": self.mean, "std": self.std, "G_c": self.G_c,
                "threshold": self.threshold,
                "hidden": tuple(m.out_features for m in self.net if hasattr(m, "out_features"))[:-1]}

    @classmethod
    def from_state_dict(cls, state: dict) -> "FracturePotential":
        net = _build_module(len(state["mean"]), tuple(state["hidden"]))
        net.load_state_dict(state["net"])
        return cls(net, state["mean"], state["std"], state["G_c"], state["threshold"])


@dataclass
class TrainingHistory:
    """Per-epoch train and validation loss (MSE of G/G_c) and the best epoch."""
    train: np.ndarray
    validation: np.ndarray
    best_epoch: int


def train_fracture_potential(descriptors, G, G_c: float, hidden=(32, 32), epochs: int = 1000,
                             lr: float = 1e-2, val_fraction: float = 0.2, seed: int = 0):
    """Fit a :class:`FracturePotential` to (descriptor, G) samples.

    descriptors: (S, n_in); G: (S,) energy release rates (same units as
    G_c).  A random ``val_fraction`` of the samples is held out for
    validation; the weights of the best validation epoch are returned.
    Returns (model, TrainingHistory).

    This plain torch loop is the training step to route through the
    project's trainer.
    """
    import torch

    X = np.asarray(descriptors, dtype=float)
    y = np.asarray(G, dtype=float) / G_c
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"descriptors must be (S, n) and G (S,), got {X.shape} and {y.shape}")
    if not 0 < val_fraction < 1 or X.shape[0] < 5:
        raise ValueError("need at least 5 samples and 0 < val_fraction < 1")
    rng = np.random.default_rng(seed)
    order = rng.permutation(X.shape[0])
    n_val = max(1, int(round(val_fraction * X.shape[0])))
    val, tr = order[:n_val], order[n_val:]
    mean, std = X[tr].mean(axis=0), X[tr].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)     # a model this small trains fastest on one thread
    try:
        net, history = _fit(torch, X, y, tr, val, mean, std, hidden, epochs, lr)
    finally:
        torch.set_num_threads(threads)
    return FracturePotential(net, mean, std, G_c), history


def _fit(torch, X, y, tr, val, mean, std, hidden, epochs, lr):
    """Full-batch Adam on the MSE of G/G_c; keeps the best-validation weights."""
    net = _build_module(X.shape[1], tuple(hidden))
    Xt = torch.from_numpy((X - mean) / std)
    yt = torch.from_numpy(y)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    train_loss, val_loss = np.empty(epochs), np.empty(epochs)
    best, best_state = np.inf, None
    for epoch in range(epochs):                        # <- the training loop
        net.train()
        opt.zero_grad()
        loss = torch.mean((net(Xt[tr])[:, 0] - yt[tr]) ** 2)
        loss.backward()
        opt.step()
        net.eval()
        with torch.no_grad():
            vl = torch.mean((net(Xt[val])[:, 0] - yt[val]) ** 2).item()
        train_loss[epoch], val_loss[epoch] = loss.item(), vl
        if vl < best:
            best, best_epoch = vl, epoch
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    return net, TrainingHistory(train_loss, val_loss, best_epoch)


def k_field_load_cases(lattice, crack, tip, fixed, K_I, K_II):
    """Per-atom stresses of a linear lattice under mixed-mode K-field
    boundary displacements, for many loads at the cost of two relaxations.

    lattice: :class:`continuum.brittle_lattice.BrittleLattice` (with its
    crack already cut); crack: :class:`continuum.fracture.IsotropicCrack`
    with the lattice's E₂D, ν₂D in plane stress; fixed: mask of boundary
    atoms; K_I, K_II: (S,) loads.  The lattice is linear, so the response is
    K_I·(unit mode I) + K_II·(unit mode II).  Returns (S, N, 3) stresses and
    (S,) energy release rates (K_I² + K_II²)/E₂D.
    """
    d = lattice.positions - np.asarray(tip)
    unit = []
    for kI, kII in ((1.0, 0.0), (0.0, 1.0)):
        u_b = crack.displacement(d[fixed, 0], d[fixed, 1], kI, kII)
        unit.append(lattice.atom_stress(lattice.relax(fixed, u_b)))
    K_I, K_II = np.asarray(K_I, dtype=float), np.asarray(K_II, dtype=float)
    stress = K_I[:, None, None] * unit[0] + K_II[:, None, None] * unit[1]
    return stress, crack.energy_release_rate(K_I, K_II)
