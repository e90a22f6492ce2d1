"""A real multirun on the tiny model: one run directory per job, one training per distinct model, a diverging job
that does not stop the sweep, and the report written at the end."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from testkit import golf_command

pytestmark = pytest.mark.slow

TINY = ["model=tiny", "data=text_dir", "data.vocab_size=384", "train.batch_tokens=4096", "train.seq_len=128",
        "train.iterations=6", "eval.batch_seqs=16", "eval.max_tokens=4096", "eval.compressor_baselines=false",
        "logger=none", "ttt=score_first", "ttt.chunk_tokens=1024", "ttt.epochs=1", "ttt.batch_seqs=4"]


def test_a_ttt_grid_trains_once_per_seed_and_reports(text_corpus, tmp_path):
    sweep = tmp_path / "sweep"
    result = golf_command("golf.train", *TINY, f"data.path={text_corpus}", f"paths.root={tmp_path}",
                          f"hydra.sweep.dir={sweep}", "-m", "seed=1,2", "ttt.lr=0.01,1e9")  # -m after overrides too
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "metrics.json").exists())
    metrics = [json.loads((job / "metrics.json").read_text()) for job in jobs]
    assert len(metrics) == 4
    assert sum(not m["reused_artifact"] for m in metrics) == 2  # 2 seeds x 2 lr: two trainings, not four
    by_lr: dict[float, list[str]] = {}
    for job, m in zip(jobs, metrics):
        by_lr.setdefault(yaml.safe_load((job / "config.yaml").read_text())["ttt"]["lr"], []).append(m["status"])
    assert by_lr == {0.01: ["ok", "ok"], 1e9: ["diverged", "diverged"]}  # the sweep went on past the divergence
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert len(rows) == 3 and sorted(int(r["n_diverged"]) for r in rows) == [0, 0, 2]
    (reference,) = [r for r in rows if r["label"].startswith("no TTT")]  # every job runs TTT: the reference row
    assert reference["baseline"] == "true" and reference["n"] == "2"  # the two seeds' artifacts, without TTT
    no_ttt = {m["no_ttt_val_bpb"] for m in metrics}  # what each job measured on its artifact
    assert len(no_ttt) == 2 and float(reference["val_bpb_mean"]) == pytest.approx(sum(no_ttt) / 2)
    assert (sweep / "summary.md").exists() and "sweep report" in result.stdout
