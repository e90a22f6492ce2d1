"""Scoring windows: which validation targets each forward pass scores, and the scorer every evaluation shares.

Target j (1 <= j < N) is token j of the validation stream predicted from tokens < j. A window of length L starting at
token a reads tokens a .. a+L-1 and predicts targets a+1 .. a+L; it scores the targets from a+1+score_from on.
- standard (stride = L): windows side by side, every position scored, the tail that does not fill a window dropped,
  exactly the challenge's evaluation;
- sliding (stride S < L): the first window scores all its L targets, each next one (S tokens later) only its last S,
  so every scored target but the first L sees at least L - S tokens of context; a last window aligned to the end of
  the stream scores whatever is left, so every target 1 .. N-1 is scored exactly once.
Every window is full length (batches need no padding). Scored ranges are contiguous and increasing, so the scores
of a plan concatenate into one array over targets [first_target, last_target].
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from golf.data.shards import TokenArray
from golf.data.tokenizer import ByteTables
from golf.collectives import all_reduce_, gather_in_order, rank_world
from golf.evaluate.bpb import ByteCounter, EvalResult, bits_per_byte


@dataclass(frozen=True)
class Window:
    start: int  # first input token
    length: int  # input tokens; targets start+1 .. start+length
    score_from: int  # offset of the first scored target within the window

    @property
    def first_target(self) -> int:
        return self.start + 1 + self.score_from

    @property
    def end_target(self) -> int:  # one past the last scored target
        return self.start + self.length + 1

    @property
    def scored(self) -> int:
        return self.length - self.score_from


def host_to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on `device`. To a GPU it goes through pinned memory, so the copy is asynchronous (it does not wait
    for the kernels queued before it, as a copy from pageable memory does); on the CPU it is the tensor itself.
    It lives here, not in golf/hardware.py, because the artifact's code files (code_size.py) must hold it."""
    if device.type != "cuda":
        return tensor.to(device)
    if not tensor.is_pinned():
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def progress_bar(total: int, desc: str, unit: str) -> tqdm:
    """A transient progress bar on stderr, drawn only when stderr is a terminal and only by rank 0 (a log file or a
    pipe gets nothing), and not with GOLF_PROGRESS=0 (golf.logs: parallel jobs); lines logged meanwhile go above it."""
    show = sys.stderr.isatty() and rank_world()[0] == 0 and os.environ.get("GOLF_PROGRESS", "1") != "0"
    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=not show, dynamic_ncols=True)


