"""The summary plot of a run (matplotlib, Agg backend), drawn from its CSV log.

Panels: (a) energy components relative to their first value, eV — potential,
kinetic, total and each layer's term (E of the lowest level, ΔE_k of each
blended correction); (b) NVE (``integrator = "verlet"``): total-energy drift
E_tot(t) − E_tot(0) in meV with its least-squares slope in meV/ps; NVT
(``"langevin"``): no drift — the thermostat exchanges energy with the bath,
so E_tot is not conserved — but the potential energy E_pot(t) − E_pot(0) in
meV with its running mean; (c) temperature, K (and the bath's, NVT);
(d) region membership over time: atoms in the inner region and in the buffer
of each boundary; (e) the high-level region calls per step of each boundary
(its own axis from 0, drawn solid, so a constant count stays visible).
"""
from __future__ import annotations

import numpy as np

from .outputs import read_csv


def plot_summary(csv_path, png_path, title: str = "", integrator: str = "verlet", bath_K: float | None = None) -> None:
    """Write the summary PNG of the CSV log ``csv_path`` (nothing if it holds no rows)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    d = read_csv(csv_path)
    if not d or len(d.get("step", [])) == 0:
        return
    fig = summary_figure(d, title, integrator, bath_K)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def summary_figure(d: dict, title: str = "", integrator: str = "verlet", bath_K: float | None = None):
    """The matplotlib Figure of :func:`plot_summary` from the columns ``d`` (:func:`read_csv`); its axes
    are labelled "a" … "e" (``ax.get_label()``)."""
    import matplotlib.pyplot as plt

    t = d["time_fs"]
    fig, axd = plt.subplot_mosaic([["a", "b", "c"], ["d", "d", "e"]], figsize=(15, 7.5), constrained_layout=True)
    for k, a in axd.items():
        a.set_label(k)
    a = axd["a"]
    for col, label, style in (("E_pot_eV", "potential", "-"), ("E_kin_eV", "kinetic", "-"),
                              ("E_total_eV", "total", "-k")):
        a.plot(t, d[col] - d[col][0], style, lw=1.2 if col == "E_total_eV" else 1.0, label=label)
    for col in d:
        if (col.startswith("E_") or col.startswith("dE_")) and col not in ("E_pot_eV", "E_kin_eV", "E_total_eV"):
            a.plot(t, d[col] - d[col][0], "--", lw=0.8, label=col[:-3])
    a.set(xlabel="time (fs)", ylabel="E − E(0) (eV)", title="energy components")
    a.legend(fontsize=7, ncol=2)

    a = axd["b"]
    if integrator == "langevin":
        ep = (d["E_pot_eV"] - d["E_pot_eV"][0]) * 1e3
        a.plot(t, ep, color="C0", lw=0.8, label="E_pot − E_pot(0)")
        a.plot(t, np.cumsum(ep) / np.arange(1, len(ep) + 1), color="k", lw=1.2, label="running mean")
        a.set_title("NVT (Langevin): potential energy; E_tot is not conserved, no drift", fontsize=10)
        a.set(xlabel="time (fs)", ylabel="E_pot − E_pot(0) (meV)")
        a.legend(fontsize=7)
    else:
        drift = (d["E_total_eV"] - d["E_total_eV"][0]) * 1e3
        a.plot(t, drift, "k", lw=1)
        if len(t) > 2 and t[-1] > t[0]:
            slope = np.polyfit(t / 1000.0, drift, 1)[0]
            a.set_title(f"NVE total-energy drift: {slope:+.3g} meV/ps, max |ΔE| {np.abs(drift).max():.3g} meV",
                        fontsize=10)
        else:
            a.set_title("NVE total-energy drift")
        a.set(xlabel="time (fs)", ylabel="E_tot − E_tot(0) (meV)")

    a = axd["c"]
    a.plot(t, d["T_K"], lw=1, label="T")
    if integrator == "langevin" and bath_K is not None:
        a.axhline(bath_K, color="k", ls="--", lw=1, label=f"bath {bath_K:g} K")
        a.legend(fontsize=7)
    a.set(xlabel="time (fs)", ylabel="temperature (K)", title="temperature")

    regions = [c[len("n_inner_"):] for c in d if c.startswith("n_inner_")]
    a, calls = axd["d"], axd["e"]
    top = 1.0
    for k, r in enumerate(regions):
        color = f"C{k}"
        a.step(t, d[f"n_inner_{r}"], where="post", color=color, lw=1.2, label=f"{r}: inner atoms")
        a.step(t, d[f"n_buffer_{r}"], where="post", color=color, lw=1.0, ls="--", label=f"{r}: buffer atoms")
        c = d[f"high_calls_{r}"]
        calls.step(t, c, where="post", color=color, lw=1.8, label=f"{r}: region calls")
        top = max(top, float(np.max(c)))
    a.set(xlabel="time (fs)", ylabel="atoms", title="region membership")
    calls.set(xlabel="time (fs)", ylabel="calls per step", title="high-level region calls per step")
    calls.set_ylim(0, top * 1.15 + 0.5)
    if regions:
        a.legend(fontsize=7)
        calls.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig
