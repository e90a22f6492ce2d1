"""The audit's checks of the frontier's rules (golf/evaluate/audit_documents.py), each passing the legal form and
failing a deliberately broken one: a TTT method that claims document independence but carries one document into the
next, a SmearGate/BigramHash without the BOS fix, a window plan that scores the tail twice or drops it, and a tampered
CaseOps byte sidecar."""

from __future__ import annotations

import copy
import types
from dataclasses import replace

import numpy as np
import pytest
import torch

from testkit import one_torch_thread, randomized_model
from golf.data.prepare import prepare
from golf.data.shards import TokenArray
from golf.data.tokenizer import BOS_ID, ByteTables, byte_tables, load_tokenizer
from golf.evaluate.audit_checks import run_audit
from golf.evaluate.audit_config import AuditConfig
from golf.evaluate.audit_documents import (check_bos_isolation, check_caseops_bytes, check_window_plan,
                                           rewrite_before)
from golf.evaluate.config import EvalConfig
from golf.evaluate.evaluation import plan_for
from golf.evaluate.ttt import method as ttt_methods
from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.windows import Window
from golf.model.gpt import ModelConfig
from test_caseops_data import write_cased_corpus
from test_prepare import VOCAB, data_config

V = 48
CPU = torch.device("cpu")
EVAL = EvalConfig(seq_len=32, stride=0, batch_seqs=4)
AUDIT = AuditConfig(tokens=300, positions=3)
TTT = TTTConfig(protocol="score_first", lr=0.05, epochs=1, chunk_tokens=64, batch_seqs=2)
one_thread = pytest.fixture(autouse=True)(one_torch_thread)


