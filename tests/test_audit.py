"""The behavioural audit: it passes legal evaluations and fails illegal ones on the check that names the violation.

Illegal evaluations come in through the same interfaces the real ones use: a TTT engine module that evaluate_model
imports (adapting before scoring, honestly recorded or hidden from the ledger), and model wrappers (a batch leak,
an unnormalized scorer).
"""

from __future__ import annotations

import copy
import json
import sys
import time
import types
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from golf import CONF_DIR
from golf.cli import compose
from golf.config import to_golf_config, to_plain_dict
from golf.data.shards import TokenArray
from golf.data.tokenizer import ByteTables
from golf.errors import ConfigError
from golf.evaluate.audit_checks import (
    check_score_before_update, check_single_pass, chunk_edges, cut_points, perturbed, run_audit, slice_warnings,
    verdict_table,
)
from golf.evaluate.audit_config import AuditConfig
from golf.evaluate.bpb import ByteCounter, EvalResult, bits_per_byte
from golf.evaluate.config import EvalConfig
from golf.evaluate.evaluation import Evaluation
from golf.evaluate.ledger import ScoreLedger
from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.windows import plan_windows, score_windows
from golf.job.artifact import artifact_file
from golf.job.audit_job import scored_eval_time
from golf.model.gpt import GPT, ModelConfig

V = 48
CPU = torch.device("cpu")
STANDARD = EvalConfig(seq_len=32, stride=0, batch_seqs=4)
SLIDING = EvalConfig(seq_len=32, stride=8, batch_seqs=4)
AUDIT = AuditConfig(tokens=300, positions=4)


@pytest.fixture(scope="module")
def base() -> GPT:
    """A tiny GPT with random (not zero) output projections, so its predictions depend on the context."""
    torch.manual_seed(0)
    model = GPT(ModelConfig(num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1), V)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model


@pytest.fixture(scope="module")
def data() -> tuple[TokenArray, ByteTables]:
    tokens = np.random.default_rng(0).integers(0, V, 400)
    tables = ByteTables(np.ones(V, np.int32), np.zeros(V, bool), np.zeros(V, bool))
    return TokenArray([tokens]), tables


def audit(make_model, data, eval_cfg=STANDARD, ttt_cfg=TTTConfig(), audit_cfg=AUDIT, **kw) -> dict:
    val, tables = data
    return run_audit(make_model, val, tables, eval_cfg, ttt_cfg, audit_cfg, CPU, log=lambda _: None, **kw)


def failed(record: dict) -> set[str]:
    return {name for name, c in record["checks"].items() if not c["passed"]}


# ---------------------------------------------------------------------------------------------------------------
# stand-in TTT engines, injected where evaluate_model imports golf.evaluate.ttt.engine.run_ttt


