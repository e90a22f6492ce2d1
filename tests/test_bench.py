"""golf.bench: the FLOPs formula against a hand count and torch's FLOP counter, bench.json's keys and arithmetic, the
streaming evaluation it relies on, and the command line (bad bench.* values end with exit code 2)."""

from __future__ import annotations

import contextlib
import json
import math
import os

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from testkit import golf_command, one_torch_thread
from golf.benchmark.config import BenchConfig, bench_problems
from golf.benchmark.flops import model_flops, peak_matmul_flops
from golf.benchmark.memory import MemoryWatch
from golf.benchmark.report import REQUIRED_KEYS, table
from golf.data.shards import TokenArray
from golf.data.tokenizer import ByteTables
from golf.evaluate.bpb import ByteCounter
from golf.evaluate.config import EvalConfig
from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.windows import evaluate_windows, plan_windows, score_windows
from golf.evaluate.windows import host_to_device
from golf.hardware import HardwareConfig, cpu_threads
from golf.model.gpt import GPT, ModelConfig

CPU = torch.device("cpu")
VOCAB = 64
TABLES = ByteTables(base_bytes=np.ones(VOCAB, dtype=np.int16), has_leading_space=np.zeros(VOCAB, dtype=bool),
                    is_boundary=np.zeros(VOCAB, dtype=bool))


one_thread = pytest.fixture(autouse=True)(one_torch_thread)  # tiny models: threads only add synchronization


# --- FLOPs ---------------------------------------------------------------------------------------------------------

def test_flops_formula_matches_a_hand_count():
    cfg = ModelConfig(num_layers=3, model_dim=48, num_heads=4, num_kv_heads=2, mlp_mult=3)
    d, layers, seq = 48, 3, 40
    kv, hidden = 2 * (48 // 4), 3 * 48
    per_block = d * d + d * kv + d * kv + d * d + d * hidden + hidden * d  # c_q, c_k, c_v, proj, fc, mlp.proj
    n = layers * per_block + VOCAB * d  # the tied embedding counts once, as the head
    got = model_flops(GPT(cfg, VOCAB), seq)
    assert got.matmul_params == n
    assert got.attention_flops_per_token == 12 * layers * seq * d
    assert got.per_token == 6 * n + 12 * layers * seq * d
    assert got.forward_per_token == 2 * n + 4 * layers * seq * d


@pytest.mark.parametrize("options", [
    {},
    {"tie_embeddings": False, "mlp_act": "swiglu"},
    {"loop_start": 1, "loop_end": 3, "loop_repeats": 1, "bigram_buckets": 16, "bigram_dim": 8},
    {"shared_blocks": 2},
], ids=["baseline", "untied_swiglu", "looped_bigram", "shared"])
def test_matmul_part_equals_torchs_flop_count_of_a_training_step(options):
    """torch's FLOP counter sees every matmul of forward + backward (not the fused attention): exactly 6 N a token."""
    torch.manual_seed(0)
    model = GPT(ModelConfig(num_layers=4, model_dim=32, num_heads=2, num_kv_heads=1, **options), VOCAB)
    x = torch.randint(0, VOCAB, (2, 16))
    counter = FlopCounterMode(display=False)
    with counter:
        model(x, x).backward()
    assert counter.get_total_flops() == 6 * model_flops(model, 16).matmul_params * x.numel()


def test_peak_matmul_is_measured_and_plausible():
    flops, n = peak_matmul_flops(CPU, torch.float32, n=128, seconds=0.05)
    assert n == 128
    assert math.isfinite(flops) and 1e6 < flops < 1e15


# --- config checks ---------------------------------------------------------------------------------------------------

def test_bench_defaults_are_valid_and_bad_values_are_named():
    assert bench_problems(BenchConfig()) == []
    keys = [key for key, _, _ in bench_problems(BenchConfig(train_steps=0, matmul_seconds=float("nan"), rounds=0))]
    assert keys == ["bench.train_steps", "bench.rounds", "bench.matmul_seconds"]
    assert [k for k, _, _ in bench_problems(BenchConfig(train_steps=2, rounds=3))] == ["bench.rounds"]


# --- the streaming evaluation the memory figure relies on ------------------------------------------------------------

def _model() -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1), VOCAB)


@pytest.mark.parametrize("stride", [None, 8])
def test_streaming_scores_keep_no_arrays_and_sum_the_same(stride):
    val = TokenArray([np.random.default_rng(3).integers(0, VOCAB, 700).astype(np.uint16)])
    windows = plan_windows(len(val), 32, stride)
    counter = ByteCounter(TABLES, CPU)
    kept = score_windows(_model(), val, windows, counter, 5, CPU)
    streamed = score_windows(_model(), val, windows, counter, 5, CPU, keep=False)
    assert streamed.nll is None and streamed.bytes is None
    assert streamed.count == len(kept.nll) == len(val) - 1 if stride else streamed.count == len(kept.nll)
    assert streamed.nll_sum == pytest.approx(kept.nll.sum(), rel=1e-12)
    assert streamed.byte_sum == kept.bytes.sum()
    assert streamed.end_target == kept.end_target


