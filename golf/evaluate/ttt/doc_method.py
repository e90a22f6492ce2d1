"""What per-document TTT methods share (doc_lora, phased_doc_lora in golf/evaluate/ttt/methods/): they run their own
document loop (doc_loop.py) instead of the engine's chunk loop, check the per-document knobs, and say whether a
document's scores depend on it alone (Method.document_independent, for these settings: claims_independence)."""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.ttt.doc_adapters import DOC_LORA_TARGETS
from golf.evaluate.ttt.documents import DOC_ORDERS, LAST_WINDOWS
from golf.evaluate.ttt.method import Method
from golf.problems import Problems

DOCUMENT_METHODS = ("doc_lora", "phased_doc_lora")


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
    if cfg.method in DOCUMENT_METHODS:
        p.need(cfg.protocol in ("score_first", "none"), "protocol", cfg.protocol,
               f"score_first or none with ttt.method={cfg.method} (it scores each chunk before its step by "
               "construction; there is no adapt-first form of it)")
    return p


class DocumentMethod(Method):
    """Not registered itself: the base of the per-document methods."""

    compilable = False
    runs_documents = True

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
