"""The ``hybrid`` command line.

    hybrid run CONFIG.toml                 run the dynamics a configuration describes
    hybrid run --resume CONFIG.toml        continue it from its last checkpoint
    hybrid run --overwrite CONFIG.toml     start again, replacing its outputs
    hybrid check CONFIG.toml               validate the configuration only

Exit codes: 0 success; 1 the run stopped (SCF failure, NaN, interrupted) with
outputs and the last checkpoint intact; 2 a bad configuration or command line.
"""
from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hybrid", description="QM / Δ-ML / MLIP multiscale molecular dynamics")
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
        from .md.runner import RunFailed, Runner
        runner = Runner(cfg, resume=args.resume, overwrite=args.overwrite,
                        progress=False if args.no_progress else None)
        try:
            summary = runner.run()
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


if __name__ == "__main__":
    sys.exit(main())