def stand_in_engine(hide_from_ledger: bool = False) -> types.ModuleType:
    """score_first scores a chunk then adapts on it; adapt_first adapts then scores (ILLEGAL). With
    hide_from_ledger, adapt_first still adapts first but writes the ledger as if it had scored first."""

    def run_ttt(model, val, tables, windows, ttt_cfg, eval_cfg, device, autocast, log, compile_model=False):
        start = time.perf_counter()
        initial = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        ledger, counter = ScoreLedger(len(val)), ByteCounter(tables, device)
        chunks: dict[int, list] = {}
        for w in windows:
            chunks.setdefault(w.first_target // ttt_cfg.chunk_tokens, []).append(w)
        opt = torch.optim.SGD(model.parameters(), lr=ttt_cfg.lr)
        nll, nbytes = [], []

        def adapt(group):
            model.train()
            for w in group:
                row = torch.from_numpy(val.read(w.start, w.start + w.length + 1))[None]
                model(row[:, :-1], row[:, 1:]).backward()
                opt.step()
                opt.zero_grad()

        def score(group):
            scores = score_windows(model, val, group, counter, eval_cfg.batch_seqs, device, autocast)
            nll.append(scores.nll)
            nbytes.append(scores.bytes)

        for group in chunks.values():
            lo, hi = group[0].first_target, group[-1].end_target
            if ttt_cfg.protocol == "score_first":
                score(group)
                ledger.record_scores(lo, hi)
                adapt(group)
                ledger.record_training(lo, hi)
            elif hide_from_ledger:
                adapt(group)
                score(group)
                ledger.record_scores(lo, hi)
                ledger.record_training(lo, hi)
            else:
                adapt(group)
                ledger.record_training(lo, hi)
                score(group)
                ledger.record_scores(lo, hi)
        nll_all, bytes_all = np.concatenate(nll), np.concatenate(nbytes)
        result = EvalResult(float(nll_all.mean()), bits_per_byte(nll_all.sum(), bytes_all.sum()), len(nll_all),
                            int(bytes_all.sum()), time.perf_counter() - start, nll_all if eval_cfg.save_token_nll
                            else None, bytes_all)
        return types.SimpleNamespace(result=result, ledger=ledger, chunks=len(chunks), time_s=result.time_s,
                                     initial_state=initial, illegal=ttt_cfg.protocol == "adapt_first")

    module = types.ModuleType("golf.evaluate.ttt.engine")
    module.run_ttt = run_ttt
    return module


STAND_IN_TTT = TTTConfig(name="stand_in", protocol="score_first", lr=0.5, chunk_tokens=64)


# ---------------------------------------------------------------------------------------------------------------
# legal evaluations pass


@pytest.mark.parametrize("eval_cfg", [STANDARD, SLIDING], ids=["standard", "sliding"])
def test_a_plain_evaluation_passes_every_check(base, data, eval_cfg):
    record = audit(lambda: copy.deepcopy(base), data, eval_cfg, model_bytes=50_000)
    assert record["compliant"] and not record["illegal_protocol"] and not failed(record)
    assert set(record["checks"]) == {"protocol", "C1_causality", "C2_normalization", "C3_score_before_update",
                                     "C4_single_pass", "artifact_bytes", "eval_time", "window_plan"}
    c1 = record["checks"]["C1_causality"]
    assert len(c1["cuts"]) == AUDIT.positions and c1["max_change"] == 0.0
    assert all(cut["max_change_after_t"] > 0 for cut in c1["cuts"])  # the perturbation does reach the model
    assert record["checks"]["C4_single_pass"]["plan_targets"] == (288 if eval_cfg.stride == 0 else 299)
    assert "loss_shares" in record["diagnostics"] and "memorization_gap" not in record["diagnostics"]
    assert "COMPLIANT" in verdict_table(record) and "FAIL" not in verdict_table(record)


def test_a_score_first_stand_in_passes(base, data, monkeypatch):
    monkeypatch.setitem(sys.modules, "golf.evaluate.ttt.engine", stand_in_engine())
    record = audit(lambda: copy.deepcopy(base), data, ttt_cfg=STAND_IN_TTT)
    assert record["compliant"], verdict_table(record)
    assert record["checks"]["C3_score_before_update"]["versions"] > 1 and not record["warnings"]  # it did adapt
    gap = record["diagnostics"]["memorization_gap"]
    assert gap["label"] == "diagnostic, not a legal score" and gap["gap_bpb"] < 0  # rescoring after training helps
    assert max(record["diagnostics"]["adaptation_size"]["blocks"].values()) > 0


# ---------------------------------------------------------------------------------------------------------------
# illegal evaluations fail, on the check that names what they did


def test_adapt_first_fails_causality_and_score_before_update(base, data, monkeypatch):
    monkeypatch.setitem(sys.modules, "golf.evaluate.ttt.engine", stand_in_engine())
    record = audit(lambda: copy.deepcopy(base), data, ttt_cfg=replace(STAND_IN_TTT, protocol="adapt_first"))
    assert not record["compliant"] and record["illegal_protocol"]
    assert {"protocol", "C1_causality", "C3_score_before_update"} <= failed(record)
    c1 = record["checks"]["C1_causality"]
    assert any(cut["first_offending_target"] is not None and cut["first_offending_target"] <= cut["t"]
               for cut in c1["cuts"])
    assert record["checks"]["C3_score_before_update"]["first_offending_target"] == 1


def test_causality_catches_adapt_first_that_the_ledger_hides(base, data, monkeypatch):
    monkeypatch.setitem(sys.modules, "golf.evaluate.ttt.engine", stand_in_engine(hide_from_ledger=True))
    record = audit(lambda: copy.deepcopy(base), data, ttt_cfg=replace(STAND_IN_TTT, protocol="adapt_first"))
    assert record["checks"]["C3_score_before_update"]["passed"]  # the ledger was lied to ...
    assert "C1_causality" in failed(record)  # ... the behaviour was not


class BatchLeak(nn.Module):
    """Each row's logits take in a little of the batch's mean: a later window moves an earlier window's score."""

    def __init__(self, inner: GPT):
        super().__init__()
        self.inner, self.vocab_size = inner, inner.vocab_size

    def forward(self, x, y=None, reduction="mean"):
        logits = self.inner(x)
        logits = logits + 0.1 * logits.mean(0, keepdim=True)
        if y is None:
            return logits
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction=reduction).view(y.shape)


