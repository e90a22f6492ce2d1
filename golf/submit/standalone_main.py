"""The entry of a submission's train_gpt.py: golf.train's five stages for one seed without golf installed, printing
the records' log lines.

It runs what golf/job/train_job.py runs, in the same order and through the same functions (so a CPU run with the
same config and seed gives the same weights, artifact and val_bpb bit for bit): seed, build the model and the
training (golf/training_build.py), fit, leave the weights the artifact stores (as golf/job/train.py does), export
(as golf/job/export.py), score the artifact as loaded from disk (as golf/evaluate/scoring.py: standard, sliding,
score-first TTT; the headline is golf.train's: golf/evaluate/headline.py). It leaves out what is golf's bookkeeping
(run directories, W&B, the artifact cache, checkpoints) and the diagnostics and audit that follow the score.

Settings from the environment, as the records take them: SEED (default: the run's), DATA_PATH (the shard folder,
default ./data/datasets/<dataset>), TOKENIZER_PATH (default ./data/tokenizers/<tokenizer>), ARTIFACT_PATH (where the
artifact is written, default ./artifact.golf). Everything else is the run's resolved config, embedded in the script,
with the sha256 of the run's tokenizer and validation shards (other data is refused: golf/submit/provenance.py) and
the golf commit the run was made with.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from golf.calibrate import calibrate, calibrates, reserves_clock, training_clock
from golf.collectives import barrier, rank_world
from golf.data.config import has_byte_sidecars
from golf.data.layout import check_layout
from golf.data.shards import TokenArray
from golf.data.tokenizer import byte_tables, load_tokenizer
from golf.dist import local_rank, process_group
from golf.evaluate.artifact_eval import evaluate_artifact, load_model
from golf.evaluate.evaluation import evaluate_model, plan_for
from golf.evaluate.headline import SLIDING, STANDARD, TTT, choose_headline
from golf.evaluate.windows import evaluate_standard, evaluate_windows
from golf.hardware import autocast, setup_device
from golf.quant.artifact import export_artifact, write_artifact
from golf.quant.encoders import ExportContext
from golf.submit.provenance import data_mismatch
from golf.submit.standalone_config import StandaloneConfig, from_dict
from golf.training_build import build_model, build_training, leave_export_weights


LABELS = {STANDARD: "quantized", SLIDING: "quantized_sliding_window", TTT: "quantized_ttt"}  # the records' lines


def say(line: str) -> None:
    """Rank 0's lines on stdout (the records' logs are what rank 0 prints)."""
    if rank_world()[0] == 0:
        print(line, flush=True)


def config_from(embedded: dict[str, Any]) -> StandaloneConfig:
    cfg = from_dict(StandaloneConfig, embedded["config"])
    if os.environ.get("SEED"):
        cfg.seed = int(os.environ["SEED"])
    return cfg


def main(embedded: dict[str, Any], script: str) -> None:
    """`embedded`: {"config": the run's config (standalone_dict), "dataset": ..., "tokenizer": ...}; `script`: the
    train_gpt.py file, whose size is the code the submission counts."""
    cfg = config_from(embedded)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != cfg.hardware.world_size:
        sys.exit(f"train_gpt.py: this run was made with {cfg.hardware.world_size} process(es) (hardware "
                 f"{cfg.hardware.name}) and runs now with WORLD_SIZE={world}; start it with torchrun "
                 f"--nproc_per_node={cfg.hardware.nproc_per_node} so the global batch is split as it was")
    with process_group(cfg.hardware):
        run(cfg, embedded, Path(script))


def run(cfg: StandaloneConfig, embedded: dict[str, Any], script: Path) -> None:
    random.seed(cfg.seed)  # golf/job/prepare.py's seed_everything
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = setup_device(cfg.hardware, local_rank())
    shards = Path(os.environ.get("DATA_PATH", f"./data/datasets/{embedded['dataset']}"))
    tokenizer = Path(os.environ.get("TOKENIZER_PATH", f"./data/tokenizers/{embedded['tokenizer']}"))
    layout = check_layout(shards, has_byte_sidecars(cfg.data), "set DATA_PATH to the run's shard folder")
    mismatch = data_mismatch(embedded["data"], tokenizer, shards)
    if mismatch:
        sys.exit(mismatch)
    tables = byte_tables(load_tokenizer(tokenizer, expected_vocab_size=cfg.data.vocab_size), cfg.data.vocab_size)
    val = TokenArray.from_files(layout.val, max_tokens=cfg.eval.max_tokens or None)
    say(f"seed:{cfg.seed} world_size:{rank_world()[1]} device:{device} dtype:{cfg.hardware.dtype}")
    say(f"golf:{embedded['golf']['commit'] or 'unknown'} tree:{embedded['golf']['state']}")
    say(f"train_loader:dataset:{shards.name} train_shards:{len(layout.train)}")
    say(f"val_loader:shards:{len(layout.val)} tokens:{len(val)} tokenizer:{tokenizer.name}")

    model, train_time_s = train(cfg, layout.train, val, tables, device)
    artifact = Path(os.environ.get("ARTIFACT_PATH", "artifact.golf"))
    if rank_world()[0] == 0:
        export(cfg, model, artifact, script, layout.train, device, train_time_s)
    barrier()  # the artifact is on disk before any rank loads it
    score(cfg, artifact, layout.val, tokenizer, val, tables, device)


def train(cfg: StandaloneConfig, train_files: list[Path], val: TokenArray, tables: Any,
          device: torch.device) -> tuple[torch.nn.Module, float]:
    """The trained (averaged) weights and the training clock's seconds, GPTQ's calibration reserve kept off it."""
    model = build_model(cfg, device)
    amp = lambda: autocast(cfg.hardware, device)  # noqa: E731
    say(f"model_params:{sum(p.numel() for p in model.parameters())}")

    def validate(step: int) -> dict[str, float]:
        result = evaluate_standard(model, val, tables, cfg.eval.seq_len, cfg.eval.batch_seqs, device, amp)
        say(f"{step}/{cfg.train.iterations} val_loss: {result.val_loss:.4f} val_bpb: {result.val_bpb:.4f}")
        return {"val_loss": result.val_loss, "val_bpb": result.val_bpb}

    def log_metrics(record: dict[str, Any]) -> None:
        if "train_loss" in record:
            say(f"{record['step']}/{cfg.train.iterations} train_loss: {record['train_loss']:.4f} "
                f"train_time: {record['train_time_s'] / 60:.1f}m tok/s: {record['train_tokens_per_s']:.0f}")

    def log(line: str) -> None:  # golf's own lines, except the per-step ones log_metrics prints as the records do
        if not line.startswith("step "):
            say(line)

    clock = training_clock(cfg)
    if reserves_clock(cfg):
        say(f"gptq:reserving {cfg.quant.gptq.reserve_s:g}s, effective={1000 * clock.max_wallclock_s:.0f}ms")
    training = build_training(cfg, model, train_files, device, amp, log, train=clock, log_metrics=log_metrics,
                              validate=validate)
    result = training.trainer.fit()
    if result.status != "ok":
        sys.exit(f"training {result.status} at step {result.steps}: the loss is {result.last_loss}")
    averager = leave_export_weights(model, training.hooks)  # as golf/job/train.py: what the artifact stores
    if averager is not None:
        say(f"{averager.kind}:applying averaged weights ({averager.num_updates} updates)")
    start = time.perf_counter()
    said("pre-quantization post-ema", evaluate_standard(model, val, tables, cfg.eval.seq_len, cfg.eval.batch_seqs,
                                                         device, amp), start)
    return model, result.train_time_s


def said(label: str, result: Any, start: float) -> Any:
    """An evaluation's line as the records print it; `start`: when it began (perf_counter)."""
    say(f"{label} val_loss:{result.val_loss:.8f} val_bpb:{result.val_bpb:.8f} "
        f"eval_time:{1000 * (time.perf_counter() - start):.0f}ms")
    return result


def export(cfg: StandaloneConfig, model: torch.nn.Module, path: Path, script: Path, train_files: list[Path],
           device: torch.device, train_time_s: float) -> None:
    """golf/job/export.py's: GPTQ calibration first where the encoder needs it (golf/calibrate.py)."""
    calibration = calibrate(cfg, model, train_files, device, train_time_s, say) if calibrates(cfg) else None
    if calibration is not None and not calibration.record.get("exempt", True) and \
            not calibration.record["within_clock"]:
        sys.exit("GPTQ calibration read training data after the training clock ran out: raise quant.gptq.reserve_s")
    state = {name: t.detach().cpu() for name, t in model.state_dict().items()}
    context = ExportContext(hessians=calibration.hessians if calibration is not None else {})
    exported = export_artifact(state, dataclasses.asdict(cfg.model), cfg.data.vocab_size, cfg.quant, context)
    write_artifact(path, exported)
    code = script.stat().st_size
    say(f"Serialized model quantized+{cfg.quant.compressor}: {exported.model_bytes} bytes")
    say(f"Code size: {code} bytes")
    say(f"Total submission size quantized+{cfg.quant.compressor}: {exported.model_bytes + code} bytes")


def score(cfg: StandaloneConfig, artifact: Path, val_files: list[Path], tokenizer: Path, val: TokenArray,
          tables: Any, device: torch.device) -> None:
    """golf/evaluate/scoring.py's evaluations and headline, each printed as the records print theirs; the last line
    is the headline's, and the line before it gives the same numbers to full precision."""
    amp = lambda: autocast(cfg.hardware, device)  # noqa: E731
    start = time.perf_counter()
    standard = evaluate_artifact(artifact, val_files, tokenizer, cfg.eval.seq_len, cfg.eval.batch_seqs, device,
                                 max_tokens=cfg.eval.max_tokens or None, save_token_nll=cfg.eval.save_token_nll,
                                 autocast=amp)
    said(LABELS[STANDARD], standard.result, start)
    sliding = ttt = None
    illegal = False
    fresh_model = lambda: load_model(standard.artifact, device)  # noqa: E731
    if cfg.eval.stride > 0:
        start = time.perf_counter()
        sliding = said(LABELS[SLIDING], evaluate_windows(fresh_model(), val, tables, plan_for(cfg.eval, len(val)),
                                                         cfg.eval.batch_seqs, device, amp, cfg.eval.save_token_nll),
                       start)
    if cfg.ttt.protocol != "none":
        importlib.import_module(f"golf.evaluate.ttt.methods.{cfg.ttt.method}")  # registers it (no folder to scan)
        say(f"ttt:start method={cfg.ttt.method} lr={cfg.ttt.lr} epochs={cfg.ttt.epochs} "
            f"chunk_tokens={cfg.ttt.chunk_tokens}")
        start = time.perf_counter()
        evaluation = evaluate_model(fresh_model(), val, tables, cfg.eval, cfg.ttt, device, amp, say,
                                    compile_model=cfg.hardware.compile)
        illegal = evaluation.ttt is not None and evaluation.ttt.illegal
        ttt = said(LABELS[TTT] + ("_ILLEGAL" if illegal else ""), evaluation.result, start)
    which, headline = choose_headline(standard.result, sliding, ttt, illegal)  # golf.train's choice
    label = LABELS[which]
    say(f"{label}_exact val_loss:{headline.val_loss!r} val_bpb:{headline.val_bpb!r}")
    say(f"{label} val_loss:{headline.val_loss:.8f} val_bpb:{headline.val_bpb:.8f}")

