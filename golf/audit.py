"""`python -m golf.audit artifact=PATH [eval=...] [ttt=...] [audit.*]`: the behavioural compliance audit of an
artifact's evaluation (C1-C4, the artifact size and the evaluation time), no training.

PATH is an artifact file or a run directory holding artifact.golf. The audit reruns the evaluation, with the eval and
ttt settings given here, on the first audit.tokens validation tokens, writes compliance.json into this job's run
directory, adds "compliant" to its metrics.json and prints a verdict table. A single run exits 1 when the evaluation
is not compliant, so scripts can gate on it; bad input exits 2 as everywhere in golf. One process always (the job:
golf/job/audit_job.py; the launch: golf/launch.py).
"""

from __future__ import annotations

import functools

from golf.job import run_job
from golf.job.artifact import check_artifact_given
from golf.job.audit_job import audit_artifact
from golf.launch import Entry, main as launch_main

ENTRY = Entry(
    module="golf.audit",
    config_name="audit",
    job=functools.partial(run_job, body=audit_artifact, job_type="audit"),
    result=lambda metrics: metrics.get("compliant"),
    check=check_artifact_given,
    scores_an_artifact=True,
    several_processes=False,
    passed=lambda metrics: bool(metrics.get("compliant")),
)


def main() -> None:
    launch_main(ENTRY)


if __name__ == "__main__":
    main()
