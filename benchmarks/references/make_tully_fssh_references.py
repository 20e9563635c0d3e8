"""Reference FSSH results for Tully's three models from an independent implementation, made once and stored.

The reference code is mudslide (Parker group, https://github.com/smparker/mudslide; PyPI ``mudslide``),
whose model definitions and Tully-1990 FSSH follow the paper. It is not a dependency of qmml-hybrid: install
it in a separate environment and point ``--mudslide`` at its command:

    python3 -m venv /tmp/mudvenv && /tmp/mudvenv/bin/pip install mudslide==0.12.0
    python benchmarks/references/make_tully_fssh_references.py --mudslide /tmp/mudvenv/bin/mudslide

Settings: 2000 trajectories per momentum, start at x = −10 bohr on the lower adiabatic state, each ended
once it leaves the box −b < x < b (``BOUNDS``): b = 10 bohr for the dual and extended models, as
:func:`hybrid.tully.scatter`. Mudslide's default box, ±5 bohr, ends reflected trajectories of the
extended-coupling model inside its coupling region (its couplings peak at x ≈ −5.7 bohr) and cuts the
tails of the dual crossing's (exp(−0.06 x²) is 0.22 at 5 bohr); it is kept for the simple crossing,
whose coupling exp(−x²) is 1e-11 there. Time step scaled as
dt = 200/k a.u. (0.1 bohr of travel per step at any k), Tully's hopping probability and "exp" electronic
propagation (mudslide's defaults), one seed per point. Writes
``tully_fssh_mudslide.json``: {model: {k: {channel: probability}}} with the command lines and the version.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "tully_fssh_mudslide.json"
# momenta (ħ/bohr) per model; the dual avoided crossing on Tully's grid of ln(E) = −4 … 1, E = k²/2M
GRID = {"dual": [8.6, 14.1, 23.3, 38.4, 63.2, 104.3],
        "extended": [4, 6, 8, 10, 12, 15, 20, 25, 30],
        "simple": [4, 6, 8, 10, 12, 15, 20, 25, 30]}
BOUNDS = {"dual": 10.0, "extended": 10.0, "simple": 5.0}      # bohr: the box outside which a trajectory ends
NAMES = {"simple": "sac", "dual": "dac", "extended": "ecr"}
CHANNELS = ("reflected_0", "transmitted_0", "reflected_1", "transmitted_1")


def _numbers(row) -> bool:
    try:
        [float(x) for x in row]
    except ValueError:
        return False
    return True


def run_point(mudslide, model, k, samples, seed):
    cmd = [mudslide, "-m", model, "-k", str(k), str(k), "-n", "1", "-s", str(samples), "-y", "-t", "200",
           "-x", "-10", "-b", f"{BOUNDS[model]:g}", "-z", str(seed), "-o", "averaged"]
    with tempfile.TemporaryDirectory() as tmp:
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, check=True)
    rows = [row for row in (ln.split() for ln in res.stdout.splitlines()) if len(row) == 5 and _numbers(row)]
    if len(rows) != 1:                       # its warnings ("Ignoring unrecognized options") share stdout
        raise RuntimeError(f"unexpected mudslide output for {cmd}:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return dict(zip(CHANNELS, map(float, rows[0][1:]))), " ".join(cmd[1:])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mudslide", required=True, help="the mudslide command of its own environment")
    ap.add_argument("--samples", type=int, default=2000)
    args = ap.parse_args(argv)
    version = subprocess.run([args.mudslide, "--version"], capture_output=True, text=True).stdout
    version = version.splitlines()[0].strip()
    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    data.update({"reference": "mudslide", "version": version, "samples": args.samples})
    bounds = data.setdefault("bound_bohr", {})
    for model, ks in GRID.items():
        if bounds.get(NAMES[model]) != BOUNDS[model]:  # points made with another box are made again
            data[NAMES[model]] = {}
            bounds[NAMES[model]] = BOUNDS[model]
        points = data.setdefault(NAMES[model], {})
        for i, k in enumerate(ks):
            if f"{k:g}" in points:
                continue
            probs, cmd = run_point(args.mudslide, model, k, args.samples, seed=1000 + i)
            points[f"{k:g}"] = {**probs, "command": "mudslide " + cmd}
            tmp = OUT.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(data, indent=1))
            os.replace(tmp, OUT)
            print(model, k, probs, flush=True)


if __name__ == "__main__":
    sys.exit(main())
