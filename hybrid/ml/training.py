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

On top of :func:`train`:

* :func:`predictions`, :func:`errors`, :func:`parity_plot` and
  :func:`write_training_report`: energy and force MAE/RMSE per split,
  parity plots and learning curves (PNG) and a metrics file (JSON);
* :func:`delta_frames`: Δ-ML targets E_t - E_b, F_t - F_b from two label
  sets or from a baseline potential, at identical geometries;
* :func:`train_committee`: M members from different seeds or bootstrap
  resamples, returned as a :class:`~hybrid.ml.committee.Committee`;
* :func:`fine_tune`: more training of a fitted model on new data, keeping its
  reference energies and descriptor standardisation, with replay of old data.

Settings are checked before any work (InputError naming the argument and
its value: ``batch_size``, ``epochs``, ``patience`` integers >= 1,
``0 <= val_fraction < 1``, ``lr > 0``, weights and ``l2`` finite and >= 0,
``replay >= 0``, ``min_replay`` integer >= 0). A fit in which no epoch gives a
finite validation loss (e.g. a NaN loss from a learning rate that is far too
high) raises :class:`TrainingError` and leaves the model as it was given.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import HybridError, InputError
from ..system import AtomicSystem, symbol
from .model import AtomicMLP
from .potential import graph


class TrainingError(HybridError, RuntimeError):
    """A fit that produced no usable model state (no epoch with a finite validation loss)."""


def _check_number(where: str, name: str, value, *, integer: bool = False, minimum: float | None = None,
                  above: float | None = None, below: float | None = None) -> None:
    """InputError naming ``name`` and ``value`` unless it is a finite number (an int if ``integer``)
    with ``value >= minimum``, ``value > above`` and ``value < below`` (each bound when given)."""
    if integer:
        ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
        kind = "an integer"
    else:
        ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) \
            and bool(np.isfinite(value))
        kind = "a finite number"
    bounds = []
    if minimum is not None:
        ok = ok and value >= minimum
        bounds.append(f">= {minimum}")
    if above is not None:
        ok = ok and value > above
        bounds.append(f"> {above}")
    if below is not None:
        ok = ok and value < below
        bounds.append(f"< {below}")
    if not ok:
        need = " ".join([kind] + ([" and ".join(bounds)] if bounds else []))
        raise InputError(f"{where}: {name} must be {need}, got {value!r}")


def _check_train_settings(where: str, *, val_fraction=None, w_energy=None, w_forces=None, l2=None, epochs=None,
                          lr=None, batch_size=None, patience=None) -> None:
    """Check the settings of :func:`train` (those given) before any work is done."""
    if val_fraction is not None:
        _check_number(where, "val_fraction", val_fraction, minimum=0, below=1)
    for name, v in (("w_energy", w_energy), ("w_forces", w_forces), ("l2", l2)):
        if v is not None:
            _check_number(where, name, v, minimum=0)
    if w_energy is not None and w_forces is not None and w_energy == 0 and w_forces == 0:
        raise InputError(f"{where}: w_energy and w_forces are both 0: the loss would be empty")
    if lr is not None:
        _check_number(where, "lr", lr, above=0)
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience)):
        if v is not None:
            _check_number(where, name, v, integer=True, minimum=1)


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
    """What :func:`train` did.

    epochs : epochs run; best_epoch : the epoch whose state was kept
    history : (epoch, train_loss, val_loss, lr) per epoch
    metrics : {"train": errors(...), "val": errors(...)} of the kept state
    info : ``split`` ({"train": [...], "val": [...]} indices into the frames
        given, when :func:`train` made the split) and what wrappers add
        (committee member and resample, fine-tuning errors before/after)
    """

    epochs: int
    best_epoch: int
    history: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def split_frames(self, frames) -> tuple[list, list]:
        """(train, val) frames of the split :func:`train` made of ``frames``."""
        split = self.info.get("split")
        if split is None:
            raise InputError("this report holds no split: train() was given val_frames explicitly")
        frames = list(frames)
        if max(split["train"] + split["val"], default=-1) >= len(frames):
            raise InputError(f"the split indexes {max(split['train'] + split['val']) + 1} frames, "
                             f"{len(frames)} given: not the frames this model was trained on")
        return [frames[k] for k in split["train"]], [frames[k] for k in split["val"]]


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


