"""golf.eval's job: score a saved artifact, no training. prepare (golf/job/prepare.py) -> score (golf/job/score.py,
the code path golf.train's job scores its own artifact with, so it reproduces that run's quant_val_bpb exactly) ->
the sizes and status."""

from __future__ import annotations

from typing import Any

from golf.config import GolfConfig
from golf.job.artifact import artifact_file
from golf.job.prepare import prepare
from golf.job.score import score
from golf.quant.code_size import ARTIFACT_LIMIT_BYTES, size_accounting
from golf.runs import RunDir
from golf.wandb_run import WandbRun


def score_artifact(cfg: GolfConfig, run: RunDir, tracker: WandbRun) -> dict[str, Any]:
    job = prepare(cfg, run, tracker)
    path = artifact_file(cfg.artifact)
    scores = score(job, path)
    size = size_accounting(path.stat().st_size, cfg.ttt)
    tracker.log_final({**scores, **size}, train_steps=0)  # as golf.train logs its scores; no training here
    return {
        "status": "over_budget" if size["artifact_bytes"] > ARTIFACT_LIMIT_BYTES else "ok",
        "seed": cfg.seed,
        **scores,
        **size,
        "artifact_path": str(path),
        "reused_artifact": True,
    }
