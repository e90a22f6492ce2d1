"""golf's training loop against a bare loop over the same model, optimizers and batches: the framework's overhead.

golf's loop is golf.trainer.Trainer as a run builds it (golf/training_build.py: the learning-rate and momentum
schedules, the loss read and logged every train.log_every steps, the wall-clock check), without validation,
checkpoints or step hooks (QAT, EMA, SWA: features a run asks for, not overhead). The bare loop is the least a
training step needs: next batch, copy, forward, backward, every optimizer's step and zero_grad; it reads no loss.
Both call the same (compiled, when hardware.compile) forward, so the difference is the loop itself.

The two loops take turns (bench.rounds), each round on the same batches (the loader is rewound), alternating which
goes first. Each loop's step time is that of its fastest round: load from other work only ever slows a round down,
so on a shared machine the fastest round is the least disturbed (the totals are kept too).
overhead_ratio = golf's step time / the bare loop's step time (1.0 = no overhead).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

import torch

from golf.trainer import Trainer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_steps(trainer: Trainer, steps: int) -> None:
    """`steps` optimizer steps with nothing else: what any training loop has to do."""
    cfg, device = trainer.cfg, trainer.device
    accum = cfg.grad_accum_steps
    for _ in range(steps):
        for _ in range(accum):
            x, y = trainer.loader.next_batch(cfg.batch_tokens, cfg.seq_len, accum)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with trainer.autocast():
                loss = trainer.forward(x, y)
            (loss / accum).backward()
        for opt in trainer.optimizers:
            opt.step()
        for opt in trainer.optimizers:
            opt.zero_grad(set_to_none=True)


def golf_steps(trainer: Trainer, steps: int) -> None:
    """`steps` more optimizer steps of golf's own loop (Trainer.fit, which goes on from the steps it has done)."""
    done = trainer.steps_done
    trainer.cfg = dataclasses.replace(trainer.cfg, iterations=done + steps)
    result = trainer.fit()
    if result.status != "ok":
        raise RuntimeError(f"the benchmark's training diverged at step {result.diverged_at_step} "
                           f"(loss {result.last_loss}); the timing would not be of normal steps")
    if result.steps - done != steps:
        raise RuntimeError(f"golf's loop ran {result.steps - done} steps where the bench asked for {steps}")


def timed(fn: Callable[[], None], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


@dataclass
class LoopTiming:
    round_steps: list[int]  # timed steps of each loop in each round
    golf_round_s: list[float]
    bare_round_s: list[float]
    tokens_per_step: int
    warmup_s: float  # the untimed first steps (compile included)

    @property
    def steps(self) -> int:
        return sum(self.round_steps)

    @property
    def golf_s(self) -> float:
        return sum(self.golf_round_s)

    @property
    def bare_s(self) -> float:
        return sum(self.bare_round_s)

    @property
    def step_time_s(self) -> float:
        """golf's step time: its fastest round's (on a shared machine load only ever slows a round down)."""
        return min(t / n for t, n in zip(self.golf_round_s, self.round_steps))

    @property
    def bare_step_time_s(self) -> float:
        return min(t / n for t, n in zip(self.bare_round_s, self.round_steps))

    @property
    def train_tokens_per_s(self) -> float:
        return self.tokens_per_step / self.step_time_s

    @property
    def bare_loop_tokens_per_s(self) -> float:
        return self.tokens_per_step / self.bare_step_time_s

    @property
    def overhead_ratio(self) -> float:
        return self.step_time_s / self.bare_step_time_s

    @property
    def overhead_ratio_total(self) -> float:
        return self.golf_s / self.bare_s


def compare_loops(trainer: Trainer, steps: int, warmup_steps: int, rounds: int) -> LoopTiming:
    """Warm up (golf's loop, then the bare loop), then `rounds` turns of each on the same batches, alternating which
    goes first."""
    device = trainer.device
    warmup_s = timed(lambda: golf_steps(trainer, warmup_steps), device)
    warmup_s += timed(lambda: bare_steps(trainer, warmup_steps), device)
    round_steps, golf_round_s, bare_round_s = [], [], []
    done = 0
    for r in range(rounds):
        n = steps * (r + 1) // rounds - done
        done += n
        round_steps.append(n)
        start = trainer.loader.state_dict()
        for which in ("golf", "bare") if r % 2 == 0 else ("bare", "golf"):
            trainer.loader.load_state_dict(start)  # the same batches for both
            if which == "golf":
                golf_round_s.append(timed(lambda: golf_steps(trainer, n), device))
            else:
                bare_round_s.append(timed(lambda: bare_steps(trainer, n), device))
    return LoopTiming(round_steps, golf_round_s, bare_round_s, trainer.cfg.batch_tokens, warmup_s)
