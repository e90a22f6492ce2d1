"""The bench section of the config (python -m golf.bench)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BenchConfig:
    train_steps: int = 20  # timed optimizer steps (after the warm-up steps), for golf's loop and the bare loop alike
    warmup_steps: int = 3  # untimed steps first: allocator, kernels, compile
    eval_tokens: int = 65536  # validation tokens timed for standard and sliding evaluation
    ttt_tokens: int = 65536  # validation tokens timed for score-first TTT
    matmul_size: int = 4096  # n of the n x n x n matmul that measures the machine's peak FLOP/s