def documents_stream(n: int = 400, seed: int = 0) -> np.ndarray:
    """Text tokens with a BOS every 20-60 tokens."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(4, V, n)
    at = 0
    while at < n:
        tokens[at] = BOS_ID
        at += int(rng.integers(20, 60))
    return tokens


def audit(model, tokens=None, ttt_cfg=TTTConfig(), eval_cfg=EVAL, **kw) -> dict:
    tables = ByteTables(np.ones(V, np.int32), np.zeros(V, bool), np.zeros(V, bool))
    val = TokenArray([documents_stream() if tokens is None else tokens])
    return run_audit(lambda: copy.deepcopy(model), val, tables, eval_cfg, ttt_cfg, AUDIT, CPU, log=lambda _: None,
                     **kw)


def test_rewriting_keeps_every_bos_and_changes_every_other_token_before_the_cut():
    tokens = documents_stream()
    out = rewrite_before(tokens, 100, V)
    assert np.array_equal(out[100:], tokens[100:]) and np.array_equal(out == BOS_ID, tokens == BOS_ID)
    text = tokens[:100] != BOS_ID
    assert np.all(out[:100][text] != tokens[:100][text]) and np.all(out[:100][text] >= 4)


# --- document independence (a method's claim) ------------------------------------------------------------------

class _Frozen(ttt_methods.Method):
    """Claims document independence and keeps it: it never changes the weights."""
    name = "audit_test_frozen"
    document_independent = True

    def step(self, stepper, x, y, mask):
        return {}


class _Leaky(ttt_methods.Method):
    """Claims document independence but adapts the whole model across documents (the plain method)."""
    name = "audit_test_leaky"
    document_independent = True


@pytest.fixture
def methods(monkeypatch):
    ttt_methods.names()  # discover the shipped methods first
    for cls in (_Frozen, _Leaky):
        monkeypatch.setitem(ttt_methods.REGISTRY, cls.name, cls)


DOC_MODEL = dict(num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1, doc_mask=True, smear_gate=True,
                 bigram_buckets=37, bigram_dim=8)


def test_a_method_that_keeps_its_claim_passes(methods):
    record = audit(randomized_model(ModelConfig(**DOC_MODEL), V), ttt_cfg=replace(TTT, method=_Frozen.name))
    check = record["checks"]["document_independence"]
    assert check["passed"] and len(check["cuts"]) == AUDIT.positions, check
    assert record["checks"]["bos_isolation"]["passed"]


def test_a_method_that_carries_documents_into_each_other_fails(methods):
    record = audit(randomized_model(ModelConfig(**DOC_MODEL), V), ttt_cfg=replace(TTT, method=_Leaky.name))
    check = record["checks"]["document_independence"]
    assert not check["passed"] and "claims document independence" in check["reason"]
    assert not record["compliant"]


def test_attention_across_documents_breaks_the_claim_too(methods):
    model = randomized_model(ModelConfig(**{**DOC_MODEL, "doc_mask": False}), V)
    record = audit(model, ttt_cfg=replace(TTT, method=_Frozen.name))
    assert not record["checks"]["document_independence"]["passed"]


def test_no_claim_no_check(methods):
    record = audit(randomized_model(ModelConfig(**DOC_MODEL), V), ttt_cfg=TTT)  # the plain method claims nothing
    assert "document_independence" not in record["checks"]


# --- SmearGate / BigramHash at BOS ------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [dict(smear_gate=True), dict(smear_gate=True, smear_gate_window=4),
                                     dict(bigram_buckets=37, bigram_dim=8)], ids=["smear", "smear_input", "bigram"])
def test_the_bos_fix_passes_and_its_absence_fails(options):
    base = dict(num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1, **options)
    tokens = documents_stream()
    fixed = check_bos_isolation(randomized_model(ModelConfig(**base), V), tokens, 32, V, CPU)
    leaky = check_bos_isolation(randomized_model(ModelConfig(**base, bos_mask=False), V), tokens, 32, V, CPU)
    assert fixed.passed and fixed.detail["max_change"] <= fixed.detail["tolerance"]
    assert not leaky.passed and "previous document" in leaky.detail["reason"] and leaky.detail["max_change"] > 0


def test_a_model_that_mixes_no_neighbours_is_not_checked():
    model = randomized_model(ModelConfig(num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1), V)
    assert check_bos_isolation(model, documents_stream(), 32, V, CPU) is None


def test_the_audit_fails_a_smear_gate_without_the_bos_fix():
    model = randomized_model(ModelConfig(num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1, smear_gate=True,
                                         bos_mask=False), V)
    record = audit(model)
    assert not record["checks"]["bos_isolation"]["passed"] and not record["compliant"]
    assert "FAIL" in __import__("golf.evaluate.audit_checks", fromlist=["verdict_table"]).verdict_table(record)


# --- the window plan --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seq_len,stride", [(32, 0), (32, 8), (32, 5), (16, 15), (8, 1)])
def test_golfs_plans_score_every_target_once(seq_len, stride):
    for n in (seq_len + 1, 300, 301, 1000):
        assert check_window_plan(EvalConfig(seq_len=seq_len, stride=stride), n).passed


def tail_twice(eval_cfg: EvalConfig, n: int) -> list[Window]:
    """The records' bug: a last window that scores its last `stride` targets whether or not they were scored."""
    windows = plan_for(eval_cfg, n)
    L, s = eval_cfg.seq_len, eval_cfg.stride
    return windows[:-1] + [Window(n - 1 - L, L, L - s)] if windows[-1].score_from > L - s else windows


def tail_dropped(eval_cfg: EvalConfig, n: int) -> list[Window]:
    """A sliding plan that forgets the last partial window."""
    windows = plan_for(eval_cfg, n)
    return windows[:-1] if (n - 1 - eval_cfg.seq_len) % eval_cfg.stride else windows


def test_a_plan_that_scores_the_tail_twice_fails():
    check = check_window_plan(EvalConfig(seq_len=32, stride=8), 300, planner=tail_twice)
    assert not check.passed and "more than once" in check.detail["reason"]


def test_a_plan_that_drops_the_tail_fails():
    check = check_window_plan(EvalConfig(seq_len=32, stride=8), 300, planner=tail_dropped)
    assert not check.passed and "never scored" in check.detail["reason"]


# --- CaseOps bytes ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def caseops_data(tmp_path_factory):
    corpus = write_cased_corpus(tmp_path_factory.mktemp("cased") / "texts", n_files=40)
    cfg = replace(data_config(corpus, tmp_path_factory.mktemp("caseops") / "shards", shard_tokens=3_000),
                  transform="caseops")
    data = prepare(cfg, log=lambda line: None)
    sp = load_tokenizer(data.tokenizer_path)
    val = TokenArray.from_files(data.val_files)
    tokens = val.read(0, len(val))
    counts = val.byte_counts.read(0, len(val))
    return sp, byte_tables(sp, VOCAB), np.asarray(tokens), np.asarray(counts)


