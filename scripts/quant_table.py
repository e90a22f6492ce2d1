"""Quantization table: re-export one run's full-precision weights under several quant schemes and score each.

    python scripts/quant_table.py outputs/runs/<run>            # the run was trained with quant=none
    python scripts/quant_table.py outputs/runs/<run> --schemes int8_zlib,int6_zstd --max-tokens 65536
    python scripts/quant_table.py outputs/runs/<run> --set quant.passthrough_numel=4096   # quantize small matrices too

For every scheme: artifact bytes (model + code) against the limit, bits per weight, quant_val_bpb and the gap to the
unquantized weights, calibration (GPTQ schemes: Hessians from the run's training batches, as golf.train collects
them), export and reload time. Prints a Markdown table and writes quant_table.json into the run
directory. A benchmark, not a test: every number is measured on this machine in this run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
import yaml
from omegaconf import OmegaConf

from golf.calibrate import calibrate
from golf.cli import compose
from golf.config import to_golf_config
from golf.data.prepare import ensure_prepared
from golf.evaluate.artifact_eval import evaluate_artifact, load_model
from golf.job import ARTIFACT_NAME
from golf.model.gpt import ModelConfig
from golf.quant.artifact import export_artifact, load_artifact, write_artifact
from golf.quant.code_size import ARTIFACT_LIMIT_BYTES, size_accounting
from golf.quant.config import HESSIAN_ENCODERS
from golf.quant.encoders import ExportContext


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--schemes", default="none,int8_zlib,int6_zstd,int5_zstd")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a quant override applied to every scheme, e.g. --set quant.passthrough_numel=4096")
    parser.add_argument("--max-tokens", type=int, default=0, help="cap the validation tokens (0: the run's setting)")
    args = parser.parse_args()

    artifact_path = args.run_dir / ARTIFACT_NAME
    if not artifact_path.is_file():
        print(f"error: {artifact_path} does not exist; give a run directory of golf.train", file=sys.stderr)
        return 2
    cfg = to_golf_config(OmegaConf.create(yaml.safe_load((args.run_dir / "config.yaml").read_text())))
    source = load_artifact(artifact_path)
    if any(entry["encoding"] == "int" for entry in source.header["tensors"]):
        print(f"error: {artifact_path} holds quantized weights (quant={source.quant['name']}); re-exporting them would "
              "measure double quantization. Train with quant=none and give that run.", file=sys.stderr)
        return 2
    data = ensure_prepared(cfg.data, log=lambda _: None)
    max_tokens = args.max_tokens or cfg.eval.max_tokens or None
    model_config = asdict(ModelConfig(**source.model))

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for scheme in args.schemes.split(","):
            quant = to_golf_config(compose([f"quant={scheme}", *args.set])).quant
            context, calibration_s = ExportContext(), 0.0
            if quant.encoder in HESSIAN_ENCODERS:  # GPTQ: Hessians from the run's training batches, as golf.train
                calibration = calibrate(dataclasses.replace(cfg, quant=quant), load_model(source, device),
                                        data.train_files, device, 0.0, log=lambda _: None)
                context, calibration_s = ExportContext(hessians=calibration.hessians), calibration.record["time_s"]
            start = time.perf_counter()
            exported = export_artifact(source.state_dict, model_config, source.vocab_size, quant, context)
            path = Path(tmp) / f"{scheme}.golf"
            write_artifact(path, exported)
            export_s = time.perf_counter() - start
            score = evaluate_artifact(path, data.val_files, data.tokenizer_path, cfg.eval.seq_len,
                                      cfg.eval.batch_seqs, device, max_tokens=max_tokens)
            bpb = score.result.val_bpb
            reference = bpb if scheme == "none" else reference
            size = size_accounting(exported.model_bytes)
            rows.append({"scheme": scheme, **{k: size[k] for k in ("model_bytes", "code_bytes", "artifact_bytes")},
                         "fits": size["artifact_bytes"] <= ARTIFACT_LIMIT_BYTES,
                         "bits_per_weight": exported.bits_per_weight, "quant_val_bpb": bpb,
                         "quant_gap_bpb": bpb - reference if reference is not None else None,
                         "calibration_s": calibration_s, "export_s": export_s, "load_s": score.load_time_s, "eval_tokens": score.result.tokens,
                         "categories": exported.category_stats})
            print(f"{scheme}: {exported.model_bytes:,} bytes, val_bpb {bpb:.4f}, calibration {calibration_s:.1f}s, "
                  f"export {export_s:.1f}s, load {score.load_time_s:.2f}s", file=sys.stderr, flush=True)
    print(f"{args.run_dir.name}: model {cfg.model.name}, {score.result.tokens:,} validation tokens\n")
    print("| scheme | artifact bytes | fits | bits/weight | quant_val_bpb | gap | calibration s | export s | load s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        gap = f"{r['quant_gap_bpb']:+.4f}" if r["quant_gap_bpb"] is not None else "n/a"
        print(f"| {r['scheme']} | {r['artifact_bytes']:,} | {'yes' if r['fits'] else 'NO'} | {r['bits_per_weight']:.3f} "
              f"| {r['quant_val_bpb']:.4f} | {gap} | {r['calibration_s']:.1f} | {r['export_s']:.1f} | {r['load_s']:.2f} |")
    (args.run_dir / "quant_table.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
