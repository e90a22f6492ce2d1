"""The training loop: fixed global batch, wall-clock cap, warm-down, priming steps, divergence stop.

Semantics follow the challenge's script (docs/rules.md): gradient accumulation to a fixed number of tokens a step, Muon
momentum warmed up, the learning rate decayed linearly over the last stretch (of iterations or of the wall clock,
whichever ends first), priming steps run and thrown away (they warm up compiled kernels), and training time
counted without the time spent on validation.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from golf.checkpoint import Checkpointer, rng_state, set_rng_state
from golf.collectives import all_reduce_, barrier, rank_world
from golf.data.loader import TrainingLoader
from golf.optim.build import OptimConfig, set_lr_scale, set_muon_momentum
from golf.optim.schedule import lr_scale, muon_momentum, training_fraction, warmdown_scale
from golf.trainer_config import TrainConfig


class StepHook(Protocol):
    """Called after every optimizer step (not after priming steps) with `step` steps done. warmdown_progress is
    1 - the warm-down multiplier the next step would get (before optim.min_lr's floor): 0 before the warm-down, 1
    after the last step. QAT switch-on,
    soft-round annealing and SWA key off it. A hook with state also has state_dict() -> dict and
    restore(model, state), which a checkpoint saves and a resumed training calls before its first step."""

    def update(self, model: torch.nn.Module, step: int, warmdown_progress: float) -> None: ...


@dataclass
class TrainResult:
    status: str  # "ok" | "diverged"
    steps: int
    train_tokens: int
    train_time_s: float
    last_loss: float
    diverged_at_step: Optional[int] = None
    last_finite_loss: Optional[float] = None  # the last logged loss that was finite (for a diverged run)


class Trainer:
    def __init__(
        self,
        model: torch.nn.Module,
        optimizers: list[torch.optim.Optimizer],
        loader: TrainingLoader,
        train: TrainConfig,
        optim: OptimConfig,
        device: torch.device,
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        log: Callable[[str], None] = print,
        log_metrics: Callable[[dict[str, Any]], None] = lambda record: None,
        validate: Optional[Callable[[int], dict[str, Any]]] = None,
        hooks: tuple[StepHook, ...] = (),
        show_progress: bool = True,
        compile_model: bool = False,
        checkpointer: Optional[Checkpointer] = None,
    ):
        self.model = model
        # Under torchrun the training forward goes through DDP, whose bucketed all-reduces of the gradients overlap
        # the backward pass (the mean over ranks, as Muon's share-out needs). It may also be compiled. Hooks,
        # priming, checkpoints and export keep the plain module (the same parameters).
        self.ddp = _ddp(model, device)
        forward = self.ddp if self.ddp is not None else model
        self.forward = torch.compile(forward) if compile_model else forward
        self.optimizers = optimizers
        self.loader = loader
        self.cfg = train
        self.optim_cfg = optim
        self.device = device
        self.autocast = autocast
        self.log = log
        self.log_metrics = log_metrics
        self.validate = validate
        self.hooks = hooks
        self.show_progress = show_progress
        self.checkpointer = checkpointer
        # where training stands; a checkpoint saves these and a resumed training starts from them
        self.steps_done = 0
        self.train_time_s = 0.0  # training seconds so far (validation excluded), across resumptions
        self.last_finite_loss: Optional[float] = None

    def step(self, step: int, elapsed_s: float) -> torch.Tensor:
        """One optimizer step over the global batch; returns the mean micro-batch loss (not synced to host)."""
        cfg, opt_cfg = self.cfg, self.optim_cfg
        set_lr_scale(self.optimizers, lr_scale(step, elapsed_s, cfg.iterations, cfg.warmdown_steps, cfg.max_wallclock_s,
                                               cfg.warmdown_frac, opt_cfg.min_lr))
        set_muon_momentum(
            self.optimizers,
            muon_momentum(step, opt_cfg.muon_momentum_warmup_start, opt_cfg.muon_momentum, opt_cfg.muon_momentum_warmup_steps),
        )
        total = torch.zeros((), device=self.device)
        for micro in range(cfg.grad_accum_steps):
            batch = self.loader.next_batch(cfg.batch_tokens, cfg.seq_len, cfg.grad_accum_steps)
            x, y = batch
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            # packed documents (data.loader=documents) carry their segments: the model attends within them
            segments = getattr(batch, "cu_seqlens", None)
            extra = {} if segments is None else {"cu_seqlens": segments.to(self.device, non_blocking=True)}
            last = micro == cfg.grad_accum_steps - 1
            # DDP reduces during the last micro-batch's backward only; the earlier ones just accumulate
            no_sync = self.ddp.no_sync() if self.ddp is not None and not last else contextlib.nullcontext()
            with no_sync:
                with self.autocast():
                    loss = self.forward(x, y, **extra)
                (loss / cfg.grad_accum_steps).backward()
            total += loss.detach()
        # every rank now holds the global batch's gradient: DDP averaged it (or there is one rank)
        if opt_cfg.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), opt_cfg.grad_clip_norm)
        for opt in self.optimizers:
            opt.step()
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        return total / cfg.grad_accum_steps

    def prime(self) -> None:
        """Run priming steps, then restore weights, optimizer states and the data stream as they were. A hook with
        priming_steps > 0 (the layer loop's, model.loop_priming_steps) runs its own after these, via prime()."""
        hooks = [hook for hook in self.hooks if getattr(hook, "priming_steps", 0) > 0]
        if self.cfg.priming_steps <= 0 and not hooks:
            return
        model_state = copy.deepcopy(self.model.state_dict())
        optim_states = [copy.deepcopy(opt.state_dict()) for opt in self.optimizers]
        loader_state = self.loader.state_dict()
        for i in range(self.cfg.priming_steps):
            self.step(i, 0.0)
        for hook in hooks:
            hook.prime(lambda i: self.step(i, 0.0))
        self.model.load_state_dict(model_state)
        for opt, state in zip(self.optimizers, optim_states):
            opt.load_state_dict(state)
        self.loader.load_state_dict(loader_state)
        self.log(f"priming: {self.cfg.priming_steps} steps run and undone")

    def fraction_done(self, step: int) -> float:
        """How much of training `step` steps are: by steps, or by the wall clock when a cap ends it sooner (the
        measure train.warmdown_frac uses too)."""
        return training_fraction(step, self.train_time_s, self.cfg.iterations, self.cfg.max_wallclock_s)

    def warmdown_progress(self, step: int, elapsed_s: float) -> float:
        """How far the warm-down has gone: 0 before it, 1 at its end. optim.min_lr floors the lr, not this."""
        cfg = self.cfg
        return 1.0 - warmdown_scale(step, elapsed_s, cfg.iterations, cfg.warmdown_steps, cfg.max_wallclock_s,
                                    cfg.warmdown_frac)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed training needs to continue as if never stopped (golf/checkpoint.py)."""
        return {
            "steps_done": self.steps_done,
            "train_time_s": self.train_time_s,
            "last_finite_loss": self.last_finite_loss,
            "model": self.model.state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "loader": self.loader.state_dict(),
            "hooks": [hook.state_dict() if hasattr(hook, "state_dict") else None for hook in self.hooks],
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for opt, opt_state in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        self.loader.load_state_dict(state["loader"])
        for hook, hook_state in zip(self.hooks, state["hooks"], strict=True):
            if hook_state is not None:
                hook.restore(self.model, hook_state)
        set_rng_state(state["rng"])
        self.steps_done = state["steps_done"]
        self.train_time_s = state["train_time_s"]
        self.last_finite_loss = state["last_finite_loss"]

    def fit(self) -> TrainResult:
        cfg = self.cfg
        self.model.train()
        self.prime()
        train_time = self.train_time_s  # training seconds before `mark` (validation pauses the clock)
        elapsed = train_time
        step = self.steps_done
        last_loss = float("nan")
        # a bar for a person at a terminal; logs and CI get the step lines of train.log instead
        show_bar = self.show_progress and sys.stderr.isatty()
        bar = tqdm(total=cfg.iterations, initial=step, desc="train", unit="step", disable=not show_bar, leave=False)
        mark = time.perf_counter()
        while step < cfg.iterations:
            loss = self.step(step, train_time + time.perf_counter() - mark)
            step += 1
            now = time.perf_counter()
            elapsed = train_time + now - mark
            self.steps_done, self.train_time_s = step, elapsed
            if self.hooks:  # how far the warm-down has gone once this step is done: 1.0 after the last step
                progress = self.warmdown_progress(step, elapsed)
                for hook in self.hooks:
                    hook.update(self.model, step, progress)
            out_of_time = cfg.max_wallclock_s > 0 and _any_rank(elapsed >= cfg.max_wallclock_s, self.device)
            is_last = step == cfg.iterations or out_of_time
            if step % cfg.log_every == 0 or is_last or step <= 2:
                last_loss = _mean_over_ranks(loss)
                tokens_per_s = step * cfg.batch_tokens / max(elapsed, 1e-9)
                self.log_metrics({"step": step, "train_loss": last_loss, "train_time_s": elapsed,
                                  "train_tokens_per_s": tokens_per_s})
                left = _time_left(step, elapsed, cfg)
                bar.set_postfix_str(f"loss {last_loss:.4f} | {tokens_per_s:,.0f} tok/s | {left:.0f}s left")
                self.log(f"step {step}/{cfg.iterations} loss {last_loss:.4f} tok/s {tokens_per_s:,.0f} "
                         f"time {elapsed:.1f}s left {left:.0f}s")
                if not math.isfinite(last_loss):
                    bar.close()
                    self.log(f"diverged: the training loss is {last_loss} at step {step} "
                             f"(last finite loss {self.last_finite_loss})")
                    return TrainResult("diverged", step, step * cfg.batch_tokens, elapsed, last_loss, step,
                                       self.last_finite_loss)
                self.last_finite_loss = last_loss
            bar.update(1)
            validating = self.validate is not None and cfg.val_every > 0 and step % cfg.val_every == 0
            checkpointing = self.checkpointer is not None and self.checkpointer.due(step)
            if (validating or checkpointing) and not is_last:  # neither counts as training time: pause the clock
                train_time = elapsed
                if validating:
                    self.log_metrics({"step": step, **self.validate(step)})
                if checkpointing:
                    self.save_checkpoint(step)
                mark = time.perf_counter()
            if out_of_time:
                self.log(f"stopping at step {step}: the wall-clock cap of {cfg.max_wallclock_s:.0f}s is reached")
                break
        bar.close()
        return TrainResult("ok", step, step * cfg.batch_tokens, elapsed, last_loss)

    def save_checkpoint(self, step: int) -> None:
        """Rank 0 writes (every rank holds the same weights, optimizer state and data position); all wait for it."""
        if rank_world()[0] == 0:
            self.checkpointer.save(step, self.state_dict())
        barrier()


def _ddp(model: torch.nn.Module, device: torch.device) -> Optional[DistributedDataParallel]:
    if rank_world()[1] == 1:
        return None
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                   broadcast_buffers=False, gradient_as_bucket_view=True)


def _time_left(step: int, elapsed: float, cfg: TrainConfig) -> float:
    by_steps = (cfg.iterations - step) * elapsed / max(step, 1)
    return min(by_steps, max(cfg.max_wallclock_s - elapsed, 0.0)) if cfg.max_wallclock_s > 0 else by_steps


def _any_rank(flag: bool, device: torch.device) -> bool:
    """Every rank agrees to stop when any rank's clock runs out."""
    if rank_world()[1] == 1:
        return flag
    return bool(all_reduce_(torch.tensor(int(flag), device=device), op="max").item())


def _mean_over_ranks(loss: torch.Tensor) -> float:
    """The global batch's mean loss (each rank holds the mean of its equal share)."""
    world = rank_world()[1]
    if world == 1:
        return float(loss.item())
    return float(all_reduce_(loss.detach().to(torch.float64).clone()).item()) / world
