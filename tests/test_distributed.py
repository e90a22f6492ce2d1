"""Distributed runs (README.md "Distributed"): config checks and the torchrun command (fast), and end to end
with 2 gloo processes on CPU against 1 process (slow: each 2-process job pays torch's start-up twice)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from golf import REPO_ROOT
from golf.cli import compose, describe
from golf.config import to_golf_config
from golf.dist import torchrun_command
from golf.errors import ConfigError
from golf.hardware import HardwareConfig, grad_accum_per_rank

from testkit import golf_command

TINY = ["model=tiny", "data=text_dir", "data.vocab_size=384", "train.batch_tokens=4096", "train.seq_len=128",
        "eval.batch_seqs=16", "eval.max_tokens=3000", "logger=none", "eval.compressor_baselines=false",
        "train.reuse=false"]


# --- config and launch command (fast) ---------------------------------------------------------------------------

def test_cpu2_composes_and_two_ranks_share_a_fixed_global_batch():
    cfg = to_golf_config(compose(["hardware=cpu2"]))
    assert (cfg.hardware.nproc_per_node, cfg.hardware.backend, cfg.hardware.dtype) == (2, "gloo", "float32")
    assert cfg.hardware.world_size == 2


@pytest.mark.parametrize("overrides,key", [
    (["hardware=cpu2", "train.batch_tokens=4096", "train.seq_len=128", "train.grad_accum_steps=32"], "train.batch_tokens"),
    (["hardware=cpu2", "train.batch_tokens=384", "train.seq_len=128"], "train.batch_tokens"),
    (["hardware.backend=nccl"], "hardware.backend"),
    (["hardware.nproc_per_node=0"], "hardware.nproc_per_node"),
    (["hardware=8xh100", "hardware.device=cpu", "hardware.backend=gloo", "hardware.micro_batch_tokens=64"],
     "hardware.micro_batch_tokens"),
])
def test_world_sizes_that_do_not_divide_the_batch_are_config_errors(overrides, key):
    with pytest.raises(ConfigError) as info:
        to_golf_config(compose(overrides))
    assert key in describe(info.value)


def test_per_device_batch_sets_the_accumulation():
    hw = HardwareConfig(nproc_per_node=8, micro_batch_tokens=65536)
    assert grad_accum_per_rank(524288, 1024, 1, hw) == 1
    assert grad_accum_per_rank(524288, 1024, 1, HardwareConfig(nproc_per_node=1, micro_batch_tokens=65536)) == 8
    assert grad_accum_per_rank(8192, 256, 1, HardwareConfig(micro_batch_tokens=65536)) == 1
    assert grad_accum_per_rank(8192, 256, 4, HardwareConfig()) == 4  # 0: train.grad_accum_steps decides


def test_torchrun_command_single_node_and_multinode(monkeypatch):
    single = torchrun_command(HardwareConfig(nproc_per_node=2), "golf.train")
    assert single[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=2" in single
    assert "--standalone" in single and single[-2:] == ["-m", "golf.train"]
    multi = HardwareConfig(nproc_per_node=8, nnodes=2, rdzv_endpoint="head:29400", rdzv_id="job7", device="cuda")
    cmd = torchrun_command(multi, "golf.train")
    assert {"--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=head:29400", "--rdzv-id=job7"} <= set(cmd)
    monkeypatch.delenv("GOLF_RDZV_ENDPOINT", raising=False)
    with pytest.raises(ConfigError, match="hardware.rdzv_endpoint"):
        torchrun_command(HardwareConfig(nproc_per_node=8, nnodes=2, rdzv_id="x"), "golf.train")
    monkeypatch.setenv("GOLF_RDZV_ENDPOINT", "head:1")
    monkeypatch.setenv("GOLF_RDZV_ID", "j")
    assert "--rdzv-endpoint=head:1" in torchrun_command(HardwareConfig(nnodes=2), "golf.train")


def test_hand_typed_torchrun_refuses_multirun(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "2"}
    env.pop("GOLF_CONFIG", None)
    out = subprocess.run([sys.executable, "-m", "golf.train", "-m", "seed=1,2"], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--multirun" in out.stderr and "Traceback" not in out.stderr


# --- end to end, 2 gloo processes vs 1 (slow) -------------------------------------------------------------------

def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.fixture(scope="module")
def trained(text_corpus, tmp_path_factory):
    """One 8-step training with 1 process x 2 accumulation steps and one with 2 processes x 1: the same data, the
    same global batch. Muon's Newton-Schulz in fp32 so that the comparison measures golf, not bf16 rounding."""
    root = tmp_path_factory.mktemp("dist")
    common = [*TINY, f"data.path={text_corpus}", f"paths.root={root}", "train.iterations=8",
              "optim.muon_ns_dtype=float32", "train.val_every=4"]
    one = golf_command("golf.train", *common, "hardware=cpu", "train.grad_accum_steps=2", f"hydra.run.dir={root}/one")
    assert one.returncode == 0, one.stderr[-3000:]
    two = golf_command("golf.train", *common, "hardware=cpu2", f"hydra.run.dir={root}/two")
    assert two.returncode == 0, two.stderr[-3000:]
    return root, two


