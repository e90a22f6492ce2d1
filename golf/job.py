"""One job, start to end: data -> train -> evaluate -> metrics.json. Takes a typed GolfConfig; no Hydra here."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from golf.config import GolfConfig, to_plain_dict
from golf.data.loader import DistributedTokenLoader
from golf.data.prepare import ensure_prepared
from golf.data.shards import TokenArray
from golf.data.tokenizer import byte_tables, load_tokenizer
from golf.errors import ConfigError
from golf.evaluate.bpb import EvalResult, evaluate_standard
from golf.evaluate.compressors import compressor_bpb
from golf.hardware import autocast, setup_device
from golf.model.gpt import GPT, count_parameters
from golf.optim.build import build_optimizers
from golf.runs import RunDir
from golf.scorecard import scorecard
from golf.trainer import Trainer
from golf.wandb_run import WandbRun

ARTIFACT_LIMIT_BYTES = 16_000_000


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_job(cfg: GolfConfig, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """Run one job in `run_dir`; metrics.json is written whatever happens (status "failed" with the error)."""
    run = RunDir(run_dir)
    plain = to_plain_dict(cfg)
    run.start(plain, overrides)
    tracker = WandbRun(cfg.logger, run.path, name=run.path.name, config={**plain, "overrides": overrides})
    metrics: dict[str, Any] = {"status": "failed", "seed": cfg.seed}
    try:
        metrics = _train_and_evaluate(cfg, run, tracker)
    except BaseException as err:
        metrics["error"] = f"{type(err).__name__}: {err}"
        run.log(f"failed: {metrics['error']}")
        raise
    finally:
        run.finish(metrics)
        tracker.finish(metrics)
    print(scorecard(metrics, run.path))
    return metrics


def _train_and_evaluate(cfg: GolfConfig, run: RunDir, tracker: WandbRun) -> dict[str, Any]:
    seed_everything(cfg.seed)
    device = setup_device(cfg.hardware)
    data = ensure_prepared(cfg.data, log=run.log)
    sp = load_tokenizer(data.tokenizer_path, expected_vocab_size=cfg.data.vocab_size)
    tables = byte_tables(sp, cfg.data.vocab_size)
    val = TokenArray.from_files(data.val_files, max_tokens=cfg.eval.max_tokens or None)
    if len(val) <= cfg.eval.seq_len:
        raise ConfigError("eval.seq_len", f"is {cfg.eval.seq_len} but the validation set {data.val_files[0].parent} "
                          f"has only {len(val)} tokens; use a shorter eval.seq_len or more validation data")

    torch.manual_seed(cfg.seed)  # the init depends on the seed alone, not on what data preparation consumed
    model = GPT(cfg.model, cfg.data.vocab_size).to(device)
    n_params = count_parameters(model)
    run.log(f"model {cfg.model.name}: {n_params:,} parameters; data {cfg.data.name}: "
            f"{data.train_tokens:,} train / {len(val):,} val tokens; device {device}, {cfg.hardware.dtype}")
    optimizers = build_optimizers(model, cfg.optim, device.type)
    loader = DistributedTokenLoader(data.train_files, rank=0, world_size=1)
    amp = lambda: autocast(cfg.hardware, device)  # noqa: E731

    def evaluate(save_token_nll: bool = False) -> EvalResult:
        return evaluate_standard(model, val, tables, cfg.eval.seq_len, cfg.eval.batch_seqs, device, amp, save_token_nll)

    def validate(step: int) -> dict[str, float]:
        result = evaluate()
        run.log(f"step {step} val_loss {result.val_loss:.4f} val_bpb {result.val_bpb:.4f} ({result.time_s:.1f}s)")
        record = {"val_loss": result.val_loss, "val_bpb": result.val_bpb}
        tracker.log(record, step=step)
        return record

    def log_metrics(record: dict[str, Any]) -> None:
        run.log_metrics(record)
        tracker.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])

    trainer = Trainer(model, optimizers, loader, cfg.train, cfg.optim, device, amp,
                      log=run.log, log_metrics=log_metrics, validate=validate)
    result = trainer.fit()
    metrics: dict[str, Any] = {
        "status": result.status,
        "seed": cfg.seed,
        "steps": result.steps,
        "train_tokens": result.train_tokens,
        "train_time_s": result.train_time_s,
        "train_tokens_per_s": result.train_tokens / result.train_time_s if result.train_time_s > 0 else 0.0,
        "last_train_loss": result.last_loss if result.status == "ok" else None,
        "model_params": n_params,
        "artifact_limit_bytes": ARTIFACT_LIMIT_BYTES,
        "reused_artifact": False,
        "evaluated": "in memory; quant=none exports no artifact yet",
    }
    if result.status != "ok":
        metrics.update(val_bpb=None, val_loss=None, diverged_at_step=result.diverged_at_step)
        return metrics

    final = evaluate(save_token_nll=cfg.eval.save_token_nll)
    run.log(f"final val_loss {final.val_loss:.6f} val_bpb {final.val_bpb:.6f} over {final.tokens:,} tokens "
            f"/ {final.bytes:,} bytes ({final.time_s:.1f}s)")
    if final.token_nll is not None:
        np.save(run.path / "token_nll.npy", final.token_nll)
        np.save(run.path / "token_bytes.npy", final.token_bytes)
    metrics.update(
        val_bpb=final.val_bpb,
        val_loss=final.val_loss,
        pre_quant_val_bpb=final.val_bpb,
        pre_quant_val_loss=final.val_loss,
        eval_tokens=final.tokens,
        eval_bytes=final.bytes,
        eval_time_s=final.time_s,
        diagnostics={},
    )
    if cfg.eval.compressor_baselines:
        metrics["diagnostics"]["compressor_bpb"] = compressor_bpb(val, sp)
    run.log_metrics({"step": result.steps, "val_loss": final.val_loss, "val_bpb": final.val_bpb})
    tracker.log({"final/val_bpb": final.val_bpb, "final/val_loss": final.val_loss}, step=result.steps)
    return metrics
