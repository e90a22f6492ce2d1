"""Stage 3, export: rank 0 encodes and compresses the trained weights into run_dir/artifact.golf and says its size
against the 16,000,000-byte limit; every rank gets the export's numbers, and no rank goes on before the file is
written."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import torch

from golf.calibrate import calibrate, calibrates
from golf.collectives import barrier, broadcast_object
from golf.job.artifact import ARTIFACT_NAME
from golf.job.prepare import Job
from golf.quant.artifact import export_artifact, write_artifact
from golf.quant.code_size import ARTIFACT_LIMIT_BYTES, size_accounting
from golf.quant.encoders import ExportContext


def export(job: Job, model: torch.nn.Module, train_time_s: float) -> dict[str, Any]:
    """The export's metrics (model_bytes, artifact_sha256, bits_per_weight, quant_categories, export_time_s, and
    gptq_calibration when the encoder calibrates). `train_time_s`: the training clock so far, which calibration on
    training data continues."""
    exported = _write(job, model, train_time_s) if job.main else None
    numbers = broadcast_object(exported)
    barrier()
    return numbers


def _write(job: Job, model: torch.nn.Module, train_time_s: float) -> dict[str, Any]:
    cfg = job.cfg
    calibration = calibrate(cfg, model, job.data.train_files, job.device, train_time_s, job.run.log) \
        if calibrates(cfg) else None
    start = time.perf_counter()
    state = {name: t.detach().cpu() for name, t in model.state_dict().items()}
    context = ExportContext(hessians=calibration.hessians if calibration is not None else {})
    exported = export_artifact(state, asdict(cfg.model), cfg.data.vocab_size, cfg.quant, context)
    path = job.run.path / ARTIFACT_NAME
    write_artifact(path, exported)
    export_time = time.perf_counter() - start
    size = size_accounting(exported.model_bytes, cfg.ttt)
    over = size["artifact_bytes"] > ARTIFACT_LIMIT_BYTES
    job.run.log(f"artifact {path.name}: {size['model_bytes']:,} model + {size['code_bytes']:,} code = "
                f"{size['artifact_bytes']:,} bytes ({'OVER' if over else 'within'} the {ARTIFACT_LIMIT_BYTES:,}-byte "
                f"limit), {exported.bits_per_weight:.3f} bits/weight, exported in {export_time:.1f}s")
    numbers = dict(model_bytes=exported.model_bytes, artifact_sha256=exported.sha256,
                   bits_per_weight=exported.bits_per_weight, quant_categories=exported.category_stats,
                   export_time_s=export_time)
    if calibration is not None:
        numbers["gptq_calibration"] = calibration.record
    return numbers
