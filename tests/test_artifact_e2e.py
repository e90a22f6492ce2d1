"""The artifact end to end: export after training, score from disk, golf.eval reproduces it, and code_bytes' file
list is complete (slow: these train)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from golf import REPO_ROOT
from golf.cli import compose
from golf.config import to_golf_config
from golf.evaluate.ttt.method import names as ttt_method_names
from golf.job import ARTIFACT_NAME, run_job
from golf.quant.code_size import ARTIFACT_CODE_FILES, code_bytes, code_files

from testkit import golf_command

pytestmark = pytest.mark.slow

TINY = ["model=tiny", "data=text_dir", "data.vocab_size=384", "train.batch_tokens=4096", "train.seq_len=128",
        "train.iterations=12", "eval.batch_seqs=16", "eval.compressor_baselines=false", "logger=none"]


@pytest.fixture(scope="module")
def trained_int8(text_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    result = golf_command("golf.train", *TINY, f"data.path={text_corpus}", f"paths.root={root}", "quant=int8_zlib",
                          f"hydra.run.dir={root}/run")
    assert result.returncode == 0, result.stderr[-3000:]
    return root, json.loads((root / "run" / "metrics.json").read_text())


def test_metrics_carry_the_round_trip_and_the_size_breakdown(trained_int8):
    root, m = trained_int8
    artifact = root / "run" / ARTIFACT_NAME
    assert m["status"] == "ok" and m["val_bpb"] == m["quant_val_bpb"]
    assert m["quant_gap_bpb"] == pytest.approx(m["quant_val_bpb"] - m["pre_quant_val_bpb"], abs=1e-12)
    assert m["model_bytes"] == artifact.stat().st_size
    assert m["artifact_bytes"] == m["model_bytes"] + m["code_bytes"] and m["code_bytes"] == code_bytes()
    assert m["artifact_limit_bytes"] == 16_000_000 and m["code_files"] == list(ARTIFACT_CODE_FILES)
    assert sum(c["params"] for c in m["quant_categories"].values()) == m["model_params"]
    assert 0 < abs(m["quant_gap_bpb"]) < 0.05  # int8 costs a little, never nothing (weights moved) nor much


def test_golf_eval_reproduces_the_runs_score_exactly(trained_int8, text_corpus):
    root, m = trained_int8
    result = golf_command("golf.eval", f"artifact={root}/run/{ARTIFACT_NAME}", "data=text_dir",
                          f"data.path={text_corpus}", "data.vocab_size=384", "train.seq_len=128", "eval.batch_seqs=16",
                          "logger=none", f"paths.root={root}", f"hydra.run.dir={root}/eval")
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads((root / "eval" / "metrics.json").read_text())
    assert again["val_bpb"] == m["quant_val_bpb"]  # the same code path on the same bytes: bit for bit
    assert again["artifact_sha256"] == m["artifact_sha256"] and again["reused_artifact"] is True


def test_golf_eval_with_sliding_windows_of_a_run_directory(trained_int8, text_corpus):
    root, m = trained_int8
    result = golf_command("golf.eval", f"artifact={root}/run", "eval=sliding", "eval.stride=32", "data=text_dir",
                          f"data.path={text_corpus}", "data.vocab_size=384", "train.seq_len=128", "eval.batch_seqs=16",
                          "logger=none", f"paths.root={root}", f"hydra.run.dir={root}/sliding")
    assert result.returncode == 0, result.stderr[-3000:]
    s = json.loads((root / "sliding" / "metrics.json").read_text())
    assert s["quant_val_bpb"] == m["quant_val_bpb"] and s["val_bpb"] == s["sliding_val_bpb"]
    assert s["sliding_val_bpb"] != s["quant_val_bpb"]  # other contexts, other numbers
    # sliding scores every target, also the tail of fewer than 128 that the standard evaluation drops
    assert 0 < s["eval_tokens"] - m["eval_tokens"] < 128
    assert "sliding windows" in result.stdout


def test_golf_eval_refuses_a_file_that_is_not_an_artifact(tmp_path, text_corpus):
    bogus = tmp_path / "model.golf"
    bogus.write_bytes(b"not an artifact at all")
    result = golf_command("golf.eval", f"artifact={bogus}", "data=text_dir", f"data.path={text_corpus}",
                          "data.vocab_size=384", "logger=none", f"paths.root={tmp_path}")
    assert result.returncode == 2 and str(bogus) in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("ttt", [None, *ttt_method_names()])
def test_the_code_files_alone_load_and_score_the_artifact(trained_int8, text_corpus, tmp_path, ttt):
    """Without TTT, and with each method: its engine and its own module, none of the other methods'."""
    root, m = trained_int8
    files = code_files(ttt)
    methods_dir = "golf/evaluate/ttt/methods/"
    assert [f for f in files if f.startswith(methods_dir) and not f.endswith("__init__.py")] == (
        [f"{methods_dir}{ttt}.py"] if ttt else [])
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    data_dir = root / "data" / "text_dir_sp384"
    artifact, val_glob = str(root / "run" / ARTIFACT_NAME), str(data_dir) + "/fineweb_val_*.bin"
    tokenizer = str(data_dir / "tokenizer.model")
    if ttt:  # score-first TTT, through the one evaluation entry golf.train and golf.eval use
        score = f"""
        from golf.data.shards import TokenArray
        from golf.data.tokenizer import byte_tables, load_tokenizer
        from golf.evaluate.artifact_eval import load_model
        from golf.evaluate.config import EvalConfig
        from golf.evaluate.evaluation import evaluate_model
        from golf.evaluate.ttt.config import TTTConfig
        from golf.quant.artifact import load_artifact
        art = load_artifact({artifact!r})
        tables = byte_tables(load_tokenizer({tokenizer!r}), art.vocab_size)
        val = TokenArray.from_files(sorted(glob.glob({val_glob!r})), max_tokens=4096)
        ttt = TTTConfig(protocol="score_first", method={ttt!r}, chunk_tokens=1024, epochs=1, batch_seqs=4)
        bpb = evaluate_model(load_model(art, torch.device("cpu")), val, tables, EvalConfig(seq_len=128, stride=0),
                             ttt, torch.device("cpu"), log=lambda _: None).result.val_bpb
        """
    else:
        score = f"""
        from golf.evaluate.artifact_eval import evaluate_artifact
        bpb = evaluate_artifact({artifact!r}, sorted(glob.glob({val_glob!r})), {tokenizer!r}, 128, 16,
                                torch.device("cpu")).result.val_bpb
        """
    script = textwrap.dedent(f"""
        import sys
        # golf is installed editable; drop that finder so only the copied files can be imported
        sys.meta_path[:] = [f for f in sys.meta_path if "Editable" not in getattr(f, "__name__", "")]
        sys.path.insert(0, {str(tmp_path)!r})
        import glob, torch
    """) + textwrap.dedent(score) + textwrap.dedent(f"""
        outside = [m.__file__ for n, m in sys.modules.items() if n.startswith("golf") and not m.__file__.startswith({str(tmp_path)!r})]
        print(repr(bpb), outside)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    val_bpb, outside = out.stdout.strip().split(" ", 1)
    assert outside == "[]"
    if not ttt:
        assert float(val_bpb) == m["quant_val_bpb"]


def test_over_the_limit_is_status_over_budget_and_loud(text_corpus, tmp_path, monkeypatch, capsys):
    import golf.job.export
    import golf.job.record
    import golf.quant.code_size

    monkeypatch.setattr(golf.job.export, "ARTIFACT_LIMIT_BYTES", 1000)
    monkeypatch.setattr(golf.job.record, "ARTIFACT_LIMIT_BYTES", 1000)
    monkeypatch.setattr(golf.quant.code_size, "ARTIFACT_LIMIT_BYTES", 1000)
    cfg = to_golf_config(compose([*TINY, f"data.path={text_corpus}", f"paths.root={tmp_path}", "train.iterations=2"]))
    metrics = run_job(cfg, tmp_path / "run", overrides=[])
    assert metrics["status"] == "over_budget" and metrics["artifact_limit_bytes"] == 1000
    assert "OVER THE" in capsys.readouterr().out


def test_qat_with_ema_trains_exports_and_scores(text_corpus, tmp_path):
    cfg = to_golf_config(compose([
        *TINY, f"data.path={text_corpus}", f"paths.root={tmp_path}", "train.warmdown_steps=8",
        "quant=int6_zstd", "quant.passthrough_numel=0", "quant.qat.enabled=true", "quant.qat.start=0.5",
        "quant.qat.soft_round=true", "optim.ema.decay=0.9", "optim.muon_wd=0.01",
    ]))
    m = run_job(cfg, tmp_path / "run", overrides=[])
    # 12 steps, warm-down over the last 8: after step s the warm-down is 1 - (12 - s) / 8 done, so half at step 8
    assert m["qat_from_step"] == 8 and m["weight_averaging"] == "ema"
    assert m["status"] == "ok" and m["val_bpb"] == m["quant_val_bpb"]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "QAT on from step 8" in log and "ema average of 12 updates" in log


def test_golf_eval_without_an_artifact_names_the_key(tmp_path, text_corpus):
    result = golf_command("golf.eval", "data=text_dir", f"data.path={text_corpus}", "data.vocab_size=384",
                          "logger=none", f"paths.root={tmp_path}")
    assert result.returncode == 2 and "artifact" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no empty run directory
