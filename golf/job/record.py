"""Stage 5, record: what sums a trained job up (sizes against the 16,000,000-byte limit, its status, the quantization
gap, the compressors' bpb on the same bytes, the world size), into metrics.jsonl and W&B's summary; run_job
(golf/job/lifecycle.py) then writes metrics.json and the scorecard."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from golf.collectives import rank_world
from golf.config import GolfConfig
from golf.evaluate.compressors import compressor_bpb
from golf.job.artifact import ARTIFACT_NAME
from golf.job.prepare import Job
from golf.quant.code_size import ARTIFACT_LIMIT_BYTES, size_accounting
from golf.submit.bundle import code_bytes_submission


def record(job: Job, metrics: dict[str, Any]) -> dict[str, Any]:
    """`metrics` (training, export and scores) completed; the job's metrics.json content."""
    cfg = job.cfg
    metrics.update(size_accounting(metrics["model_bytes"], cfg.ttt), artifact_path=str(job.run.path / ARTIFACT_NAME))
    if job.main:  # the challenge's count: the model plus the train_gpt.py golf.submit would ship (golf/submit/)
        metrics["code_bytes_submission"] = code_bytes_submission(cfg, Path(cfg.data.shards_dir).name,
                                                                 Path(cfg.data.tokenizer).name)
        metrics["artifact_bytes_submission"] = metrics["model_bytes"] + metrics["code_bytes_submission"]
    metrics["status"] = status_of(metrics, cfg)
    metrics["quant_gap_bpb"] = metrics["quant_val_bpb"] - metrics["pre_quant_val_bpb"]
    if cfg.eval.compressor_baselines and job.main:
        metrics["diagnostics"]["compressor_bpb"] = compressor_bpb(job.val, job.sp)
    metrics["world_size"] = rank_world()[1]
    job.run.log_metrics({"step": metrics["steps"], "val_loss": metrics["val_loss"], "val_bpb": metrics["val_bpb"],
                         "pre_quant_val_bpb": metrics["pre_quant_val_bpb"]})
    job.tracker.log_final(metrics, train_steps=metrics["steps"])
    return metrics


def status_of(metrics: dict[str, Any], cfg: GolfConfig) -> str:
    """ok, unless the headline diverged (not finite or above eval.diverge_bpb) or the artifact is over the limit."""
    bpb = metrics.get("val_bpb")
    if bpb is None or not math.isfinite(bpb) or bpb > cfg.eval.diverge_bpb:
        return "diverged"
    return "over_budget" if metrics["artifact_bytes"] > ARTIFACT_LIMIT_BYTES else "ok"
