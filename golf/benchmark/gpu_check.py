"""The GPU check (scripts/gpu_check.sh): on one GPU, in one command, the challenge's baseline script and golf's
experiment=baseline side by side on synthetic FineWeb-format data, golf.bench, and bf16 parity of golf against the
script; one JSON under bench/results/.

Steps (each a subprocess, so that one failing is recorded and the rest still run):
1. synthetic data in the challenge's layout: <work>/data/datasets/fineweb10B_sp1024/fineweb_{train,val}_*.bin
   (golf.data.shards.write_shard; documents that start with BOS, every other token a fixed function of the one
   before it, so that the loss falls) and a SentencePiece tokenizer of the vocabulary's size at
   <work>/data/tokenizers/fineweb_1024_bpe.model (trained on generated words; the shards' ids need not be its
   encodings, only its size and byte tables matter to the scripts);
2. the script: `python train_gpt.py` with ITERATIONS=--steps (one process: 8 accumulation steps of 524,288 tokens);
3. golf: `python -m golf.train experiment=baseline` for the same steps and priming;
4. golf.bench on the GPU (model=baseline9l, hardware=1xh100);
5. the bf16 parity test (tests/parity/test_parity_gpu.py).
ms/step and tokens/s are each side's mean over its measured steps (after the warm-up/priming steps, compile
included in neither); the losses are compared at equal steps.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from golf import REPO_ROOT
from golf.data.shards import write_shard
from golf.data.tokenizer import BOS_ID, train_tokenizer

VOCAB = 1024
BATCH_TOKENS = 524_288  # the baseline's step
SEQ_LEN = 1024
SCRIPT_STEP = re.compile(r"^step:(\d+)/\d+ train_loss:([-\d.naninf]+) train_time:([\d.]+)ms step_avg:([\d.]+)ms")


class UsageError(Exception):
    """Bad arguments: one paragraph on stderr, exit code 2."""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/gpu_check.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", default=os.environ.get("GOLF_REFERENCE_DIR", ""),
                        help="a checkout of the challenge's repository (its train_gpt.py); default $GOLF_REFERENCE_DIR")
    parser.add_argument("--steps", type=int, default=50, help="measured training steps on each side (default 50)")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up/priming steps, not measured (default 10)")
    parser.add_argument("--train-tokens", type=int, default=8 * BATCH_TOKENS, help="synthetic training tokens")
    parser.add_argument("--val-tokens", type=int, default=4 * BATCH_TOKENS, help="synthetic validation tokens")
    parser.add_argument("--work", default="", help="scratch folder (default: outputs/gpu_check/<time>)")
    parser.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"), help="where the JSON goes")
    parser.add_argument("--skip", default="", help="comma-separated steps to skip: script,golf,bench,parity")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds each step may take (default 240)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        raise UsageError(f"--steps must be >= 1 and --warmup >= 0, got --steps {args.steps} --warmup {args.warmup}")
    if args.train_tokens < 2 * BATCH_TOKENS or args.val_tokens < BATCH_TOKENS:
        raise UsageError(f"--train-tokens must be >= {2 * BATCH_TOKENS} and --val-tokens >= {BATCH_TOKENS} "
                         "(one baseline step each); got "
                         f"--train-tokens {args.train_tokens} --val-tokens {args.val_tokens}")
    skip = {s for s in args.skip.split(",") if s}
    if skip - {"script", "golf", "bench", "parity"}:
        raise UsageError(f"--skip takes script, golf, bench, parity (comma-separated); got {args.skip!r}")
    args.skip = skip
    if not ({"script", "parity"} <= skip) and not (Path(args.reference) / "train_gpt.py").is_file():
        raise UsageError(f"--reference {args.reference!r} holds no train_gpt.py: give a checkout of the challenge's "
                         "repository (--reference DIR or GOLF_REFERENCE_DIR), or --skip script,parity")
    return args


# --- 1. synthetic data ----------------------------------------------------------------------------------------------

def synthetic_tokens(n: int, vocab: int, seed: int, doc_len: int = 512) -> np.ndarray:
    """n uint16 tokens: documents of doc_len tokens that start with BOS; between, pairs (x, f(x)) with x uniform
    over the ordinary ids and f(x) = 4 + (7x + 3) mod (vocab - 4): half the tokens can be predicted."""
    rng = np.random.default_rng(seed)
    x = rng.integers(4, vocab, size=(n + 1) // 2, dtype=np.int64)
    tokens = np.empty(2 * x.size, dtype=np.int64)
    tokens[0::2], tokens[1::2] = x, 4 + (7 * x + 3) % (vocab - 4)
    tokens = tokens[:n]
    tokens[::doc_len] = BOS_ID
    return tokens.astype(np.uint16)


def synthetic_words(n_words: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    vocab = ["".join(rng.choice(letters, size=rng.integers(2, 9))) for _ in range(3000)]
    words = rng.choice(vocab, size=n_words)
    return [" ".join(words[i:i + 200]) for i in range(0, n_words, 200)]


def write_synthetic_data(work: Path, train_tokens: int, val_tokens: int, vocab: int = VOCAB,
                         shard_tokens: int = 4 * BATCH_TOKENS) -> dict[str, Any]:
    """The challenge's layout under work/data; returns the paths and counts."""
    shards = work / "data" / "datasets" / f"fineweb10B_sp{vocab}"
    tokenizer = work / "data" / "tokenizers" / f"fineweb_{vocab}_bpe.model"
    shards.mkdir(parents=True, exist_ok=True)
    tokenizer.parent.mkdir(parents=True, exist_ok=True)
    train = synthetic_tokens(train_tokens, vocab, seed=1)
    for i, start in enumerate(range(0, train_tokens, shard_tokens)):
        write_shard(shards / f"fineweb_train_{i:06d}.bin", train[start:start + shard_tokens])
    write_shard(shards / "fineweb_val_000000.bin", synthetic_tokens(val_tokens, vocab, seed=2))
    train_tokenizer(synthetic_words(60_000, seed=3), vocab, tokenizer)
    return {"data_path": str(shards), "tokenizer": str(tokenizer), "train_tokens": train_tokens,
            "val_tokens": val_tokens, "vocab_size": vocab}


