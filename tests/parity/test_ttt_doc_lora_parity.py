"""Per-document LoRA TTT and phased TTT against the records' own eval_val_ttt_phased (T3, 2026-04-27, and the
2026-04-14 record): on a small T3 model with the same weights in both, and a short validation stream of a few
documents, golf's ttt.method=doc_lora / phased_doc_lora give the records' val_bpb within 1e-6 relative.

The records draw A at random per batch; golf draws it once per adapter so a document's start never depends on its
batch. The test hands the records golf's draw (their BatchedTTTLoRA built, then A overwritten; their reset puts it
back instead of redrawing), so both start from the same adapters. The global SGD phases' documents are shorter than
eval.seq_len: the records' varlen batches cut longer ones at seq_len, golf's rows do not (global_sgd.py)."""

from __future__ import annotations

import copy
import types

import numpy as np
import pytest
import torch

from golf.data.shards import TokenArray
from golf.data.tokenizer import BOS_ID, ByteTables
from golf.evaluate.config import EvalConfig
from golf.evaluate.evaluation import evaluate_model
from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.ttt.doc_adapters import default_a_init
from golf.model.gpt import GPT
from record_models import MODEL_PARTS, build, flash_attn_func, varlen_stand_in
from script_models import VOCAB, golf_model_config, randomize_, same_weights
from script_parts import load_parts
from test_parity_t3 import PRESET, SMALL_GOLF, SMALL_T3, t3_to_golf

pytestmark = pytest.mark.parity

SEQ, CHUNK, RANK, DOCS_PER_BATCH = 32, 8, 4, 3
TTT_PARTS = ("BatchedLinearLoRA", "BatchedTTTLoRA", "_find_docs", "_build_ttt_global_batches", "_init_batch_counter",
             "_claim_next_batch", "_compute_chunk_window", "_accumulate_bpb", "_loss_bpb_from_sums",
             "_add_to_counter", "_init_int64_counter", "_select_ttt_doc_entries",
             "train_val_ttt_global_sgd_distributed", "eval_val_ttt_phased", "_build_cu_seqlens",
             "get_next_multiple_of_n")
RECORDS = {"T3": "2026-04-27", "0414": "2026-04-14"}
LR, WD, BETA2, ALPHA = 0.02, 0.5, 0.99, 8.0


def stream(lengths: list[int], seed: int) -> np.ndarray:
    """Documents of the given lengths, each a BOS then tokens that are never BOS."""
    rng = np.random.default_rng(seed)
    return np.concatenate([[BOS_ID, *rng.integers(2, VOCAB, n - 1)] for n in lengths]).astype(np.int64)


def tables(seed: int = 3) -> ByteTables:
    rng = np.random.default_rng(seed)
    base = rng.integers(1, 4, VOCAB).astype(np.int16)
    base[BOS_ID] = 0
    boundary = np.zeros(VOCAB, dtype=bool)
    boundary[BOS_ID] = True
    return ByteTables(base_bytes=base, has_leading_space=rng.random(VOCAB) < 0.3, is_boundary=boundary)


def record_env(phases: int, prefix: int, warm: bool) -> dict:
    return dict(SMALL_T3, TTT_CHUNK_SIZE=CHUNK, TTT_EVAL_SEQ_LEN=SEQ, EVAL_SEQ_LEN=SEQ, TTT_BATCH_SIZE=DOCS_PER_BATCH,
                TTT_LORA_RANK=RANK, TTT_LORA_ALPHA=ALPHA, TTT_WARM_START_A=int(warm), TTT_LORA_LR=LR,
                TTT_BETA2=BETA2, TTT_WEIGHT_DECAY=WD, PHASED_TTT_PREFIX_DOCS=prefix, PHASED_TTT_NUM_PHASES=phases,
                GLOBAL_TTT_LR=0.05, GLOBAL_TTT_CHUNK_TOKENS=3 * SEQ, GLOBAL_TTT_BATCH_SEQS=2, RUN_ID="golfparity")


def load_record(record, env: dict) -> types.SimpleNamespace:
    import fcntl
    import random
    import time
    import uuid
    from pathlib import Path

    extra = dict(uuid=uuid, Path=Path, fcntl=fcntl, random=random, time=time, BOS_ID=BOS_ID,
                 flash_attn_3_func=flash_attn_func, flash_attn_varlen_func=varlen_stand_in,
                 log=lambda *_a, **_k: None)
    return load_parts(record, MODEL_PARTS + TTT_PARTS, env=env, extra=extra)


def hand_golfs_a_to(m: types.SimpleNamespace, monkeypatch) -> None:
    """The record's adapters start from golf's A (and its reset restores it unless A is warm-started)."""
    build_lora = m.BatchedTTTLoRA.__init__

    def init(self, bsz, model, rank, k_lora=True, mlp_lora=True, o_lora=True):
        build_lora(self, bsz, model, rank, k_lora=k_lora, mlp_lora=mlp_lora, o_lora=o_lora)
        groups = {"head": [self.lm_head_lora], "q": self.q_loras, "k": self.k_loras, "v": self.v_loras,
                  "mlp": self.mlp_loras, "o": self.o_loras}
        for target, loras in groups.items():
            for slot, lora in enumerate(loras or []):
                key = "head" if target == "head" else f"{target}.{slot}"
                start = default_a_init(key, rank, lora.A.shape[-1])
                with torch.no_grad():
                    lora.A.copy_(start.expand_as(lora.A))
                lora.a_start = start

    def reset(self):
        with torch.no_grad():
            if not getattr(self, "_WARM_START_A", False):  # the 2026-04-14 record always redraws A
                self.A.copy_(self.a_start.expand_as(self.A))
            self.B.zero_()

    monkeypatch.setattr(m.BatchedTTTLoRA, "__init__", init)
    monkeypatch.setattr(m.BatchedLinearLoRA, "reset", reset)


