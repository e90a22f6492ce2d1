"""golf.audit's job: the behavioural compliance audit of an artifact's evaluation (C1-C4, the artifact size and the
evaluation time; golf/evaluate/audit_checks.py) on the first audit.tokens validation tokens, in one process ->
compliance.json, "compliant" in metrics.json, and a verdict table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import yaml

from golf.atomic import atomic_write_json
from golf.config import GolfConfig, to_plain_dict
from golf.errors import ConfigError
from golf.evaluate.artifact_eval import load_model
from golf.evaluate.audit_calibration import read_calibration
from golf.evaluate.audit_checks import run_audit, verdict_table
from golf.hardware import autocast, setup_device
from golf.job.artifact import artifact_file
from golf.job.prepare import load_data
from golf.quant.artifact import load_artifact
from golf.quant.code_size import size_accounting
from golf.runs import RunDir
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
    _, tokenizer, tables, val = load_data(cfg, run.log)
    eval_time_s = scored_eval_time(path, cfg)
    record = run_audit(lambda: load_model(artifact, device), val, tables, cfg.eval, cfg.ttt, cfg.audit, device,
                       lambda: autocast(cfg.hardware, device), model_bytes=path.stat().st_size,
                       eval_time_s=eval_time_s, log=run.log, hardware=cfg.hardware.name, quant=artifact.quant,
                       calibration=read_calibration(path.parent), tokenizer=tokenizer)
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