@pytest.mark.slow
def test_hand_typed_torchrun_shares_one_run_directory(trained, text_corpus):
    """`torchrun -m golf.train k=v`: every rank composes, rank 0 picks the run directory; the same numbers as the
    launcher's 2-process run (same world size: bit for bit)."""
    root, _ = trained
    typed_root = root / "typed"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    env.pop("GOLF_CONFIG", None)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          "-m", "golf.train", *TINY, f"data.path={text_corpus}", f"paths.root={typed_root}",
                          f"data.shards_dir={root}/data/text_dir_sp384",  # the same prepared data as the others
                          "train.iterations=8", "optim.muon_ns_dtype=float32", "train.val_every=4", "hardware=cpu2"],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = list((typed_root / "runs").iterdir())
    assert len(runs) == 1, runs
    assert _metrics(runs[0])["val_bpb"] == _metrics(root / "two")["val_bpb"]


@pytest.mark.slow
def test_two_ranks_train_like_one_rank_with_twice_the_accumulation(trained):
    """Tolerance: the ranks sum their micro-batch gradients in another order than one process does (float32), and
    8 steps of Muon carry that rounding forward. Measured: val_bpb 1.3e-9 and train loss 3e-8 relative with
    Newton-Schulz in fp32 (2.6e-7 / 4.5e-7 with the default bf16 Newton-Schulz); 1e-6 is asserted."""
    root, two = trained
    one, two_m = _metrics(root / "one"), _metrics(root / "two")
    assert one["status"] == two_m["status"] == "ok"
    assert one["steps"] == two_m["steps"] == 8 and one["train_tokens"] == two_m["train_tokens"] == 8 * 4096
    assert two_m["world_size"] == 2
    for key in ("last_train_loss", "pre_quant_val_bpb", "val_bpb"):
        assert two_m[key] == pytest.approx(one[key], rel=1e-6), key
    # one run directory, one metrics.json, written by rank 0 only
    assert sorted(p.name for p in (root / "two").iterdir() if p.name != "wandb") == sorted(
        [".hydra", "artifact.golf", "config.yaml", "git.txt", "metrics.json", "metrics.jsonl", "overrides.yaml",
         "train.log"])
    assert not (root / "runs").exists()
    log = (root / "two" / "train.log").read_text()
    assert log.count("pre-quant val_loss") == 1 and "2 process(es)" in log
    assert "golf scorecard" in two.stdout


@pytest.mark.slow
def test_accumulating_ranks_reduce_once_per_step_and_train_like_one_rank(trained, text_corpus):
    """2 ranks x 2 micro-batches (DDP skips the all-reduce on the first, averages on the second) against the same
    global batch in 1 process x 4. A reduction on the wrong micro-batch leaves the ranks apart and fails this."""
    root, _ = trained
    common = [*TINY, f"data.path={text_corpus}", f"paths.root={root}", "train.iterations=4",
              "optim.muon_ns_dtype=float32"]
    one = golf_command("golf.train", *common, "hardware=cpu", "train.grad_accum_steps=4", f"hydra.run.dir={root}/one4")
    assert one.returncode == 0, one.stderr[-3000:]
    two = golf_command("golf.train", *common, "hardware=cpu2", "train.grad_accum_steps=2",
                       f"hydra.run.dir={root}/two2")
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 rank(s) x 2 micro-batch(es)" in (root / "two2" / "train.log").read_text()
    for key in ("last_train_loss", "pre_quant_val_bpb", "val_bpb"):
        assert _metrics(root / "two2")[key] == pytest.approx(_metrics(root / "one4")[key], rel=1e-6), key


