"""`python -m golf.report DIR [--baseline KEY=VALUE[,KEY=VALUE]] [--metrics NAME[,NAME]]` (and `golf-report`):
write a sweep's report and print its table. Argparse, not Hydra: the report reads finished runs and composes no
config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from golf.errors import GolfError
from golf.report.write import write_report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m golf.report",
        description="Table (summary.csv, summary.md) and plots of a sweep's jobs, written into the sweep directory.")
    parser.add_argument("sweep_dir", metavar="DIR", help="the multirun's directory, e.g. outputs/sweeps/<stamp>_<name>")
    parser.add_argument("--baseline", metavar="KEY=VALUE[,KEY=VALUE]",
                        help="the configuration to compare against (default: the first without TTT, else the first "
                             "job's)")
    parser.add_argument("--metrics", metavar="NAME[,NAME]", action="append", default=[],
                        help="more metrics.json keys to average, e.g. ttt_time_s,artifact_bytes")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    metrics = [m.strip() for chunk in args.metrics for m in chunk.split(",") if m.strip()]
    try:
        result = write_report(Path(args.sweep_dir), args.baseline, metrics)
    except GolfError as err:
        _exit_with(err)
    print(result.markdown)
    print("wrote: " + ", ".join(str(p) for p in result.files))
    return 0


def _exit_with(err: GolfError) -> None:
    try:
        from golf.cli import exit_with  # one paragraph on stderr, exit code 2: the same as every entry point
    except ImportError:  # pragma: no cover - golf.cli needs hydra and torch; the message must still come out
        print(f"golf: {err}", file=sys.stderr)
        sys.exit(GolfError.exit_code)
    exit_with(err)
