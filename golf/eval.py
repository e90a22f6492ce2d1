"""`python -m golf.eval artifact=PATH [eval=...] [ttt=...]`: score a saved artifact (or a run directory's), no training.

The artifact carries its model config; data, eval, ttt and hardware come from the command line. The number is the
same code path as the training run's round trip, so it reproduces that run's quant_val_bpb exactly. The launch is
golf/launch.py's (torchrun underneath when hardware.nproc_per_node > 1); the job is golf/job/eval_job.py.
"""

from __future__ import annotations

import functools

from golf.job import run_job
from golf.job.artifact import check_artifact_given
from golf.job.eval_job import score_artifact
from golf.launch import Entry, main as launch_main

ENTRY = Entry(
    module="golf.eval",
    config_name="eval",
    job=functools.partial(run_job, body=score_artifact, job_type="eval"),
    result=lambda metrics: metrics.get("val_bpb"),
    check=check_artifact_given,
    scores_an_artifact=True,
)


def main() -> None:
    launch_main(ENTRY)


if __name__ == "__main__":
    main()