# --- reading the two sides' records -----------------------------------------------------------------------------

def parse_script_log(text: str) -> dict[str, Any]:
    """The script's log lines `step:N/M train_loss:L train_time:Tms step_avg:Ams` -> losses by step, ms/step."""
    losses, step_avg = {}, None
    for line in text.splitlines():
        found = SCRIPT_STEP.match(line.strip())
        if found:
            losses[int(found.group(1))] = float(found.group(2))
            step_avg = float(found.group(4))
    if not losses:
        raise ValueError("no `step:N/M train_loss:...` lines in the script's log")
    return {"losses": losses, "ms_per_step": step_avg, "tokens_per_s": BATCH_TOKENS / (step_avg / 1000.0)}


def parse_golf_metrics(lines: Sequence[str]) -> dict[str, Any]:
    """golf's metrics.jsonl -> losses by step, ms/step (training time over steps)."""
    losses, last = {}, None
    for line in lines:
        record = json.loads(line)
        if "train_loss" in record:
            losses[int(record["step"])] = float(record["train_loss"])
            last = record
    if last is None:
        raise ValueError("no train_loss records in golf's metrics.jsonl")
    ms = 1000.0 * last["train_time_s"] / last["step"]
    return {"losses": losses, "ms_per_step": ms, "tokens_per_s": BATCH_TOKENS / (ms / 1000.0)}


def compare(script: Optional[dict], golf: Optional[dict]) -> dict[str, Any]:
    """golf / script ratios and the losses at the steps both logged."""
    if not script or not golf:
        return {}
    steps = sorted(set(script["losses"]) & set(golf["losses"]))
    return {
        "ms_per_step_ratio_golf_over_script": golf["ms_per_step"] / script["ms_per_step"],
        "tokens_per_s_ratio_golf_over_script": golf["tokens_per_s"] / script["tokens_per_s"],
        "loss_at_equal_steps": [{"step": s, "script": script["losses"][s], "golf": golf["losses"][s]} for s in steps],
        "max_abs_loss_diff": max((abs(script["losses"][s] - golf["losses"][s]) for s in steps), default=None),
    }


def device_slug(name: str) -> str:
    """'NVIDIA H200' -> 'nvidia-h200' (the results file's name)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown-device"


def results_path(out: Path, device: str, date: datetime.date) -> Path:
    return out / f"{device_slug(device)}-{date.isoformat()}.json"


def assemble(device: str, args: argparse.Namespace, data: dict, steps: dict[str, dict]) -> dict[str, Any]:
    """The JSON: what ran, each step's outcome (ok/failed/skipped, seconds, what it measured), the comparison."""
    script = steps.get("script", {}).get("measured")
    golf = steps.get("golf", {}).get("measured")
    return {"device": device, "date": datetime.date.today().isoformat(), "steps": args.steps,
            "warmup_steps": args.warmup, "batch_tokens": BATCH_TOKENS, "seq_len": SEQ_LEN, "data": data,
            "runs": steps, "comparison": compare(script, golf)}


# --- running the steps ----------------------------------------------------------------------------------------------

def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float, log: Path) -> tuple[str, float]:
    began = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        log.write_text(done.stdout + "\n--- stderr ---\n" + done.stderr, encoding="utf-8")
        status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode}; see {log})"
    except subprocess.TimeoutExpired as err:
        log.write_text(str(err.stdout or "") + "\n--- stderr ---\n" + str(err.stderr or ""), encoding="utf-8")
        status = f"failed (over {timeout:.0f} s; see {log})"
    return status, time.perf_counter() - began


