"""`python -m golf.eval artifact=PATH [overrides]`: score a saved artifact, no training.

The artifact carries its model config; data, eval, ttt and hardware come from the command line. The number is the
same code path as the training run's round trip, so it reproduces that run's quant_val_bpb exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from golf.cli import run_hydra
from golf.config import GolfConfig
from golf.evaluate.artifact_eval import evaluate_artifact
from golf.hardware import autocast, setup_device
from golf.job import load_data, run_job
from golf.quant.code_size import ARTIFACT_LIMIT_BYTES, size_accounting
from golf.runs import RunDir
from golf.train import checked_config
from golf.wandb_run import WandbRun


def score_artifact(cfg: GolfConfig, run: RunDir, tracker: WandbRun) -> dict[str, Any]:
    device = setup_device(cfg.hardware)
    data, _, _, _ = load_data(cfg, run.log)
    path = Path(cfg.artifact)
    score = evaluate_artifact(path, data.val_files, data.tokenizer_path, cfg.eval.seq_len, cfg.eval.batch_seqs, device,
                              max_tokens=cfg.eval.max_tokens or None, save_token_nll=cfg.eval.save_token_nll,
                              autocast=lambda: autocast(cfg.hardware, device))
    result = score.result
    run.log(f"artifact {path}: val_loss {result.val_loss:.6f} val_bpb {result.val_bpb:.6f} over {result.tokens:,} "
            f"tokens / {result.bytes:,} bytes ({result.time_s:.1f}s)")
    size = size_accounting(path.stat().st_size)
    metrics = {
        "status": "over_budget" if size["artifact_bytes"] > ARTIFACT_LIMIT_BYTES else "ok",
        "seed": cfg.seed,
        "val_bpb": result.val_bpb,
        "val_loss": result.val_loss,
        "quant_val_bpb": result.val_bpb,
        "quant_val_loss": result.val_loss,
        **size,
        "artifact_sha256": score.artifact.sha256,
        "artifact_path": str(path),
        "reused_artifact": True,
        "load_time_s": score.load_time_s,
        "eval_tokens": result.tokens,
        "eval_bytes": result.bytes,
        "eval_time_s": result.time_s,
        "model": score.artifact.model,
        "diagnostics": {},
    }
    tracker.log({"final/val_bpb": result.val_bpb})
    return metrics


def task(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    golf_cfg = checked_config(cfg, run_dir, scores_an_artifact=True)
    metrics = run_job(golf_cfg, run_dir, list(hydra_cfg.overrides.task), body=score_artifact, job_type="eval")
    return metrics.get("val_bpb")


def main() -> None:
    run_hydra(task, config_name="eval")


if __name__ == "__main__":
    main()