def test_evaluation_memory_does_not_grow_with_the_validation_set():
    """50 times the windows: the peak RSS above the start grows by less than half the 16 bytes a target that
    per-target arrays would cost (float64 NLL and bytes); it includes the 2 bytes a token of the shard's pages."""
    model = _model()
    rng = np.random.default_rng(4)
    small = TokenArray([rng.integers(0, VOCAB, 8_000).astype(np.uint16)])
    large = TokenArray([rng.integers(0, VOCAB, 400_000).astype(np.uint16)])
    evaluate_windows(model, small, TABLES, plan_windows(len(small), 64), 8, CPU)  # warm-up
    growth = []
    for val in (small, large):
        with MemoryWatch(CPU) as watch:
            evaluate_windows(model, val, TABLES, plan_windows(len(val), 64), 8, CPU)
        growth.append(watch.peak.rss_growth)
    assert growth[1] - growth[0] < 16 * (len(large) - len(small)) / 2


# --- small helpers of the fast paths ---------------------------------------------------------------------------------

def test_host_to_device_on_cpu_is_the_tensor_itself():
    t = torch.arange(5)
    assert host_to_device(t, CPU) is t


def test_cpu_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu_threads(HardwareConfig(threads=3)) == 3
    cores = len(os.sched_getaffinity(0))
    assert cpu_threads(HardwareConfig(nproc_per_node=1)) == cores
    assert cpu_threads(HardwareConfig(nproc_per_node=4 * cores)) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_threads(HardwareConfig()) == torch.get_num_threads()


def test_ttt_timing_reports_the_engines_tokens_and_a_minimum():
    from golf.benchmark.evaluation import time_ttt

    val = TokenArray([np.random.default_rng(5).integers(2, VOCAB, 600).astype(np.uint16)])
    cfg = TTTConfig(name="t", protocol="score_first", lr=0.01, epochs=2, chunk_tokens=256, batch_seqs=2)
    timing = time_ttt(_model(), val, TABLES, cfg, EvalConfig(seq_len=32, stride=0, batch_seqs=4), CPU,
                      contextlib.nullcontext)
    assert timing.tokens == (len(val) - 1) // 32 * 32  # the standard plan's targets, each scored once
    assert timing.chunks == math.ceil(timing.tokens / 256)
    assert timing.adapted_tokens == 2 * 512  # every chunk but the last, 2 epochs
    assert timing.minimum_s > 0 and timing.time_ratio == timing.time_s / timing.minimum_s


# --- the whole bench, in process and on the command line -------------------------------------------------------------

SMALL = ["model=tiny", "model.num_layers=2", "model.model_dim=64", "data=text_dir", "data.vocab_size=384",
         "train.batch_tokens=1024", "train.seq_len=64", "eval.batch_seqs=8", "logger=none", "ttt.chunk_tokens=1024",
         "bench.train_steps=4", "bench.warmup_steps=1", "bench.rounds=2", "bench.eval_tokens=2048",
         "bench.ttt_tokens=2200", "bench.matmul_size=128", "bench.matmul_seconds=0.05", "bench.sliding_stride=16"]


@pytest.fixture(scope="module")
def bench_result(text_corpus, tmp_path_factory):
    from golf.benchmark.run import run_bench
    from golf.cli import compose
    from golf.config import to_golf_config

    root = tmp_path_factory.mktemp("bench")
    cfg = to_golf_config(compose([*SMALL, f"data.path={text_corpus}", f"paths.root={root}"], config_name="bench"))
    lines: list[str] = []
    bench = run_bench(cfg, root, say=lines.append)
    return bench, root, lines


def test_bench_json_has_every_design_key_with_measured_numbers(bench_result):
    bench, root, _ = bench_result
    on_disk = json.loads((root / "bench.json").read_text())
    assert on_disk == json.loads(json.dumps(bench))
    for key in REQUIRED_KEYS:
        assert key in on_disk, key
        if key != "device":
            assert isinstance(on_disk[key], (int, float)) and math.isfinite(on_disk[key]) and on_disk[key] > 0, key
    assert on_disk["device"].startswith("cpu")


