"""golf.train's job: its five stages in order. prepare (golf/job/prepare.py) -> train (golf/job/train.py) -> export
(golf/job/export.py) -> score (golf/job/score.py) -> record (golf/job/record.py). With train.reuse an identical
training's artifact from the cache stands in for train and export (golf/job/reuse.py).

The headline val_bpb is always the artifact's score after the disk round trip; the in-memory score of the trained
(or averaged) weights is pre_quant_val_bpb. Under torchrun rank 0 alone prepares data, consults the cache and writes
the artifact; the others follow its decisions (broadcast) and load the same file after a barrier.
"""

from __future__ import annotations

from typing import Any

from golf.calibrate import write_record as write_calibration
from golf.collectives import barrier, broadcast_object
from golf.config import GolfConfig
from golf.job.artifact import ARTIFACT_NAME
from golf.job.export import export
from golf.job.prepare import Job, prepare, seed_everything, training_data_sha256
from golf.job.record import record
from golf.job.reuse import reused_or_made
from golf.job.score import score
from golf.job.train import train
from golf.runs import RunDir
from golf.wandb_run import WandbRun


def train_export_score(cfg: GolfConfig, run: RunDir, tracker: WandbRun) -> dict[str, Any]:
    seed_everything(cfg.seed)
    job = prepare(cfg, run, tracker)
    # what training reads, hashed: the cache and the checkpoints are keyed on it, and every shard is checked
    data_sha256 = broadcast_object(training_data_sha256(cfg, job.data, run.log) if job.main else None)
    if cfg.train.reuse:
        metrics = reused_or_made(job, data_sha256, lambda: train_and_export(job, data_sha256))
    else:
        metrics = train_and_export(job, data_sha256)
    metrics["data_sha256"] = data_sha256
    if job.main:  # beside the artifact, where the audit looks (a reused artifact's record comes from the cache)
        write_calibration(run.path, metrics.get("gptq_calibration"))
    barrier()  # the artifact is on disk before any rank loads it
    metrics["seed"] = cfg.seed
    if metrics["status"] != "ok":
        return metrics
    metrics.update(score(job, run.path / ARTIFACT_NAME))
    return record(job, metrics)


def train_and_export(job: Job, data_sha256: str) -> dict[str, Any]:
    """Stages 2 and 3; the training's and the export's metrics. The checkpoints go once the artifact is written:
    it is what a rerun takes (train.reuse)."""
    trained = train(job, data_sha256)
    if trained.metrics["status"] != "ok":
        return trained.metrics
    trained.metrics.update(export(job, trained.model, trained.metrics["train_time_s"]))
    if job.main:
        trained.checkpointer.clear()
    return trained.metrics
