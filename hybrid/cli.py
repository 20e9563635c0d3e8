"""The ``hybrid`` command line.

    hybrid run CONFIG.toml                 run the dynamics a configuration describes
    hybrid run --resume CONFIG.toml        continue it from its last checkpoint
    hybrid run --overwrite CONFIG.toml     start again, replacing its outputs
    hybrid check CONFIG.toml               validate the configuration, build every level, check it
                                           against the structure and evaluate step 0 once; no output
    hybrid sample CONFIG.toml              run (or resume) its [sampling] section: PIMD, hybrid MC,
                                           free energies between levels or umbrella sampling
                                           (hybrid.md.sample); the report goes to <output>/sampling/

    hybrid transport TRAJ --species Na+=Na [--species Cl-=Cl] [--extent LO HI] [--voltage V] ...
                                           profiles, φ(x), D(x), F(x) and steady Nernst–Planck fluxes
                                           from a trajectory (continuum.pipeline; SI units: m, s, V,
                                           mol/m³); the report goes to --out (default transport/)

    hybrid --version                       the installed version

Exit codes:

    0  success
    1  the run stopped (SCF failure, NaN/inf, a second Ctrl-C, a full disk);
       outputs keep every completed step and the last checkpoint is intact
       (a failure at step 0 leaves no outputs; ``check`` exits 1 for it too);
       ``sample``: a task failed twice (the others are stored; rerun to retry it);
       ``transport``: a solver failed
    2  a bad configuration, input file or command line, found before any
       output is created (``check`` and ``run`` alike: :mod:`hybrid.md.preflight`;
       ``transport``: a bad trajectory, species or option)
    3  SIGTERM or Ctrl-C: the run stopped after the current step with a
       checkpoint there and every output flushed; `hybrid run --resume` goes on
       (``sample``: the finished tasks are stored; the same command goes on)
"""
from __future__ import annotations

import argparse
import os
import sys


def _parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version
    try:
        v = version("qmml-hybrid")
    except PackageNotFoundError:        # run from a source tree that was not installed
        v = "unknown (not installed)"
    p = argparse.ArgumentParser(prog="hybrid", description="QM / Δ-ML / MLIP multiscale molecular dynamics")
    p.add_argument("--version", action="version", version=f"hybrid (qmml-hybrid) {v}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the MD a TOML configuration describes")
    r.add_argument("config", help="the configuration file (TOML)")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue from the checkpoint in the output directory")
    g.add_argument("--overwrite", action="store_true", help="start again even if the output directory holds a run")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    c = sub.add_parser("check", help="validate a configuration and build its model, without running")
    c.add_argument("config")
    m = sub.add_parser("sample", help="run or resume the [sampling] section of a configuration")
    m.add_argument("config")
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    t = sub.add_parser("transport", help="D(x), F(x), φ(x) and Nernst–Planck fluxes from a trajectory (SI units)")
    t.add_argument("trajectory", help="trajectory file (ASE formats; DCD/XTC/... with --topology)")
    t.add_argument("--topology", help="topology for DCD/XTC/TRR/NetCDF trajectories")
    t.add_argument("--species", action="append", required=True, metavar="NAME=ATOMNAME",
                   help="a species and the atom name that selects it, e.g. Na+=Na (repeat for more)")
    t.add_argument("--axis", default="z", choices=["x", "y", "z"])
    t.add_argument("--bins", type=int, default=30)
    t.add_argument("--extent", type=float, nargs=2, metavar=("LO", "HI"), help="range along the axis in m "
                   "(default: the box)")
    t.add_argument("--temperature", type=float, default=298.15, help="K")
    t.add_argument("--voltage", type=float, default=0.0, help="applied V at the low end (0 at the high end)")
    t.add_argument("--concentration", action="append", default=[], metavar="NAME=CLEFT,CRIGHT",
                   help="boundary concentrations in mol/m³ (default: the trajectory's own)")
    t.add_argument("--valence", action="append", default=[], metavar="NAME=Z",
                   help="valence (default: the species' mean charge in the trajectory)")
    t.add_argument("--timestep", type=float, help="s between frames (default: from the file)")
    t.add_argument("--eps-r", type=float, default=1.0, help="relative permittivity for Poisson (1: all charges "
                   "are in the trajectory)")
    t.add_argument("--equal-mixing", action="store_true", help="bins with widths ∝ √D from a first estimate")
    t.add_argument("--out", default="transport", help="output directory")
    return p