def test_a_batch_leak_fails_causality(base, data):
    record = audit(lambda: BatchLeak(copy.deepcopy(base)), data)
    assert "C1_causality" in failed(record) and not record["compliant"]
    assert record["checks"]["C3_score_before_update"]["passed"]  # nothing trained: only behaviour shows it


class Unnormalized(nn.Module):
    """The scorer reports NLL 0.5 nats below the model's own normalized distribution."""

    def __init__(self, inner: GPT):
        super().__init__()
        self.inner, self.vocab_size = inner, inner.vocab_size

    def forward(self, x, y=None, reduction="mean"):
        return self.inner(x) if y is None else self.inner(x, y, reduction=reduction) - 0.5


def test_an_unnormalized_scorer_fails_normalization(base, data):
    record = audit(lambda: Unnormalized(copy.deepcopy(base)), data)
    assert failed(record) == {"C2_normalization"}
    assert record["checks"]["C2_normalization"]["max_scorer_call_error"] == pytest.approx(0.5, abs=1e-4)
    assert record["checks"]["C2_normalization"]["evaluation_targets_compared"] > 0


class Truncated(nn.Module):
    """Logits over only part of the vocabulary."""

    def __init__(self, inner: GPT):
        super().__init__()
        self.inner, self.vocab_size = inner, inner.vocab_size

    def forward(self, x, y=None, reduction="mean"):
        logits = self.inner(x)[..., : V - 8]
        if y is None:
            return logits
        return F.cross_entropy(logits.flatten(0, 1), y.flatten().clamp(max=V - 9), reduction=reduction).view(y.shape)


def test_logits_over_part_of_the_vocabulary_fail_normalization(base, data):
    record = audit(lambda: Truncated(copy.deepcopy(base)), data)
    assert "C2_normalization" in failed(record)
    assert record["checks"]["C2_normalization"]["logit_ids"] == V - 8


# ---------------------------------------------------------------------------------------------------------------
# ledger checks and budgets


def _evaluation(ledger: ScoreLedger, tokens: int) -> Evaluation:
    return Evaluation(EvalResult(1.0, 1.0, tokens, tokens, 0.0), ledger)


def test_rescoring_and_gaps_fail_single_pass():
    windows = plan_windows(101, 10)  # targets 1 .. 100
    ledger = ScoreLedger(101)
    ledger.record_scores(1, 101)
    assert check_single_pass(_evaluation(ledger, 100), windows).passed
    ledger.record_scores(40, 50)  # a rescore
    c4 = check_single_pass(_evaluation(ledger, 100), windows)
    assert not c4.passed and c4.detail["scored_more_than_once"] == 10 and "target 40" in c4.detail["reason"]
    gap = ScoreLedger(101)
    gap.record_scores(1, 60)
    assert check_single_pass(_evaluation(gap, 59), windows).detail["never_scored"] == 41
    assert not check_single_pass(_evaluation(gap, 59), windows).passed


def test_training_before_scoring_fails_score_before_update():
    ledger = ScoreLedger(101)
    ledger.record_scores(1, 50)
    ledger.record_training(1, 50)
    assert check_score_before_update(ledger).passed
    ledger.record_training(50, 101)
    ledger.record_scores(50, 101)
    c3 = check_score_before_update(ledger)
    assert not c3.passed and c3.detail["offending_targets"] == 51 and c3.detail["first_offending_target"] == 50


