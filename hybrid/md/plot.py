"""The summary plot of a run (matplotlib, Agg backend), drawn from its CSV log.

Panels: (a) energy components relative to their first value, eV — potential,
kinetic, total and each layer's term (E of the lowest level, ΔE_k of each
blended correction); (b) total-energy drift E_tot(t) − E_tot(0) in meV with
its least-squares slope in meV/ps; (c) temperature, K; (d) region
membership over time: atoms in the inner region and in the buffer of each
boundary, and the high-level region calls per step.
"""
from __future__ import annotations

import numpy as np

from .outputs import read_csv


def plot_summary(csv_path, png_path, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    d = read_csv(csv_path)
    if not d or len(d.get("step", [])) == 0:
        return
    t = d["time_fs"]
    fig, ax = plt.subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
    a = ax[0, 0]
    for col, label, style in (("E_pot_eV", "potential", "-"), ("E_kin_eV", "kinetic", "-"),
                              ("E_total_eV", "total", "-k")):
        a.plot(t, d[col] - d[col][0], style, lw=1.2 if col == "E_total_eV" else 1.0, label=label)
    for col in d:
        if (col.startswith("E_") or col.startswith("dE_")) and col not in ("E_pot_eV", "E_kin_eV", "E_total_eV"):
            a.plot(t, d[col] - d[col][0], "--", lw=0.8, label=col[:-3])
    a.set(xlabel="time (fs)", ylabel="E − E(0) (eV)", title="energy components")
    a.legend(fontsize=7, ncol=2)

    a = ax[0, 1]
    drift = (d["E_total_eV"] - d["E_total_eV"][0]) * 1e3
    a.plot(t, drift, "k", lw=1)
    if len(t) > 2 and t[-1] > t[0]:
        slope = np.polyfit(t / 1000.0, drift, 1)[0]
        a.set_title(f"total-energy drift: {slope:+.3g} meV/ps, max |ΔE| {np.abs(drift).max():.3g} meV")
    else:
        a.set_title("total-energy drift")
    a.set(xlabel="time (fs)", ylabel="E_tot − E_tot(0) (meV)")

    a = ax[1, 0]
    a.plot(t, d["T_K"], lw=1)
    a.set(xlabel="time (fs)", ylabel="temperature (K)", title="temperature")

    a = ax[1, 1]
    regions = [c[len("n_inner_"):] for c in d if c.startswith("n_inner_")]
    calls = a.twinx() if regions else None
    for k, r in enumerate(regions):
        color = f"C{k}"
        a.step(t, d[f"n_inner_{r}"], where="post", color=color, lw=1.2, label=f"{r}: inner atoms")
        a.step(t, d[f"n_buffer_{r}"], where="post", color=color, lw=1.0, ls="--", label=f"{r}: buffer atoms")
        calls.plot(t, d[f"high_calls_{r}"], ls=":", color=color, lw=0.8, label=f"{r}: region calls")
    a.set(xlabel="time (fs)", ylabel="atoms", title="region membership")
    if regions:
        calls.set_ylabel("high-level region calls per step")
        h1, l1 = a.get_legend_handles_labels()
        h2, l2 = calls.get_legend_handles_labels()
        a.legend(h1 + h2, l1 + l2, fontsize=7)
    if title:
        fig.suptitle(title)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
