"""`python -m golf.audit` end to end on a tiny artifact built in the test (slow: subprocesses, data preparation)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch

from golf.cli import compose
from golf.config import to_golf_config
from golf.data.prepare import ensure_prepared
from golf.job import ARTIFACT_NAME
from golf.model.gpt import GPT, ModelConfig
from golf.quant.artifact import export_artifact, write_artifact
from golf.quant.config import QuantConfig

from testkit import golf_command

pytestmark = pytest.mark.slow

VOCAB = 384
COMMON = ["data=text_dir", f"data.vocab_size={VOCAB}", "train.seq_len=64", "eval.batch_seqs=8", "logger=none",
          "audit.tokens=640", "audit.positions=3"]
SCORE_FIRST = ["ttt.protocol=score_first", "ttt.chunk_tokens=128", "ttt.epochs=1", "ttt.batch_seqs=2", "ttt.lr=0.05"]


@pytest.fixture(scope="module")
def artifact_run(text_corpus, tmp_path_factory):
    """A run directory holding artifact.golf of a tiny random GPT, and prepared data for its vocabulary."""
    root = tmp_path_factory.mktemp("audit")
    cfg = to_golf_config(compose([*COMMON, f"data.path={text_corpus}", f"paths.root={root}"]))
    ensure_prepared(cfg.data, log=lambda _: None)
    torch.manual_seed(0)
    model_cfg = ModelConfig(name="micro", num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1)
    model = GPT(model_cfg, VOCAB)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    write_artifact(root / "run" / ARTIFACT_NAME, export_artifact(state, asdict(model_cfg), VOCAB, QuantConfig()))
    return root


def audit(root, text_corpus, name, *extra):
    return golf_command("golf.audit", *COMMON, f"data.path={text_corpus}", f"paths.root={root}",
                        f"hydra.run.dir={root}/{name}", *extra)


def test_a_legal_evaluation_is_compliant(artifact_run, text_corpus):
    root = artifact_run
    result = audit(root, text_corpus, "plain", f"artifact={root}/run")
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((root / "plain" / "compliance.json").read_text())
    metrics = json.loads((root / "plain" / "metrics.json").read_text())
    assert record["compliant"] is True and metrics["compliant"] is True and metrics["status"] == "ok"
    assert record["artifact_path"] == str(root / "run" / ARTIFACT_NAME) and record["slice_tokens"] == 640
    assert all(c["passed"] for c in record["checks"].values()) and "artifact_bytes" in record["checks"]
    assert "C1_causality" in result.stdout and "COMPLIANT" in result.stdout


def test_score_first_passes_and_adapt_first_fails(artifact_run, text_corpus):
    root = artifact_run
    legal = audit(root, text_corpus, "score_first", f"artifact={root}/run/{ARTIFACT_NAME}", *SCORE_FIRST)
    assert legal.returncode == 0, legal.stderr[-3000:]
    assert json.loads((root / "score_first" / "compliance.json").read_text())["compliant"] is True
    illegal = audit(root, text_corpus, "adapt_first", f"artifact={root}/run", *SCORE_FIRST, "ttt.protocol=adapt_first")
    assert illegal.returncode == 1, illegal.stderr[-3000:]
    record = json.loads((root / "adapt_first" / "compliance.json").read_text())
    assert record["compliant"] is False and record["illegal_protocol"] is True
    assert not record["checks"]["C1_causality"]["passed"] and not record["checks"]["C3_score_before_update"]["passed"]
    assert json.loads((root / "adapt_first" / "metrics.json").read_text())["compliant"] is False
    assert "NOT COMPLIANT" in illegal.stdout


def test_a_missing_artifact_is_a_clear_error(artifact_run, text_corpus):
    root = artifact_run
    unset = audit(root, text_corpus, "unset")
    assert unset.returncode == 2 and "artifact" in unset.stderr and "Traceback" not in unset.stderr
    absent = audit(root, text_corpus, "absent", f"artifact={root}/nowhere")
    assert absent.returncode == 2 and f"{root}/nowhere" in absent.stderr and "Traceback" not in absent.stderr
    assert "artifact" in absent.stderr and not (root / "absent").exists()
