"""Per-document LoRA TTT (ttt.method=doc_lora): documents cut at BOS cover the plan's targets once, the adapters start
as the identity and leave nothing behind, every chunk is scored before the step that uses it, a document's scores
depend on it alone (unless A is warm-started), chunks may be shorter than eval.seq_len, and the audit passes."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from golf.cli import compose
from golf.config import to_golf_config
from golf.data.shards import TokenArray
from golf.data.tokenizer import BOS_ID
from golf.errors import ConfigError
from golf.evaluate.audit_checks import run_audit, verdict_table
from golf.evaluate.audit_config import AuditConfig
from golf.evaluate.config import EvalConfig
from golf.evaluate.evaluation import evaluate_model
from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.ttt import doc_loop
from golf.evaluate.ttt.doc_adapters import DocAdapters
from golf.evaluate.ttt.doc_loop import Scores
from golf.evaluate.ttt.documents import batches, chunk_count, chunk_window, split_documents
from golf.evaluate.ttt.method import get
from golf.evaluate.windows import plan_windows

from test_ttt_engine import CPU, TABLES, VOCAB, tiny_model

EVAL = EvalConfig(seq_len=32, stride=8, batch_seqs=4, save_token_nll=True)


def doc_stream(lengths: list[int], seed: int = 0, lead: int = 0) -> np.ndarray:
    """`lead` tokens of a document already running, then documents of the given lengths (BOS first)."""
    rng = np.random.default_rng(seed)
    parts = [rng.integers(2, VOCAB, lead)] + [[BOS_ID, *rng.integers(2, VOCAB, n - 1)] for n in lengths]
    return np.concatenate(parts).astype(np.uint16)


def settings(**overrides) -> TTTConfig:
    base = dict(name="t", protocol="score_first", method="doc_lora", optimizer="adamw", lr=0.02, momentum=0.0,
                lora_beta2=0.99, weight_decay=0.5, epochs=1, chunk_tokens=8, lora_rank=4, lora_alpha=8.0,
                doc_batch=3, doc_order="length")
    return TTTConfig(**{**base, **overrides})


def evaluate(model, tokens: np.ndarray, cfg: TTTConfig, eval_cfg: EvalConfig = EVAL):
    return evaluate_model(model, TokenArray([tokens]), TABLES, eval_cfg, cfg, CPU, log=lambda _line: None)


LENGTHS = [30, 9, 70, 17, 45, 12, 26]


@pytest.mark.parametrize("lead", [0, 5])
def test_documents_cover_the_plans_targets_exactly_once_and_start_at_their_bos(lead):
    tokens = doc_stream(LENGTHS, lead=lead)
    first, end = 1, len(tokens) - 3  # a plan may stop short of the stream's end
    docs = split_documents(tokens, first, end)
    covered = np.concatenate([np.arange(d.first_target, d.end_target) for d in docs])
    np.testing.assert_array_equal(covered, np.arange(first, end))
    assert all(tokens[d.start] == BOS_ID for d in docs[1:]) and docs[0].start == first - 1
    # a document's last target is the next one's BOS: predicting where it ends is part of it
    assert all(tokens[d.end_target - 1] == BOS_ID for d in docs[:-1])
    assert len(docs) == len(LENGTHS) + (lead > 0)


def test_the_records_order_runs_batches_of_similar_lengths_longest_first_and_stream_order_keeps_validation_order():
    docs = split_documents(doc_stream(LENGTHS), 1, sum(LENGTHS))
    by_length = batches(docs, 3, "length")
    assert [len(b) for b in by_length] == [1, 3, 3]  # the cut of the longest (a partial batch here) runs first
    maxima = [max(d.length for d in b) for b in by_length]
    assert maxima == sorted(maxima, reverse=True)
    assert sorted(d.length for b in by_length for d in b) == sorted(d.length for d in docs)
    assert all(max(d.length for d in a) <= min(d.length for d in b) or max(d.length for d in b) <=
               min(d.length for d in a) for a in by_length for b in by_length if a is not b)
    assert [d.index for b in batches(docs, 3, "stream") for d in b] == list(range(len(docs)))


def test_chunk_windows_read_only_the_document_and_score_each_target_once():
    doc = split_documents(doc_stream([70]), 1, 70)[0]
    seen = []
    for ci in range(chunk_count(doc, 8)):
        w = chunk_window(doc, ci, 8, 32)
        assert w.start >= doc.start and w.length <= 32 and w.offset + w.scored == w.length
        seen += list(range(w.start + 1 + w.offset, w.start + 1 + w.offset + w.scored))
    assert seen == list(range(doc.first_target, doc.end_target))


def test_adapters_start_as_the_identity_and_leave_nothing_on_the_model():
    model = tiny_model().eval()
    x = torch.from_numpy(doc_stream([20, 13]).astype(np.int64)[:32]).view(1, 32).repeat(2, 1)
    with torch.no_grad():
        plain = model(x)
    adapters = DocAdapters(model, 2, 4, 8.0, ["q", "k", "v", "o", "mlp", "head"])
    slots = len(model.layer_order())
    assert all(len(group) == slots for group in adapters.slot_adapters.values())
    with torch.no_grad(), adapters.attached():
        same = model(x)
        for a in adapters.adapters:
            a.b.normal_()
        moved = model(x)
    assert torch.equal(same, plain) and not torch.allclose(moved, plain)
    with torch.no_grad():
        assert torch.equal(model(x), plain)
    assert "run_layer" not in model.__dict__ and "head_logits" not in model.__dict__
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_every_chunk_is_scored_once_before_any_step_that_saw_it():
    tokens = doc_stream(LENGTHS)
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = evaluate(model, tokens, settings(epochs=2))
    windows = plan_windows(len(tokens), EVAL.seq_len, EVAL.stride)
    first, end = windows[0].first_target, windows[-1].end_target
    assert out.result.tokens == end - first == len(out.result.token_nll)
    assert (out.ledger.times_scored[first:end] == 1).all() and not out.ledger.seen_by_scorer().any()
    # the ledger holds the steps as they ran: one training per document per step, on its chunk's targets
    steps = sum(2 * (chunk_count(d, 8) - 1) for d in split_documents(tokens, first, end))
    assert out.ledger.version == steps > 0 and out.ttt.adapted_tokens == 8 * steps
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the base never moves


def adapts_before_scoring(monkeypatch) -> None:
    """A wrong run_batch: the batch is first run with its scores thrown away (its adapters train on every chunk),
    then again keeping the scores, from adapters that have seen what they score."""
    real = doc_loop.run_batch

    def leaky(*args):
        real(*[Scores(a.first, a.first + len(a.nll)) if isinstance(a, Scores) else a for a in args])
        real(*args)

    monkeypatch.setattr(doc_loop, "run_batch", leaky)


def test_the_ledger_and_the_audit_catch_a_run_batch_that_adapts_before_it_keeps_its_scores(monkeypatch):
    adapts_before_scoring(monkeypatch)
    tokens = doc_stream([30, 9, 70, 17, 45, 12, 26, 40, 22, 15], seed=2)
    out = evaluate(tiny_model(), tokens, settings())
    assert out.ledger.seen_by_scorer().any()
    base = tiny_model()
    record = run_audit(lambda: copy.deepcopy(base), TokenArray([tokens]), TABLES, EVAL, settings(),
                       AuditConfig(tokens=240, positions=4), CPU, log=lambda _: None)
    assert not record["compliant"] and not record["checks"]["C3_score_before_update"]["passed"]


def test_a_run_batch_that_leaves_a_chunk_unscored_is_refused(monkeypatch):
    monkeypatch.setattr(doc_loop, "run_batch", lambda *args: None)
    with pytest.raises(RuntimeError, match="unscored"):
        evaluate(tiny_model(), doc_stream(LENGTHS), settings())


def test_chunks_shorter_than_the_evaluation_context_are_accepted_for_doc_lora_only():
    ok = to_golf_config(compose(["model=tiny", "ttt=doc_lora", "ttt.chunk_tokens=48", "eval.seq_len=256",
                                 "train.seq_len=256"]))
    assert ok.ttt.chunk_tokens < ok.eval.seq_len
    with pytest.raises(ConfigError, match="ttt.chunk_tokens"):
        to_golf_config(compose(["model=tiny", "ttt=score_first", "ttt.chunk_tokens=48", "eval.seq_len=256",
                                "train.seq_len=256"]))


@pytest.mark.parametrize("override, key", [("ttt.doc_order=random", "ttt.doc_order"),
                                           ("ttt.doc_lora_targets=[q,gate]", "ttt.doc_lora_targets"),
                                           ("ttt.doc_batch=0", "ttt.doc_batch"),
                                           ("ttt.lora_beta2=1.0", "ttt.lora_beta2"),
                                           ("ttt.protocol=adapt_first", "ttt.protocol")])
def test_bad_doc_lora_settings_are_refused_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        to_golf_config(compose(["model=tiny", "ttt=doc_lora", override]))


def later_document_scores(tokens: np.ndarray, cfg: TTTConfig, change_first: bool) -> np.ndarray:
    tokens = tokens.copy()
    if change_first:  # another first document, of the same length (no BOS inside)
        tokens[1:LENGTHS[0]] = (tokens[1:LENGTHS[0]] + 7 - 2) % (VOCAB - 2) + 2
    out = evaluate(tiny_model(), tokens, cfg)
    return out.result.token_nll[LENGTHS[0]:]  # the targets after the first document's end


def test_a_documents_scores_depend_on_it_alone_unless_a_is_warm_started():
    tokens = doc_stream(LENGTHS)
    cfg = settings(doc_order="stream", doc_batch=2)
    np.testing.assert_allclose(later_document_scores(tokens, cfg, True), later_document_scores(tokens, cfg, False),
                               rtol=0, atol=1e-6)
    assert get("doc_lora").document_independent and get("doc_lora").claims_independence(cfg)
    warm = dataclasses.replace(cfg, lora_warm_start_a=True)
    moved = np.abs(later_document_scores(tokens, warm, True) - later_document_scores(tokens, warm, False)).max()
    assert moved > 1e-5 and not get("doc_lora").claims_independence(warm)
    assert get("phased_doc_lora").document_independent is False


def test_without_steps_the_scores_are_the_base_models_on_each_document_alone():
    tokens = doc_stream([20, 9, 14])
    model = tiny_model().eval()
    out = evaluate(copy.deepcopy(model), tokens, settings(lr=0.0))
    with torch.no_grad():
        for d in split_documents(tokens.astype(np.int64), 1, len(tokens)):
            x = torch.from_numpy(tokens[d.start:d.end_target].astype(np.int64))
            want = model(x[None, :-1], x[None, 1:], reduction="none")[0].double().numpy()
            np.testing.assert_allclose(out.result.token_nll[d.first_target - 1:d.end_target - 1], want, atol=1e-5)


@pytest.mark.parametrize("order", ["length", "stream"])
def test_doc_lora_passes_the_audit(order):
    tokens = doc_stream([30, 9, 70, 17, 45, 12, 26, 40, 22, 15], seed=2)
    base = tiny_model()
    record = run_audit(lambda: copy.deepcopy(base), TokenArray([tokens]), TABLES, EVAL, settings(doc_order=order),
                       AuditConfig(tokens=240, positions=4), CPU, log=lambda _: None)
    assert record["compliant"], verdict_table(record)
    assert record["checks"]["C3_score_before_update"]["versions"] > 1
    # C2 compares the base model with the chunk 0 of several documents, more than one batch's worth
    cfg = settings(doc_order=order)
    assert record["checks"]["C2_normalization"]["evaluation_targets_compared"] > cfg.doc_batch * cfg.chunk_tokens
