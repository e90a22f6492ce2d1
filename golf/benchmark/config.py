"""The bench section of the config (python -m golf.bench), and the checks of its values."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class BenchConfig:
    train_steps: int = 12  # timed optimizer steps, for golf's loop and the bare loop alike (split over `rounds`)
    warmup_steps: int = 2  # untimed steps first (each loop): allocator, kernels, compile
    rounds: int = 4  # golf's loop and the bare loop take turns this many times, on the same batches; each loop's
    # step time is its fastest round's (on a shared machine, the least disturbed). On a GPU, 1 round of 50+ steps
    eval_tokens: int = 32768  # validation tokens timed for standard and sliding evaluation
    sliding_stride: int = 64  # stride of the sliding evaluation when eval.stride is 0 (the record entries' 64)
    memory_tokens: int = 262144  # the larger validation size of the memory check (capped at the validation set's);
    # 0 = the whole set (FineWeb's 62,021,632 tokens: minutes on a GPU, hours on a CPU)
    ttt_tokens: int = 65536  # validation tokens timed for score-first TTT (ttt=none: conf/ttt/score_first's settings)
    matmul_size: int = 0  # n of the n x n x n matmul that measures the peak FLOP/s; 0 = 2048 on CPU, 8192 on a GPU
    matmul_seconds: float = 1.0  # the peak matmul repeats for about this long; the fastest repeat counts


def bench_problems(cfg: BenchConfig) -> list[tuple[str, object, str]]:
    """(key, value, what is allowed) for every bench.* value that cannot run; empty when all is well."""
    problems: list[tuple[str, object, str]] = []

    def need(ok: bool, key: str, allowed: str) -> None:
        if not ok:
            problems.append((f"bench.{key}", getattr(cfg, key), allowed))

    need(cfg.train_steps >= 1, "train_steps", "an integer >= 1")
    need(cfg.warmup_steps >= 1, "warmup_steps", "an integer >= 1 (the first steps compile and allocate)")
    need(cfg.rounds >= 1, "rounds", "an integer >= 1")
    need(cfg.rounds <= cfg.train_steps, "rounds", f"at most bench.train_steps={cfg.train_steps} (>= 1 step a round)")
    need(cfg.eval_tokens >= 2, "eval_tokens", "an integer >= 2 (more than one window of eval.seq_len)")
    need(cfg.sliding_stride >= 1, "sliding_stride", "an integer >= 1 (below eval.seq_len)")
    need(cfg.memory_tokens >= 0, "memory_tokens", "0 (the whole validation set) or a token count above bench.eval_tokens")
    need(cfg.ttt_tokens >= 2, "ttt_tokens", "an integer >= 2 (more than one ttt chunk for adaptation to run)")
    need(cfg.matmul_size == 0 or cfg.matmul_size >= 64, "matmul_size", "0 (auto) or an integer >= 64")
    need(math.isfinite(cfg.matmul_seconds) and cfg.matmul_seconds > 0, "matmul_seconds", "a number of seconds > 0")
    return problems