def predictions(model: AtomicMLP, frames, dtype=torch.float64, batch_size: int = 64) -> dict:
    """Model predictions beside the labels of ``frames``.

    Returns {"energy_ref", "energy_pred", "n_atoms"} of shape (K,) in eV (the
    offset b removed: E_pred = E_θ - b) and {"forces_ref", "forces_pred"} of
    shape (ΣN_k, 3) in eV/Å, frames concatenated in order.
    """
    _check_number("predictions", "batch_size", batch_size, integer=True, minimum=1)
    frames = list(frames)
    if not frames:
        raise InputError("predictions: no frames")
    _check_frames(frames, model, "evaluation")
    model = model.to(dtype)
    out = {k: [] for k in ("energy_ref", "energy_pred", "n_atoms", "forces_ref", "forces_pred")}
    for start in range(0, len(frames), batch_size):
        b = _Batch(frames[start:start + batch_size], model, dtype)
        e, f = b.predict(model, create_graph=False)
        out["energy_pred"].append((e.detach() - model.energy_offset).numpy())
        out["energy_ref"].append(b.energy.numpy())
        out["n_atoms"].append(b.n_atoms.numpy())
        out["forces_pred"].append(f.detach().numpy())
        out["forces_ref"].append(b.forces.numpy())
    return {k: np.concatenate(v).astype(float) for k, v in out.items()}


def metrics(pred: dict) -> dict:
    """MAE and RMSE of energies (eV, eV/atom) and force components (eV/Å) from :func:`predictions`."""
    de = pred["energy_pred"] - pred["energy_ref"]
    dea = de / pred["n_atoms"]
    df = (pred["forces_pred"] - pred["forces_ref"]).ravel()
    rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
    return {"energy_mae": float(np.abs(de).mean()), "energy_rmse": rms(de),
            "energy_per_atom_mae": float(np.abs(dea).mean()), "energy_per_atom_rmse": rms(dea),
            "force_mae": float(np.abs(df).mean()), "force_rmse": rms(df), "n_frames": int(len(de)),
            "n_atoms": int(pred["n_atoms"].sum())}


def errors(model: AtomicMLP, frames, dtype=torch.float64, batch_size: int = 64) -> dict:
    """Energy (eV, and eV/atom) and force-component (eV/Å) MAE and RMSE, offset b removed."""
    return metrics(predictions(model, frames, dtype, batch_size))


def held_out_split(n: int, fraction: float = 0.1, seed: int = 0) -> tuple[list, list]:
    """(test, rest): indices of a seeded held-out set of floor(fraction · n) of n frames, and of the others
    (``numpy.random.default_rng(seed).permutation(n)``, the test set first)."""
    order = np.random.default_rng(seed).permutation(int(n))
    n_test = int(int(n) * fraction + 1e-9)      # 0.1 · 70 must give 7, not 6.999…
    return [int(k) for k in order[:n_test]], [int(k) for k in order[n_test:]]


