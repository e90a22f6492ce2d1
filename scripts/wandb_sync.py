"""Upload the offline W&B runs of a sweep (or of any directory of runs) once there is a network.

    python scripts/wandb_sync.py outputs/sweeps/<stamp>_<name>            # every job and the sweep's summary run
    python scripts/wandb_sync.py outputs/runs --dry-run                   # list what would be uploaded
    python scripts/wandb_sync.py DIR --project golf --entity my-team

golf runs W&B offline by default: each job's run lives in <run dir>/wandb/offline-run-*, the sweep's summary run
in <sweep dir>/wandb/. This finds them all and hands them to `wandb sync` in one call; runs already uploaded are
skipped by W&B itself (it marks them synced). Needs `wandb login` (or WANDB_API_KEY) first.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def offline_runs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("offline-run-*") if p.is_dir() and p.parent.name == "wandb")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a sweep directory, a run directory or outputs/")
    parser.add_argument("--project")
    parser.add_argument("--entity")
    parser.add_argument("--dry-run", action="store_true", help="list the runs, upload nothing")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"error: {args.root} is not a directory; give a sweep or run directory", file=sys.stderr)
        return 2
    runs = offline_runs(args.root)
    if not runs:
        print(f"error: no offline W&B runs under {args.root} (looked for */wandb/offline-run-*); runs made with "
              "logger=none or WANDB_MODE=disabled have none", file=sys.stderr)
        return 2
    for run in runs:
        print(run)
    if args.dry_run:
        print(f"{len(runs)} offline run(s); --dry-run: nothing uploaded")
        return 0
    wandb_cli = shutil.which("wandb") or str(Path(sys.executable).parent / "wandb")
    command = [wandb_cli, "sync", "--yes", "--skip-synced"]
    command += (["--project", args.project] if args.project else []) + (["--entity", args.entity] if args.entity else [])
    return subprocess.run(command + [str(r) for r in runs]).returncode


if __name__ == "__main__":
    sys.exit(main())
