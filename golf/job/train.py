"""Stage 2, train: build the training (golf/training_build.py), resume it from a checkpoint when one fits, fit,
then leave the weights the artifact stores (QAT off, the whole layer plan, the averaged weights when averaging) and
score them in memory (pre_quant_val_bpb)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from golf.cache import cache_key
from golf.calibrate import reserves_clock, training_clock
from golf.checkpoint import Checkpointer, resume_training
from golf.collectives import rank_world
from golf.config import GolfConfig
from golf.evaluate.bpb import EvalResult
from golf.evaluate.windows import evaluate_standard
from golf.job.prepare import Job
from golf.logs import progress_allowed
from golf.model.gpt import GPT, count_parameters
from golf.training_build import build_model, build_training, grad_accum_steps, leave_export_weights


@dataclass
class Trained:
    model: GPT
    metrics: dict[str, Any]  # the training's metrics (status, steps, ..., pre_quant_val_bpb when it ended ok)
    checkpointer: Checkpointer


def train(job: Job, data_sha256: str) -> Trained:
    cfg, run, tracker = job.cfg, job.run, job.tracker
    model = build_model(cfg, job.device)
    rank, world = rank_world()
    n_params = count_parameters(model)
    run.log(f"model {cfg.model.name}: {n_params:,} parameters; data {cfg.data.name}: "
            f"{job.data.train_tokens:,} train / {len(job.val):,} val tokens; device {job.device}, {cfg.hardware.dtype}, "
            f"{world} process(es)")

    def evaluate() -> EvalResult:
        return evaluate_standard(model, job.val, job.tables, cfg.eval.seq_len, cfg.eval.batch_seqs, job.device,
                                 job.autocast)

    def validate(step: int) -> dict[str, float]:
        result = evaluate()
        run.log(f"step {step} val_loss {result.val_loss:.4f} val_bpb {result.val_bpb:.4f} ({result.time_s:.1f}s)")
        record = {"val_loss": result.val_loss, "val_bpb": result.val_bpb}
        tracker.log(record, step=step)
        return record

    def log_metrics(record: dict[str, Any]) -> None:
        if "train_loss" in record:  # shared blocks: the LoRA deviations' shrinkage gammas, per virtual layer
            record = {**record, **{f"lora_gamma/{k}": v for k, v in model.lora_gammas().items()}}
        run.log_metrics(record)
        tracker.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])

    accum = grad_accum_steps(cfg)
    run.log(f"global batch {cfg.train.batch_tokens:,} tokens = {world} rank(s) x {accum} micro-batch(es) x "
            f"{cfg.train.batch_tokens // (world * accum):,} tokens")
    writer = {"run_dir": str(run.path), "wandb_run_id": tracker.run.id if tracker.run is not None else None}
    checkpointer = Checkpointer(checkpoint_dir(cfg, data_sha256), cfg.train.checkpoint_every,
                                cfg.train.keep_checkpoints, run.log, meta=writer)
    clock = training_clock(cfg)
    if reserves_clock(cfg):
        run.log(f"GPTQ calibration reads training data: quant.gptq.reserve_s={cfg.quant.gptq.reserve_s:g}s of "
                f"train.max_wallclock_s={cfg.train.max_wallclock_s:g} reserved, training stops at "
                f"{clock.max_wallclock_s:g}s")
    training = build_training(cfg, model, job.data.train_files, job.device, job.autocast, run.log, train=clock,
                              log_metrics=log_metrics, validate=validate,
                              show_progress=rank == 0 and progress_allowed(),
                              checkpointer=checkpointer if cfg.train.checkpoint_every > 0 else None)
    trainer, hooks = training.trainer, training.hooks
    resumed = resume_training(trainer, checkpointer, run.log) if cfg.train.resume == "auto" else {}
    if resumed:
        tracker.log({"resume/from_step": resumed["step"]}, step=resumed["step"])
    result = trainer.fit()
    metrics: dict[str, Any] = {
        "status": result.status,
        "steps": result.steps,
        "train_tokens": result.train_tokens,
        "train_time_s": result.train_time_s,
        "train_tokens_per_s": result.train_tokens / result.train_time_s if result.train_time_s > 0 else 0.0,
        "last_train_loss": result.last_loss if result.status == "ok" else None,
        "model_params": n_params,
        "reused_artifact": False,
        "resumed_from_step": resumed.get("step"),
        "resumed_from_run": resumed.get("run_dir"),
        "resumed_from_wandb_run": resumed.get("wandb_run_id"),
        "qat_from_step": hooks.qat.started_at_step,
        "weight_averaging": hooks.averager.kind if hooks.averager is not None else None,
    }
    if hooks.reptile is not None:
        metrics["reptile_meta_steps"] = hooks.reptile.runs
    gammas = model.lora_gammas()
    if gammas:
        metrics["lora_gammas"] = gammas
    if result.status != "ok":
        metrics.update(val_bpb=None, val_loss=None, diverged_at_step=result.diverged_at_step,
                       last_finite_train_loss=result.last_finite_loss)
        return Trained(model, metrics, checkpointer)

    averager = leave_export_weights(model, hooks)  # export and pre-quant scoring see what the artifact stores
    if averager is not None:
        run.log(f"weights: {averager.kind} average of {averager.num_updates} updates")
    pre = evaluate()
    run.log(f"pre-quant val_loss {pre.val_loss:.6f} val_bpb {pre.val_bpb:.6f} ({pre.time_s:.1f}s)")
    metrics.update(pre_quant_val_bpb=pre.val_bpb, pre_quant_val_loss=pre.val_loss)
    return Trained(model, metrics, checkpointer)


def checkpoint_dir(cfg: GolfConfig, data_sha256: str) -> Path:
    """Keyed like the artifact cache, so the same command finds them whatever run directory it is given (and a
    training on other data never does)."""
    return Path(cfg.paths.root) / "checkpoints" / cache_key(cfg, data_sha256)