def test_budgets(base, data):
    make = lambda: copy.deepcopy(base)  # noqa: E731
    over = audit(make, data, model_bytes=16_000_000, eval_time_s=700.0)
    assert failed(over) == {"artifact_bytes", "eval_time"}
    assert over["checks"]["eval_time"]["source"] == "the scored run's evaluation time"
    slower = audit(make, data, audit_cfg=replace(AUDIT, time_factor=2.0), eval_time_s=700.0)
    assert slower["compliant"] and "artifact_bytes" not in slower["checks"]  # no size given: not checked


def test_time_is_judged_only_on_the_challenges_hardware(base, data):
    """The 600 s budget is the challenge's for 8xH100: elsewhere the time is reported against a declared (or scaled)
    budget, marked INFO in the verdict table, and never makes the audit fail."""
    make = lambda: copy.deepcopy(base)  # noqa: E731
    on_cpu = audit(make, data, eval_time_s=3000.0, hardware="cpu")
    check = on_cpu["checks"]["eval_time"]
    assert on_cpu["compliant"] and check["judged"] is False and check["within_budget"] is False
    assert check["budget_kind"] == "scaled" and "not judged on hardware=cpu" in check["reason"]
    line = next(row for row in verdict_table(on_cpu).splitlines() if row.startswith("eval_time"))
    assert line.split()[1] == "INFO" and "COMPLIANT" in verdict_table(on_cpu).splitlines()[-1]
    declared = audit(make, data, audit_cfg=replace(AUDIT, time_budget_s=4000.0), eval_time_s=3000.0, hardware="cpu")
    assert declared["checks"]["eval_time"]["allowed_s"] == 4000.0
    assert declared["checks"]["eval_time"]["budget_kind"] == "declared"
    assert declared["checks"]["eval_time"]["within_budget"] is True
    on_h100s = audit(make, data, audit_cfg=replace(AUDIT, time_budget_s=4000.0), eval_time_s=3000.0,
                     hardware="8xh100")
    assert not on_h100s["compliant"] and failed(on_h100s) == {"eval_time"}  # a declared budget never loosens it


def test_a_slice_of_one_ttt_chunk_is_flagged():
    assert slice_warnings(300, TTTConfig()) == []
    assert slice_warnings(300, TTTConfig(protocol="score_first", chunk_tokens=64)) == []
    one_chunk = slice_warnings(300, TTTConfig(protocol="score_first", chunk_tokens=512))
    assert len(one_chunk) == 1 and "audit.tokens to at least 1,025" in one_chunk[0]


def test_a_slice_shorter_than_a_window_is_a_config_error(base, data):
    with pytest.raises(ConfigError, match="audit.tokens"):
        audit(lambda: copy.deepcopy(base), data, audit_cfg=replace(AUDIT, tokens=32))


# ---------------------------------------------------------------------------------------------------------------
# where C1 cuts, and how


def test_cut_points_take_chunk_starts_insides_and_last_targets():
    cuts = cut_points([100, 200], 1, 300, 4)
    assert len(cuts) == 4 and all(1 <= t <= 298 for t in cuts)
    assert {100, 200} & set(cuts) and {50, 150, 250} & set(cuts) and {99, 199} & set(cuts)
    assert len(cut_points([], 1, 300, 3)) == 3  # one chunk: spread inside it


def test_chunk_edges_follow_ttt_chunks_or_windows():
    windows = plan_windows(300, 32)  # window k scores targets 32k+1 .. 32k+32
    assert chunk_edges(windows, TTTConfig()) == [33, 65, 97, 129, 161, 193, 225, 257]
    ttt = TTTConfig(protocol="score_first", chunk_tokens=64)
    assert chunk_edges(windows, ttt) == [65, 129, 193, 257]  # chunk c: targets 1 + 64c ..
    sliding = plan_windows(300, 32, 24)  # first targets 1, 33, 57, 81, 105, 129, ...
    assert chunk_edges(sliding, ttt) == [65, 81, 129, 193, 201, 257, 273]  # nominal edge, first window after it
    assert chunk_edges(windows, ttt, [{"first_target": 1}, {"first_target": 100}]) == [65, 100, 129, 193, 257]


