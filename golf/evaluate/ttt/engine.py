"""The test-time-training engine: score a piece of validation with the current weights, then adapt on it.

Validation is cut into pieces (plan.py: chunks of ttt.chunk_tokens, and documents for a method that follows them).
Under protocol score_first each piece is (1) scored by its windows with no gradients (ranks split the windows; sums
reduced in float64) and recorded in the ledger, then (2), unless it is the last piece, adapted on: its scored targets
only, as rows of eval.seq_len (the tokens val[lo - 1 : hi] cut into inputs and next-token targets), ttt.epochs passes
in order over batches of ttt.batch_seqs rows. A last partial row is kept, padded at the end and masked out of the
loss: causal attention keeps the padding from touching the real positions. So a piece is scored by weights that have
seen only the pieces before it, and every target is scored exactly once. Nothing else ever trains.

Protocol adapt_first is ILLEGAL (it adapts on a chunk before scoring it); it exists so the audit can be shown failing.

This loop is the same for every method (ttt.method, found in the registry of method.py): the method says which
tensors adapt, the loss, the step and what it adds to a piece's record. One optimizer serves the run, so momentum
carries across chunks, except that a method that follows documents gets its tensors reset and a fresh optimizer at
each new document. The lr is set in one place, set_lr before every step, from the schedule, whose clock never
depends on validation content: cosine_chunks counts the chunks of the grid, and when pieces follow documents (whose
step count depends on where documents start) cosine_global runs over target positions instead of steps.

Several ranks (torch.distributed): each scores its contiguous share of a piece's windows and trains on its share of
each batch's rows; every rank's loss is divided by the batch's global target count and the gradients are summed
(golf/collectives.py), which gives the single-process gradient. The ledger and the schedule are the same on every
rank.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from golf.collectives import all_reduce_, all_reduce_grads_, gather_in_order, rank_world
from golf.data.shards import TokenArray
from golf.data.tokenizer import ByteTables
from golf.evaluate.bpb import ByteCounter, EvalResult, bits_per_byte
from golf.evaluate.config import EvalConfig
from golf.evaluate.ledger import ScoreLedger
from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.ttt.method import Method, get as get_method
from golf.evaluate.ttt.params import build_optimizer, only_these_train, set_lr
from golf.evaluate.ttt.plan import Piece, adaptation_rows, adaptation_steps, document_starts, plan_pieces
from golf.evaluate.ttt.schedule import TTTSchedule
from golf.evaluate.windows import Window, host_to_device, progress_bar, rank_windows, score_windows

Autocast = Callable[[], contextlib.AbstractContextManager]


@dataclass
class TTTResult:
    result: EvalResult  # the score over all windows
    ledger: ScoreLedger
    chunks: list[dict]  # one record per piece, in order, with the method's extra keys (lora: `document`); `lr`
    # is the lr of the chunk's first adaptation step (0.0 for a chunk that did not adapt)
    time_s: float  # scoring + adaptation
    score_time_s: float
    adapt_time_s: float
    adapted_tokens: int  # target tokens trained on, summed over epochs
    initial_state: dict[str, torch.Tensor] = field(repr=False)  # CPU copies of the state_dict before adaptation
    illegal: bool  # protocol adapt_first
    # a method that scores with windows of its own (per-document TTT): each scoring's window, for the audit's C2
    # (kept when eval.save_token_nll); None: the plan's windows
    scoring_windows: Optional[list[Window]] = field(default=None, repr=False)
    # of those, windows the artifact's weights scored as loaded (per-document TTT: chunk 0 of every document scored
    # before any phase, its adapters at identity), for C2; None: only the ledger's version 0 says which
    base_windows: Optional[list[Window]] = field(default=None, repr=False)


def rank_rows(n: int) -> range:
    rank, world = rank_world()
    return range(n * rank // world, n * (rank + 1) // world)


class Adapter:
    """The engine's side of adapting: the method's tensors, their optimizer, and the gradient and step every method
    builds its step from (method.Stepper)."""

    def __init__(self, method: Method, forward: nn.Module, cfg: TTTConfig, device: torch.device, autocast: Autocast):
        self.method, self.forward, self.cfg, self.device, self.autocast = method, forward, cfg, device, autocast
        self.tensors = [a.tensor for a in method.adaptables]
        self.optimizer = build_optimizer(method.adaptables, cfg)

    def new_document(self) -> None:
        """The method's tensors back to their start, the optimizer's state forgotten."""
        self.method.reset()
        self.optimizer = build_optimizer(self.method.adaptables, self.cfg)

    def step(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray, lr: float) -> dict[Any, float]:
        """One step of the method on a batch (every rank passes the whole batch) at learning rate `lr`."""
        if self.optimizer is None or not mask.any():
            return {}
        set_lr(self.optimizer, lr)
        return self.method.step(self, x, y, mask)

    def gradients(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> None:
        """.grad of every adapted tensor := gradient of the loss on `mask`'s targets, all ranks' rows together."""
        for t in self.tensors:
            t.grad = None
        n_valid = int(mask.sum())
        rows = np.asarray([r for r in rank_rows(len(x)) if mask[r].any()], dtype=np.int64)
        m = host_to_device(torch.from_numpy(mask[rows]), self.device)
        if len(rows):
            inputs = host_to_device(torch.from_numpy(x[rows]), self.device)
            targets = host_to_device(torch.from_numpy(y[rows]), self.device)
            with self.autocast():
                nll = self.forward(inputs, targets, reduction="none").float()
        else:
            nll = torch.zeros(m.shape, device=self.device)
        loss = self.method.loss(nll, m, n_valid)  # every rank computes it: a method's loss may be a collective
        if len(rows):
            loss.backward()
        for t in self.tensors:
            if t.grad is None:
                t.grad = torch.zeros_like(t)
        all_reduce_grads_(self.tensors)

    def apply(self) -> None:
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.tensors, self.cfg.grad_clip)
        self.optimizer.step()


def _logged(extra: dict[str, Any]) -> str:
    """A record's non-empty dict-valued extras as ' key k:v ...' (eb_adaptive's per-block scales)."""
    return "".join(f" {key} " + " ".join(f"{k}:{v:.3f}" for k, v in value.items())
                   for key, value in extra.items() if isinstance(value, dict) and value)


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _score_piece(model, val, piece, counter, eval_cfg, device, autocast, keep: bool):
    """(nll sum, tokens, bytes) over all ranks in float64, and the per-target arrays when `keep`."""
    scores = score_windows(model, val, rank_windows(piece.windows), counter, eval_cfg.batch_seqs, device, autocast,
                           keep=keep)
    sums = all_reduce_(torch.tensor([scores.nll_sum, float(scores.count), scores.byte_sum], dtype=torch.float64,
                                    device=device))
    arrays = (gather_in_order(scores.nll, device), gather_in_order(scores.bytes, device)) if keep else None
    return tuple(float(v) for v in sums.tolist()), arrays


def _schedule(pieces: list[Piece], adapts: list[bool], by_position: bool, cfg: TTTConfig, n_targets: int,
              seq_len: int) -> TTTSchedule:
    """The lr schedule over the run. Pieces that follow documents follow validation content: the lr must not depend
    on where later documents start (C1), so the global clock runs over target positions instead of steps."""
    n_chunks = pieces[-1].chunk + 1
    if by_position:
        return TTTSchedule(cfg.schedule, cfg.lr, n_chunks, n_targets)
    total_steps = sum(adaptation_steps(p, cfg.epochs, cfg.batch_seqs, seq_len) for p, a in zip(pieces, adapts) if a)
    return TTTSchedule(cfg.schedule, cfg.lr, n_chunks, total_steps)


def run_ttt(model: nn.Module, val: TokenArray, tables: ByteTables, windows: list[Window], cfg: TTTConfig,
            eval_cfg: EvalConfig, device: torch.device, autocast: Autocast = contextlib.nullcontext,
            log: Callable[[str], None] = print, compile_model: bool = False) -> TTTResult:
    """Score `windows` chunk by chunk under cfg.protocol, adapting `model` in place (pass a fresh copy).

    compile_model: scoring and adaptation call torch.compile(model) (unless the method is not compilable, as lora's
    adapters patch the modules). Graphs are per mode (scoring without gradients, adapting with them); a batch of
    another size (a chunk's last) makes torch mark the batch dimension dynamic once, so the number of compilations
    does not grow with the number of chunks."""
    if cfg.protocol not in ("score_first", "adapt_first"):
        raise ValueError(f"run_ttt needs ttt.protocol score_first or adapt_first, got {cfg.protocol!r}")
    if not windows:
        raise ValueError("run_ttt got no windows to score")
    kind = get_method(cfg.method)
    if kind.runs_documents:  # the method scores document by document in a loop of its own (score-first inside)
        if cfg.protocol != "score_first":
            raise ValueError(f"ttt.method={cfg.method} runs only under ttt.protocol=score_first")
        return kind.run_documents(model, val, tables, windows, cfg, eval_cfg, device, autocast, log)
    start = time.perf_counter()
    say = log if rank_world()[0] == 0 else (lambda _line: None)
    illegal = cfg.protocol == "adapt_first"
    if illegal:
        say("!!! ILLEGAL: ttt.protocol=adapt_first trains on every chunk BEFORE scoring it (breaks C3). "
            "This number is NOT a valid score; it exists only to show the audit failing. !!!")
    initial_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    by_document = kind.follows_documents
    pieces = plan_pieces(windows, cfg.chunk_tokens, document_starts(val) if by_document else None)
    last = len(pieces) - 1
    adapts = [illegal or c < last for c in range(len(pieces))]
    schedule = _schedule(pieces, adapts, by_document, cfg, len(val) - 1, eval_cfg.seq_len)
    ledger, counter = ScoreLedger(len(val)), ByteCounter(tables, device)
    forward = torch.compile(model) if compile_model and kind.compilable else model
    method = kind(model, cfg)
    adapter = Adapter(method, forward, cfg, device, autocast)
    for warning in method.warnings():
        say(f"WARNING: {warning}")
    step, adapted_tokens, totals = 0, 0, np.zeros(3)
    chunks: list[dict] = []
    kept: list[tuple[np.ndarray, np.ndarray]] = []
    was_training = model.training

    def adapt(piece: Piece) -> tuple[float, float, dict[Any, float]]:
        """(seconds, the lr of its first step, the means over its steps of what the method's steps returned)"""
        nonlocal step, adapted_tokens
        t0 = _clock(device)
        x, y, mask = adaptation_rows(val, piece.lo, piece.hi, eval_cfg.seq_len)
        first_lr, sums, counts = None, defaultdict(float), defaultdict(int)
        model.train()
        for _ in range(cfg.epochs):
            for b in range(0, len(x), cfg.batch_seqs):
                lr = schedule.lr(piece.chunk, piece.lo - 1 if by_document else step)
                first_lr = lr if first_lr is None else first_lr
                values = adapter.step(x[b:b + cfg.batch_seqs], y[b:b + cfg.batch_seqs], mask[b:b + cfg.batch_seqs], lr)
                for key, value in values.items():
                    sums[key] += value
                    counts[key] += 1
                step += 1
        adapted_tokens += int(mask.sum()) * cfg.epochs
        ledger.record_training(piece.lo, piece.hi)
        means = {key: sums[key] / counts[key] for key in sorted(sums)}
        return _clock(device) - t0, first_lr or 0.0, means

    bar = progress_bar(len(pieces), "ttt", "chunk")
    try:
        with only_these_train(model, adapter.tensors):
            for c, piece in enumerate(pieces):
                if c > 0 and piece.document != pieces[c - 1].document:
                    adapter.new_document()
                adapt_s, lr, means = adapt(piece) if illegal else (0.0, 0.0, {})
                t0 = _clock(device)
                (nll, tokens, nbytes), arrays = _score_piece(forward, val, piece, counter, eval_cfg, device, autocast,
                                                             eval_cfg.save_token_nll)
                ledger.record_scores(piece.lo, piece.hi)
                score_s = _clock(device) - t0
                if arrays is not None:
                    kept.append(arrays)
                if adapts[c] and not illegal:
                    adapt_s, lr, means = adapt(piece)
                totals += (nll, tokens, nbytes)
                record = dict(chunk=piece.chunk, first_target=piece.lo, end_target=piece.hi, tokens=int(tokens),
                              bytes=int(nbytes), loss=nll / tokens, bpb=bits_per_byte(nll, nbytes), lr=lr,
                              score_time_s=score_s, adapt_time_s=adapt_s)
                extra = method.record(piece, means)
                record.update(extra)
                chunks.append(record)
                say(f"ttt {c + 1}/{len(pieces)} chunk {piece.chunk} tokens {int(tokens)} bpb {record['bpb']:.5f} "
                    f"lr {lr:.4g} score {score_s:.2f}s adapt {adapt_s:.2f}s{_logged(extra)}")
                bar.set_postfix(bpb=f"{bits_per_byte(totals[0], totals[2]):.4f}", refresh=False)
                bar.update(1)
    finally:
        bar.close()
        method.close()
        model.train(was_training)

    nll_sum, tokens, byte_sum = (float(v) for v in totals)
    time_s = time.perf_counter() - start
    result = EvalResult(
        val_loss=nll_sum / tokens, val_bpb=bits_per_byte(nll_sum, byte_sum), tokens=int(tokens), bytes=int(byte_sum),
        time_s=time_s,
        token_nll=np.concatenate([a[0] for a in kept]) if eval_cfg.save_token_nll else None,
        token_bytes=np.concatenate([a[1] for a in kept]) if eval_cfg.save_token_nll else None,
    )
    score_time = sum(r["score_time_s"] for r in chunks)
    adapt_time = sum(r["adapt_time_s"] for r in chunks)
    say(f"ttt done: val_bpb {result.val_bpb:.5f} over {result.tokens} targets, {len(pieces)} chunks, "
        f"{adapted_tokens} adapted tokens, score {score_time:.1f}s adapt {adapt_time:.1f}s total {time_s:.1f}s"
        + (" (ILLEGAL protocol adapt_first)" if illegal else ""))
    return TTTResult(result, ledger, chunks, time_s, score_time, adapt_time, adapted_tokens, initial_state, illegal)
