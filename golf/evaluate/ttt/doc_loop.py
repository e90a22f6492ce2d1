"""Per-document LoRA TTT, optionally phased: the records' eval_val_ttt_phased as golf's evaluation loop.

The plan's targets are cut into documents (documents.py) and run in batches of ttt.doc_batch documents, each document
in a row of its own with its own adapters (doc_adapters.py). A batch goes chunk by chunk: chunk ci of every document
still running is ttt.chunk_tokens targets, read in a window of at most eval.seq_len tokens of its own document
(documents.chunk_window); one forward gives the chunk's scores (recorded: that is the score) and, unless it is the
document's last chunk, the loss of the step that follows: the sum over documents of the mean NLL of their chunk,
ttt.epochs steps (the records' TTT_GRAD_STEPS; later steps recompute the forward), AdamW with betas (ttt.momentum,
ttt.lora_beta2), eps 1e-10, ttt.weight_decay, lr ttt.lr (or SGD with momentum ttt.momentum). So every chunk is scored
by adapters trained only on the chunks before it in its own document. Before each batch, B goes back to zero (and A
too, unless ttt.lora_warm_start_a) and the optimizer's state is forgotten.

Phases (ttt.phases, phased_doc_lora): after the batch that brings the number of scored documents to a boundary (to
each one in turn when a batch crosses several; the records run one per batch), the base model trains on the first `boundary` scored documents (global_sgd.py), fresh adapters are built, and scoring
goes on with the updated base. Everything it trains on was scored before, and the ledger records it as one training
over those documents' targets.

Several ranks: each runs every world-th batch (the ledger, the same on every rank, records all of them); scores are
summed over ranks at the end and at each phase boundary the ranks meet for the global step. With warm-started A a
rank's adapters inherit from that rank's previous batch, so the score then depends on the world size (as in the
records); otherwise it does not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from golf.collectives import all_reduce_, barrier, rank_world
from golf.data.shards import TokenArray
from golf.data.tokenizer import ByteTables
from golf.evaluate.bpb import ByteCounter, EvalResult, bits_per_byte
from golf.evaluate.config import EvalConfig
from golf.evaluate.ledger import ScoreLedger
from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.ttt.doc_adapters import AInit, DocAdapters
from golf.evaluate.ttt.doc_ledger import BatchLog, append_batch, everyones_logs
from golf.evaluate.ttt.documents import (Document, batches, chunk_count, chunk_window, concatenated,
                                         phase_training_set, rank_in_order, split_documents)
from golf.evaluate.ttt.global_sgd import global_sgd
from golf.evaluate.ttt.params import Adaptable, build_optimizer, set_lr
from golf.evaluate.windows import Window, host_to_device, target_bytes

Autocast = Callable[[], contextlib.AbstractContextManager]


def plan_bytes(val: TokenArray, tokens: np.ndarray, tables: ByteTables, first: int, end: int,
               device: torch.device) -> np.ndarray:
    """float64 bytes of targets [first, end): windows.target_bytes's (the byte sidecar's when the set has one, else
    the tables'), for the plan read as one window."""
    x = torch.from_numpy(tokens[first - 1:end - 1].astype(np.int64)).to(device)[None]
    y = torch.from_numpy(tokens[first:end].astype(np.int64)).to(device)[None]
    nbytes = target_bytes(ByteCounter(tables, device), val, [Window(first - 1, end - first, 0)], x, y, device)
    return nbytes[0].double().cpu().numpy()


def optimizer_for(tensors: list[torch.Tensor], cfg: TTTConfig) -> torch.optim.Optimizer:
    """The adapters' optimizer: params.build_optimizer with the records' AdamW (beta2 ttt.lora_beta2, eps 1e-10)."""
    optimizer = build_optimizer([Adaptable(f"lora{i}", t, None, 1.0) for i, t in enumerate(tensors)], cfg,
                                beta2=cfg.lora_beta2, eps=1e-10)
    set_lr(optimizer, cfg.lr)
    return optimizer


class Scores:
    """Per-target NLL over the plan, filled as chunks are scored (float64, validation order; NaN: not scored yet)."""

    def __init__(self, first: int, end: int):
        self.first = first
        self.nll = np.full(end - first, np.nan, dtype=np.float64)

    def unscored(self, documents: list[Document]) -> list[int]:
        """The targets of these documents that no chunk scored."""
        return [int(t) for d in documents for t in np.flatnonzero(np.isnan(
            self.nll[d.first_target - self.first:d.end_target - self.first])) + d.first_target]


