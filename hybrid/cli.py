"""The ``hybrid`` command line.

    hybrid run CONFIG.toml                 run the dynamics a configuration describes
    hybrid run --resume CONFIG.toml        continue it from its last checkpoint
    hybrid run --overwrite CONFIG.toml     start again, replacing its outputs
    hybrid check CONFIG.toml               validate the configuration only

    hybrid --version                       the installed version

Exit codes:

    0  success
    1  the run stopped (SCF failure, NaN/inf, a second Ctrl-C, a full disk);
       outputs keep every completed step and the last checkpoint is intact
    2  a bad configuration, input file or command line; nothing was run
    3  SIGTERM or Ctrl-C: the run stopped after the current step with a
       checkpoint there and every output flushed; `hybrid run --resume` goes on
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
    from .config import ConfigError, load_config
    from .errors import HybridError
    try:
        cfg = load_config(args.config)
        if args.command == "check":
            from .md.levels import build_model
            from .md.structure import load_structure
            st = cfg["structure"]
            structure = load_structure(st["file"], st["charge"], st["multiplicity"], st["molecules"])
            model = build_model(cfg, structure)
            print(f"{args.config}: OK ({len(structure.system)} atoms, {len(structure.molecules)} molecules; "
                  f"levels {' < '.join(model.names)})")
            return 0
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


if __name__ == "__main__":
    sys.exit(main())
