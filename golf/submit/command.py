"""`python -m golf.submit RUN_OR_SWEEP_DIR [submit.KEY=VALUE ...]`: write a records folder and say
where. Argparse with key=value settings, not Hydra, like golf.report: it reads finished runs and composes no run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from golf.errors import GolfError
from golf.submit.folder import write_submission
from golf.submit.settings import SubmitSettings, parse_settings


def build_parser() -> argparse.ArgumentParser:
    keys = ", ".join(f"submit.{name}" for name in SubmitSettings.__dataclass_fields__)
    parser = argparse.ArgumentParser(
        prog="python -m golf.submit",
        description="A challenge records folder (train_gpt.py, submission.json, README.md, logs) from a finished run "
                    "or a sweep of seeds of one config; see docs/submitting.md.")
    parser.add_argument("run_dir", metavar="RUN_OR_SWEEP_DIR", help="outputs/runs/<run> or outputs/sweeps/<sweep>")
    parser.add_argument("settings", nargs="*", metavar="submit.KEY=VALUE", help=f"settings: {keys}")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        made = write_submission(Path(args.run_dir), parse_settings(args.settings))
    except GolfError as err:
        _exit_with(err)
    doc = made.doc
    std = f" (std {doc['val_bpb_std']:.5f})" if doc["val_bpb_std"] is not None else ""
    print(f"val_bpb {doc['val_bpb']:.8f}{std} over seeds {doc['seeds']}; artifact at most {doc['bytes_total']:,} "
          f"bytes ({doc['model_bytes_max']:,} model + {doc['code_bytes']:,} train_gpt.py)")
    print(f"wrote: {made.folder}")
    return 0


def _exit_with(err: GolfError) -> None:
    try:
        from golf.cli import exit_with  # one paragraph on stderr, exit code 2: the same as every entry point
    except ImportError:  # pragma: no cover - golf.cli needs hydra; the message must still come out
        print(f"golf: {err}", file=sys.stderr)
        sys.exit(GolfError.exit_code)
    exit_with(err)