def run_batch(model: nn.Module, tokens: np.ndarray, batch: list[Document], adapters: DocAdapters, cfg: TTTConfig,
              context: int, device: torch.device, autocast: Autocast, scores: Scores, log: BatchLog) -> None:
    """Score and adapt one batch of documents (adapters already reset), writing each chunk's NLL into scores and
    into log's ledger as it keeps them, and each step's training (the targets its loss read) after the step."""
    chunk = cfg.chunk_tokens
    optimizer = optimizer_for(adapters.tensors(), cfg)
    counts = np.array([chunk_count(d, chunk) for d in batch])
    rows = adapters.docs
    for ci in range(int(counts.max())):
        width = min(context, (ci + 1) * chunk)  # every row's window length but a last chunk's (shorter)
        offset = ci * chunk - max(0, (ci + 1) * chunk - context)  # the full windows' first scored position
        x = np.zeros((rows, width), dtype=np.int64)
        y = np.zeros((rows, width), dtype=np.int64)
        spans: list[tuple[int, int, int, int]] = []  # (row, window offset, scored, first target)
        starts: dict[int, int] = {}  # row -> its window's first token
        for row, doc in enumerate(batch):
            if ci >= counts[row]:
                continue
            w = chunk_window(doc, ci, chunk, context, cfg.doc_last_window)
            x[row, :w.length] = tokens[w.start:w.start + w.length]
            y[row, :w.length] = tokens[w.start + 1:w.start + w.length + 1]
            spans.append((row, w.offset, w.scored, w.start + 1 + w.offset))
            starts[row] = w.start
            if log.windows is not None:
                log.windows.append(Window(w.start, w.length, w.offset))
            if log.first_windows is not None and ci == 0:
                log.first_windows.append(Window(w.start, w.length, w.offset))
        train = torch.tensor((counts - 1 > ci).tolist() + [False] * (rows - len(batch)), dtype=torch.float32,
                             device=device)
        xt, yt = host_to_device(torch.from_numpy(x), device), host_to_device(torch.from_numpy(y), device)
        for step in range(max(cfg.epochs, 1)):
            with torch.enable_grad(), autocast():
                nll = model(xt, yt, reduction="none").float()
            if step == 0:
                kept = nll.detach().double().cpu().numpy()
                for row, off, n, target in spans:
                    scores.nll[target - scores.first:target - scores.first + n] = kept[row, off:off + n]
                    log.ledger.record_scores(target, target + n)
            if not bool(train.any()) or cfg.epochs <= 0:
                break
            per_doc = nll[:, offset:offset + chunk].mean(dim=-1)
            optimizer.zero_grad(set_to_none=True)
            (per_doc * train).sum().backward()
            optimizer.step()
            for row in np.flatnonzero(train.cpu().numpy()):  # row's targets at positions offset .. offset + chunk
                log.ledger.record_training(starts[row] + 1 + offset, starts[row] + 1 + offset + chunk)


def batch_record(i: int, batch: list[Document], phase: int, seconds: float, nll: np.ndarray, nbytes: np.ndarray,
                 first: int, lr: float) -> dict:
    """The engine's per-piece record for one batch of documents (scoring and adapting are one loop here)."""
    index = np.concatenate([np.arange(d.first_target, d.end_target) - first for d in batch])
    loss_sum, byte_sum = float(nll[index].sum()), float(nbytes[index].sum())
    return dict(chunk=i, first_target=min(d.first_target for d in batch), end_target=max(d.end_target for d in batch),
                tokens=len(index), bytes=int(round(byte_sum)), loss=loss_sum / len(index),
                bpb=bits_per_byte(loss_sum, byte_sum) if byte_sum > 0 else float("nan"), lr=lr, score_time_s=seconds,
                adapt_time_s=0.0, document=batch[0].index, documents=len(batch), phase=phase)