def main(argv=None) -> int:
    try:
        try:
            return _main(argv)
        finally:                        # also after argparse's --help/--version (SystemExit)
            sys.stdout.flush()
    except BrokenPipeError:             # `hybrid check ... | head`: the reader left; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "transport":
        return _transport(args)
    from .config import ConfigError, load_config
    from .errors import HybridError
    try:
        cfg = load_config(args.config)
        if args.command == "check":
            return _check(args.config, cfg)
        if args.command == "sample":
            return _sample(args)
        from .md.runner import RunFailed, RunInterrupted, Runner
        runner = Runner(cfg, resume=args.resume, overwrite=args.overwrite,
                        progress=False if args.no_progress else None)
        try:
            summary = runner.run()
        except RunInterrupted as exc:
            print(f"hybrid run: {exc}", file=sys.stderr)
            return 3
        except RunFailed as exc:
            print(f"hybrid run: {exc}", file=sys.stderr)
            return 1
        print(summary.text())
        return 0
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except HybridError as exc:
        print(f"hybrid {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:              # an unreadable input or unwritable output before the run: one line
        if isinstance(exc, BrokenPipeError):
            raise
        print(f"hybrid {args.command}: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _sample(args) -> int:
    from .md import sample
    try:
        report = sample.run(args.config, progress=not args.no_progress)
    except KeyboardInterrupt:
        print("hybrid sample: interrupted; the finished tasks are stored, the same command goes on",
              file=sys.stderr)
        return 3
    except sample.TaskFailed as exc:
        print(f"hybrid sample: {exc}", file=sys.stderr)
        return 1
    print(report.read_text())
    print(f"written: {report.parent}")
    return 0


def _pairs(items, option, convert):
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"--{option} {item!r}: expected NAME=VALUE")
        try:
            out[name] = convert(value)
        except ValueError:
            raise ValueError(f"--{option} {item!r}: cannot read {value!r}") from None
    return out


def _transport(args) -> int:
    """``hybrid transport``: :func:`continuum.pipeline.transport` on the command line's options; bad input
    exits 2 before anything is written, a solver failure 1."""
    from continuum.pipeline import transport
    try:
        species = _pairs(args.species, "species", str)
        conc = _pairs(args.concentration, "concentration",
                      lambda v: tuple(float(c) for c in v.split(",")) if v.count(",") == 1 else float("x"))
        valences = _pairs(args.valence, "valence", float)
        report = transport(args.trajectory, species, args.axis, args.bins, args.extent, args.temperature,
                           args.voltage, conc, valences=valences, eps_r=args.eps_r, equal_mixing=args.equal_mixing,
                           topology=args.topology, timestep=args.timestep)
    except (ValueError, OSError) as exc:
        print(f"hybrid transport: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"hybrid transport: {exc}", file=sys.stderr)
        return 1
    out = report.write(args.out)
    print(report.markdown())
    print(f"written: {out}")
    return 0


def _check(path, cfg) -> int:
    """Everything before step 0 (:func:`hybrid.md.preflight.preflight`), then the potential once at the
    step-0 positions; exit 1 if that evaluation fails (as ``hybrid run`` would at step 0)."""
    from .md.preflight import evaluate_step0, preflight
    pre = preflight(cfg)
    structure, model = pre.structure, pre.model
    try:
        res = evaluate_step0(pre)
    except Exception as exc:  # the potential's own failure (SCF, NaN, buffer overflow), as a run reports it
        text = str(exc).strip() or repr(exc)
        print(f"hybrid check: step 0 (t = 0.00 fs): the potential failed: {type(exc).__name__}: {text}",
              file=sys.stderr)
        return 1
    mm = f"; [mm] model region {len(pre.model_structure.system)} atoms" if cfg.get("mm") else ""
    print(f"{path}: OK ({len(structure.system)} atoms, {len(structure.molecules)} molecules; "
          f"levels {' < '.join(model.names)}{mm})")
    for hi, lo, atoms, de in pre.offsets:
        if de is not None:
            print(f"  energy zeros: {hi} - {lo} = {de:+.4g} eV on one molecule ({len(atoms)} atoms)")
    print(f"  step 0: E_pot = {res.energy:.6f} eV (model), max |F| = {abs(res.forces).max():.4g} eV/Å")
    return 0


if __name__ == "__main__":
    sys.exit(main())
