"""Stage 4, score: the artifact as loaded from disk, every evaluation the config asks for (golf/evaluate/scoring.py:
standard, sliding, TTT, diagnostics, the audit), each per-chunk and per-step record into metrics.jsonl and W&B; rank
0 writes the side files (token_nll.npy, ...). golf.train scores the artifact it exported, golf.eval the one it is
given: the same code path, so golf.eval reproduces a run's numbers exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from golf.evaluate.scoring import score_artifact_file, write_side_files
from golf.job.prepare import Job
from golf.runs import RunDir
from golf.wandb_run import WandbRun


def score(job: Job, artifact: Path) -> dict[str, Any]:
    """metrics.json's scores of `artifact` (token_nll, a side file's content, only on rank 0)."""
    scores = score_artifact_file(job.cfg, artifact, job.data, job.device, job.autocast, job.run.log,
                                 record_logger(job.run, job.tracker))
    if job.main:
        write_side_files(scores, job.run.path)
    else:
        scores.pop("token_nll", None)
    return scores


def record_logger(run: RunDir, tracker: WandbRun) -> Callable[[dict[str, Any]], None]:
    """One record to metrics.jsonl and W&B (the TTT per-chunk curve, against the chunk index there, ...)."""
    def log_record(record: dict[str, Any]) -> None:
        run.log_metrics(record)
        if "ttt_chunk" in record:
            tracker.log_chunk(record)
        else:
            tracker.log(record)
    return log_record