def run_documents(model: nn.Module, val: TokenArray, tables: ByteTables, windows: list[Window], cfg: TTTConfig,
                  eval_cfg: EvalConfig, device: torch.device, autocast: Autocast = contextlib.nullcontext,
                  log: Callable[[str], None] = print, phases: Optional[list[int]] = None,
                  a_init: Optional[AInit] = None):
    """Score the plan's targets document by document (module docstring); returns the engine's TTTResult."""
    from golf.evaluate.ttt.engine import TTTResult  # the engine imports the methods' registry

    start = time.perf_counter()
    rank, world = rank_world()
    say = log if rank == 0 else (lambda _line: None)
    if cfg.chunk_tokens > eval_cfg.seq_len:  # the config refuses it; a chunk's targets must fit one window
        say(f"WARNING: ttt.chunk_tokens={cfg.chunk_tokens} > eval.seq_len={eval_cfg.seq_len}: chunks of "
            f"{eval_cfg.seq_len} targets")
        cfg = dataclasses.replace(cfg, chunk_tokens=eval_cfg.seq_len)
    first, end = windows[0].first_target, windows[-1].end_target
    tokens = val.read(0, end).astype(np.int64)
    documents = split_documents(tokens, first, end)
    order = batches(documents, cfg.doc_batch, cfg.doc_order)
    ranks = rank_in_order(documents, cfg.doc_batch, cfg.doc_order)
    boundaries = sorted({min(b, len(documents)) for b in (phases or [])})  # past the end: one phase on them all
    say(f"ttt documents: {len(documents)} documents in {len(order)} batches of {cfg.doc_batch} "
        f"({cfg.doc_order} order), chunks of {cfg.chunk_tokens} targets in windows of {eval_cfg.seq_len}"
        + (f", phases at {boundaries} documents" if boundaries else ""))
    initial_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    ledger, scores = ScoreLedger(len(val)), Scores(first, end)
    keep_windows = eval_cfg.save_token_nll  # the audit's C2 reads them; a full run need not hold them
    scoring_windows: Optional[list[Window]] = [] if keep_windows else None
    base_windows: Optional[list[Window]] = [] if keep_windows else None
    was_training = model.training
    saved_flags = [(p, p.requires_grad) for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    keep_a = cfg.lora_warm_start_a

    def new_adapters(rows: int) -> DocAdapters:
        return DocAdapters(model, rows, cfg.lora_rank, cfg.lora_alpha, cfg.doc_lora_targets, a_init)

    reusable: Optional[DocAdapters] = None
    scored: list[Document] = []
    ran: list[tuple[int, list[Document], int, float]] = []  # (batch, its documents, phase, seconds)
    mine: dict[int, BatchLog] = {}  # this rank's batches since the ranks last exchanged their logs
    ran_here: list[Document] = []
    phase, adapted_tokens, score_s, global_s = 0, 0, 0.0, 0.0

    def exchange_logs() -> None:
        """Every rank's batch logs so far into the ledger, in batch order (doc_ledger.py)."""
        nonlocal adapted_tokens
        phase_of = {i: p for i, _, p, _ in ran}
        for i, part in sorted(everyones_logs(mine).items()):
            append_batch(ledger, part.ledger)
            adapted_tokens += part.trained_tokens
            if scoring_windows is not None and base_windows is not None:
                scoring_windows.extend(part.windows or [])
                if phase_of[i] == 0:  # identity adapters on the artifact's weights: the base model's scores
                    base_windows.extend(part.first_windows or [])
        mine.clear()

    try:
        for i, batch in enumerate(order):
            t0 = time.perf_counter()
            if i % world == rank:
                # the records reuse one set of batch-size adapters (A warm across batches when asked); a smaller
                # batch gets fresh ones
                if len(batch) == cfg.doc_batch:
                    reusable = reusable or new_adapters(cfg.doc_batch)
                    reusable.reset(keep_a)
                    adapters = reusable
                else:
                    adapters = new_adapters(len(batch))
                mine[i] = BatchLog(ScoreLedger(len(val)), [] if keep_windows else None,
                                   [] if keep_windows else None)
                with adapters.attached():
                    run_batch(model, tokens, batch, adapters, cfg, eval_cfg.seq_len, device, autocast, scores,
                              mine[i])
                ran_here.extend(batch)
            elapsed = time.perf_counter() - t0
            score_s += elapsed
            scored.extend(batch)
            ran.append((i, batch, phase, elapsed))
            while phase < len(boundaries) and len(scored) >= boundaries[phase]:  # every boundary this batch crossed
                t1 = time.perf_counter()
                if world > 1:
                    barrier()
                exchange_logs()
                train_set = phase_training_set(scored, boundaries[phase], ranks)
                reusable = None  # the records build fresh adapters after a phase
                steps = global_sgd(model, concatenated(tokens, train_set), cfg, eval_cfg.seq_len, device, autocast)
                for p in model.parameters():
                    p.requires_grad_(False)
                model.eval()
                for doc in train_set:
                    ledger.record_training(doc.first_target, doc.end_target)
                global_s += time.perf_counter() - t1
                say(f"ttt phase {phase + 1}/{len(boundaries)}: global SGD on {len(train_set)} scored documents, "
                    f"{steps} steps, {time.perf_counter() - t1:.1f}s")
                phase += 1
        exchange_logs()
    finally:
        for p, flag in saved_flags:
            p.requires_grad_(flag)
        model.train(was_training)

    unscored = scores.unscored(ran_here if world > 1 else documents)  # one rank: the whole plan
    if unscored:
        raise RuntimeError(f"per-document TTT left {len(unscored)} planned targets unscored (the first: target "
                           f"{unscored[0]}): run_batch must score every chunk of its batch")
    nll = torch.from_numpy(np.nan_to_num(scores.nll, nan=0.0)).to(device)  # other ranks' targets: theirs
    nll = all_reduce_(nll).cpu().numpy() if world > 1 else scores.nll
    nbytes = plan_bytes(val, tokens, tables, first, end, device)
    nll_sum, byte_sum = float(nll.sum()), float(nbytes.sum())
    time_s = time.perf_counter() - start
    result = EvalResult(val_loss=nll_sum / len(nll), val_bpb=bits_per_byte(nll_sum, byte_sum), tokens=len(nll),
                        bytes=int(round(byte_sum)), time_s=time_s,
                        token_nll=nll if eval_cfg.save_token_nll else None,
                        token_bytes=nbytes if eval_cfg.save_token_nll else None)
    records = [batch_record(i, batch, phase, seconds, nll, nbytes, first, cfg.lr) for i, batch, phase, seconds in ran]
    say(f"ttt done: val_bpb {result.val_bpb:.5f} over {result.tokens} targets, {len(documents)} documents, "
        f"{len(boundaries)} phases, {adapted_tokens} adapted tokens, total {time_s:.1f}s")
    return TTTResult(result, ledger, records, time_s, score_s, global_s, adapted_tokens, initial_state, False,
                     scoring_windows, base_windows)
