"""Force-matching training of the built-in MLIP.

Loss over a batch of K labelled structures (energies eV, forces eV/Å):

    L(θ, b) = (1/K) Σ_k [ w_E (E_θ(R_k) - E_k - b)² + w_F (1/N_k) Σ_i ‖F_θ,i(R_k) - F_k,i‖² ]
              + λ ‖θ‖²

with a trainable energy offset b (stored in the model and subtracted at
prediction time, so the model's energies are on the reference scale).
Before the fit, per-species reference energies e_s are set by least squares
(E_k ≈ Σ_s n_ks e_s) and descriptors are standardised on the training set.
Training uses Adam with a plateau learning-rate schedule and early stopping
on the validation loss; the best validation state is kept.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import InputError
from ..system import AtomicSystem, symbol
from .model import AtomicMLP
from .potential import graph


@dataclass
class Frame:
    """One labelled structure.

    system : the geometry and electronic state
    energy : float, eV
    forces : (N, 3) eV/Å
    dipole : (3,) e·Å, or None (only stored and passed on; the loss does not use it)
    charges : (N,) e, atomic partial charges (e.g. Mulliken), or None
    info : provenance: ``config_id``, ``level_of_theory``, ...
    """

    system: AtomicSystem
    energy: float
    forces: np.ndarray
    dipole: np.ndarray | None = None
    charges: np.ndarray | None = None
    info: dict = field(default_factory=dict)


@dataclass
class TrainReport:
    epochs: int
    best_epoch: int
    history: list = field(default_factory=list)   # (epoch, train_loss, val_loss, lr)
    metrics: dict = field(default_factory=dict)   # {"train": {...}, "val": {...}}


class _Batch:
    """Frames concatenated into one graph (shift vectors fixed: cells do not change)."""

    def __init__(self, frames, model: AtomicMLP, dtype):
        species, pos, ii, jj, vecs, owner, counts = [], [], [], [], [], [], []
        off = 0
        for k, fr in enumerate(frames):
            s = fr.system
            i, j, sh = graph(s, model.cutoff)
            species.append(model.species_index(torch.from_numpy(s.numbers)))
            pos.append(torch.tensor(s.positions, dtype=dtype))
            ii.append(i + off)
            jj.append(j + off)
            vecs.append(sh.to(dtype) @ torch.tensor(s.cell, dtype=dtype))
            owner.append(torch.full((len(s),), k, dtype=torch.long))
            counts.append(len(s))
            off += len(s)
        self.species = torch.cat(species)
        self.pos = torch.cat(pos)
        self.i, self.j = torch.cat(ii), torch.cat(jj)
        self.shift = torch.cat(vecs)
        self.owner = torch.cat(owner)
        self.n_atoms = torch.tensor(counts, dtype=dtype)
        self.energy = torch.tensor([f.energy for f in frames], dtype=dtype)
        self.forces = torch.tensor(np.concatenate([f.forces for f in frames]), dtype=dtype)
        self.k = len(frames)

    def predict(self, model: AtomicMLP, create_graph: bool):
        pos = self.pos.clone().requires_grad_(True)
        vec = pos[self.j] - pos[self.i] + self.shift
        e_atoms = model(self.species, self.i, self.j, vec)
        e = torch.zeros(self.k, dtype=pos.dtype).index_add(0, self.owner, e_atoms)
        (g,) = torch.autograd.grad(e.sum(), pos, create_graph=create_graph)
        return e, -g


def _check_frames(frames, model: AtomicMLP, where: str):
    known = set(model.species)
    for k, fr in enumerate(frames):
        n = len(fr.system)
        if np.shape(fr.forces) != (n, 3):
            raise InputError(f"{where} frame {k}: forces have shape {np.shape(fr.forces)}, expected {(n, 3)}")
        if not (np.isfinite(fr.energy) and np.all(np.isfinite(fr.forces))):
            raise InputError(f"{where} frame {k}: energy or forces contain NaN or inf")
        for a, z in enumerate(fr.system.numbers):
            if int(z) not in known:
                raise InputError(f"{where} frame {k}, atom {a}: element {symbol(z)} is not among the "
                                 f"model's species {[symbol(s) for s in model.species]}")


def fit_reference_energies(model: AtomicMLP, frames) -> float:
    """Least-squares per-species energies e_s and constant c: E_k ≈ Σ_s n_ks e_s + c (eV).

    Sets ``model.ref_energies`` and returns the offset b = -c that makes
    E_θ - b match the labels (c is dropped, b = 0, when the atom counts
    cannot tell a constant from the per-species energies).
    """
    counts = np.array([[np.sum(f.system.numbers == z) for z in model.species] for f in frames], float)
    e = np.array([f.energy for f in frames])
    design = np.hstack([counts, np.ones((len(e), 1))])
    with_const = np.linalg.matrix_rank(design) == design.shape[1] and np.linalg.cond(design) < 1e3
    sol, *_ = np.linalg.lstsq(design if with_const else counts, e, rcond=None)
    with torch.no_grad():
        model.ref_energies.copy_(torch.tensor(sol[:len(model.species)], dtype=model.ref_energies.dtype))
    return -float(sol[-1]) if with_const else 0.0


def standardise_descriptors(model: AtomicMLP, batch: _Batch) -> None:
    with torch.no_grad():
        d = model.descriptors(batch.species, batch.i, batch.j, batch.pos[batch.j] - batch.pos[batch.i] + batch.shift)
        model.feat_mean.copy_(d.mean(0))
        model.feat_std.copy_(d.std(0).clamp(min=1e-6))


def errors(model: AtomicMLP, frames, dtype=torch.float64, batch_size: int = 64) -> dict:
    """Energy (eV, and eV/atom) and force-component (eV/Å) MAE and RMSE, offset b removed."""
    de, dea, df = [], [], []
    model = model.to(dtype)
    for start in range(0, len(frames), batch_size):
        b = _Batch(frames[start:start + batch_size], model, dtype)
        e, f = b.predict(model, create_graph=False)
        d = (e.detach() - model.energy_offset - b.energy).numpy()
        de.append(d)
        dea.append(d / b.n_atoms.numpy())
        df.append((f.detach() - b.forces).numpy().ravel())
    de, dea, df = map(np.concatenate, (de, dea, df))
    rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
    return {"energy_mae": float(np.abs(de).mean()), "energy_rmse": rms(de),
            "energy_per_atom_rmse": rms(dea), "force_mae": float(np.abs(df).mean()), "force_rmse": rms(df),
            "n_frames": len(frames)}


def train(model: AtomicMLP, frames, *, val_frames=None, val_fraction: float = 0.1, w_energy: float = 1.0,
          w_forces: float = 10.0, l2: float = 1e-6, epochs: int = 200, lr: float = 3e-3,
          batch_size: int = 16, patience: int = 40, seed: int = 0, dtype=torch.float64,
          fit_references: bool = True, progress: bool = False, log=None) -> TrainReport:
    """Fit ``model`` to ``frames`` (list of :class:`Frame`) by force matching.

    Returns a :class:`TrainReport`; ``model`` is left in its best-validation
    state. ``fit_references``/standardisation are skipped for fine-tuning
    (pass ``fit_references=False``). ``log`` is called with one dict per epoch.
    """
    frames = list(frames)
    if not frames:
        raise InputError("train: no frames to train on")
    _check_frames(frames, model, "training")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    if val_frames is None:
        order = rng.permutation(len(frames))
        n_val = max(1, int(round(val_fraction * len(frames)))) if len(frames) > 4 else 0
        val_frames = [frames[k] for k in order[:n_val]]
        frames = [frames[k] for k in order[n_val:]]
    else:
        _check_frames(val_frames, model, "validation")
    model.to(dtype).train()
    offset = torch.nn.Parameter(model.energy_offset.detach().clone())
    if fit_references:
        with torch.no_grad():
            offset.fill_(fit_reference_energies(model, frames))
        standardise_descriptors(model, _Batch(frames, model, dtype))
    weights = [p for n, p in model.named_parameters() if n.startswith("nets")]
    opt = torch.optim.Adam(list(model.parameters()) + [offset], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(2, patience // 4))
    batches = [_Batch(frames[s:s + batch_size], model, dtype) for s in range(0, len(frames), batch_size)]
    vbatches = [_Batch(val_frames[s:s + batch_size], model, dtype) for s in range(0, len(val_frames), batch_size)]

    def loss_of(b: _Batch, create_graph: bool):
        e, f = b.predict(model, create_graph)
        le = ((e - b.energy - offset) ** 2).mean()
        per_atom = ((f - b.forces) ** 2).sum(1)
        lf = (torch.zeros(b.k, dtype=dtype).index_add(0, b.owner, per_atom) / b.n_atoms).mean()
        return w_energy * le + w_forces * lf

    best = (math.inf, 0, None)
    report = TrainReport(0, 0)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, desc="train", unit="epoch")
    for epoch in range(1, epochs + 1):
        total = 0.0
        for idx in torch.randperm(len(batches), generator=gen).tolist():
            opt.zero_grad()
            loss = loss_of(batches[idx], True) + l2 * sum((w**2).sum() for w in weights)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * batches[idx].k
        train_loss = total / len(frames)
        val_loss = (sum(float(loss_of(b, False).detach()) * b.k for b in vbatches) / len(val_frames)
                    if vbatches else train_loss)
        sched.step(val_loss)
        lr_now = opt.param_groups[0]["lr"]
        report.history.append((epoch, train_loss, val_loss, lr_now))
        if log:
            log({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr_now})
        if bar:
            bar.update(1)
            bar.set_postfix(train=f"{train_loss:.3g}", val=f"{val_loss:.3g}")
        if val_loss < best[0]:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best = (val_loss, epoch, (state, offset.detach().clone()))
        elif epoch - best[1] >= patience:
            break
    if bar:
        bar.close()
    model.load_state_dict(best[2][0])
    with torch.no_grad():
        model.energy_offset.copy_(best[2][1])
    model.eval()
    report.epochs, report.best_epoch = epoch, best[1]
    report.metrics = {"train": errors(model, frames, dtype)}
    if val_frames:
        report.metrics["val"] = errors(model, val_frames, dtype)
    return report
