"""The frame every job runs in: skip a job that finished earlier, open the run directory and W&B, run the job's body,
write metrics.json whatever happens (status "failed" with the error), print the scorecard.

Takes a typed GolfConfig; no Hydra here. Under torchrun every rank runs this; only rank 0 writes files, W&B and the
scorecard. The body is what the entry point's job does: golf.train's is golf/job/train_job.py (prepare, train,
export, score, record), golf.eval's golf/job/eval_job.py, golf.audit's golf/job/audit_job.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Optional

from golf.collectives import rank_world
from golf.config import GolfConfig, to_plain_dict
from golf.evaluate.scoring import OLD_METRIC_NAMES
from golf.job.train_job import train_export_score
from golf.restart import finished_earlier
from golf.runs import RunDir
from golf.scorecard import show_scorecard
from golf.wandb_names import run_name
from golf.wandb_run import WandbRun

Body = Callable[[GolfConfig, RunDir, WandbRun], dict[str, Any]]


def run_job(cfg: GolfConfig, run_dir: Path, overrides: list[str], body: Optional[Body] = None,
            job_type: str = "train") -> dict[str, Any]:
    """Run `body` (training by default) in `run_dir`; metrics.json is written whatever happens (status "failed" with the error), then the
    scorecard is printed."""
    main = rank_world()[0] == 0
    plain = to_plain_dict(cfg)
    done = finished_earlier(Path(run_dir), plain, cfg.train.resume)
    if done is not None:
        if main:
            show_scorecard(done, Path(run_dir))
        return done
    run = RunDir(run_dir, writer=main)
    run.start(plain, overrides)
    logger = cfg.logger if main else dataclasses.replace(cfg.logger, name="none")
    tracker = WandbRun(logger, run.path, name=run_name(run.path, overrides), config={**plain, "overrides": overrides},
                       job_type=job_type)
    metrics: dict[str, Any] = {"status": "failed", "seed": cfg.seed}
    try:
        metrics = (body or train_export_score)(cfg, run, tracker)
    except BaseException as err:
        metrics["error"] = f"{type(err).__name__}: {err}"
        run.log(f"failed: {metrics['error']}")
        raise
    finally:
        run.finish(metrics)
        tracker.finish({k: v for k, v in metrics.items() if k not in OLD_METRIC_NAMES})  # W&B: current names only
    if main:
        show_scorecard(metrics, run.path)
    return metrics

