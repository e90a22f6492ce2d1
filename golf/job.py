"""One job, start to end: data -> train -> export the artifact -> score it as loaded from disk -> metrics.json.

Takes a typed GolfConfig; no Hydra here. The headline val_bpb is always the artifact's score after the disk round
trip; the in-memory score of the trained (or averaged) weights is pre_quant_val_bpb.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from golf.cache import ArtifactCache, CacheEntry, CacheEntryDamaged, cache_key
from golf.checkpoint import Checkpointer, resume_training
from golf.config import GolfConfig, to_plain_dict
from golf.data.checks import check_prepared, check_training_tokens
from golf.data.fingerprint import fingerprint
from golf.data.loader import DistributedTokenLoader
from golf.data.prepare import PreparedData, ensure_prepared
from golf.data.shards import TokenArray
from golf.data.tokenizer import byte_tables, load_tokenizer
from golf.errors import OutputError
from golf.collectives import barrier, broadcast_object, broadcast_parameters, rank_world
from golf.dist import failures_in_log, launch, local_rank, note_failure, process_group, rendezvous
from golf.evaluate.bpb import EvalResult
from golf.evaluate.windows import evaluate_standard
from golf.evaluate.compressors import compressor_bpb
from golf.evaluate.scoring import OLD_METRIC_NAMES, write_side_files, score_artifact_file
from golf.hardware import apply_precision_policy, autocast, grad_accum_per_rank, setup_device
from golf.model.gpt import GPT, count_parameters
from golf.optim.build import build_optimizers
from golf.quant.artifact import export_artifact, write_artifact
from golf.quant.code_size import ARTIFACT_LIMIT_BYTES, size_accounting
from golf.restart import finished_earlier
from golf.runs import RunDir
from golf.logs import progress_allowed
from golf.scorecard import show_scorecard
from golf.trainer import Trainer
from golf.training_hooks import TrainingBatches, build_hooks
from golf.wandb_names import run_name
from golf.wandb_run import WandbRun

ARTIFACT_NAME = "artifact.golf"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


Body = Callable[[GolfConfig, RunDir, WandbRun], dict[str, Any]]


def run_job(cfg: GolfConfig, run_dir: Path, overrides: list[str], body: Optional[Body] = None,
            job_type: str = "train") -> dict[str, Any]:
    """Run `body` (training by default) in `run_dir`; metrics.json is written whatever happens (status "failed"
    with the error), then the scorecard is printed. Under torchrun every rank runs this; only rank 0 writes files,
    W&B and the scorecard."""
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


class JobFailed(RuntimeError):
    """A job that torchrun ran failed; its metrics.json says so (status "failed", with the ranks' errors)."""


def launch_job(cfg: GolfConfig, run_dir: Path, overrides: list[str], module: str) -> dict[str, Any]:
    """Hydra's side of a multi-process job: config.yaml into the run directory, torchrun over `module`, whose ranks
    read that file; then the job's metrics.json. A rank that died without rank 0 recording it (killed, or rank 0
    itself gone) still ends with metrics.json status "failed" and the ranks' errors from train.log."""
    if cfg.hardware.nnodes > 1:
        rendezvous(cfg.hardware)  # a missing endpoint or id is a config error, before anything is written
    plain = to_plain_dict(cfg)
    done = finished_earlier(Path(run_dir), plain, cfg.train.resume)
    if done is not None:
        return done
    run = RunDir(run_dir)
    run.start(plain, overrides)
    returncode = launch(cfg.hardware, module, run.path)
    try:
        metrics = json.loads((run.path / "metrics.json").read_text())
    except (OSError, ValueError):
        metrics = None
    if returncode == 0 and metrics is not None:
        return metrics
    errors = failures_in_log(run.path)
    error = "; ".join(errors) or f"torchrun exited with status {returncode} and no rank reported an error"
    if metrics is None or metrics.get("status") != "failed":
        metrics = {**(metrics or {}), "status": "failed", "seed": cfg.seed, "error": error,
                   "torchrun_exit_code": returncode}
        run.log(f"failed: torchrun exited with status {returncode}: {error}")
        run.finish(metrics)
    raise JobFailed(metrics.get("error") or error)


def run_rank(cfg: GolfConfig, run_dir: Path, overrides: list[str], body: Optional[Body] = None,
             job_type: str = "train") -> None:
    """One torchrun rank: join the process group, run the job, and on any error say so in train.log and exit 1
    (torchrun then stops the other ranks at once)."""
    try:
        with process_group(cfg.hardware):
            run_job(cfg, run_dir, overrides, body, job_type)
    except BaseException as err:
        if isinstance(err, SystemExit) and not err.code:
            raise
        traceback.print_exc()
        note_failure(run_dir, err)
        sys.exit(1)


def record_logger(run: RunDir, tracker: WandbRun) -> Callable[[dict[str, Any]], None]:
    """One record to metrics.jsonl and W&B (the TTT per-chunk curve, against the chunk index there, ...)."""
    def log_record(record: dict[str, Any]) -> None:
        run.log_metrics(record)
        if "ttt_chunk" in record:
            tracker.log_chunk(record)
        else:
            tracker.log(record)
    return log_record


def load_data(cfg: GolfConfig, log) -> tuple[PreparedData, Any, Any, TokenArray]:
    """Prepared shards, tokenizer, byte tables and the (possibly capped) validation tokens, checked against config."""
    data = ensure_prepared(cfg.data, log=log)
    sp = load_tokenizer(data.tokenizer_path, expected_vocab_size=cfg.data.vocab_size)
    tables = byte_tables(sp, cfg.data.vocab_size)
    val = TokenArray.from_files(data.val_files, max_tokens=cfg.eval.max_tokens or None)
    check_prepared(cfg, val, data.val_files[0].parent, train_files=data.train_files)
    return data, sp, tables, val


def train_export_score(cfg: GolfConfig, run: RunDir, tracker: WandbRun) -> dict[str, Any]:
    """Train and export (or take the artifact of an identical training from the cache), then score the artifact.
    Under torchrun rank 0 alone prepares data, consults the cache and writes the artifact; the others follow its
    decisions (broadcast) and load the same file after a barrier."""
    seed_everything(cfg.seed)
    main = rank_world()[0] == 0
    device = setup_device(cfg.hardware, local_rank())
    data, sp, tables, val = load_data_rank0_first(cfg, run.log)
    amp = lambda: autocast(cfg.hardware, device)  # noqa: E731
    artifact = run.path / ARTIFACT_NAME
    # what training reads, hashed: the cache and the checkpoints are keyed on it, and every shard is checked
    data_sha256 = broadcast_object(training_data_sha256(cfg, data, run.log) if main else None)
    if cfg.train.reuse:
        cache, key = ArtifactCache(Path(cfg.paths.root) / "cache", log=run.log), cache_key(cfg, data_sha256)
        # a parallel job with the same key waits here for this training instead of repeating it
        with cache.lock(key) if main else contextlib.nullcontext():
            entry = _reusable_entry(cache, key, artifact, run.log) if main else None
            reused = broadcast_object(entry.train_metrics if entry is not None else None)
            if reused is not None:
                metrics = {**reused, "reused_artifact": True, "cache_key": key}
                run.log(f"reusing the trained artifact of cache entry {Path(cfg.paths.root) / 'cache' / key} "
                        "(verified against its sha256; train.reuse=false trains anew)")
            else:
                metrics = _train_and_export(cfg, run, tracker, data, tables, val, device, amp, data_sha256)
                metrics["cache_key"] = key
                if main and metrics["status"] == "ok":
                    _store(cache, key, artifact, metrics, run.log)
    else:
        metrics = _train_and_export(cfg, run, tracker, data, tables, val, device, amp, data_sha256)
    metrics["data_sha256"] = data_sha256
    barrier()  # the artifact is on disk before any rank loads it
    metrics["seed"] = cfg.seed
    if metrics["status"] != "ok":
        return metrics

    size = size_accounting(metrics["model_bytes"], cfg.ttt.protocol != "none")
    scores = score_artifact_file(cfg, artifact, data, device, amp, run.log, record_logger(run, tracker))
    if main:
        write_side_files(scores, run.path)
    else:
        scores.pop("token_nll", None)
    metrics.update(scores)
    metrics.update(size, artifact_path=str(artifact))
    metrics["status"] = status_of(metrics, cfg)
    metrics["quant_gap_bpb"] = metrics["quant_val_bpb"] - metrics["pre_quant_val_bpb"]
    if cfg.eval.compressor_baselines and main:
        metrics["diagnostics"]["compressor_bpb"] = compressor_bpb(val, sp)
    metrics["world_size"] = rank_world()[1]
    run.log_metrics({"step": metrics["steps"], "val_loss": metrics["val_loss"], "val_bpb": metrics["val_bpb"],
                     "pre_quant_val_bpb": metrics["pre_quant_val_bpb"]})
    tracker.log_final(metrics, train_steps=metrics["steps"])
    return metrics


def training_data_sha256(cfg: GolfConfig, data: PreparedData, log) -> str:
    """The fingerprint of the tokenizer and shards (golf/data/fingerprint.py), after checking that no shard
    training reads holds a token id the model has no row for."""
    found = fingerprint(data.tokenizer_path, data.train_files, data.val_files,
                        Path(cfg.paths.root) / "cache" / "fingerprints", log=log)
    check_training_tokens(cfg, found)
    return found.sha256


def _reusable_entry(cache: ArtifactCache, key: str, artifact: Path, log) -> Optional[CacheEntry]:
    """The verified cache entry under `key` with its artifact copied to `artifact`, or None (a damaged entry is
    dropped, saying so, and the job trains anew)."""
    entry = cache.get(key)
    if entry is None:
        return None
    try:
        entry.copy_artifact_to(artifact)
    except CacheEntryDamaged as err:
        log(f"cache entry {entry.path} dropped: {err}; training anew")
        cache.drop(key)
        return None
    return entry


def _store(cache: ArtifactCache, key: str, artifact: Path, metrics: dict[str, Any], log) -> None:
    """Into the cache; a cache that cannot be written (disk full, read-only) costs only later reuse, not this run."""
    try:
        cache.put(key, artifact, metrics)
    except OutputError as err:
        log(f"cache entry not stored: {err}; this run's result stands, a later identical run trains again")


def load_data_rank0_first(cfg: GolfConfig, log) -> tuple[PreparedData, Any, Any, TokenArray]:
    """Rank 0 prepares (builds a generated corpus when needed); the others then find it prepared."""
    main = rank_world()[0] == 0
    loaded = load_data(cfg, log) if main else None
    barrier()
    return loaded if loaded is not None else load_data(cfg, lambda _line: None)


def status_of(metrics: dict[str, Any], cfg: GolfConfig) -> str:
    """ok, unless the headline diverged (not finite or above eval.diverge_bpb) or the artifact is over the limit."""
    bpb = metrics.get("val_bpb")
    if bpb is None or not math.isfinite(bpb) or bpb > cfg.eval.diverge_bpb:
        return "diverged"
    return "over_budget" if metrics["artifact_bytes"] > ARTIFACT_LIMIT_BYTES else "ok"


def _train_and_export(cfg: GolfConfig, run: RunDir, tracker: WandbRun, data: PreparedData, tables, val: TokenArray,
                      device: torch.device, amp, data_sha256: str) -> dict[str, Any]:
    """Train, average, score the weights in memory (pre-quant), export run_dir/artifact.golf; the training metrics."""
    torch.manual_seed(cfg.seed)  # the init depends on the seed alone, not on what data preparation consumed
    model = apply_precision_policy(GPT(cfg.model, cfg.data.vocab_size).to(device), cfg.hardware)
    broadcast_parameters(model)
    rank, world = rank_world()
    n_params = count_parameters(model)
    run.log(f"model {cfg.model.name}: {n_params:,} parameters; data {cfg.data.name}: "
            f"{data.train_tokens:,} train / {len(val):,} val tokens; device {device}, {cfg.hardware.dtype}, {world} process(es)")

    def evaluate() -> EvalResult:
        return evaluate_standard(model, val, tables, cfg.eval.seq_len, cfg.eval.batch_seqs, device, amp)

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

    accum = grad_accum_per_rank(cfg.train.batch_tokens, cfg.train.seq_len, cfg.train.grad_accum_steps, cfg.hardware)
    train_cfg = dataclasses.replace(cfg.train, grad_accum_steps=accum)
    run.log(f"global batch {cfg.train.batch_tokens:,} tokens = {world} rank(s) x {accum} micro-batch(es) x "
            f"{cfg.train.batch_tokens // (world * accum):,} tokens")
    writer = {"run_dir": str(run.path), "wandb_run_id": tracker.run.id if tracker.run is not None else None}
    checkpointer = Checkpointer(checkpoint_dir(cfg, data_sha256), cfg.train.checkpoint_every, cfg.train.keep_checkpoints, run.log,
                                meta=writer)
    trainer = Trainer(model, build_optimizers(model, cfg.optim, device.type),
                      DistributedTokenLoader(data.train_files, rank, world), train_cfg, cfg.optim, device, amp,
                      log=run.log, log_metrics=log_metrics, validate=validate,
                      show_progress=rank == 0 and progress_allowed(), compile_model=cfg.hardware.compile,
                      checkpointer=checkpointer if cfg.train.checkpoint_every > 0 else None)
    hooks = build_hooks(
        cfg, model, trainer.fraction_done, autocast=amp, log=run.log,
        reptile_batches=lambda: TrainingBatches(data.train_files, rank, world, cfg.train.batch_tokens,
                                                cfg.train.seq_len, accum, device))
    trainer.hooks = hooks.all()
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
        return metrics

    hooks.qat.detach(model)  # export and pre-quant scoring see the plain weights
    model.set_loop_active(True)  # evaluation and the artifact always run the model's whole layer plan
    if hooks.averager is not None:
        model.load_state_dict(hooks.averager.averaged_state_dict())
        run.log(f"weights: {hooks.averager.kind} average of {hooks.averager.num_updates} updates")
    pre = evaluate()
    run.log(f"pre-quant val_loss {pre.val_loss:.6f} val_bpb {pre.val_bpb:.6f} ({pre.time_s:.1f}s)")
    metrics.update(pre_quant_val_bpb=pre.val_bpb, pre_quant_val_loss=pre.val_loss)

    exported = _export(cfg, run, model) if rank == 0 else None  # rank 0 writes the artifact; all get its numbers
    metrics.update(broadcast_object(exported))
    barrier()
    if rank == 0:
        checkpointer.clear()  # the training is done: its artifact is what a rerun takes (train.reuse)
    return metrics


def checkpoint_dir(cfg: GolfConfig, data_sha256: str) -> Path:
    """Keyed like the artifact cache, so the same command finds them whatever run directory it is given (and a
    training on other data never does)."""
    return Path(cfg.paths.root) / "checkpoints" / cache_key(cfg, data_sha256)


def _export(cfg: GolfConfig, run: RunDir, model: torch.nn.Module) -> dict[str, Any]:
    start = time.perf_counter()
    state = {name: t.detach().cpu() for name, t in model.state_dict().items()}
    exported = export_artifact(state, asdict(cfg.model), cfg.data.vocab_size, cfg.quant)
    path = run.path / ARTIFACT_NAME
    write_artifact(path, exported)
    export_time = time.perf_counter() - start
    size = size_accounting(exported.model_bytes, cfg.ttt.protocol != "none")
    over = size["artifact_bytes"] > ARTIFACT_LIMIT_BYTES
    run.log(f"artifact {path.name}: {size['model_bytes']:,} model + {size['code_bytes']:,} code = "
            f"{size['artifact_bytes']:,} bytes ({'OVER' if over else 'within'} the {ARTIFACT_LIMIT_BYTES:,}-byte limit), "
            f"{exported.bits_per_weight:.3f} bits/weight, exported in {export_time:.1f}s")
    return dict(model_bytes=exported.model_bytes, artifact_sha256=exported.sha256,
                bits_per_weight=exported.bits_per_weight, quant_categories=exported.category_stats,
                export_time_s=export_time)
