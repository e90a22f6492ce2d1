"""Stage 3, export: rank 0 encodes and compresses the trained weights into run_dir/artifact.golf and says its size
against the 16,000,000-byte limit; every rank gets the export's numbers, and no rank goes on before the file is
written."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import torch

from golf.collectives import barrier, broadcast_object
from golf.job.artifact import ARTIFACT_NAME
from golf.job.prepare import Job
from golf.quant.artifact import export_artifact, write_artifact
from golf.quant.code_size import ARTIFACT_LIMIT_BYTES, size_accounting


def export(job: Job, model: torch.nn.Module) -> dict[str, Any]:
    """The export's metrics (model_bytes, artifact_sha256, bits_per_weight, quant_categories, export_time_s)."""
    exported = _write(job, model) if job.main else None
    numbers = broadcast_object(exported)
    barrier()
    return numbers


def _write(job: Job, model: torch.nn.Module) -> dict[str, Any]:
    cfg = job.cfg
    start = time.perf_counter()
    state = {name: t.detach().cpu() for name, t in model.state_dict().items()}
    exported = export_artifact(state, asdict(cfg.model), cfg.data.vocab_size, cfg.quant)
    path = job.run.path / ARTIFACT_NAME
    write_artifact(path, exported)
    export_time = time.perf_counter() - start
    size = size_accounting(exported.model_bytes, cfg.ttt)
    over = size["artifact_bytes"] > ARTIFACT_LIMIT_BYTES
    job.run.log(f"artifact {path.name}: {size['model_bytes']:,} model + {size['code_bytes']:,} code = "
                f"{size['artifact_bytes']:,} bytes ({'OVER' if over else 'within'} the {ARTIFACT_LIMIT_BYTES:,}-byte "
                f"limit), {exported.bits_per_weight:.3f} bits/weight, exported in {export_time:.1f}s")
    return dict(model_bytes=exported.model_bytes, artifact_sha256=exported.sha256,
                bits_per_weight=exported.bits_per_weight, quant_categories=exported.category_stats,
                export_time_s=export_time)
