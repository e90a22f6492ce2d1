"""How long and on what batches training runs (train.*), and the checks of those keys. No torch here; golf/trainer.py
runs it. The batch's divisibility by the world size spans train and hardware: golf/config.py checks it."""

import math
from dataclasses import dataclass
from typing import Any

from golf.problems import Problems

RESUME_MODES = ("auto", "never")


@dataclass
class TrainConfig:
    iterations: int = 200
    max_wallclock_s: float = 0.0  # 0 = no cap; the challenge's cap is 600
    batch_tokens: int = 8192  # tokens per optimizer step, whatever the number of processes
    seq_len: int = 256
    grad_accum_steps: int = 1
    warmdown_steps: int = 60
    # > 0: the warm-down is this last fraction of training instead (by the wall clock when max_wallclock_s caps the
    # run), and warmdown_steps is not used; the 04-09 record: 0.72, the 04-27 record: 0.85
    warmdown_frac: float = 0.0
    priming_steps: int = 0  # steps run and then undone (weights, optimizer and data restored)
    val_every: int = 0  # validate every N steps; 0 = only at the end
    log_every: int = 10
    reuse: bool = True  # take the trained artifact from outputs/cache when an identical training already ran
    checkpoint_every: int = 0  # write a resumable checkpoint every N optimizer steps; 0 = never
    keep_checkpoints: int = 2  # how many of the newest checkpoints to keep
    resume: str = "auto"  # auto: continue from the newest checkpoint of an identical training; never: start anew


def train_problems(train: TrainConfig) -> list[tuple[str, Any, str]]:
    p = Problems("train.")
    for key in ("iterations", "warmdown_steps", "priming_steps", "val_every", "checkpoint_every"):
        p.at_least(key, getattr(train, key), 0)
    p.at_least("max_wallclock_s", train.max_wallclock_s, 0.0)
    p.need(math.isfinite(train.warmdown_frac) and 0.0 <= train.warmdown_frac <= 1.0, "warmdown_frac",
           train.warmdown_frac, "a fraction of training in [0, 1] (0: the warm-down is train.warmdown_steps)")
    for key in ("seq_len", "grad_accum_steps", "log_every", "keep_checkpoints"):
        p.at_least(key, getattr(train, key), 1)
    p.choice("resume", train.resume, RESUME_MODES)
    return p
