"""Phased TTT (T3; the 2026-04-14 record): per-document LoRA TTT, and after ttt.phases[k] documents are scored, full-
model SGD on the first phases[k] of them (golf/evaluate/ttt/global_sgd.py); later documents are scored on the updated
base. T3: 3 phases over a 2,500-document prefix, ttt.phases=[833, 1666, 2500]. Never document independent: the
base moves with earlier documents."""

from __future__ import annotations

from typing import Optional

from golf.evaluate.ttt.config import Problem, TTTConfig
from golf.evaluate.ttt.method import register
from golf.evaluate.ttt.doc_method import DocumentMethod, doc_lora_problems


@register
class PhasedDocLoRA(DocumentMethod):
    name = "phased_doc_lora"
    document_independent = False

    @staticmethod
    def problems(cfg: TTTConfig) -> list[Problem]:
        p = doc_lora_problems(cfg)
        for b in cfg.phases:
            p.at_least("phases", b, 1)
        p.need(list(cfg.phases) == sorted(set(cfg.phases)), "phases", cfg.phases,
               "document counts in increasing order, e.g. [833, 1666, 2500]")
        p.at_least("global_lr", cfg.global_lr, 0.0)
        p.need(0.0 <= cfg.global_momentum < 1.0, "global_momentum", cfg.global_momentum, "a number in [0, 1)")
        p.at_least("global_epochs", cfg.global_epochs, 0)
        p.at_least("global_chunk_tokens", cfg.global_chunk_tokens, 1)
        p.at_least("global_batch_seqs", cfg.global_batch_seqs, 1)
        p.at_least("global_grad_clip", cfg.global_grad_clip, 0.0)
        return p

    @classmethod
    def phases(cls, cfg: TTTConfig) -> Optional[list[int]]:
        return list(cfg.phases)
