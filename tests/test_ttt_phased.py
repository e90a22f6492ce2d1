"""Phased TTT (ttt.method=phased_doc_lora): documents before the first boundary are scored as doc_lora scores them,
after it the base has trained on the first `boundary` scored documents (which the ledger records, never before they
were scored); in stream order it passes the audit; T3's ablation sweeps compose; and golf.train runs it end to end
with the audit."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from golf.cli import compose
from golf.config import to_golf_config
from golf.data.shards import TokenArray
from golf.errors import ConfigError
from golf.evaluate.audit_checks import run_audit, verdict_table
from golf.evaluate.audit_config import AuditConfig
from golf.evaluate.ttt.documents import phase_training_set, rank_in_order, split_documents
from golf.evaluate.ttt.method import get

from test_ttt_doc_lora import EVAL, doc_stream, evaluate, settings
from test_ttt_engine import CPU, TABLES, tiny_model

LENGTHS = [30, 9, 40, 17, 25, 12, 26, 33, 14]


def phased(**overrides):
    base = dict(method="phased_doc_lora", doc_order="stream", doc_batch=2, phases=[2, 5], global_lr=0.05,
                global_chunk_tokens=64, global_batch_seqs=1)
    return settings(**{**base, **overrides})


def test_documents_before_the_first_boundary_score_as_doc_lora_and_later_ones_on_the_moved_base():
    tokens = doc_stream(LENGTHS)
    plain = evaluate(tiny_model(), tokens, settings(doc_order="stream", doc_batch=2))
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = evaluate(model, tokens, phased())
    docs = split_documents(tokens, 1, len(tokens))
    cut = docs[2].first_target - 1  # the first batch (2 documents) runs before the first phase
    np.testing.assert_array_equal(out.result.token_nll[:cut], plain.result.token_nll[:cut])
    assert np.abs(out.result.token_nll[cut:] - plain.result.token_nll[cut:]).max() > 1e-4
    assert any(not np.array_equal(v.numpy(), before[k].numpy()) for k, v in model.state_dict().items())
    assert not out.ledger.seen_by_scorer().any() and (out.ledger.times_scored[1:len(tokens)] == 1).all()
    assert [r["phase"] for r in out.ttt.chunks] == [0, 1, 1, 2, 2]
    assert get("phased_doc_lora").document_independent is False


def test_a_batch_that_crosses_two_boundaries_runs_both_phases_before_the_next_batch():
    tokens = doc_stream(LENGTHS)
    out = evaluate(tiny_model(), tokens, phased(phases=[1, 2, 5], global_chunk_tokens=32))
    assert [r["phase"] for r in out.ttt.chunks] == [0, 2, 2, 3, 3]
    whole = [(d.first_target, d.end_target) for d in split_documents(tokens, 1, len(tokens))]
    # the phases' trainings (whole documents; a document's own steps train on chunks): one document, then two
    assert [t for t in out.ledger.trainings if t in whole][:3] == whole[:1] + whole[:2]
    assert not out.ledger.seen_by_scorer().any()


def test_a_phase_trains_on_the_first_boundary_scored_documents_in_the_records_order():
    docs = split_documents(doc_stream(LENGTHS), 1, sum(LENGTHS))
    scored = docs[4:8] + docs[:2]
    by_length = phase_training_set(scored, 3, rank_in_order(docs, 2, "length"))
    assert [d.length for d in by_length] == sorted(d.length for d in scored)[:3]
    assert [d.index for d in phase_training_set(scored, 3, rank_in_order(docs, 2, "stream"))] == [0, 1, 4]


def test_phased_ttt_in_stream_order_passes_the_audit():
    tokens = doc_stream([30, 9, 40, 17, 45, 12, 26, 40, 22, 15], seed=2)
    base = tiny_model()
    record = run_audit(lambda: copy.deepcopy(base), TokenArray([tokens]), TABLES, EVAL,
                       phased(phases=[2, 4]), AuditConfig(tokens=240, positions=4), CPU, log=lambda _: None)
    assert record["compliant"], verdict_table(record)


def test_in_the_records_length_order_a_later_document_moves_an_earlier_ones_score():
    """Why the audit's C1 flags T3's order: a longer document later in the stream can run, and be trained on, before
    an earlier one is scored."""
    tokens = doc_stream([30, 9, 17, 25, 12, 26, 60])  # the last document is the longest: its batch runs first
    cfg = phased(doc_order="length", phases=[1], global_chunk_tokens=32)
    last = split_documents(tokens, 1, len(tokens))[-1]
    changed = tokens.copy()
    changed[last.start + 1:] = (changed[last.start + 1:] - 2 + 5) % 30 + 2  # rewrite the last document only
    a = evaluate(tiny_model(), tokens, cfg).result.token_nll[:last.first_target - 1]
    b = evaluate(tiny_model(), changed, cfg).result.token_nll[:last.first_target - 1]
    assert np.abs(a - b).max() > 1e-6


@pytest.mark.parametrize("overrides, key", [
    (["ttt=phased_doc_lora", "eval.seq_len=256", "train.seq_len=256", "ttt.global_chunk_tokens=255"],
     "ttt.global_chunk_tokens"),
    (["ttt=doc_lora", "ttt.phases=[2,4]"], "ttt.phases"),
])
def test_settings_that_would_silently_train_nothing_are_refused_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        to_golf_config(compose(["model=tiny", *overrides]))
    fixed = {"ttt.global_chunk_tokens": "ttt.global_chunk_tokens=256", "ttt.phases": "ttt.phases=[]"}[key]
    to_golf_config(compose(["model=tiny", *overrides, fixed]))  # the same with the key fixed is accepted


@pytest.mark.parametrize("sweep, key, values", [
    ("ttt_phases", "ttt.phases", [[], [2500], [833, 1666, 2500], [666, 1333, 2000]]),
    ("ttt_lora_rank", "ttt.lora_rank", [32, 80, 96]),
    ("ttt_warm_a", "ttt.lora_warm_start_a", [True, False]),
    ("ttt_lora_adam", "ttt.weight_decay", [0.5, 1.0]),
])
def test_t3s_ttt_ablation_sweeps_compose_at_every_point(sweep, key, values):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from golf import CONF_DIR
    from golf.config import register_schema

    register_schema()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=[f"sweep={sweep}"], return_hydra_config=True)
    grid = str(cfg.hydra.sweeper.params[key])
    points = [v for v in OverridesParser.create().parse_overrides([f"{key}={grid}"])[0].sweep_iterator()]
    assert [list(p) if isinstance(p, list) else p for p in points] == values
    for p in points:
        value = f"[{','.join(map(str, p))}]" if isinstance(p, list) else str(p).lower()
        golf = to_golf_config(compose([f"sweep={sweep}", f"{key}={value}"]))
        assert golf.ttt.method == "phased_doc_lora" and golf.name == sweep


@pytest.mark.slow
@pytest.mark.parametrize("option", ["doc_lora", "phased_doc_lora"])
def test_golf_train_runs_the_method_and_passes_the_audit(option, text_corpus, tmp_path):
    from testkit import golf_command

    result = golf_command(
        "golf.train", "data=text_dir", f"data.path={text_corpus}", "data.vocab_size=384", "model=tiny",
        "model.num_layers=2", "model.model_dim=32", "model.num_heads=2", "model.num_kv_heads=1",
        "train.iterations=2", "train.batch_tokens=1024", "train.seq_len=64", "eval.max_tokens=4097",
        "eval.compressor_baselines=false", f"ttt={option}", "ttt.chunk_tokens=32", "ttt.lora_rank=4",
        "ttt.doc_batch=2", "ttt.doc_order=stream", "ttt.doc_last_window=chunk", "ttt.lora_warm_start_a=false",
        *(["ttt.phases=[2,4]"] if option == "phased_doc_lora" else []), "ttt.global_chunk_tokens=256",
        "ttt.global_batch_seqs=1", "audit.enabled=true",
        "audit.tokens=2049", "audit.positions=2",  # the slice must hold a document boundary (the corpus's are long)
        "logger=none", f"paths.root={tmp_path}",
        f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "compliance.json").read_text())
    assert record["compliant"] is True, record
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["val_bpb"] == metrics["ttt_val_bpb"]
    assert record["checks"]["C3_score_before_update"]["versions"] > 1
