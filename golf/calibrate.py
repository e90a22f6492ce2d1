"""GPTQ calibration inside the job: the Hessians quant.encoder=gptq needs, collected on rank 0 right before export,
and the record of when it ran (calibration.json in the run directory, `gptq_calibration` in metrics.json).

The rules count calibration on training data as training: it must end inside train.max_wallclock_s. So with
quant.gptq.calibration=train the trainer's clock is shortened by quant.gptq.reserve_s (the records'
GPTQ_RESERVE_SECONDS, the warm-down measured against the shortened clock as theirs is), and the record says whether
training time + calibration time stayed inside the cap; the audit's calibration check fails a run where it did not.
quant.gptq.calibration=generated samples the calibration sequences from the trained model itself: no data is read,
so the clock does not apply, and the record says so.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Optional

import torch

from golf.atomic import atomic_write_json
from golf.collectives import rank_world
from golf.config import GolfConfig
from golf.data.tokenizer import BOS_ID
from golf.evaluate.audit_calibration import CALIBRATION_NAME
from golf.quant.calibration import collect_hessians, generated_batches, hessian_targets
from golf.quant.config import HESSIAN_ENCODERS
from golf.trainer_config import TrainConfig
from golf.training_build import grad_accum_steps
from golf.training_hooks import TrainingBatches


def calibrates(cfg: GolfConfig) -> bool:
    return cfg.quant.encoder in HESSIAN_ENCODERS


def reserves_clock(cfg: GolfConfig) -> bool:
    """Calibration reads training data under a capped clock: training gives up quant.gptq.reserve_s of it."""
    return calibrates(cfg) and cfg.quant.gptq.calibration == "train" and cfg.train.max_wallclock_s > 0


def training_clock(cfg: GolfConfig) -> TrainConfig:
    """cfg.train with the calibration reserve taken off the cap (unchanged when nothing is reserved)."""
    if not reserves_clock(cfg):
        return cfg.train
    return dataclasses.replace(cfg.train, max_wallclock_s=max(cfg.train.max_wallclock_s - cfg.quant.gptq.reserve_s,
                                                              1e-3))


@dataclasses.dataclass
class Calibration:
    hessians: dict[str, torch.Tensor]
    record: dict[str, Any]  # calibration.json: source, batches, time_s, and for source=train the clock's account


def calibrate(cfg: GolfConfig, model: torch.nn.Module, train_files, device: torch.device, train_time_s: float,
              log) -> Calibration:
    """The Hessians of every matrix the encoder quantizes, from quant.gptq.calibration_batches batches of this
    rank's training stream (from its start: tokens training also read, never validation) or of the model's own
    samples; timed, and judged against the training clock."""
    gptq = cfg.quant.gptq
    _, world = rank_world()
    accum = grad_accum_steps(cfg)
    seqs = max(cfg.train.batch_tokens // (world * accum) // cfg.train.seq_len, 1)
    start = time.perf_counter()
    if gptq.calibration == "generated":
        batches = generated_batches(model, gptq.calibration_batches, seqs, cfg.train.seq_len, gptq.temperature,
                                    bos_id=BOS_ID, seed=cfg.seed)
    else:
        stream = TrainingBatches(train_files, 0, world, cfg.train.batch_tokens, cfg.train.seq_len, accum, device)
        batches = (stream()[0] for _ in range(gptq.calibration_batches))
    hessians = collect_hessians(model, batches, hessian_targets(model, cfg.quant))
    seconds = time.perf_counter() - start
    record: dict[str, Any] = {"source": gptq.calibration, "batches": gptq.calibration_batches,
                              "sequences_per_batch": seqs, "seq_len": cfg.train.seq_len, "time_s": seconds,
                              "hessians": len(hessians)}
    if gptq.calibration == "generated":
        record["exempt"] = True  # no data read: not training time
        log(f"GPTQ calibration: {len(hessians)} Hessians from {gptq.calibration_batches} batches the model generated "
            f"itself (temperature {gptq.temperature}) in {seconds:.1f}s; reads no data, so the training clock does "
            "not apply")
        return Calibration(hessians, record)
    cap = cfg.train.max_wallclock_s
    clock = train_time_s + seconds
    record.update(exempt=False, train_time_s=train_time_s, training_clock_s=clock, max_wallclock_s=cap,
                  reserve_s=gptq.reserve_s, within_clock=cap <= 0 or clock <= cap)
    where = (f"training clock {clock:.1f}s of train.max_wallclock_s={cap:g}" if cap > 0
             else "no training clock (train.max_wallclock_s=0)")
    log(f"GPTQ calibration: {len(hessians)} Hessians from {gptq.calibration_batches} training batches in "
        f"{seconds:.1f}s; {where}")
    if not record["within_clock"]:
        log(f"WARNING: calibration on training data ended at {clock:.1f}s, past train.max_wallclock_s={cap:g}: the "
            f"rules count it as training, so the audit fails this run; raise quant.gptq.reserve_s (now "
            f"{gptq.reserve_s:g}) or use quant.gptq.calibration=generated")
    return Calibration(hessians, record)


def write_record(run_dir: Path, record: Optional[dict[str, Any]]) -> None:
    if record is not None:
        atomic_write_json(run_dir / CALIBRATION_NAME, record)

