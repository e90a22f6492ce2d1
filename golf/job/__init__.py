"""One job, start to end, on a typed GolfConfig (no Hydra here): golf/job/lifecycle.py is the frame (run directory,
W&B, metrics.json whatever happens, the scorecard) and each entry point's job is a body run inside it: golf.train's
stages (golf/job/train_job.py: prepare, train, export, score, record), golf.eval's (golf/job/eval_job.py) and
golf.audit's (golf/job/audit_job.py). Starting a job (in process, or under torchrun) is golf/launch.py's."""

from golf.job.artifact import ARTIFACT_NAME
from golf.job.lifecycle import Body, run_job

__all__ = ["ARTIFACT_NAME", "Body", "run_job"]
