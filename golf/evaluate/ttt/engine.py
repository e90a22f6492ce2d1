"""The test-time-training engine: score a chunk of validation with the current weights, then adapt on it.

Chunk c covers targets [1 + c * chunk_tokens, 1 + (c + 1) * chunk_tokens); a window belongs to the chunk holding its
first scored target, and a chunk's scored range is [its first window's first_target, its last window's end_target).
Under protocol score_first each chunk is (1) scored by its windows with no gradients (ranks split the windows; sums
reduced in float64) and recorded in the ledger, then (2), unless it is the last chunk, adapted on: its scored targets
only, as rows of eval.seq_len (the tokens val[lo - 1 : hi] cut into inputs and next-token targets), ttt.epochs passes
in order over batches of ttt.batch_seqs rows. A last partial row is kept, padded at the end and masked out of the
loss: causal attention keeps the padding from touching the real positions. So chunk c is scored by weights that have
seen only chunks < c, and every target is scored exactly once. Nothing else ever trains.

Protocol adapt_first is ILLEGAL (it adapts on a chunk before scoring it); it exists so the audit can be shown failing.

Method lora adds document boundaries: a new piece starts wherever the document of a window's first scored target
changes (documents begin at BOS; so documents are resolved at window granularity), and the adapters and their
optimizer are reset there. Any other method uses one optimizer for the run, so momentum carries across chunks.
The schedule's clock never depends on validation content: cosine_chunks counts the chunks of the grid (for lora too),
and for lora, whose step count depends on where documents start, cosine_global runs over target positions.

Several ranks (torch.distributed): each scores its contiguous share of a chunk's windows and trains on its share of
each batch's rows; every rank's loss is divided by the batch's global target count and the gradients are summed with
all_reduce, which gives the single-process gradient. The ledger and the schedule are the same on every rank.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from golf.data.shards import TokenArray
from golf.data.tokenizer import BOS_ID, ByteTables
from golf.collectives import all_reduce_, all_reduce_grads_, gather_in_order, rank_world
from golf.evaluate.bpb import ByteCounter, EvalResult, bits_per_byte
from golf.evaluate.config import EvalConfig
from golf.evaluate.ledger import ScoreLedger
from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.ttt.eb_adaptive import OUTSIDE_BLOCKS, group_scales, micro_batch_masks, shrink_updates
from golf.evaluate.ttt.error_guided import top_fraction_loss
from golf.evaluate.ttt.lora import LoRAAdapters
from golf.evaluate.ttt.params import build_optimizer, only_these_train, select_adaptable, set_lr
from golf.model.names import num_blocks
from golf.evaluate.ttt.schedule import TTTSchedule
from golf.evaluate.windows import Window, host_to_device, progress_bar, rank_windows, score_windows

Autocast = Callable[[], contextlib.AbstractContextManager]


@dataclass
class TTTResult:
    result: EvalResult  # the score over all windows
    ledger: ScoreLedger
    chunks: list[dict]  # one record per chunk (per document piece for lora, with its `document`), in order; `lr`
    # is the lr of the chunk's first adaptation step (0.0 for a chunk that did not adapt)
    time_s: float  # scoring + adaptation
    score_time_s: float
    adapt_time_s: float
    adapted_tokens: int  # target tokens trained on, summed over epochs
    initial_state: dict[str, torch.Tensor] = field(repr=False)  # CPU copies of the state_dict before adaptation
    illegal: bool  # protocol adapt_first


@dataclass
class Piece:
    """The windows scored together, then adapted on: one chunk (for lora: one chunk of one document)."""

    chunk: int
    document: int
    windows: list[Window]

    @property
    def lo(self) -> int:
        return self.windows[0].first_target

    @property
    def hi(self) -> int:
        return self.windows[-1].end_target


def document_starts(val: TokenArray, block: int = 1 << 22) -> np.ndarray:
    """Positions of BOS tokens, i.e. the targets at which a new document begins (read in blocks: never all at once)."""
    found = [np.flatnonzero(val.read(a, min(a + block, len(val))) == BOS_ID) + a for a in range(0, len(val), block)]
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def plan_pieces(windows: Sequence[Window], chunk_tokens: int, doc_starts: Optional[np.ndarray] = None) -> list[Piece]:
    """Group the plan's windows by chunk (and by document when doc_starts is given), keeping their order. A window
    whose first target is a BOS still belongs to the document before it (it predicts that document's end)."""
    pieces: list[Piece] = []
    for w in windows:
        chunk = (w.first_target - 1) // chunk_tokens
        # the document is decided by the BOS tokens before the window's first target (its context), never by it
        document = 0 if doc_starts is None else int(np.searchsorted(doc_starts, w.first_target, side="left"))
        if pieces and (pieces[-1].chunk, pieces[-1].document) == (chunk, document):
            pieces[-1].windows.append(w)
        else:
            pieces.append(Piece(chunk, document, [w]))
    return pieces


def adaptation_rows(val: TokenArray, lo: int, hi: int, seq_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs, targets and a valid-target mask, each (rows, seq_len), covering targets [lo, hi) exactly once."""
    n_targets = hi - lo
    rows = math.ceil(n_targets / seq_len)
    padded = np.zeros(rows * seq_len + 1, dtype=np.int64)
    padded[:n_targets + 1] = val.read(lo - 1, hi)
    mask = (np.arange(rows * seq_len) < n_targets).reshape(rows, seq_len)
    return padded[:-1].reshape(rows, seq_len), padded[1:].reshape(rows, seq_len), mask


def rank_rows(n: int) -> range:
    rank, world = rank_world()
    return range(n * rank // world, n * (rank + 1) // world)




class Adapter:
    """The tensors TTT trains, their optimizer, and one adaptation step per method."""

    def __init__(self, model: nn.Module, cfg: TTTConfig, device: torch.device, autocast: Autocast,
                 forward: Optional[nn.Module] = None):
        self.model, self.cfg, self.device, self.autocast = model, cfg, device, autocast
        self.forward = forward if forward is not None else model  # the compiled model, when run_ttt compiles
        self.lora = (LoRAAdapters(model, cfg.lora_targets, cfg.lora_rank, cfg.freeze, cfg.layer_lr_mult)
                     if cfg.method == "lora" else None)
        self.adaptables = self.lora.adaptables if self.lora else select_adaptable(model, cfg)
        self.tensors = [a.tensor for a in self.adaptables]
        self.groups = [OUTSIDE_BLOCKS if a.block is None else a.block for a in self.adaptables]
        self.optimizer = build_optimizer(self.adaptables, cfg)

    def new_document(self) -> None:
        """LoRA: adapters back to zero, optimizer state forgotten."""
        if self.lora is not None:
            self.lora.reset()
            self.optimizer = build_optimizer(self.adaptables, self.cfg)

    def close(self) -> None:
        if self.lora is not None:
            self.lora.remove()

    def step(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray, lr: float) -> Optional[dict[int, float]]:
        """One optimizer step on a batch (every rank passes the whole batch); eb_adaptive returns its scales."""
        if self.optimizer is None or not mask.any():
            return None
        set_lr(self.optimizer, lr)
        if self.cfg.method == "eb_adaptive":
            parts = micro_batch_masks(mask, self.cfg.eb_microbatches)
            if len(parts) >= 2:
                return self._eb_step(x, y, parts)
        self._gradients(x, y, mask)
        self._apply()
        return None

    def _gradients(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> None:
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
        if self.cfg.method == "error_guided":  # collective with several ranks: every rank takes part
            loss = top_fraction_loss(nll, m, self.cfg.error_top_frac, n_valid)
        else:
            loss = torch.where(m, nll, 0.0).sum() / n_valid
        if len(rows):
            loss.backward()
        for t in self.tensors:
            if t.grad is None:
                t.grad = torch.zeros_like(t)
        all_reduce_grads_(self.tensors)

    def _apply(self) -> None:
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.tensors, self.cfg.grad_clip)
        self.optimizer.step()

    def _eb_step(self, x: np.ndarray, y: np.ndarray, parts: list[np.ndarray]) -> dict[int, float]:
        stacks: list[list[torch.Tensor]] = [[] for _ in self.tensors]
        for part in parts:
            self._gradients(x, y, part)
            for stack, t in zip(stacks, self.tensors):
                stack.append(t.grad.reshape(-1).clone())
        per_tensor = [torch.stack(stack) for stack in stacks]  # (K, numel) each
        scales = group_scales(per_tensor, self.groups, self.cfg.eb_prior)
        for t, grads in zip(self.tensors, per_tensor):
            t.grad = grads.mean(dim=0).view_as(t)
        with torch.no_grad():
            before = [t.detach().clone() for t in self.tensors]
        self._apply()
        shrink_updates(self.tensors, before, self.groups, scales)
        return scales


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


def freeze_warnings(model: nn.Module, cfg: TTTConfig, adapter: Adapter) -> list[str]:
    """What ttt.freeze leaves to adapt when it freezes every block (the tiny model has 4: ttt.freeze=4 is all)."""
    blocks = num_blocks(model)
    if cfg.method == "lora" or blocks == 0 or cfg.freeze < blocks:
        return []
    if not adapter.tensors:
        return [f"ttt.freeze={cfg.freeze} freezes every one of the model's {blocks} blocks and nothing outside them "
                f"adapts (ttt.params={cfg.params}, ttt.freeze_embeddings={cfg.freeze_embeddings}): TTT scores "
                "exactly as the evaluation without it"]
    return [f"ttt.freeze={cfg.freeze} freezes every one of the model's {blocks} blocks: only the "
            f"{len(adapter.tensors)} tensors outside them adapt (embedding, head, skip weights)"]


def _steps(piece: Piece, cfg: TTTConfig, seq_len: int) -> int:
    return cfg.epochs * math.ceil(math.ceil((piece.hi - piece.lo) / seq_len) / cfg.batch_seqs)


def run_ttt(model: nn.Module, val: TokenArray, tables: ByteTables, windows: list[Window], cfg: TTTConfig,
            eval_cfg: EvalConfig, device: torch.device, autocast: Autocast = contextlib.nullcontext,
            log: Callable[[str], None] = print, compile_model: bool = False) -> TTTResult:
    """Score `windows` chunk by chunk under cfg.protocol, adapting `model` in place (pass a fresh copy).

    compile_model: scoring and adaptation call torch.compile(model) (not for method lora, whose adapters patch the
    modules). Graphs are per mode (scoring without gradients, adapting with them); a batch of another size (a chunk's
    last) makes torch mark the batch dimension dynamic once, so the number of compilations does not grow with the
    number of chunks."""
    if cfg.protocol not in ("score_first", "adapt_first"):
        raise ValueError(f"run_ttt needs ttt.protocol score_first or adapt_first, got {cfg.protocol!r}")
    if not windows:
        raise ValueError("run_ttt got no windows to score")
    start = time.perf_counter()
    say = log if rank_world()[0] == 0 else (lambda _line: None)
    illegal = cfg.protocol == "adapt_first"
    if illegal:
        say("!!! ILLEGAL: ttt.protocol=adapt_first trains on every chunk BEFORE scoring it (breaks C3). "
            "This number is NOT a valid score; it exists only to show the audit failing. !!!")
    initial_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    pieces = plan_pieces(windows, cfg.chunk_tokens, document_starts(val) if cfg.method == "lora" else None)
    last = len(pieces) - 1
    adapts = [illegal or c < last for c in range(len(pieces))]
    n_chunks = pieces[-1].chunk + 1
    if cfg.method == "lora":  # pieces follow documents, i.e. validation content: the lr must not depend on where
        # later documents start (C1), so the global cosine runs over target positions instead of steps
        schedule = TTTSchedule(cfg.schedule, cfg.lr, n_chunks, len(val) - 1)
    else:
        total_steps = sum(_steps(p, cfg, eval_cfg.seq_len) for p, a in zip(pieces, adapts) if a)
        schedule = TTTSchedule(cfg.schedule, cfg.lr, n_chunks, total_steps)
    ledger, counter = ScoreLedger(len(val)), ByteCounter(tables, device)
    forward = torch.compile(model) if compile_model and cfg.method != "lora" else model
    adapter = Adapter(model, cfg, device, autocast, forward)
    for warning in freeze_warnings(model, cfg, adapter):
        say(f"WARNING: {warning}")
    step, adapted_tokens, totals = 0, 0, np.zeros(3)
    chunks: list[dict] = []
    kept: list[tuple[np.ndarray, np.ndarray]] = []
    was_training = model.training

    def adapt(piece: Piece) -> tuple[float, float, dict[int, float]]:
        nonlocal step, adapted_tokens
        t0 = _clock(device)
        x, y, mask = adaptation_rows(val, piece.lo, piece.hi, eval_cfg.seq_len)
        first_lr, scale_sums, scale_counts = None, defaultdict(float), defaultdict(int)
        model.train()
        for _ in range(cfg.epochs):
            for b in range(0, len(x), cfg.batch_seqs):
                lr = schedule.lr(piece.chunk, piece.lo - 1 if cfg.method == "lora" else step)
                first_lr = lr if first_lr is None else first_lr
                scales = adapter.step(x[b:b + cfg.batch_seqs], y[b:b + cfg.batch_seqs], mask[b:b + cfg.batch_seqs], lr)
                for key, value in (scales or {}).items():
                    scale_sums[key] += value
                    scale_counts[key] += 1
                step += 1
        adapted_tokens += int(mask.sum()) * cfg.epochs
        ledger.record_training(piece.lo, piece.hi)
        eb = {key: scale_sums[key] / scale_counts[key] for key in sorted(scale_sums)}
        return _clock(device) - t0, first_lr or 0.0, eb

    bar = progress_bar(len(pieces), "ttt", "chunk")
    try:
        with only_these_train(model, adapter.tensors):
            for c, piece in enumerate(pieces):
                if c > 0 and piece.document != pieces[c - 1].document:
                    adapter.new_document()
                adapt_s, lr, eb = adapt(piece) if illegal else (0.0, 0.0, {})
                t0 = _clock(device)
                (nll, tokens, nbytes), arrays = _score_piece(forward, val, piece, counter, eval_cfg, device, autocast,
                                                             eval_cfg.save_token_nll)
                ledger.record_scores(piece.lo, piece.hi)
                score_s = _clock(device) - t0
                if arrays is not None:
                    kept.append(arrays)
                if adapts[c] and not illegal:
                    adapt_s, lr, eb = adapt(piece)
                totals += (nll, tokens, nbytes)
                record = dict(chunk=piece.chunk, first_target=piece.lo, end_target=piece.hi, tokens=int(tokens),
                              bytes=int(nbytes), loss=nll / tokens, bpb=bits_per_byte(nll, nbytes), lr=lr,
                              score_time_s=score_s, adapt_time_s=adapt_s)
                if cfg.method == "lora":
                    record["document"] = piece.document
                if cfg.method == "eb_adaptive":
                    record["eb_scales"] = eb
                chunks.append(record)
                eb_text = (" eb_scales " + " ".join(f"{k}:{v:.3f}" for k, v in eb.items())) if eb else ""
                say(f"ttt {c + 1}/{len(pieces)} chunk {piece.chunk} tokens {int(tokens)} bpb {record['bpb']:.5f} "
                    f"lr {lr:.4g} score {score_s:.2f}s adapt {adapt_s:.2f}s{eb_text}")
                bar.set_postfix(bpb=f"{bits_per_byte(totals[0], totals[2]):.4f}", refresh=False)
                bar.update(1)
    finally:
        bar.close()
        adapter.close()
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