def caseops_audit(caseops_data, counts) -> dict:
    sp, tables, tokens, _ = caseops_data
    model = randomized_model(ModelConfig(num_layers=1, model_dim=32, num_heads=2, num_kv_heads=1), VOCAB)
    val = TokenArray([tokens], byte_counts=TokenArray([counts]))
    audit_cfg = AuditConfig(tokens=len(tokens), positions=2)
    return run_audit(lambda: copy.deepcopy(model), val, tables, EvalConfig(seq_len=64, stride=0, batch_seqs=8),
                     TTTConfig(), audit_cfg, CPU, log=lambda _: None, tokenizer=sp)


def test_an_honest_sidecar_bills_the_original_text(caseops_data):
    check = caseops_audit(caseops_data, caseops_data[3])["checks"]["caseops_bytes"]
    assert check["passed"], check
    assert check["documents_compared"] >= 2 and check["billed_bytes"] == check["sidecar_bytes"] > 0
    # the embedded plays survive the tokenizer's normalizer: every document decodes to exactly its billed bytes
    assert check["documents_differing"] == 0


def test_a_drift_the_normalizer_can_explain_is_reported_not_failed(caseops_data):
    _, _, tokens, counts = caseops_data
    drifted = counts.copy()
    drifted[np.flatnonzero(tokens > 7)[150]] += 1  # one folded double space: the original had a byte more
    check = caseops_audit(caseops_data, drifted)["checks"]["caseops_bytes"]
    assert check["passed"] and check["documents_differing"] == 1, check


def test_a_tampered_sidecar_fails(caseops_data):
    _, _, tokens, counts = caseops_data
    tampered = counts.copy()
    text = np.flatnonzero((tokens > 7) & (np.arange(len(tokens)) < 1200) & (np.arange(len(tokens)) > 100))
    tampered[text[::10]] += 1  # a byte more here and there: a better-looking bits per byte
    check = caseops_audit(caseops_data, tampered)["checks"]["caseops_bytes"]
    assert not check["passed"] and "their decoded text holds" in check["reason"], check


def test_operators_that_bill_bytes_fail(caseops_data):
    sp, _, tokens, counts = caseops_data
    tampered = counts.copy()
    tampered[np.isin(tokens, [4, 5, 6, 7])] = 1
    check = caseops_audit(caseops_data, tampered)["checks"]["caseops_bytes"]
    assert not check["passed"] and "operators bill" in check["reason"]


def test_no_sidecar_no_check():
    model = randomized_model(ModelConfig(num_layers=1, model_dim=32, num_heads=2, num_kv_heads=1), V)
    assert "caseops_bytes" not in audit(model)["checks"]


def test_a_claim_that_depends_on_the_settings_is_read_with_them(monkeypatch):
    from golf.evaluate.audit_documents import claims_document_independence

    class _Conditional(_Frozen):
        name = "audit_test_conditional"

        @classmethod
        def claims_independence(cls, cfg):
            return not cfg.lora_warm_start_a

    ttt_methods.names()
    monkeypatch.setitem(ttt_methods.REGISTRY, _Conditional.name, _Conditional)
    cfg = replace(TTT, method=_Conditional.name)
    assert claims_document_independence(cfg) and not claims_document_independence(replace(cfg, lora_warm_start_a=True))
    assert not claims_document_independence(replace(cfg, protocol="none"))


def test_a_slice_without_a_whole_document_says_it_compared_none(caseops_data):
    sp, _, tokens, counts = caseops_data
    bos = np.flatnonzero(tokens == BOS_ID)
    inside = slice(int(bos[0]) + 1, int(bos[0]) + 1 + min(200, int(bos[1] - bos[0]) - 1))  # within one document
    piece, piece_counts = tokens[inside], counts[inside]
    windows = [Window(start=0, length=len(piece) - 1, score_from=0)]
    evaluation = types.SimpleNamespace(result=types.SimpleNamespace(bytes=int(piece_counts[1:].sum())))
    check = check_caseops_bytes(piece, piece_counts, evaluation, windows, sp)
    assert check.passed and check.detail["documents_compared"] == 0 and "none compared" in check.detail["reason"]
