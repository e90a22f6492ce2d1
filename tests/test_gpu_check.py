"""scripts/gpu_check.sh on a CPU: its arguments, the synthetic data it writes, reading both sides' records, and the
JSON it assembles (the GPU runs themselves need a GPU)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from golf import REPO_ROOT
from golf.benchmark import gpu_check as gc
from golf.cli import compose
from golf.config import to_golf_config
from golf.data.shards import read_shard
from golf.data.tokenizer import BOS_ID, load_tokenizer

SKIP_ALL = "script,golf,bench,parity"


def test_arguments_need_a_reference_unless_its_steps_are_skipped(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GOLF_REFERENCE_DIR", raising=False)
    with pytest.raises(gc.UsageError, match="--reference"):
        gc.parse_args([])
    (tmp_path / "train_gpt.py").write_text("", encoding="utf-8")
    assert gc.parse_args(["--reference", str(tmp_path)]).steps >= 1
    assert gc.parse_args(["--skip", "script,parity"]).skip == {"script", "parity"}
    monkeypatch.setenv("GOLF_REFERENCE_DIR", str(tmp_path))
    assert gc.parse_args([]).reference == str(tmp_path)


@pytest.mark.parametrize("args, named", [(["--steps", "0"], "--steps"), (["--skip", "golf,tea"], "--skip"),
                                         (["--train-tokens", "10"], "--train-tokens")])
def test_bad_arguments_are_refused_naming_them(args, named) -> None:
    with pytest.raises(gc.UsageError, match=named):
        gc.parse_args(["--skip", "script,parity", *args] if "--skip" not in args else args)


def test_the_shell_command_refuses_bad_arguments_in_one_paragraph() -> None:
    done = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "gpu_check.sh"), "--steps", "0", "--skip", SKIP_ALL],
                          capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable}, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("gpu_check: ") and done.stderr.strip().count("\n") == 0 and "--steps" in done.stderr


def test_synthetic_tokens_are_documents_with_something_to_learn() -> None:
    tokens = gc.synthetic_tokens(5000, 1024, seed=0, doc_len=512)
    assert tokens.dtype == np.uint16 and tokens.size == 5000 and int(tokens.max()) < 1024
    assert np.all(tokens[::512] == BOS_ID)
    x, fx = tokens[0:-1:2].astype(np.int64), tokens[1::2].astype(np.int64)
    ordinary = (x != BOS_ID)[: fx.size]
    assert np.array_equal(fx[ordinary], 4 + (7 * x[: fx.size][ordinary] + 3) % 1020)


def test_synthetic_data_is_in_the_challenges_layout(tmp_path) -> None:
    train, val = 2 * gc.BATCH_TOKENS + 7, gc.BATCH_TOKENS
    data = gc.write_synthetic_data(tmp_path, train, val, shard_tokens=gc.BATCH_TOKENS)
    shards = tmp_path / "data" / "datasets" / "fineweb10B_sp1024"
    train_files = sorted(shards.glob("fineweb_train_*.bin"))
    assert len(train_files) == 3 and sum(read_shard(f).size for f in train_files) == train
    assert read_shard(shards / "fineweb_val_000000.bin").size == val
    assert data["tokenizer"] == str(tmp_path / "data" / "tokenizers" / "fineweb_1024_bpe.model")
    assert load_tokenizer(data["tokenizer"], expected_vocab_size=1024).vocab_size() == 1024


def script_log(losses: list[float], step_ms: float) -> str:
    """Lines as the baseline script's log0 writes them, around other lines it writes."""
    lines = ["val_bpb:enabled tokenizer_kind=sentencepiece", "step:0/3 val_loss:6.9 val_bpb:4.1 train_time:0ms"]
    for i, loss in enumerate(losses, 1):
        lines.append(f"step:{i}/{len(losses)} train_loss:{loss:.4f} train_time:{i * step_ms:.0f}ms "
                     f"step_avg:{step_ms:.2f}ms")
    return "\n".join(lines)


