"""The records' recipes (conf/experiment/record_*.yaml): each composes and validates, builds the record's model with
the parameter count of its log, and runs shrunk (tiny dims, a few steps) end to end on CPU with its own export,
evaluation and TTT."""

from __future__ import annotations

import math

import pytest

from golf.cli import compose
from golf.config import GolfConfig, to_golf_config

from testkit import one_torch_thread

one_thread = pytest.fixture(autouse=True)(one_torch_thread)

# (experiment, vocabulary of the record's data, model_params of the record's log)
RECORDS = [
    ("record_0323", 1024, 26_928_220),  # 2026-03-23, train_seed1337.log
    ("record_0409", 8192, 35_944_536),  # 2026-04-09, train_seed42.log
    ("record_0427", 8192, 35_945_671),  # 2026-04-27, train_seed42.log
]

# Each record's layer-index keys shrunk to a 4-layer model: the same features, at indices that exist.
TINY_MODEL = {
    "record_0323": ["model.value_embed_layers=[2,3]", "model.xsa_last=2"],
    "record_0409": ["model.loop_start=1", "model.loop_end=3", "model.parallel_from=2", "model.xsa_last=4",
                    "model.loop_priming_steps=1"],
    "record_0427": ["model.loop_start=1", "model.loop_end=3", "model.parallel_from=3", "model.xsa_last=4",
                    "model.loop_priming_steps=1"],
}


# Each record's TTT shrunk to the tiny run: T3's phased per-document LoRA TTT on a few short documents
TINY_TTT = {
    "record_0323": ["ttt.chunk_tokens=2048", "ttt.batch_seqs=4"],
    "record_0409": ["ttt.chunk_tokens=2048", "ttt.batch_seqs=4"],
    "record_0427": ["ttt.chunk_tokens=32", "ttt.doc_batch=2", "ttt.lora_rank=4", "ttt.phases=[2,4]",
                    "ttt.global_chunk_tokens=256", "ttt.global_batch_seqs=1"],
}


def compose_experiment(name: str, *overrides: str) -> GolfConfig:
    return to_golf_config(compose([f"experiment={name}", "data.path=/some/where/datasets/x", *overrides]))


@pytest.mark.parametrize("name, vocab, _", RECORDS)
def test_experiment_composes_with_the_records_run(name: str, vocab: int, _: int) -> None:
    cfg = compose_experiment(name)
    assert cfg.name == name
    assert cfg.model.name == name and cfg.optim.name == name  # the record's presets, not the defaults
    assert cfg.data.source == "fineweb" and cfg.data.vocab_size == vocab
    assert cfg.hardware.name == "8xh100" and cfg.hardware.nproc_per_node == 8
    # the records' step and clock: 786,432 tokens of 2048-token sequences, one forward per GPU, 600 s
    assert cfg.train.batch_tokens == 786_432 and cfg.train.seq_len == cfg.eval.seq_len == 2048
    assert cfg.train.batch_tokens // 8 == cfg.hardware.micro_batch_tokens
    assert cfg.train.max_wallclock_s == 600 and cfg.train.priming_steps == 20
    assert cfg.eval.stride == 64 and cfg.ttt.protocol == "score_first"


def test_the_records_schedules_and_exports_differ_where_the_records_do() -> None:
    t1, t2, t3 = (compose_experiment(name) for name, _, _ in RECORDS)
    assert t1.train.warmdown_frac == 0 and t1.train.warmdown_steps == 3500  # T1 counts iterations
    assert t2.train.warmdown_frac == 0.72 and t3.train.warmdown_frac == 0.85
    assert t1.quant.compressor == "lzma" and t1.quant.qat.enabled
    assert t2.quant.compressor == "brotli" and t3.quant.compressor == "pergroup"
    assert t3.data.transform == "caseops" and t3.quant.bits.embed == 7
    assert (t1.ttt.lr, t2.ttt.lr) == (0.002, 0.005) and t1.ttt.method == t2.ttt.method == "full"
    # T3: phased TTT with per-document LoRA, its run command's and script's values
    assert t3.ttt.method == "phased_doc_lora" and t3.ttt.phases == [833, 1666, 2500]
    assert (t3.ttt.lora_rank, t3.ttt.lora_alpha, t3.ttt.lora_warm_start_a, t3.ttt.lr) == (80, 144, True, 1e-4)
    assert (t3.ttt.momentum, t3.ttt.lora_beta2, t3.ttt.weight_decay) == (0.0, 0.99, 0.5)
    assert (t3.ttt.chunk_tokens, t3.ttt.doc_batch, t3.ttt.epochs) == (48, 64, 1) and t3.eval.seq_len == 2048
    assert (t3.ttt.doc_order, t3.ttt.doc_last_window) == ("length", "end")  # the record's own, not causal
    assert (t3.ttt.global_lr, t3.ttt.global_momentum, t3.ttt.global_epochs, t3.ttt.global_chunk_tokens) == \
        (0.001, 0.9, 1, 32768)


@pytest.mark.parametrize("name, vocab, logged", RECORDS)
def test_experiment_builds_the_records_parameter_count_on_meta(name: str, vocab: int, logged: int) -> None:
    import torch

    from golf.model.gpt import GPT, count_parameters, expected_parameter_count

    cfg = compose_experiment(name)
    with torch.device("meta"):
        model = GPT(cfg.model, cfg.data.vocab_size)
    assert count_parameters(model) == expected_parameter_count(cfg.model, vocab) == logged


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name, _, _ in RECORDS])
def test_experiment_runs_shrunk_end_to_end_on_cpu(name: str, text_corpus, tmp_path) -> None:
    from golf.job import run_job

    cfg = to_golf_config(compose([
        f"experiment={name}", "data=text_dir", f"data.path={text_corpus}", "data.vocab_size=384",
        "hardware=cpu", "hardware.micro_batch_tokens=0", "logger=none", f"paths.root={tmp_path}",
        "model.num_layers=4", "model.model_dim=64", "model.num_heads=2", "model.num_kv_heads=1",
        "model.value_embed_dim=16", "model.bigram_buckets=64", "model.bigram_dim=16", *TINY_MODEL[name],
        "train.iterations=3", "train.batch_tokens=2048", "train.seq_len=128", "train.max_wallclock_s=0",
        "train.priming_steps=1", "train.val_every=0", "train.reuse=false",
        "eval.max_tokens=4097", "eval.batch_seqs=8", *TINY_TTT[name],
        "quant.passthrough_numel=1024",  # quantize (and for T1 fake-quantize) the tiny matrices too
    ]))
    metrics = run_job(cfg, tmp_path / "run", overrides=[])
    assert metrics["status"] == "ok", metrics.get("error")
    # each export runs as the experiment sets it: the GPTQ records calibrate on training batches inside the job
    if cfg.quant.encoder == "gptq":
        assert metrics["gptq_calibration"]["source"] == "train" and metrics["gptq_calibration"]["hessians"] > 0
    assert metrics["steps"] == 3
    # the headline is the score-first TTT over the sliding windows, on the exported artifact
    assert "sliding_val_bpb" in metrics
    if cfg.ttt.method == "phased_doc_lora":  # one record per batch of documents, every target scored
        assert metrics["ttt_chunks"] >= 2 and metrics["eval_tokens"] == 4096
    else:
        assert metrics["ttt_chunks"] == math.ceil(metrics["eval_tokens"] / cfg.ttt.chunk_tokens) >= 2
    assert metrics["val_bpb"] == metrics["ttt_val_bpb"] and math.isfinite(metrics["val_bpb"])