@pytest.mark.slow
def test_evaluation_of_one_artifact_is_the_same_with_one_and_two_processes(trained):
    """Sliding windows split over ranks, float64 sums all-reduced, per-token arrays gathered in order: 1e-9."""
    root, _ = trained
    runs = {}
    for hw in ("cpu", "cpu2"):
        out = golf_command("golf.eval", f"artifact={root / 'one'}", *TINY[:3], *[a for a in TINY if a.startswith("eval.")],
                           f"data.path={_data_path(root)}", f"paths.root={root}", "logger=none", f"hardware={hw}",
                           "eval=sliding", "eval.stride=64", "eval.save_token_nll=true", f"hydra.run.dir={root}/eval_{hw}")
        assert out.returncode == 0, out.stderr[-3000:]
        runs[hw] = root / f"eval_{hw}"
    one, two = _metrics(runs["cpu"]), _metrics(runs["cpu2"])
    for key in ("quant_val_bpb", "sliding_val_bpb", "val_bpb"):
        assert two[key] == pytest.approx(one[key], rel=1e-9, abs=0), key
    assert one["eval_tokens"] == two["eval_tokens"]
    nll1, nll2 = np.load(runs["cpu"] / "token_nll.npy"), np.load(runs["cpu2"] / "token_nll.npy")
    assert nll1.shape == nll2.shape == (one["eval_tokens"],)
    np.testing.assert_allclose(nll2, nll1, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(np.load(runs["cpu"] / "token_bytes.npy"), np.load(runs["cpu2"] / "token_bytes.npy"))


@pytest.mark.slow
def test_score_first_ttt_with_two_processes_matches_one(trained):
    """Ranks split each chunk's windows and adaptation batches and average gradients: the adapted weights differ
    only by float rounding of the gradient sum. Measured 1.6e-10 relative over 3 chunks; 1e-7 is asserted."""
    root, _ = trained
    results = {}
    for hw in ("cpu", "cpu2"):
        out = golf_command("golf.eval", f"artifact={root / 'one'}", *TINY[:3], *[a for a in TINY if a.startswith("eval.")],
                           f"data.path={_data_path(root)}", f"paths.root={root}", "logger=none", f"hardware={hw}",
                           "ttt=score_first", "ttt.chunk_tokens=1024", "ttt.epochs=1", "ttt.batch_seqs=4",
                           "eval=sliding", "eval.stride=64", f"hydra.run.dir={root}/ttt_{hw}")
        assert out.returncode == 0, out.stderr[-3000:]
        results[hw] = _metrics(root / f"ttt_{hw}")
    one, two = results["cpu"], results["cpu2"]
    assert one["ttt_chunks"] == two["ttt_chunks"] >= 2
    assert two["ttt_val_bpb"] == pytest.approx(one["ttt_val_bpb"], rel=1e-7)
    assert two["sliding_val_bpb"] == pytest.approx(one["sliding_val_bpb"], rel=1e-9)


def _data_path(root: Path) -> str:
    import yaml

    return yaml.safe_load((root / "one" / "config.yaml").read_text())["data"]["path"]


@pytest.mark.slow
def test_a_rank_that_raises_fails_the_job_with_its_error(tmp_path, text_corpus):
    bad = tmp_path / "bad.golf"
    bad.write_bytes(b"not an artifact")
    start = time.monotonic()
    out = golf_command("golf.eval", f"artifact={bad}", *TINY[:3], f"data.path={text_corpus}", f"paths.root={tmp_path}",
                       "logger=none", "hardware=cpu2", f"hydra.run.dir={tmp_path}/run", timeout=120)
    assert out.returncode == 1, out.stderr[-3000:]
    metrics = _metrics(tmp_path / "run")
    assert metrics["status"] == "failed" and metrics["error"]
    assert "failed on rank" in (tmp_path / "run" / "train.log").read_text()
    assert time.monotonic() - start < 60


def _rank_pids(run_dir: Path) -> dict[int, int]:
    """rank -> pid of the torchrun workers of the job in run_dir (read from /proc)."""
    pids = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = dict(item.split("=", 1) for item in (proc / "environ").read_text().split("\0") if "=" in item)
        except OSError:
            continue
        if env.get("GOLF_RUN_DIR") == str(run_dir) and "RANK" in env and "LOCAL_RANK" in env:
            pids[int(env["RANK"])] = int(proc.name)
    return pids


@pytest.mark.slow
def test_a_killed_rank_fails_the_job_in_seconds(tmp_path, text_corpus):
    run = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    job = subprocess.Popen([sys.executable, "-m", "golf.train", *TINY, f"data.path={text_corpus}",
                            f"paths.root={tmp_path}", "hardware=cpu2", "train.iterations=100000", "train.log_every=1",
                            "train.max_wallclock_s=120", f"hydra.run.dir={run}"],
                           cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            log = run / "train.log"
            if log.is_file() and "step 3/" in log.read_text():
                break
            assert job.poll() is None, job.stdout.read()[-3000:]
            time.sleep(0.2)
        pids = _rank_pids(run)
        assert set(pids) == {0, 1}, pids
        killed = time.monotonic()
        os.kill(pids[1], signal.SIGKILL)
        job.wait(timeout=60)
        took = time.monotonic() - killed
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 1
    metrics = _metrics(run)
    assert metrics["status"] == "failed" and metrics["error"]
    assert took < 20, took
