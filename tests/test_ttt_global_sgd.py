"""Phased TTT's global step (golf/evaluate/ttt/global_sgd.py) on several simulated ranks: every rank makes the same
number of gradient all-reduces whatever the number of sequences (a rank short of rows contributes zeros), so none
waits forever and every rank ends with the same weights; one rank trains as a plain loop over the sequences."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch

from golf.evaluate.ttt import global_sgd as module
from golf.evaluate.ttt.global_sgd import chunk_lr, global_sgd

from test_ttt_doc_lora import settings
from test_ttt_engine import CPU, VOCAB, tiny_model

SEQ = 8


def stream(n: int) -> np.ndarray:
    return np.random.default_rng(1).integers(2, VOCAB, n).astype(np.int64)


def config(chunk: int, batch_seqs: int = 1):
    return settings(method="phased_doc_lora", global_lr=0.05, global_momentum=0.9, global_epochs=2,
                    global_chunk_tokens=chunk, global_batch_seqs=batch_seqs, global_grad_clip=1.0)


class FakeRanks:
    """world threads standing in for ranks: rank_world answers each thread its own rank, and all_reduce_grads_ sums
    the .grad of every rank's tensors once all of them have called it (a rank that never comes breaks the barrier)."""

    def __init__(self, world: int, timeout_s: float = 20.0):
        self.world, self.local = world, threading.local()
        self.barrier = threading.Barrier(world, timeout=timeout_s)
        self.flat: list = [None] * world
        self.calls = [0] * world

    def rank_world(self) -> tuple[int, int]:
        return self.local.rank, self.world

    def all_reduce_grads_(self, tensors) -> None:
        rank = self.local.rank
        self.calls[rank] += 1
        self.flat[rank] = torch.cat([t.grad.reshape(-1) for t in tensors])
        self.barrier.wait()
        total = torch.stack(self.flat).sum(0)
        self.barrier.wait()
        offset = 0
        for t in tensors:
            t.grad.copy_(total[offset:offset + t.numel()].view_as(t.grad))
            offset += t.numel()

    def run(self, models, tokens, cfg) -> list:
        errors, steps = [], [0] * self.world

        def one(rank):
            self.local.rank = rank
            try:
                steps[rank] = global_sgd(models[rank], tokens, cfg, SEQ, CPU)
            except Exception as e:  # a broken barrier: some rank stopped calling
                errors.append(e)
                self.barrier.abort()

        threads = [threading.Thread(target=one, args=(r,)) for r in range(self.world)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return steps


@pytest.mark.parametrize("world, seqs_per_chunk, batch_seqs", [(2, 3, 1), (3, 2, 1), (4, 5, 2), (2, 4, 3)])
def test_every_rank_makes_the_same_collective_calls_and_ends_with_the_same_weights(world, seqs_per_chunk, batch_seqs,
                                                                                   monkeypatch):
    ranks = FakeRanks(world)
    monkeypatch.setattr(module, "rank_world", ranks.rank_world)
    monkeypatch.setattr(module, "all_reduce_grads_", ranks.all_reduce_grads_)
    cfg = config(seqs_per_chunk * SEQ, batch_seqs)
    base = tiny_model()
    models = [copy.deepcopy(base) for _ in range(world)]
    steps = ranks.run(models, stream(3 * seqs_per_chunk * SEQ + 1), cfg)
    assert len(set(ranks.calls)) == 1 and ranks.calls[0] > 0, ranks.calls
    assert len(set(steps)) == 1
    for model in models[1:]:
        assert all(torch.equal(a, b) for a, b in zip(models[0].state_dict().values(), model.state_dict().values()))
    assert any(not torch.equal(a, b) for a, b in zip(models[0].state_dict().values(), base.state_dict().values()))


def plain_loop(model, tokens: np.ndarray, cfg) -> int:
    """One rank's global step written out: chunks but the last, epochs, batches of sequences, SGD with clipping."""
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=cfg.global_lr, momentum=cfg.global_momentum)
    total = len(tokens) - 1
    n_chunks = -(-total // cfg.global_chunk_tokens)
    steps = 0
    model.train()
    for c in range(n_chunks - 1):
        lo = c * cfg.global_chunk_tokens
        seqs = (min(lo + cfg.global_chunk_tokens, total) - lo) // SEQ
        for group in optimizer.param_groups:
            group["lr"] = chunk_lr(cfg, c, n_chunks)
        for _ in range(cfg.global_epochs):
            for b in range(0, seqs, cfg.global_batch_seqs):
                e = min(b + cfg.global_batch_seqs, seqs)
                rows = torch.from_numpy(tokens[lo + b * SEQ:lo + e * SEQ + 1])
                optimizer.zero_grad(set_to_none=True)
                model(rows[:-1].reshape(-1, SEQ), rows[1:].reshape(-1, SEQ)).backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.global_grad_clip)
                optimizer.step()
                steps += 1
    return steps


def test_one_rank_trains_every_sequence_in_order():
    tokens, cfg = stream(5 * 3 * SEQ + 5), config(3 * SEQ + 2, batch_seqs=2)
    mine, want = tiny_model(), tiny_model()
    assert global_sgd(mine, tokens, cfg, SEQ, CPU) == plain_loop(want, tokens, cfg) > 0
    assert all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(), want.state_dict().values()))