def run_script(args, work: Path, data: dict) -> dict[str, Any]:
    env = {**os.environ, "DATA_PATH": data["data_path"], "TOKENIZER_PATH": data["tokenizer"], "RUN_ID": "gpu_check",
           "ITERATIONS": str(args.steps), "WARMUP_STEPS": str(args.warmup), "MAX_WALLCLOCK_SECONDS": "0",
           "VAL_LOSS_EVERY": "0", "TRAIN_LOG_EVERY": "1", "SEED": "1337"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    status, seconds = _run([sys.executable, str(Path(args.reference) / "train_gpt.py")], work, env, args.timeout,
                           work / "script.out")
    out = {"status": status, "seconds": seconds}
    if status == "ok":
        out["measured"] = parse_script_log((work / "logs" / "gpu_check.txt").read_text(encoding="utf-8"))
    return out


def golf_overrides(args, work: Path, data: dict) -> list[str]:
    return ["experiment=baseline", f"data.path={data['data_path']}", f"data.tokenizer={data['tokenizer']}",
            f"train.iterations={args.steps}", f"train.priming_steps={args.warmup}", "train.max_wallclock_s=0",
            "train.val_every=0", "train.log_every=1", "train.reuse=false", "train.resume=never", "logger=none",
            f"paths.root={work / 'golf'}", f"hydra.run.dir={work / 'golf' / 'run'}"]


def run_golf(args, work: Path, data: dict) -> dict[str, Any]:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    status, seconds = _run([sys.executable, "-m", "golf.train", *golf_overrides(args, work, data)], REPO_ROOT, env,
                           args.timeout, work / "golf.out")
    out = {"status": status, "seconds": seconds}
    if status == "ok":
        lines = (work / "golf" / "run" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        out["measured"] = parse_golf_metrics(lines)
    return out


def run_bench(args, work: Path, data: dict) -> dict[str, Any]:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "golf.bench", "model=baseline9l", "hardware=1xh100", "data=fineweb_sp1024",
           f"data.path={data['data_path']}", f"data.tokenizer={data['tokenizer']}", "train.batch_tokens=524288",
           "train.seq_len=1024", "eval.seq_len=1024", "bench.train_steps=20", "bench.rounds=1",
           "bench.warmup_steps=3", "logger=none", f"paths.root={work / 'bench'}",
           f"hydra.run.dir={work / 'bench' / 'run'}"]
    status, seconds = _run(cmd, REPO_ROOT, env, args.timeout, work / "bench.out")
    out = {"status": status, "seconds": seconds}
    if status == "ok":
        out["measured"] = json.loads((work / "bench" / "run" / "bench.json").read_text(encoding="utf-8"))
    return out


def run_parity(args, work: Path, data: dict) -> dict[str, Any]:
    found = work / "parity.json"
    env = {**os.environ, "WANDB_MODE": "disabled", "GOLF_REFERENCE_DIR": str(Path(args.reference).resolve()),
           "GOLF_PARITY_OUT": str(found)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/parity/test_parity_gpu.py"]
    status, seconds = _run(cmd, REPO_ROOT, env, args.timeout, work / "parity.out")
    out = {"status": status, "seconds": seconds}
    if found.is_file():
        out["measured"] = json.loads(found.read_text(encoding="utf-8"))
    return out


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = parse_args(argv)
    except UsageError as err:
        print(f"gpu_check: {err}", file=sys.stderr)
        return 2
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    work = Path(args.work or REPO_ROOT / "outputs" / "gpu_check" / stamp).resolve()
    work.mkdir(parents=True, exist_ok=True)
    device = gpu_name()
    if device == "cpu":
        print("gpu_check: no CUDA device here; the script and golf's GPU runs will fail (recorded in the JSON)",
              file=sys.stderr)
    print(f"gpu_check: synthetic data in {work / 'data'} ...", flush=True)
    data = write_synthetic_data(work, args.train_tokens, args.val_tokens)
    runners = {"script": run_script, "golf": run_golf, "bench": run_bench, "parity": run_parity}
    steps: dict[str, dict] = {}
    for name, runner in runners.items():
        if name in args.skip:
            steps[name] = {"status": "skipped"}
            continue
        print(f"gpu_check: {name} ...", flush=True)
        steps[name] = runner(args, work, data)
        print(f"gpu_check: {name}: {steps[name]['status']} ({steps[name]['seconds']:.0f} s)", flush=True)
    result = assemble(device, args, data, steps)
    path = results_path(Path(args.out), device, datetime.date.today())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"gpu_check: results in {path}")
    return 0 if all(s["status"] in ("ok", "skipped") for s in steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