def test_perturbed_changes_every_token_after_t_and_nothing_before():
    tokens = np.arange(100) % V
    out = perturbed(tokens, 40, V)
    assert (out[:41] == tokens[:41]).all() and (out[41:] != tokens[41:]).all() and out.max() < V


# ---------------------------------------------------------------------------------------------------------------
# the real engine


@pytest.mark.parametrize("eval_cfg", [STANDARD, SLIDING], ids=["standard", "sliding"])
def test_the_engine_score_first_passes(base, data, eval_cfg):
    ttt = TTTConfig(name="score_first", protocol="score_first", lr=0.05, epochs=1, chunk_tokens=64, batch_seqs=2)
    record = audit(lambda: copy.deepcopy(base), data, eval_cfg, ttt_cfg=ttt)
    assert record["compliant"], verdict_table(record)
    assert record["checks"]["C3_score_before_update"]["versions"] > 1


LEGAL_TTT_OPTIONS = sorted(p.stem for p in (CONF_DIR / "ttt").glob("*.yaml") if p.stem not in ("none", "adapt_first"))


@pytest.mark.parametrize("option", LEGAL_TTT_OPTIONS)
def test_every_shipped_ttt_option_passes_the_audit(base, data, option):
    # each option as shipped, shrunk to the tiny slice: small chunks, one epoch, a bounded lr
    ttt = to_golf_config(compose([f"ttt={option}"])).ttt
    ttt = replace(ttt, chunk_tokens=64, epochs=1, batch_seqs=2, lr=min(ttt.lr, 0.05), eb_microbatches=2)
    record = audit(lambda: copy.deepcopy(base), data, SLIDING, ttt_cfg=ttt)
    assert record["compliant"], verdict_table(record)
    assert record["checks"]["C3_score_before_update"]["versions"] > 1  # it did adapt inside the slice


def test_the_engine_adapt_first_fails_causality_and_score_before_update(base, data):
    ttt = TTTConfig(name="adapt_first", protocol="adapt_first", lr=0.05, epochs=1, chunk_tokens=64, batch_seqs=2)
    record = audit(lambda: copy.deepcopy(base), data, ttt_cfg=ttt)
    assert not record["compliant"] and record["illegal_protocol"]
    assert {"C1_causality", "C3_score_before_update"} <= failed(record), verdict_table(record)


# ---------------------------------------------------------------------------------------------------------------
# the entry point's helpers


def test_the_scored_runs_time_is_used_only_for_the_same_evaluation(tmp_path):
    cfg = to_golf_config(compose(["data=text_dir", f"data.path={tmp_path}", "logger=none"]))
    (tmp_path / "artifact.golf").write_bytes(b"")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(to_plain_dict(cfg)))
    (tmp_path / "metrics.json").write_text(json.dumps({"eval_time_s": 12.5}))
    path = artifact_file(str(tmp_path))
    assert path == tmp_path / "artifact.golf" and scored_eval_time(path, cfg) == 12.5
    assert scored_eval_time(path, replace(cfg, ttt=replace(cfg.ttt, protocol="score_first"))) is None
    assert scored_eval_time(path, replace(cfg, eval=replace(cfg.eval, stride=64))) is None
    with pytest.raises(ConfigError, match="does not exist"):
        artifact_file(str(tmp_path / "nowhere"))


def test_the_ledger_of_a_fineweb_sized_evaluation_does_not_grow_with_its_tokens():
    import tracemalloc

    chunk, n_tokens = 32768, 62_021_846  # FineWeb's validation set in score-first chunks (1,893 of them)
    tracemalloc.start()
    ledger = ScoreLedger(n_tokens)
    for lo in range(1, n_tokens, chunk):
        ledger.record_scores(lo, min(lo + chunk, n_tokens))
        ledger.record_training(lo, min(lo + chunk, n_tokens))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert ledger.versions == 1 + len(range(1, n_tokens, chunk))
    assert peak < 2_000_000, peak  # ranges: ~100 bytes a chunk; per-token arrays would be ~500 MB
