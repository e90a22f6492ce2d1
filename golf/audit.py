"""`python -m golf.audit artifact=PATH [eval=...] [ttt=...] [audit.*]`: the behavioural compliance audit of an
artifact's evaluation (C1-C4, the artifact size and the evaluation time), no training.

PATH is an artifact file or a run directory holding artifact.golf. The audit reruns the evaluation, with the eval and
ttt settings given here, on the first audit.tokens validation tokens, writes compliance.json into this job's run
directory, adds "compliant" to its metrics.json and prints a verdict table. A single run exits 1 when the evaluation
is not compliant, so scripts can gate on it; bad input exits 2 as everywhere in golf.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from golf.atomic import atomic_write_json
from golf.cli import run_hydra
from golf.config import GolfConfig, to_plain_dict
from golf.errors import ConfigError
from golf.evaluate.artifact_eval import load_model
from golf.evaluate.audit_checks import run_audit, verdict_table
from golf.hardware import autocast, setup_device
from golf.eval import artifact_file
from golf.job import ARTIFACT_NAME, load_data, run_job
from golf.quant.artifact import load_artifact
from golf.quant.code_size import size_accounting
from golf.runs import RunDir
from golf.train import checked_config
from golf.wandb_run import WandbRun

COMPLIANCE_NAME = "compliance.json"


def scored_eval_time(path: Path, cfg: GolfConfig) -> Optional[float]:
    """eval_time_s of the run that wrote this artifact, when its run directory says it was scored with the same
    evaluation (eval.seq_len, eval.stride, eval.max_tokens and every ttt setting); None otherwise."""
    try:
        metrics = json.loads((path.parent / "metrics.json").read_text())
        scored = yaml.safe_load((path.parent / "config.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(metrics, dict) or not isinstance(scored, dict):
        return None
    mine = to_plain_dict(cfg)
    same = all(scored.get("eval", {}).get(k) == mine["eval"][k] for k in ("seq_len", "stride", "max_tokens")) and \
        scored.get("ttt") == mine["ttt"]
    seconds = metrics.get("eval_time_s")
    return float(seconds) if same and isinstance(seconds, (int, float)) else None


def audit_artifact(cfg: GolfConfig, run: RunDir, tracker: WandbRun) -> dict[str, Any]:
    path = artifact_file(cfg.artifact)
    if cfg.hardware.world_size > 1:
        run.log(f"the audit is single-process: hardware.nproc_per_node={cfg.hardware.nproc_per_node} is ignored here")
    device = setup_device(cfg.hardware)
    artifact = load_artifact(path)
    if artifact.vocab_size != cfg.data.vocab_size:
        raise ConfigError("data.vocab_size", f"is {cfg.data.vocab_size} but the artifact {path} was trained with a "
                          f"vocabulary of {artifact.vocab_size}; set data.vocab_size={artifact.vocab_size}")
    _, _, tables, val = load_data(cfg, run.log)
    eval_time_s = scored_eval_time(path, cfg)
    record = run_audit(lambda: load_model(artifact, device), val, tables, cfg.eval, cfg.ttt, cfg.audit, device,
                       lambda: autocast(cfg.hardware, device), model_bytes=path.stat().st_size,
                       eval_time_s=eval_time_s, log=run.log, hardware=cfg.hardware.name)
    record.update(artifact_path=str(path), artifact_sha256=artifact.sha256)
    atomic_write_json(run.path / COMPLIANCE_NAME, record)
    run.log(verdict_table(record))
    tracker.log({"audit/compliant": int(record["compliant"])})
    return {
        "status": "ok",
        "seed": cfg.seed,
        "compliant": record["compliant"],
        "illegal_protocol": record["illegal_protocol"],
        "val_bpb": None,  # the audit scores a slice, not the validation set: see slice_bpb
        "val_loss": None,
        "slice_bpb": record["slice_bpb"],
        "slice_tokens": record["slice_tokens"],
        **size_accounting(path.stat().st_size, cfg.ttt),
        "artifact_sha256": artifact.sha256,
        "artifact_path": str(path),
        "reused_artifact": True,
        "eval_time_s": eval_time_s,
        "audit_time_s": record["time_s"],
        "model": artifact.model,
        "diagnostics": record["diagnostics"],
    }


def task(cfg: DictConfig) -> Optional[bool]:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    golf_cfg = checked_config(cfg, run_dir, scores_an_artifact=True, check=lambda c: artifact_file(c.artifact))
    metrics = run_job(golf_cfg, run_dir, list(hydra_cfg.overrides.task), body=audit_artifact, job_type="audit")
    if not metrics.get("compliant") and hydra_cfg.mode == RunMode.RUN:
        sys.exit(1)
    return metrics.get("compliant")


def main() -> None:
    run_hydra(task, config_name="audit")


if __name__ == "__main__":
    main()