def plan_windows(n_tokens: int, seq_len: int, stride: int | None = None) -> list[Window]:
    """Windows over a stream of n_tokens; stride None or seq_len is the standard evaluation."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    targets = n_tokens - 1
    if targets < seq_len:
        raise ValueError(f"the validation set has {n_tokens} tokens, fewer than one window of {seq_len} + 1")
    if stride is None or stride == seq_len:
        return [Window(k * seq_len, seq_len, 0) for k in range(targets // seq_len)]
    if not 1 <= stride < seq_len:
        raise ValueError(f"stride must be in [1, seq_len={seq_len}], got {stride}")
    windows = [Window(0, seq_len, 0)]
    start = stride
    while start + seq_len <= targets:
        windows.append(Window(start, seq_len, seq_len - stride))
        start += stride
    done = windows[-1].end_target  # targets < done are scored
    if done <= targets:
        last = targets - seq_len
        windows.append(Window(last, seq_len, done - 1 - last))
    return windows


@dataclass
class WindowScores:
    """Per scored target, in target order: NLL (nats, float64) and bytes (float64), when kept; and always their sums
    (float64) and the number of scored targets."""

    first_target: int
    nll: Optional[np.ndarray]
    bytes: Optional[np.ndarray]
    nll_sum: float = 0.0
    byte_sum: float = 0.0
    count: int = 0

    @property
    def end_target(self) -> int:
        return self.first_target + self.count


def target_bytes(counter: ByteCounter, val: TokenArray, batch: Sequence[Window], x: torch.Tensor, y: torch.Tensor,
                 device: torch.device) -> torch.Tensor:
    """Bytes of every target of the batch (rows of y): the validation set's byte sidecar when it has one (CaseOps:
    the original text's bytes of target j are entry j), else the tokenizer's tables."""
    sidecar = getattr(val, "byte_counts", None)
    if sidecar is None:
        return counter(x, y)
    rows = np.stack([sidecar.read(w.start + 1, w.start + w.length + 1) for w in batch])
    return host_to_device(torch.from_numpy(rows), device)


def scored_index(batch: Sequence[Window]) -> np.ndarray:
    """Flat positions (row * length + offset) of the scored targets of a batch of equal-length windows, in order."""
    length = batch[0].length
    return np.concatenate([row * length + np.arange(w.score_from, w.length) for row, w in enumerate(batch)])


@torch.no_grad()
def score_windows(
    model: torch.nn.Module,
    val: TokenArray,
    windows: Sequence[Window],
    counter: ByteCounter,
    batch_seqs: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    keep: bool = True,
    on_batch: Optional[Callable[[int], object]] = None,
) -> WindowScores:
    """Score `windows` (contiguous, in order) with the model as it is, in eval mode and inference only; rows of a
    batch never interact, so batching cannot move a score. keep=False streams: only float64 sums accumulate (on the
    device, read once at the end), so memory depends on batch_seqs and never on the number of windows."""
    if not windows:
        return WindowScores(0, np.zeros(0), np.zeros(0)) if keep else WindowScores(0, None, None)
    was_training = model.training
    model.eval()
    nll_parts, byte_parts = [], []
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    count = 0
    try:
        for i in range(0, len(windows), batch_seqs):
            batch = windows[i:i + batch_seqs]
            rows = np.stack([val.read(w.start, w.start + w.length + 1) for w in batch])
            tokens = host_to_device(torch.from_numpy(rows), device)
            index = host_to_device(torch.from_numpy(scored_index(batch)), device)
            x, y = tokens[:, :-1], tokens[:, 1:]
            with autocast():
                nll = model(x, y, reduction="none")
            nll = nll.reshape(-1).index_select(0, index).double()
            nbytes = target_bytes(counter, val, batch, x, y, device).reshape(-1).index_select(0, index).double()
            sums += torch.stack((nll.sum(), nbytes.sum()))
            count += int(index.numel())
            if keep:
                nll_parts.append(nll)
                byte_parts.append(nbytes)
            if on_batch is not None:
                on_batch(len(batch))
    finally:
        model.train(was_training)
    nll_sum, byte_sum = (float(v) for v in sums.tolist())
    if not keep:
        return WindowScores(windows[0].first_target, None, None, nll_sum, byte_sum, count)
    return WindowScores(windows[0].first_target, torch.cat(nll_parts).cpu().numpy(), torch.cat(byte_parts).cpu().numpy(),
                        nll_sum, byte_sum, count)


def rank_windows(windows: Sequence[Window]) -> Sequence[Window]:
    """This rank's contiguous share of the windows (all of them without torch.distributed)."""
    rank, world = rank_world()
    n = len(windows)
    return windows[n * rank // world: n * (rank + 1) // world]


def evaluate_windows(
    model: torch.nn.Module,
    val: TokenArray,
    tables: ByteTables,
    windows: Sequence[Window],
    batch_seqs: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    save_token_nll: bool = False,
) -> EvalResult:
    """Score the plan (ranks split the windows, float64 sums reduced) into an EvalResult. Windows stream from the
    memmap and only sums accumulate, so memory depends on batch_seqs, not on the validation set; save_token_nll keeps
    the per-target arrays too (16 bytes a target)."""
    start_time = time.perf_counter()
    mine = rank_windows(windows)
    with progress_bar(len(mine), "eval", "window") as bar:
        scores = score_windows(model, val, mine, ByteCounter(tables, device), batch_seqs, device, autocast,
                               keep=save_token_nll, on_batch=bar.update)
    sums = torch.tensor([scores.nll_sum, float(scores.count), scores.byte_sum], dtype=torch.float64, device=device)
    nll_sum, tokens, byte_sum = (float(v) for v in all_reduce_(sums).tolist())
    token_nll = token_bytes = None
    if save_token_nll:  # every rank's share, gathered to all ranks in validation order
        token_nll, token_bytes = gather_in_order(scores.nll, device), gather_in_order(scores.bytes, device)
    return EvalResult(
        val_loss=nll_sum / tokens, val_bpb=bits_per_byte(nll_sum, byte_sum), tokens=int(tokens), bytes=int(byte_sum),
        time_s=time.perf_counter() - start_time, token_nll=token_nll, token_bytes=token_bytes,
    )


def evaluate_standard(model: torch.nn.Module, val: TokenArray, tables: ByteTables, seq_len: int, batch_seqs: int,
                      device: torch.device, autocast=contextlib.nullcontext, save_token_nll: bool = False) -> EvalResult:
    """The challenge's evaluation: non-overlapping windows of seq_len, no carried context, the tail dropped."""
    return evaluate_windows(model, val, tables, plan_windows(len(val), seq_len), batch_seqs, device, autocast,
                            save_token_nll)
