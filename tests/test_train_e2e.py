"""End to end: golf.train in a subprocess and in process, on a generated corpus (slow: they train)."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from golf.cli import compose
from golf.config import to_golf_config
from golf.job import run_job

from testkit import golf_command

pytestmark = pytest.mark.slow

TINY = ["model=tiny", "data=text_dir", "data.vocab_size=384", "train.batch_tokens=4096", "train.seq_len=128",
        "train.log_every=10", "eval.batch_seqs=16", "logger=none"]

REQUIRED_KEYS = {"status", "val_bpb", "val_loss", "pre_quant_val_bpb", "steps", "train_tokens", "train_time_s",
                 "train_tokens_per_s", "eval_time_s", "seed", "artifact_limit_bytes", "reused_artifact", "diagnostics"}


def test_training_beats_the_untrained_model_and_fills_the_run_directory(text_corpus, tmp_path):
    common = [*TINY, f"data.path={text_corpus}", f"paths.root={tmp_path}"]
    untrained = golf_command("golf.train", *common, "train.iterations=0", f"hydra.run.dir={tmp_path}/untrained")
    assert untrained.returncode == 0, untrained.stderr[-3000:]
    trained = golf_command("golf.train", *common, "train.iterations=80", "train.val_every=40",
                           f"hydra.run.dir={tmp_path}/trained")
    assert trained.returncode == 0, trained.stderr[-3000:]

    before = json.loads((tmp_path / "untrained" / "metrics.json").read_text())
    run = tmp_path / "trained"
    after = json.loads((run / "metrics.json").read_text())
    # An untrained model predicts nearly uniformly: ln(384) nats a token, about 8.6 bits.
    assert before["val_loss"] == pytest.approx(math.log(384), rel=0.05)
    assert after["status"] == "ok" and REQUIRED_KEYS <= after.keys()
    assert after["val_bpb"] < 0.6 * before["val_bpb"], (before["val_bpb"], after["val_bpb"])
    assert after["steps"] == 80 and after["train_tokens"] == 80 * 4096

    for name in ("config.yaml", "overrides.yaml", "git.txt", "train.log", "metrics.jsonl"):
        assert (run / name).is_file(), name
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["path"] == str(text_corpus) and config["train"]["iterations"] == 80
    assert "train.iterations=80" in yaml.safe_load((run / "overrides.yaml").read_text())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val_bpb" in r] == [40, 80]
    assert "golf scorecard" in trained.stdout and "zlib -9" in trained.stdout


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(text_corpus, tmp_path):
    def run(seed: int, name: str) -> dict:
        cfg = to_golf_config(compose([*TINY, f"data.path={text_corpus}", f"paths.root={tmp_path}",
                                      "train.iterations=15", "eval.compressor_baselines=false", f"seed={seed}",
                                      "train.reuse=false"]))
        return run_job(cfg, tmp_path / name, overrides=[])

    first, second, other = run(7, "a"), run(7, "b"), run(8, "c")
    assert not first["reused_artifact"] and not second["reused_artifact"]
    for key in ("val_bpb", "val_loss", "last_train_loss", "steps", "train_tokens", "artifact_sha256"):
        assert first[key] == second[key], key
    assert first["val_bpb"] != other["val_bpb"]


def test_jobs_that_differ_only_in_evaluation_reuse_one_training(text_corpus, tmp_path):
    def run(name: str, *extra: str) -> dict:
        cfg = to_golf_config(compose([*TINY, f"data.path={text_corpus}", f"paths.root={tmp_path}",
                                      "train.iterations=4", "eval.compressor_baselines=false", *extra]))
        return run_job(cfg, tmp_path / name, overrides=[])

    first = run("a")
    sliding = run("b", "eval=sliding", "eval.stride=64")
    other_lr = run("c", "optim.matrix_lr=0.02")
    assert not first["reused_artifact"] and sliding["reused_artifact"] and not other_lr["reused_artifact"]
    assert sliding["artifact_sha256"] == first["artifact_sha256"] and sliding["steps"] == first["steps"]
    assert sliding["quant_val_bpb"] == first["quant_val_bpb"] and "sliding_val_bpb" in sliding
    assert (tmp_path / "b" / "artifact.golf").read_bytes() == (tmp_path / "a" / "artifact.golf").read_bytes()
    assert "reusing the trained artifact" in (tmp_path / "b" / "train.log").read_text()
    entries = [p for p in (tmp_path / "cache").iterdir() if p.is_dir() and p.name != "fingerprints"]
    assert len(entries) == 2


def test_token_nll_files_match_the_score(text_corpus, tmp_path):
    import numpy as np

    cfg = to_golf_config(compose([*TINY, f"data.path={text_corpus}", f"paths.root={tmp_path}", "train.iterations=2",
                                  "eval.save_token_nll=true", "eval.compressor_baselines=false"]))
    metrics = run_job(cfg, tmp_path / "run", overrides=[])
    nll = np.load(tmp_path / "run" / "token_nll.npy")
    nbytes = np.load(tmp_path / "run" / "token_bytes.npy")
    assert nll.dtype == np.float64 and len(nll) == len(nbytes) == metrics["eval_tokens"]
    assert nll.sum() / (math.log(2) * nbytes.sum()) == pytest.approx(metrics["val_bpb"], rel=1e-9)


def test_a_failing_run_still_writes_metrics_json(text_corpus, tmp_path):
    from golf.errors import ConfigError

    cfg = to_golf_config(compose([*TINY, f"data.path={text_corpus}", f"paths.root={tmp_path}", "train.iterations=2",
                                  "eval.seq_len=10000000"]))
    with pytest.raises(ConfigError, match="eval.seq_len"):
        run_job(cfg, tmp_path / "run", overrides=[])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "eval.seq_len" in metrics["error"]