def test_reading_both_sides_and_comparing_them() -> None:
    script = gc.parse_script_log(script_log([7.0, 6.5, 6.0], step_ms=400.0))
    assert script["losses"] == {1: 7.0, 2: 6.5, 3: 6.0} and script["ms_per_step"] == 400.0
    assert script["tokens_per_s"] == pytest.approx(gc.BATCH_TOKENS / 0.4)
    records = [json.dumps({"step": s, "train_loss": 7.0 - s / 4, "train_time_s": 0.5 * s}) for s in (1, 2, 3, 4)]
    golf = gc.parse_golf_metrics(records + [json.dumps({"step": 4, "val_bpb": 3.0})])
    assert golf["losses"][4] == 6.0 and golf["ms_per_step"] == pytest.approx(500.0)
    found = gc.compare(script, golf)
    assert found["ms_per_step_ratio_golf_over_script"] == pytest.approx(1.25)
    assert found["tokens_per_s_ratio_golf_over_script"] == pytest.approx(0.8)
    assert [r["step"] for r in found["loss_at_equal_steps"]] == [1, 2, 3]
    assert found["max_abs_loss_diff"] == pytest.approx(0.25)
    assert gc.compare(script, None) == {}
    with pytest.raises(ValueError, match="step:N/M"):
        gc.parse_script_log("nothing here")


def test_results_file_is_named_by_device_and_date(tmp_path) -> None:
    day = datetime.date(2026, 5, 1)
    assert gc.results_path(tmp_path, "NVIDIA H200", day) == tmp_path / "nvidia-h200-2026-05-01.json"
    assert gc.results_path(tmp_path, "NVIDIA H100 80GB HBM3", day).name == "nvidia-h100-80gb-hbm3-2026-05-01.json"


def test_main_writes_one_json_with_every_step_accounted_for(tmp_path) -> None:
    out = tmp_path / "results"
    code = gc.main(["--skip", SKIP_ALL, "--work", str(tmp_path / "work"), "--out", str(out),
                    "--train-tokens", str(2 * gc.BATCH_TOKENS), "--val-tokens", str(gc.BATCH_TOKENS), "--steps", "3"])
    assert code == 0
    [path] = out.glob("*.json")
    result = json.loads(path.read_text(encoding="utf-8"))
    assert path.name == gc.results_path(out, result["device"], datetime.date.fromisoformat(result["date"])).name
    assert {k: v["status"] for k, v in result["runs"].items()} == dict.fromkeys(SKIP_ALL.split(","), "skipped")
    assert result["steps"] == 3 and result["data"]["train_tokens"] == 2 * gc.BATCH_TOKENS
    assert result["comparison"] == {}


def test_a_failed_step_is_recorded_and_the_exit_code_says_so(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(gc, "run_golf", lambda args, work, data: {"status": "failed (exit 1)", "seconds": 1.0})
    code = gc.main(["--skip", "script,bench,parity", "--work", str(tmp_path / "w"), "--out", str(tmp_path),
                    "--train-tokens", str(2 * gc.BATCH_TOKENS), "--val-tokens", str(gc.BATCH_TOKENS)])
    [path] = tmp_path.glob("*.json")
    assert code == 1 and json.loads(path.read_text())["runs"]["golf"]["status"].startswith("failed")


def test_golf_runs_the_baseline_experiment_for_the_scripts_steps(tmp_path) -> None:
    args = argparse.Namespace(steps=7, warmup=2)
    overrides = gc.golf_overrides(args, tmp_path, {"data_path": "D", "tokenizer": "T"})
    assert {"experiment=baseline", "train.iterations=7", "train.priming_steps=2", "data.path=D",
            "data.tokenizer=T", "train.max_wallclock_s=0"} <= set(overrides)
    golf_keys = [o for o in overrides if not o.startswith("hydra.")]
    cfg = to_golf_config(compose(golf_keys))  # every key exists and every value is allowed
    assert (cfg.train.iterations, cfg.hardware.name, cfg.model.name) == (7, "1xh100", "baseline9l")