def fused_adamw_off(monkeypatch) -> None:
    """The records ask for fused AdamW (a CUDA kernel); the same update unfused on the CPU."""
    adamw = torch.optim.AdamW

    def unfused(*args, fused=None, **kwargs):
        return adamw(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", unfused)


def record_bpb(m, script, tokens: np.ndarray, byte_tables: ByteTables) -> float:
    h = m.Hyperparameters()
    val = types.SimpleNamespace(
        val_tokens=torch.from_numpy(tokens), caseops_enabled=False, val_bytes=None,
        base_bytes_lut=torch.from_numpy(byte_tables.base_bytes.astype(np.int64)),
        has_leading_space_lut=torch.from_numpy(byte_tables.has_leading_space),
        is_boundary_token_lut=torch.from_numpy(byte_tables.is_boundary))
    _, bpb = m.eval_val_ttt_phased(h, script, torch.device("cpu"), val,
                                   forward_ttt_train=lambda x, y, lora: script.forward_ttt(x, y, lora=lora))
    return bpb


def golf_bpb(golf: GPT, tokens: np.ndarray, byte_tables: ByteTables, cfg: TTTConfig) -> float:
    eval_cfg = EvalConfig(seq_len=SEQ, stride=8, batch_seqs=4)
    out = evaluate_model(golf, TokenArray([tokens.astype(np.uint16)]), byte_tables, eval_cfg, cfg,
                         torch.device("cpu"), log=lambda _line: None)
    assert out.result.tokens == len(tokens) - 1  # every target, as the records score them
    return out.result.val_bpb


# the 2026-04-14 record's model is T3's without the sparse attention gate and the SmearGate
NOT_IN_0414 = dict(attn_gate="none", smear_gate=False, smear_gate_window=0)


def pair(m, record: str) -> tuple[torch.nn.Module, GPT]:
    torch.manual_seed(0)
    script = build(m).eval()
    randomize_(script)
    script.looping_active = True
    extra = NOT_IN_0414 if record == "0414" else {}
    golf = GPT(golf_model_config(PRESET, **{**SMALL_GOLF, "doc_mask": True, **extra}), VOCAB).eval()
    same_weights(script, golf, lambda state: t3_to_golf(state, SMALL_GOLF["num_layers"]))
    return script, golf


def golf_cfg(record: str, phases: list[int], warm: bool) -> TTTConfig:
    return TTTConfig(name="parity", protocol="score_first", method="phased_doc_lora" if phases else "doc_lora",
                     optimizer="adamw", lr=LR, momentum=0.0, lora_beta2=BETA2, weight_decay=WD, epochs=1,
                     chunk_tokens=CHUNK, lora_rank=RANK, lora_alpha=ALPHA if record == "T3" else 0.0,
                     lora_warm_start_a=warm, doc_batch=DOCS_PER_BATCH, doc_order="length", doc_last_window="end",
                     phases=phases,
                     global_lr=0.05, global_momentum=0.9, global_epochs=1, global_chunk_tokens=3 * SEQ,
                     global_batch_seqs=2, global_grad_clip=1.0)


# T3: long documents (windows shorter than the document, a last partial batch) without phases, and with warm A;
# then phases on documents shorter than seq_len, for both records
CASES = [
    ("T3", [70, 9, 45, 23, 100, 17, 38], 0, 0, False),
    ("T3", [70, 9, 45, 23, 100, 17, 38], 0, 0, True),
    ("T3", [20, 9, 31, 14, 25, 12, 28, 30, 18, 11], 2, 6, True),
    ("0414", [20, 9, 31, 14, 25, 12, 28, 30, 18, 11], 3, 9, False),
]


@pytest.mark.parametrize("record, lengths, phases, prefix, warm", CASES)
def test_golf_doc_lora_ttt_gives_the_records_val_bpb(record_dir, monkeypatch, record, lengths, phases, prefix, warm):
    if record == "0414" and warm:
        pytest.skip("the 2026-04-14 record has no warm start")
    env = record_env(phases, prefix, warm)
    if record == "0414":  # its LoRA has no alpha and no warm start: those variables are not read
        env = {k: v for k, v in env.items() if k not in ("TTT_LORA_ALPHA", "TTT_WARM_START_A")}
    m = load_record(record_dir(RECORDS[record]), env)
    hand_golfs_a_to(m, monkeypatch)
    fused_adamw_off(monkeypatch)
    tokens, byte_tables = stream(lengths, seed=len(lengths)), tables()
    script, golf = pair(m, record)
    boundaries = [prefix * (k + 1) // phases for k in range(phases)]  # the records' PHASED_TTT_* arithmetic
    untouched = copy.deepcopy(golf)
    got = golf_bpb(golf, tokens, byte_tables, golf_cfg(record, boundaries, warm))
    want = record_bpb(m, script, tokens, byte_tables)
    assert got == pytest.approx(want, rel=1e-6)
    # the adaptation has teeth: without it (lr 0) the score is another one
    frozen = golf_bpb(untouched, tokens, byte_tables, dict_replace(golf_cfg(record, [], warm), lr=0.0))
    assert abs(frozen - want) > 10 * 1e-6 * want


def dict_replace(cfg: TTTConfig, **changes) -> TTTConfig:
    import dataclasses

    return dataclasses.replace(cfg, **changes)