def test_bench_figures_are_consistent(bench_result):
    b, _, _ = bench_result
    assert b["mfu"] == pytest.approx(b["achieved_flops"] / b["peak_flops"], rel=1e-12)
    assert b["achieved_flops"] == pytest.approx(b["model_flops_per_token"] * b["train_tokens_per_s"], rel=1e-12)
    assert b["overhead_ratio"] == pytest.approx(b["bare_loop_tokens_per_s"] / b["train_tokens_per_s"], rel=1e-9)
    assert b["ttt_time_ratio"] == pytest.approx(b["ttt_time_s"] / b["ttt_minimum_s"], rel=1e-12)
    assert b["step_time_s"] == pytest.approx(b["tokens_per_step"] / b["train_tokens_per_s"], rel=1e-9)
    assert b["round_steps"] == [2, 2] and sum(b["round_steps"]) == b["timed_steps"]
    assert b["step_time_s"] == pytest.approx(min(t / 2 for t in b["golf_round_s"]), rel=1e-12)
    assert b["overhead_ratio_total"] == pytest.approx(sum(b["golf_round_s"]) / sum(b["bare_round_s"]), rel=1e-12)
    small, large = b["eval_memory_tokens"]
    assert small == 2048 and large > small
    assert b["eval_tokens"] == (2048 - 1) // 64 * 64
    assert b["ttt_chunks"] == 3 and b["ttt_adapted_tokens"] > 0
    assert all(rss > growth > 0 for rss, growth in zip(b["eval_peak_rss_bytes"], b["eval_rss_growth_bytes"]))
    assert set(b["targets"]) >= {"overhead_ratio", "ttt_time_ratio", "eval_memory_bytes_per_extra_token"}
    assert b["targets"]["train_tokens_per_s_per_gpu"]["met"] is None  # a CPU cannot judge the H100 target


def test_bench_prints_a_table_with_every_figure(bench_result):
    b, root, lines = bench_result
    printed = "\n".join(lines)
    assert printed.endswith(table(b, root))
    for label in ("train tokens/s (golf loop)", "bare loop", "overhead", "MFU", "peak FLOP/s", "eval tokens/s",
                  "sliding", "TTT tokens/s", "TTT time / minimum", "peak RSS", "eval memory"):
        assert label in printed, label
    assert (root / "train.log").read_text().count("step ") >= 2  # golf's loop logged as in a run


@pytest.mark.parametrize("override,key", [("bench.train_steps=0", "bench.train_steps"),
                                          ("bench.eval_tokens=100", "bench.eval_tokens"),
                                          ("bench.ttt_tokens=1000", "bench.ttt_tokens"),
                                          ("+bench.speed=3", "bench.speed")])
def test_bad_bench_overrides_exit_2_before_any_work(override, key, tmp_path):
    result = golf_command("golf.bench", override, f"paths.root={tmp_path}", timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert key in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_the_command_writes_bench_json_into_its_run_directory(text_corpus, tmp_path):
    run_dir = tmp_path / "bench_run"
    result = golf_command("golf.bench", *SMALL, f"data.path={text_corpus}", f"paths.root={tmp_path}",
                          f"hydra.run.dir={run_dir}", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    bench = json.loads((run_dir / "bench.json").read_text())
    assert all(key in bench for key in REQUIRED_KEYS)
    assert (run_dir / "config.yaml").is_file() and "MFU" in result.stdout


@pytest.mark.slow  # about 20 s alone, a minute on a busy 2-core machine
def test_compiled_ttt_does_not_recompile_per_chunk(monkeypatch):
    """torch.compile under the engine (backend eager: dynamo's graph capture and guards, without code generation):
    the graphs compiled for 3 chunks are all that 6 chunks need."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    from golf.evaluate.ttt.engine import run_ttt

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: real_compile(model, backend="eager"))
    cfg = TTTConfig(name="t", protocol="score_first", lr=0.01, epochs=1, chunk_tokens=96, batch_seqs=2)
    eval_cfg = EvalConfig(seq_len=32, stride=16, batch_seqs=4)
    graphs = []
    for n_chunks in (3, 6):
        torch._dynamo.reset()
        counters.clear()
        val = TokenArray([np.random.default_rng(6).integers(2, VOCAB, 96 * n_chunks + 1).astype(np.uint16)])
        windows = plan_windows(len(val), 32, 16)
        out = run_ttt(_model(), val, TABLES, windows, cfg, eval_cfg, CPU, log=lambda _l: None, compile_model=True)
        assert len(out.chunks) == n_chunks
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[0] > 0 and graphs[1] == graphs[0]


def test_golf_loop_runs_exactly_the_steps_asked_each_time(tmp_path):
    """Trainer.fit goes on from the steps it has done; every turn of golf's loop must still run the steps asked."""
    from golf.benchmark.timing import bare_steps, golf_steps
    from golf.data.loader import DistributedTokenLoader
    from golf.data.shards import write_shard
    from golf.optim.build import OptimConfig, build_optimizers
    from golf.trainer import TrainConfig, Trainer

    write_shard(tmp_path / "train.bin", np.random.default_rng(7).integers(0, VOCAB, 5000))
    model = _model()
    loader = DistributedTokenLoader([tmp_path / "train.bin"], 0, 1)
    trainer = Trainer(model, build_optimizers(model, OptimConfig()), loader,
                      TrainConfig(batch_tokens=64, seq_len=32, log_every=100), OptimConfig(), CPU,
                      log=lambda _l: None, show_progress=False)
    position = loader.state_dict()["position"]
    golf_steps(trainer, 2)
    golf_steps(trainer, 3)
    assert loader.state_dict()["position"] - position == 5 * 65  # 64 tokens and the extra target a step
    bare_steps(trainer, 2)
    assert loader.state_dict()["position"] - position == 7 * 65
