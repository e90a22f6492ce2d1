"""Per-document LoRA TTT as the records do it (T3, 2026-04-14): every document adapted on its own, in batches of
documents, scored chunk by chunk before each step (golf/evaluate/ttt/doc_loop.py; the adapters:
golf/evaluate/ttt/doc_adapters.py). The base model never changes.

document_independent: a document's scores depend only on it and the artifact: its adapters start from the same B = 0
and the same A whatever its batch, and nothing couples the rows of a batch (each row's loss reaches only its own
adapters; AdamW is elementwise). That holds unless ttt.lora_warm_start_a, which hands A from one batch's document to
the next one's (T3's choice): then the instance says False (DocumentMethod.claims_independence).
"""

from __future__ import annotations

from golf.evaluate.ttt.config import Problem, TTTConfig
from golf.evaluate.ttt.doc_method import DocumentMethod, doc_lora_problems
from golf.evaluate.ttt.method import register


@register
class DocLoRA(DocumentMethod):
    name = "doc_lora"
    document_independent = True  # with ttt.lora_warm_start_a=false; see the module docstring

    @staticmethod
    def problems(cfg: TTTConfig) -> list[Problem]:
        p = doc_lora_problems(cfg)
        if cfg.method == "doc_lora":  # it has no phases: a list would be silently ignored
            p.need(not cfg.phases, "phases", cfg.phases,
                   "[] with ttt.method=doc_lora (phases are ttt.method=phased_doc_lora's, e.g. ttt=phased_doc_lora)")
        return p