def train(model: AtomicMLP, frames, *, val_frames=None, val_fraction: float = 0.1, w_energy: float = 1.0,
          w_forces: float = 10.0, l2: float = 1e-6, epochs: int = 200, lr: float = 3e-3,
          batch_size: int = 16, patience: int = 40, seed: int = 0, dtype=torch.float64,
          fit_references: bool = True, progress: bool = False, log=None,
          num_threads: int | None = None) -> TrainReport:
    """Fit ``model`` to ``frames`` (list of :class:`Frame`) by force matching.

    Returns a :class:`TrainReport`; ``model`` is left in its best-validation
    state. ``fit_references``/standardisation are skipped for fine-tuning
    (pass ``fit_references=False``). ``log`` is called with one dict per epoch.
    Without ``val_frames``, a fraction ``val_fraction`` of the frames (at
    least one, when there are more than 4) is held out for validation.
    ``num_threads`` limits torch's intra-op threads while training (small
    models train faster on one thread); the previous setting is restored.

    Settings are checked first (InputError naming the argument and value:
    ``batch_size``, ``epochs``, ``patience`` integers >= 1, ``0 <= val_fraction
    < 1``, ``lr > 0``, ``w_energy``, ``w_forces``, ``l2`` finite and >= 0). If no
    epoch gives a finite validation loss (e.g. the loss is NaN or inf), the
    model is restored to the state it was given in and :class:`TrainingError`
    says so.
    """
    _check_train_settings("train", val_fraction=val_fraction, w_energy=w_energy, w_forces=w_forces, l2=l2,
                          epochs=epochs, lr=lr, batch_size=batch_size, patience=patience)
    if num_threads is not None:
        previous = torch.get_num_threads()
        torch.set_num_threads(int(num_threads))
        try:
            return train(model, frames, val_frames=val_frames, val_fraction=val_fraction, w_energy=w_energy,
                         w_forces=w_forces, l2=l2, epochs=epochs, lr=lr, batch_size=batch_size,
                         patience=patience, seed=seed, dtype=dtype, fit_references=fit_references,
                         progress=progress, log=log)
        finally:
            torch.set_num_threads(previous)
    frames = list(frames)
    if not frames:
        raise InputError("train: no frames to train on")
    _check_frames(frames, model, "training")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    split = None
    if val_frames is None:
        order = rng.permutation(len(frames))
        n_val = max(1, int(round(val_fraction * len(frames)))) if len(frames) > 4 else 0
        split = {"train": sorted(int(k) for k in order[n_val:]), "val": sorted(int(k) for k in order[:n_val])}
        val_frames = [frames[k] for k in order[:n_val]]
        frames = [frames[k] for k in order[n_val:]]
    else:
        val_frames = list(val_frames)
        _check_frames(val_frames, model, "validation")
    if not frames:
        raise InputError(f"train: no training frames left after holding out {len(val_frames)} for validation")
    given = {k: v.detach().clone() for k, v in model.state_dict().items()}   # restored if no epoch is usable
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
    if split is not None:
        report.info["split"] = split
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
    if best[2] is None:
        model.load_state_dict(given)
        model.eval()
        last = report.history[-1]
        raise TrainingError(f"train: no epoch of {epoch} gave a finite validation loss (last epoch: train loss "
                            f"{last[1]:.4g}, validation loss {last[2]:.4g}); the model is left as it was given. "
                            f"Lower the learning rate (lr={lr:g}), or check the labels' scale and the model's weights "
                            "for NaN")
    model.load_state_dict(best[2][0])
    with torch.no_grad():
        model.energy_offset.copy_(best[2][1])
    model.eval()
    report.epochs, report.best_epoch = epoch, best[1]
    report.metrics = {"train": errors(model, frames, dtype)}
    if val_frames:
        report.metrics["val"] = errors(model, val_frames, dtype)
    return report


