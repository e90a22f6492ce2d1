"""Phased TTT's global step (the records' train_val_ttt_global_sgd_distributed): full-model SGD on the documents
scored so far, between phases of per-document LoRA TTT.

The scored documents' tokens, concatenated (documents.concatenated), are cut into chunks of ttt.global_chunk_tokens
targets; every chunk but the last is trained on for ttt.global_epochs passes, in batches of ttt.global_batch_seqs
sequences of eval.seq_len (a batch is one row of batch_seqs * seq_len tokens with document-masked attention when the
model masks documents, as the records' varlen batches; else rows of seq_len), the lr cosine over chunks
(lr * 0.5 * (1 + cos(pi * c / max(n - 1, 1)))), SGD with momentum, the gradient clipped to ttt.global_grad_clip,
every parameter trained. A fresh optimizer per phase. Ranks split each chunk's sequences (seqs * rank // world ..)
and average gradients (sum / world, as the records); every rank takes the busiest rank's number of steps, a rank out
of rows adding zeros, so all make the same collective calls (the records assume seqs divisible by the world size).
One difference from the records: their varlen batches also cut a document longer than seq_len into seq_len pieces;
a golf row keeps such a document whole.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from golf.collectives import all_reduce_grads_, rank_world
from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.windows import host_to_device


def chunk_lr(cfg: TTTConfig, c: int, n_chunks: int) -> float:
    return cfg.global_lr * 0.5 * (1.0 + math.cos(math.pi * c / max(n_chunks - 1, 1)))


def global_sgd(model: nn.Module, tokens: np.ndarray, cfg: TTTConfig, seq_len: int, device: torch.device,
               autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> int:
    """Train every parameter of `model` on `tokens` in place; returns the optimizer steps taken."""
    total = len(tokens) - 1
    if total <= 0 or cfg.global_epochs <= 0:
        return 0
    params = list(model.parameters())
    saved = [(p, p.requires_grad) for p in params]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.SGD(params, lr=cfg.global_lr, momentum=cfg.global_momentum)
    rank, world = rank_world()
    one_row = bool(getattr(getattr(model, "cfg", None), "doc_mask", False))
    n_chunks = -(-total // cfg.global_chunk_tokens)
    was_training = model.training
    steps = 0
    try:
        for c in range(n_chunks - 1):  # the last chunk is never trained on (as the records)
            lo = c * cfg.global_chunk_tokens
            seqs = (min(lo + cfg.global_chunk_tokens, total) - lo) // seq_len
            if seqs <= 0:
                continue
            model.train()
            for group in optimizer.param_groups:
                group["lr"] = chunk_lr(cfg, c, n_chunks)
            mine_lo, mine_hi = seqs * rank // world, seqs * (rank + 1) // world
            busiest = -(-seqs // world)  # sequences of the rank with the most
            batches = -(-busiest // cfg.global_batch_seqs)  # the same on every rank
            for _ in range(cfg.global_epochs):
                for k in range(batches):
                    b = mine_lo + k * cfg.global_batch_seqs
                    e = min(b + cfg.global_batch_seqs, mine_hi)
                    optimizer.zero_grad(set_to_none=True)
                    if e > b:  # else this rank has no rows left: it adds zeros to the others' gradient
                        start, stop = lo + b * seq_len, lo + e * seq_len + 1
                        local = host_to_device(torch.from_numpy(tokens[start:stop].astype(np.int64)), device)
                        shape = (1, -1) if one_row else (-1, seq_len)
                        x, y = local[:-1].reshape(shape), local[1:].reshape(shape)
                        with torch.enable_grad(), autocast():
                            loss = model(x, y)
                        loss.backward()
                    if world > 1:
                        for p in params:
                            if p.grad is None:
                                p.grad = torch.zeros_like(p)
                        all_reduce_grads_(params)
                        for p in params:
                            p.grad.div_(world)  # the records' mean over ranks
                    if cfg.global_grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(params, cfg.global_grad_clip)
                    optimizer.step()
                    steps += 1
            model.eval()
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)
        model.train(was_training)
    return steps
