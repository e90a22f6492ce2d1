"""Every model and optim option at once, with QAT, EMA, int6 + zstd and score-first TTT: `model=record11l` shrunk to a
CPU size trains, exports, scores and audits end to end (slow)."""

from __future__ import annotations

import json

import pytest

from testkit import golf_command

pytestmark = pytest.mark.slow

SHRUNK_RECORD11L = [
    "model=record11l", "model.num_layers=4", "model.model_dim=64", "model.num_heads=2", "model.num_kv_heads=1",
    "model.value_embed_layers=[2,3]", "model.value_embed_dim=32", "model.xsa_last=2", "model.bigram_buckets=256",
    "model.bigram_dim=32",
]
EVERYTHING_ELSE = [
    "model.skip_gates=true", "model.loop_start=1", "model.loop_end=3", "model.loop_repeats=1", "model.loop_from=0.5",
    "model.shared_blocks=2", "model.lora_rank=2", "optim.reptile.enabled=true", "optim.reptile.every=2",
    "optim.reptile.inner_steps=1", "quant.qat.enabled=true", "optim.ema.decay=0.5",
]


def test_record11l_with_every_option_runs_end_to_end(text_corpus, tmp_path):
    result = golf_command(
        "golf.train", *SHRUNK_RECORD11L, *EVERYTHING_ELSE, "ttt=score_first", "quant=int6_zstd",
        "data=text_dir", f"data.path={text_corpus}", "data.vocab_size=384", f"paths.root={tmp_path}",
        "train.iterations=6", "train.batch_tokens=1024", "train.seq_len=128", "train.warmdown_steps=4",
        "train.log_every=2", "eval.max_tokens=4097", "ttt.chunk_tokens=2048", "ttt.epochs=1",
        "eval.compressor_baselines=false", "logger=none", f"hydra.run.dir={tmp_path}/run",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["steps"] == 6
    assert metrics["ttt_val_bpb"] == metrics["val_bpb"]  # the headline is the TTT score
    assert metrics["reptile_meta_steps"] == 3  # after steps 2, 4 and 6
    # 2 blocks x 4 virtual layers: one gamma per matrix of each virtual layer, logged with the training loss
    assert len(metrics["lora_gammas"]) > 0 and all(k.startswith("layer_lora.") for k in metrics["lora_gammas"])
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "train_loss" in r]
    assert all(f"lora_gamma/{k}" in r for r in logged for k in metrics["lora_gammas"])
    log = (tmp_path / "run" / "train.log").read_text()
    assert "layer loop off until 1 repeat(s) at 50%" in log and "layer loop: 1 repeat(s) on from step 3" in log
    assert "QAT on from step" in log
