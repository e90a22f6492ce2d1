"""`python -m golf.train [overrides]`: compose -> validate -> launch (in process, or torchrun underneath when
hardware.nproc_per_node > 1) -> run one job (per multirun job) -> scorecard. Under torchrun the ranks read the
launcher's config.yaml (GOLF_CONFIG); a hand-typed `torchrun -m golf.train k=v` composes on every rank.

The launch is golf/launch.py's; the job, prepare -> train -> export -> score -> record, is golf/job/train_job.py.
"""

from __future__ import annotations

import functools
from typing import Any

from golf.job import run_job
from golf.job.train_job import train_export_score
from golf.launch import Entry, main as launch_main


def headline(metrics: dict[str, Any]) -> float:
    """val_bpb, what an Optuna sweeper minimizes; a job without one (diverged, failed) is the worst there is."""
    bpb = metrics.get("val_bpb")
    return float("inf") if bpb is None else bpb


ENTRY = Entry(
    module="golf.train",
    config_name="train",
    job=functools.partial(run_job, body=train_export_score, job_type="train"),
    result=headline,
    wandb_labels=True,
    sweep_goes_on=True,  # one failed job fails only itself: metrics.json says "failed" and the sweep goes on
)


def main() -> None:
    launch_main(ENTRY)


if __name__ == "__main__":
    main()
