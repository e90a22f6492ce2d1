"""Test-time training settings: one schema for every option of the `ttt` group (conf/ttt/*.yaml), and its checks.

No torch here: the top-level config imports this to check ttt.* (ttt_problems). The methods' own knobs are fields
of the one schema (Hydra needs every key), but each method checks its own (golf/evaluate/ttt/methods/); the names
ttt.method accepts are the registered methods'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from golf.problems import Problems

TTT_PROTOCOLS = ("none", "score_first", "adapt_first")  # adapt_first is ILLEGAL: it exists to show the audit failing
TTT_OPTIMIZERS = ("sgd", "adamw")
TTT_SCHEDULES = ("cosine_chunks", "cosine_global", "constant")
TTT_PARAMS = ("all", "mlp", "attn", "norms")

Problem = tuple[str, Any, str]  # (key, value, what is allowed)


@dataclass
class TTTConfig:
    name: str = "none"
    protocol: str = "none"  # score_first: score chunk c with weights adapted on chunks < c, then adapt on c
    method: str = "full"  # a registered method: full | eb_adaptive | lora | error_guided | doc_lora | phased_doc_lora
    optimizer: str = "sgd"
    lr: float = 0.002
    momentum: float = 0.9  # SGD momentum; AdamW's beta1
    weight_decay: float = 0.0
    epochs: int = 3  # passes over each chunk
    chunk_tokens: int = 32768
    batch_seqs: int = 32  # sequences of eval.seq_len per adaptation step
    grad_clip: float = 1.0  # 0 = off
    schedule: str = "cosine_chunks"  # cosine_chunks: lr * 0.5 * (1 + cos(pi * c / (n - 1))) by chunk
    freeze: int = 0  # the first `freeze` blocks stay fixed
    freeze_embeddings: bool = False  # token embedding (and tied head), untied head, bigram table stay fixed
    layer_lr_mult: float = 1.0  # lr multiplier of the last block, ramping linearly from 1.0 at the first block
    params: str = "all"  # all | mlp | attn | norms: which block tensors adapt
    eb_microbatches: int = 4  # eb_adaptive: micro-batches per step whose gradients estimate each block's SNR
    eb_prior: float = 1.0  # eb_adaptive: prior strength; scale_b = snr_b / (snr_b + eb_prior)
    lora_rank: int = 8  # lora: rank of the per-document deltas
    lora_targets: list[str] = field(default_factory=lambda: ["attn", "mlp"])  # lora: attn and/or mlp
    error_top_frac: float = 0.1  # error_guided: the share of highest-loss tokens of a batch that the loss is put on
    # doc_lora / phased_doc_lora (the records' per-document LoRA TTT; lr, momentum = AdamW's beta1, weight_decay,
    # epochs = steps per chunk, chunk_tokens (may be < eval.seq_len), lora_rank and optimizer are the keys above)
    doc_lora_targets: list[str] = field(default_factory=lambda: ["q", "k", "v", "o", "mlp", "head"])
    lora_alpha: float = 0.0  # delta scale alpha / rank (T3: 144); 0 = unscaled, as the 2026-04-14 record
    lora_warm_start_a: bool = False  # only B reset per document batch; A keeps what it learned (T3)
    lora_beta2: float = 0.999  # AdamW's beta2 (T3: 0.99)
    doc_batch: int = 64  # documents adapted side by side, one row each
    doc_order: str = "length"  # length (the records': by length, longest batches first) | stream (validation order)
    doc_last_window: str = "chunk"  # a document's last chunk: chunk (as the others: causal) | end (the records')
    phases: list[int] = field(default_factory=list)  # phased_doc_lora: documents scored before each global SGD
    global_lr: float = 0.001  # phased_doc_lora's global SGD (every parameter, on the documents scored so far)
    global_momentum: float = 0.9
    global_epochs: int = 1
    global_chunk_tokens: int = 32768  # cosine lr over chunks of the scored documents' tokens
    global_batch_seqs: int = 32  # sequences of eval.seq_len per step
    global_grad_clip: float = 1.0  # 0 = off


def ttt_problems(ttt: TTTConfig) -> list[Problem]:
    """(key, value, what is allowed) for every ttt.* value that cannot run; empty when all is well. The checks that
    need another component (ttt.freeze against the model's depth, chunks against eval.seq_len) are golf/config.py's.
    Every registered method checks its own knobs, whatever ttt.method is: a value that cannot run is refused where
    it is set."""
    from golf.evaluate.ttt import method  # the registry; imported here so that loading this schema imports no torch

    p = Problems("ttt.")
    p.choice("protocol", ttt.protocol, TTT_PROTOCOLS)
    p.choice("method", ttt.method, method.names())
    p.choice("optimizer", ttt.optimizer, TTT_OPTIMIZERS)
    p.choice("schedule", ttt.schedule, TTT_SCHEDULES)
    p.choice("params", ttt.params, TTT_PARAMS)
    p.at_least("lr", ttt.lr, 0.0)
    p.need(0.0 <= ttt.momentum < 1.0, "momentum", ttt.momentum, "a number in [0, 1)")
    p.at_least("weight_decay", ttt.weight_decay, 0.0)
    p.at_least("epochs", ttt.epochs, 0)
    p.at_least("chunk_tokens", ttt.chunk_tokens, 1)
    p.at_least("batch_seqs", ttt.batch_seqs, 1)
    p.at_least("grad_clip", ttt.grad_clip, 0.0)
    p.at_least("layer_lr_mult", ttt.layer_lr_mult, 0.0)
    for name in method.names():
        p += method.get(name).problems(ttt)
    return p


def chunks_hold_rows(ttt: TTTConfig) -> bool:
    """Whether the method adapts on rows of eval.seq_len cut from each chunk (so chunks must hold at least one);
    a method that runs documents itself reads windows of its own and takes chunks of any length."""
    from golf.evaluate.ttt import method

    return not method.get(ttt.method).runs_documents if ttt.method in method.names() else True
