"""Per-document LoRA TTT as the records do it (T3, 2026-04-14): every document adapted on its own, in batches of
documents, scored chunk by chunk before each step (golf/evaluate/ttt/doc_loop.py; the adapters:
golf/evaluate/ttt/doc_adapters.py). The base model never changes.

document_independent: a document's scores depend only on it and the artifact: its adapters start from the same B = 0
and the same A whatever its batch, and nothing couples the rows of a batch (each row's loss reaches only its own
adapters; AdamW is elementwise). That holds unless ttt.lora_warm_start_a, which hands A from one batch's document to
the next one's (T3's choice): then the instance says False.
"""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from golf.evaluate.ttt.config import Problem, TTTConfig
from golf.evaluate.ttt.doc_adapters import DOC_LORA_TARGETS
from golf.evaluate.ttt.documents import DOC_ORDERS, LAST_WINDOWS
from golf.evaluate.ttt.method import Method, register
from golf.problems import Problems


def doc_lora_problems(cfg: TTTConfig) -> Problems:
    p = Problems("ttt.")
    if not cfg.doc_lora_targets:
        p.need(False, "doc_lora_targets", cfg.doc_lora_targets, f"a non-empty list of {', '.join(DOC_LORA_TARGETS)}")
    for target in cfg.doc_lora_targets:
        p.choice("doc_lora_targets", target, DOC_LORA_TARGETS)
    p.at_least("lora_alpha", cfg.lora_alpha, 0.0)
    p.need(0.0 <= cfg.lora_beta2 < 1.0, "lora_beta2", cfg.lora_beta2, "a number in [0, 1)")
    p.at_least("doc_batch", cfg.doc_batch, 1)
    p.choice("doc_order", cfg.doc_order, DOC_ORDERS)
    p.choice("doc_last_window", cfg.doc_last_window, LAST_WINDOWS)
    if cfg.method in ("doc_lora", "phased_doc_lora"):
        p.need(cfg.protocol in ("score_first", "none"), "protocol", cfg.protocol,
               f"score_first or none with ttt.method={cfg.method} (it scores each chunk before its step by "
               "construction; there is no adapt-first form of it)")
    return p


@register
class DocLoRA(Method):
    name = "doc_lora"
    compilable = False
    runs_documents = True
    document_independent = True  # with ttt.lora_warm_start_a=false; see the module docstring

    @staticmethod
    def problems(cfg: TTTConfig) -> list[Problem]:
        return doc_lora_problems(cfg)

    def __init__(self, model: nn.Module, cfg: TTTConfig):
        self.model, self.cfg = model, cfg
        self.adaptables = []
        self.document_independent = self.claims_independence(cfg)

    @classmethod
    def claims_independence(cls, cfg: TTTConfig) -> bool:
        """The claim for these settings: the class's, and never with A warm-started across documents."""
        return cls.document_independent and not cfg.lora_warm_start_a

    @classmethod
    def phases(cls, cfg: TTTConfig) -> Optional[list[int]]:
        return None

    @classmethod
    def run_documents(cls, model, val, tables, windows, cfg, eval_cfg, device, autocast, log) -> Any:
        from golf.evaluate.ttt.doc_loop import run_documents

        return run_documents(model, val, tables, windows, cfg, eval_cfg, device, autocast, log, cls.phases(cfg))