# -- reports ---------------------------------------------------------------------
def parity_plot(preds: dict, path, title: str | None = None):
    """Parity plots (PNG): energy per atom (eV/atom) and force components (eV/Å).

    ``preds`` maps a split name ("train", "val", "test", ...) to the output of
    :func:`predictions`; each split is drawn in its own colour, with its MAE
    and RMSE in the legend. Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not preds:
        raise InputError("parity_plot: no predictions to plot")
    fig = Figure(figsize=(10, 4.6))
    FigureCanvasAgg(fig)
    ax_e, ax_f = fig.subplots(1, 2)
    for name, p in preds.items():
        m = metrics(p)
        ea_ref, ea_pred = p["energy_ref"] / p["n_atoms"], p["energy_pred"] / p["n_atoms"]
        ax_e.scatter(ea_ref, ea_pred, s=10, alpha=0.7,
                     label=f"{name}: MAE {1e3 * m['energy_per_atom_mae']:.2f}, "
                           f"RMSE {1e3 * m['energy_per_atom_rmse']:.2f} meV/atom")
        ax_f.scatter(p["forces_ref"].ravel(), p["forces_pred"].ravel(), s=4, alpha=0.5,
                     label=f"{name}: MAE {m['force_mae']:.3f}, RMSE {m['force_rmse']:.3f} eV/Å")
    for ax, what in ((ax_e, "energy per atom (eV/atom)"), (ax_f, "force component (eV/Å)")):
        lo, hi = ax.get_xlim()
        lo2, hi2 = ax.get_ylim()
        lo, hi = min(lo, lo2), max(hi, hi2)
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"reference {what}")
        ax.set_ylabel(f"model {what}")
        ax.legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = os.fspath(path)
    fig.savefig(path, dpi=110)
    return path


def learning_curve_plot(history, path, title: str | None = None):
    """Training and validation loss (log scale) and the learning rate per epoch (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not history:
        raise InputError("learning_curve_plot: empty history")
    h = np.array(history, float)
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.semilogy(h[:, 0], h[:, 1], label="train loss")
    ax.semilogy(h[:, 0], h[:, 2], label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.semilogy(h[:, 0], h[:, 3], color="grey", ls=":", label="learning rate")
    ax2.set_ylabel("learning rate")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = os.fspath(path)
    fig.savefig(path, dpi=110)
    return path


def write_training_report(model: AtomicMLP, outdir, splits: dict, report: TrainReport | None = None,
                          title: str | None = None, dtype=torch.float64) -> dict:
    """Errors, parity plots and learning curve of a trained model, written to ``outdir``.

    splits : {"train": frames, "val": frames, "test": frames, ...} (any names)
    report : the :class:`TrainReport` of the fit, for the learning curve

    Writes ``parity.png``, ``learning_curve.png`` (with a report) and
    ``metrics.json`` ({"metrics": {split: errors}, "epochs", "best_epoch",
    "files"}); returns that dict. Energies in eV, forces in eV/Å.
    """
    import json

    outdir = os.fspath(outdir)
    os.makedirs(outdir, exist_ok=True)
    preds = {}
    for name, frames in splits.items():
        frames = list(frames)
        if frames:
            preds[name] = predictions(model, frames, dtype)
    if not preds:
        raise InputError("write_training_report: every split is empty")
    out = {"metrics": {name: metrics(p) for name, p in preds.items()}, "files": {}}
    out["files"]["parity"] = parity_plot(preds, os.path.join(outdir, "parity.png"), title)
    if report is not None:
        out["epochs"], out["best_epoch"] = report.epochs, report.best_epoch
        if report.history:
            out["files"]["learning_curve"] = learning_curve_plot(report.history,
                                                                 os.path.join(outdir, "learning_curve.png"), title)
    out["files"]["metrics"] = os.path.join(outdir, "metrics.json")
    with open(out["files"]["metrics"], "w") as fh:
        json.dump(out, fh, indent=2)
    return out


# -- Δ-ML targets ---------------------------------------------------------------------
def delta_frames(target, baseline, *, atol: float = 1e-5) -> list:
    """Δ-ML training frames at identical geometries.

        E_Δ,k = E_target,k - E_baseline,k  (eV),   F_Δ,k = F_target,k - F_baseline,k  (eV/Å)

    (and the same differences of dipoles and charges when both sides have them).

    target : frames labelled at the target level
    baseline : frames labelled at the baseline level, or a Potential that is
        evaluated here on each target frame's system
    atol : largest position difference (Å) accepted between paired frames

    Frames are paired by ``info["config_id"]`` when every frame on both sides
    has one, else by position in the lists. Elements, charge, multiplicity,
    cell and positions must agree; an InputError names the frame and atom.
    """
    from ..potential import Potential

    target = list(target)
    if isinstance(baseline, Potential):
        pairs = []
        for fr in target:
            r = baseline.compute(fr.system)
            pairs.append((fr, Frame(fr.system, r.energy, r.forces, dipole=r.info.get("dipole"),
                                    charges=r.info.get("charges"), info={"level_of_theory": baseline.name})))
    else:
        baseline = list(baseline)
        if all("config_id" in f.info for f in target + baseline) and target:
            by_id = {f.info["config_id"]: f for f in baseline}
            missing = [f.info["config_id"] for f in target if f.info["config_id"] not in by_id]
            if missing:
                raise InputError(f"delta_frames: no baseline frame for config_id {missing[:5]}"
                                 f"{' ...' if len(missing) > 5 else ''}")
            pairs = [(f, by_id[f.info["config_id"]]) for f in target]
        else:
            if len(target) != len(baseline):
                raise InputError(f"delta_frames: {len(target)} target frames but {len(baseline)} baseline "
                                 "frames (and no config_id on every frame to pair them by)")
            pairs = list(zip(target, baseline))
    out = []
    for k, (t, b) in enumerate(pairs):
        where = f"delta_frames: target frame {k}" + (f" (config_id {t.info['config_id']!r})"
                                                     if "config_id" in t.info else "")
        _same_geometry(t.system, b.system, where, atol)
        if np.shape(b.forces) != np.shape(t.forces):
            raise InputError(f"{where}: baseline forces have shape {np.shape(b.forces)}, "
                             f"target {np.shape(t.forces)}")
        info = {k2: v for k2, v in t.info.items() if k2 not in ("stress", "level_of_theory")}
        info["level_of_theory"] = (f"{t.info.get('level_of_theory', 'target')} - "
                                   f"{b.info.get('level_of_theory', 'baseline')}")
        both = lambda x, y: None if x is None or y is None else np.asarray(x) - np.asarray(y)  # noqa: E731
        out.append(Frame(t.system, float(t.energy) - float(b.energy),
                         np.asarray(t.forces, float) - np.asarray(b.forces, float),
                         dipole=both(t.dipole, b.dipole), charges=both(t.charges, b.charges), info=info))
    return out


def _same_geometry(a: AtomicSystem, b: AtomicSystem, where: str, atol: float) -> None:
    if len(a) != len(b):
        raise InputError(f"{where}: {len(a)} atoms in the target, {len(b)} in the baseline")
    bad = np.flatnonzero(a.numbers != b.numbers)
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{where}, atom {i}: {symbol(a.numbers[i])} in the target, "
                         f"{symbol(b.numbers[i])} in the baseline")
    if (int(a.charge), int(a.multiplicity)) != (int(b.charge), int(b.multiplicity)):
        raise InputError(f"{where}: charge/multiplicity {a.charge}/{a.multiplicity} in the target, "
                         f"{b.charge}/{b.multiplicity} in the baseline")
    if np.abs(a.cell - b.cell).max() > atol or np.any(a.pbc != b.pbc):
        raise InputError(f"{where}: the cells differ")
    d = np.linalg.norm(a.positions - b.positions, axis=1)
    i = int(np.argmax(d))
    if d[i] > atol:
        raise InputError(f"{where}, atom {i} ({symbol(a.numbers[i])}): positions differ by {d[i]:.3g} Å "
                         f"(more than {atol:g} Å): not the same geometry")


# -- committees -----------------------------------------------------------------------
def train_committee(template, frames, n_members: int = 4, *, mode: str = "seeds", seed: int = 0,
                    val_frames=None, val_fraction: float = 0.1, dtype=torch.float64, **train_kwargs):
    """Train ``n_members`` models and return (Committee, [TrainReport per member]).

    template : an AtomicMLP whose configuration every member copies (weights
        freshly initialised with ``torch.manual_seed(seed + m)``), or a
        callable ``m -> AtomicMLP``
    mode : "seeds": every member sees all training frames and differs by its
        initial weights and minibatch order (seed + m); "bootstrap":
        additionally, member m trains on K draws with replacement from the K
        training frames (rng seed + m), so members see different data
    val_frames : a validation set shared by all members; without it one split
        of ``frames`` (fraction ``val_fraction``, rng ``seed``) is made once
    train_kwargs : passed to :func:`train` (epochs, lr, w_forces, num_threads, ...)

    Each report's ``info`` holds ``member``, ``seed`` and, for bootstrap, the
    ``sample`` (indices into the training part) and its ``unique_fraction``.
    The committee's σ_F,i is the spread of the members' forces (eV/Å).
    """
    from .committee import Committee
    from .potential import MLPotential

    if mode not in ("seeds", "bootstrap"):
        raise InputError(f"train_committee: mode {mode!r} is not 'seeds' or 'bootstrap'")
    if int(n_members) < 2:
        raise InputError(f"train_committee: a committee needs at least 2 members, got {n_members}")
    frames = list(frames)
    if not frames:
        raise InputError("train_committee: no frames")
    _check_train_settings("train_committee", val_fraction=val_fraction)
    if val_frames is None:
        order = np.random.default_rng(seed).permutation(len(frames))
        n_val = max(1, int(round(val_fraction * len(frames)))) if len(frames) > 4 else 0
        val_frames = [frames[k] for k in order[:n_val]]
        train_part = [frames[k] for k in order[n_val:]]
    else:
        val_frames, train_part = list(val_frames), frames
    members, reports = [], []
    for m in range(int(n_members)):
        torch.manual_seed(seed + m)
        model = template(m) if callable(template) and not isinstance(template, AtomicMLP) \
            else AtomicMLP(**template.config)
        if not isinstance(model, AtomicMLP):
            raise InputError(f"train_committee: the template returned a {type(model).__name__} for member {m}, "
                             "not an AtomicMLP")
        info = {"member": m, "seed": seed + m, "mode": mode}
        data = train_part
        if mode == "bootstrap":
            sample = np.random.default_rng(seed + m).integers(0, len(train_part), len(train_part))
            data = [train_part[k] for k in sample]
            info["sample"] = sample.tolist()
            info["unique_fraction"] = len(set(sample.tolist())) / len(train_part)
        rep = train(model, data, val_frames=val_frames, seed=seed + m, dtype=dtype, **train_kwargs)
        rep.info.update(info)
        members.append(MLPotential(model, dtype=dtype, name=f"member{m}"))
        reports.append(rep)
    return Committee(members, name=f"committee[{n_members} {mode}]"), reports


# -- fine-tuning ------------------------------------------------------------------------
def fine_tune(model: AtomicMLP, new_frames, *, old_frames=None, replay: float = 1.0, min_replay: int = 0,
              lr: float = 1e-3, epochs: int = 100, patience: int = 30, seed: int = 0,
              **train_kwargs) -> TrainReport:
    """Continue training a fitted ``model`` on ``new_frames``.

    The loss is that of :func:`train`, started from the model's weights, its
    per-species energies e_s and offset b, with the descriptor
    standardisation (μ, σ) kept as it is (``fit_references=False``) and a
    lower learning rate. To keep the old fit,

        n_replay = min(K_old, max(round(replay · K_new), min_replay))

    frames drawn without replacement from ``old_frames`` are trained on with
    the new ones ("replay"; ``replay=0, min_replay=0`` trains on new data
    alone). ``min_replay`` keeps a small batch of new frames (one label, say)
    from being fitted on its own with a single replayed frame.
    ``replay`` must be finite and >= 0, ``min_replay`` an integer >= 0
    (InputError otherwise); the other settings are those of :func:`train`.

    The report's ``info`` holds errors on the new frames and, with
    ``old_frames``, on the old ones, before and after
    (``new_before``, ``new_after``, ``old_before``, ``old_after``), and
    ``n_replay``.
    """
    _check_number("fine_tune", "replay", replay, minimum=0)
    _check_number("fine_tune", "min_replay", min_replay, integer=True, minimum=0)
    _check_train_settings("fine_tune", lr=lr, epochs=epochs, patience=patience)
    new_frames = list(new_frames)
    if not new_frames:
        raise InputError("fine_tune: no new frames")
    _check_frames(new_frames, model, "fine-tuning")
    dtype = train_kwargs.pop("dtype", torch.float64)
    if train_kwargs.pop("fit_references", False):
        raise InputError("fine_tune keeps the reference energies and standardisation; use train() to refit them")
    old_frames = list(old_frames or [])
    info = {"new_before": errors(model, new_frames, dtype)}
    if old_frames:
        info["old_before"] = errors(model, old_frames, dtype)
    n_replay = min(len(old_frames), max(int(round(replay * len(new_frames))), int(min_replay)))
    picked = np.random.default_rng(seed).choice(len(old_frames), n_replay, replace=False) if n_replay else []
    data = new_frames + [old_frames[k] for k in picked]
    rep = train(model, data, lr=lr, epochs=epochs, patience=patience, seed=seed, dtype=dtype,
                fit_references=False, **train_kwargs)
    info["n_replay"] = n_replay
    info["new_after"] = errors(model, new_frames, dtype)
    if old_frames:
        info["old_after"] = errors(model, old_frames, dtype)
    rep.info.update(info)
    return rep
