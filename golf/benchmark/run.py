"""One bench, start to end: training loops, peak matmul, evaluation, evaluation memory, TTT -> bench.json + table.

Takes a typed GolfConfig (no Hydra here). One process: with hardware.nproc_per_node x nnodes = W > 1 it measures
one rank's share (train.batch_tokens / W tokens a step, the micro-batches that rank would run), i.e. per-GPU figures
without the all-reduce.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import torch

from golf.benchmark.evaluation import evaluation_memory_fresh, time_evaluation, time_ttt, ttt_settings
from golf.benchmark.flops import model_flops, peak_matmul_flops
from golf.benchmark.memory import peak_rss_bytes
from golf.benchmark.report import table, targets, write_bench_json
from golf.benchmark.timing import compare_loops
from golf.config import GolfConfig, to_plain_dict
from golf.data.shards import TokenArray
from golf.errors import ConfigError
from golf.hardware import autocast, setup_device
from golf.job.prepare import load_data, seed_everything
from golf.model.gpt import count_parameters
from golf.runs import RunDir
from golf.training_build import build_model, build_training

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def check_bench(cfg: GolfConfig) -> None:
    """What the timed evaluations need of bench.* against the rest of the config, before any work (each bench.*
    value on its own is checked with the whole config: golf/config.py)."""
    b = cfg.bench
    if b.eval_tokens <= cfg.eval.seq_len:
        raise ConfigError("bench.eval_tokens", f"{b.eval_tokens} is not allowed; allowed: more than "
                          f"eval.seq_len={cfg.eval.seq_len} (at least one window)")
    stride = cfg.eval.stride or b.sliding_stride
    if stride >= cfg.eval.seq_len:
        raise ConfigError("bench.sliding_stride", f"{b.sliding_stride} is not allowed; allowed: 1..{cfg.eval.seq_len - 1}"
                          f" (below eval.seq_len={cfg.eval.seq_len})")
    chunk = ttt_settings(cfg.ttt)[0].chunk_tokens
    if b.ttt_tokens <= chunk + 1:
        raise ConfigError("bench.ttt_tokens", f"{b.ttt_tokens} is not allowed; allowed: more than ttt.chunk_tokens + 1"
                          f" = {chunk + 1} (two chunks at least, so that TTT adapts once)")
    if b.memory_tokens and b.memory_tokens <= b.eval_tokens:
        raise ConfigError("bench.memory_tokens", f"{b.memory_tokens} is not allowed; allowed: 0 (the whole validation "
                          f"set) or more than bench.eval_tokens={b.eval_tokens}")


def one_process(cfg: GolfConfig) -> GolfConfig:
    """The config of one rank's share, run in this process."""
    world = cfg.hardware.world_size
    if world == 1:
        return cfg
    hw = dataclasses.replace(cfg.hardware, nproc_per_node=1, nnodes=1)
    train = dataclasses.replace(cfg.train, batch_tokens=cfg.train.batch_tokens // world)
    return dataclasses.replace(cfg, hardware=hw, train=train)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"cpu: {cpu}, {torch.get_num_threads()} torch threads of {os.cpu_count()} cores"


def _capped(files, tokens: int) -> TokenArray:
    return TokenArray.from_files(files, max_tokens=tokens)


def bench_job(cfg: GolfConfig, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """golf.bench's job: the run directory (config.yaml, overrides.yaml, ...) and bench.json, no metrics.json."""
    run = RunDir(run_dir)
    run.start(to_plain_dict(cfg), overrides)
    return run_bench(cfg, run.path)


def run_bench(cfg: GolfConfig, run_dir: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure everything, write run_dir/bench.json, print the table; returns bench.json's content."""
    check_bench(cfg)
    began = time.perf_counter()
    world = cfg.hardware.world_size
    cfg = one_process(cfg)
    seed_everything(cfg.seed)
    device = setup_device(cfg.hardware)
    amp = lambda: autocast(cfg.hardware, device)  # noqa: E731
    log_path = run_dir / "train.log"

    def log(line: str) -> None:  # golf's loop logs here as in a run (the file), without flooding the table
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    data, _, tables, _ = load_data(cfg, say)
    model = build_model(cfg, device)
    flops = model_flops(model, cfg.train.seq_len)
    # golf's loop as a run builds it, without validation, priming, the clock or step hooks: the steps alone
    timed = dataclasses.replace(cfg.train, priming_steps=0, val_every=0, max_wallclock_s=0.0)
    trainer = build_training(cfg, model, data.train_files, device, amp, log, train=timed, hooks=False).trainer
    accum = trainer.cfg.grad_accum_steps
    b = cfg.bench
    say(f"bench: {b.warmup_steps} warm-up steps, then {b.rounds} round(s) of golf's loop and the bare loop, "
        f"{b.train_steps} steps each ...")
    loops = compare_loops(trainer, b.train_steps, b.warmup_steps, b.rounds)
    train_cuda_peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None

    dtype = DTYPES[cfg.hardware.dtype]
    say("bench: peak matmul ...")
    peak, matmul_n = peak_matmul_flops(device, dtype, b.matmul_size, b.matmul_seconds)

    model.eval()
    seq, batch = cfg.eval.seq_len, cfg.eval.batch_seqs
    stride = cfg.eval.stride or b.sliding_stride
    val = _capped(data.val_files, b.eval_tokens)
    say(f"bench: evaluation of {len(val):,} tokens, standard and sliding (stride {stride}) ...")
    standard = time_evaluation(model, val, tables, seq, None, batch, device, amp)
    sliding = time_evaluation(model, val, tables, seq, stride, batch, device, amp)

    ttt_cfg, configured = ttt_settings(cfg.ttt)
    ttt_val = _capped(data.val_files, b.ttt_tokens)
    say(f"bench: score-first TTT over {len(ttt_val):,} tokens and its arithmetic minimum ...")
    ttt = time_ttt(model, ttt_val, tables, ttt_cfg, cfg.eval, device, amp, cfg.hardware.compile)

    large_n = min(b.memory_tokens or data.val_tokens, data.val_tokens)
    sizes = (len(val), len(_capped(data.val_files, large_n)))
    say(f"bench: evaluation memory at {sizes[0]:,} and {sizes[1]:,} validation tokens, each in a fresh process ...")
    mem_small, mem_large = (evaluation_memory_fresh(model, data.val_files, n, tables, seq, batch, cfg.hardware)
                            for n in sizes)

    achieved = flops.per_token * loops.train_tokens_per_s
    bench: dict[str, Any] = {
        "device": device_name(device),
        "model": cfg.model.name,
        "model_params": count_parameters(model),
        "dtype": cfg.hardware.dtype,
        "compile": cfg.hardware.compile,
        "world_size_configured": world,
        "per_rank_share": world > 1,
        "seq_len": cfg.train.seq_len,
        "tokens_per_step": cfg.train.batch_tokens,
        "grad_accum_steps": accum,
        "timed_steps": loops.steps,
        "rounds": b.rounds,
        "train_tokens_per_s": loops.train_tokens_per_s,
        "bare_loop_tokens_per_s": loops.bare_loop_tokens_per_s,
        "overhead_ratio": loops.overhead_ratio,
        "overhead_ratio_total": loops.overhead_ratio_total,
        "golf_round_s": loops.golf_round_s,
        "bare_round_s": loops.bare_round_s,
        "round_steps": loops.round_steps,
        "step_time_s": loops.step_time_s,
        "bare_step_time_s": loops.bare_step_time_s,
        "warmup_time_s": loops.warmup_s,
        "model_flops_per_token": flops.per_token,
        "matmul_params": flops.matmul_params,
        "attention_flops_per_token": flops.attention_flops_per_token,
        "model_flops_formula": "6 * matmul_params + 12 * layers * seq_len * d_attn (golf/benchmark/flops.py)",
        "achieved_flops": achieved,
        "peak_flops": peak,
        "matmul_size": matmul_n,
        "mfu": achieved / peak,
        "eval_tokens": standard.tokens,
        "eval_tokens_per_s": standard.tokens_per_s,
        "eval_time_s": standard.time_s,
        "sliding_stride": stride,
        "sliding_eval_tokens_per_s": sliding.tokens_per_s,
        "sliding_eval_time_s": sliding.time_s,
        "eval_memory_tokens": list(sizes),
        "eval_peak_rss_bytes": [mem_small.rss_peak, mem_large.rss_peak],
        "eval_rss_growth_bytes": [mem_small.rss_growth, mem_large.rss_growth],
        "eval_anon_growth_bytes": [mem_small.anon_growth, mem_large.anon_growth],
        "eval_peak_cuda_bytes": [mem_small.cuda_peak, mem_large.cuda_peak],
        "ttt_settings": ttt_cfg.name + ("" if configured else " (ttt=none was configured: score_first's recipe)"),
        "ttt_tokens": ttt.tokens,
        "ttt_chunks": ttt.chunks,
        "ttt_epochs": ttt_cfg.epochs,
        "ttt_adapted_tokens": ttt.adapted_tokens,
        "ttt_tokens_per_s": ttt.tokens_per_s,
        "ttt_time_s": ttt.time_s,
        "ttt_score_time_s": ttt.score_time_s,
        "ttt_adapt_time_s": ttt.adapt_time_s,
        "ttt_minimum_s": ttt.minimum_s,
        "ttt_time_ratio": ttt.time_ratio,
        "peak_rss_bytes": peak_rss_bytes(),  # this process: training, evaluation, TTT
        "peak_cuda_bytes": max(train_cuda_peak, torch.cuda.max_memory_allocated(device)) if device.type == "cuda"
        else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    bench["bench_time_s"] = time.perf_counter() - began
    bench["targets"] = targets(bench)
    write_bench_json(run_dir / "bench.json", bench)
    say(table(bench, run_dir))
    return bench
