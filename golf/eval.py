"""`python -m golf.eval artifact=PATH [eval=...] [ttt=...]`: score a saved artifact (or a run directory's), no training.

The artifact carries its model config; data, eval, ttt and hardware come from the command line. The number is the
same code path as the training run's round trip, so it reproduces that run's quant_val_bpb exactly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from golf.cli import run_hydra
from golf.config import GolfConfig
from golf.errors import ConfigError
from golf.evaluate.scoring import score_artifact_file, write_side_files
from golf.collectives import rank_world
from golf.dist import CONFIG_ENV, local_rank, needs_launch, under_torchrun
from golf.hardware import autocast, setup_device
from golf.job import ARTIFACT_NAME, JobFailed, load_data_rank0_first, launch_job, record_logger, run_job
from golf.quant.code_size import ARTIFACT_LIMIT_BYTES, size_accounting
from golf.runs import RunDir
from golf.train import checked_config, rank_main, typed_torchrun_main
from golf.wandb_run import WandbRun


def artifact_file(value: Optional[str]) -> Path:
    """The artifact named by `artifact=`: the file itself, or artifact.golf inside a run directory."""
    if not value:  # `artifact: ???` does not survive the merge onto train's null, so absence arrives as None
        raise ConfigError("artifact", "must be given: artifact=PATH, PATH an artifact file "
                          f"or a run directory holding {ARTIFACT_NAME}")
    path = Path(value)
    if path.is_dir():
        if (path / ARTIFACT_NAME).is_file():
            return path / ARTIFACT_NAME
        raise ConfigError("artifact", f"{value} is a directory without {ARTIFACT_NAME}; give an artifact file or the "
                          "run directory that holds one")
    if path.exists() and not path.is_file():
        raise ConfigError("artifact", f"{value} is not a regular file (a FIFO, device or socket); give an artifact "
                          f"file ({ARTIFACT_NAME}) or the run directory that holds one")
    if not path.is_file():
        raise ConfigError("artifact", f"{value} does not exist; give an artifact file ({ARTIFACT_NAME}) or the run "
                          "directory that holds one")
    return path


def score_artifact(cfg: GolfConfig, run: RunDir, tracker: WandbRun) -> dict[str, Any]:
    device = setup_device(cfg.hardware, local_rank())
    data, _, _, _ = load_data_rank0_first(cfg, run.log)
    path = artifact_file(cfg.artifact)
    scores = score_artifact_file(cfg, path, data, device, lambda: autocast(cfg.hardware, device), run.log,
                                 record_logger(run, tracker))
    if rank_world()[0] == 0:
        write_side_files(scores, run.path)
    else:
        scores.pop("token_nll", None)
    size = size_accounting(path.stat().st_size, cfg.ttt)
    tracker.log({"final/val_bpb": scores["val_bpb"]})
    return {
        "status": "over_budget" if size["artifact_bytes"] > ARTIFACT_LIMIT_BYTES else "ok",
        "seed": cfg.seed,
        **scores,
        **size,
        "artifact_path": str(path),
        "reused_artifact": True,
    }


def task(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    golf_cfg = checked_config(cfg, run_dir, scores_an_artifact=True, check=lambda c: artifact_file(c.artifact))
    overrides = list(hydra_cfg.overrides.task)
    if needs_launch(golf_cfg.hardware):
        try:
            metrics = launch_job(golf_cfg, run_dir, overrides, "golf.eval")
        except JobFailed as err:  # the ranks' tracebacks are above; metrics.json holds the error
            if hydra_cfg.mode == RunMode.MULTIRUN:
                raise
            print(f"golf: job {run_dir} failed: {err}", file=sys.stderr)
            sys.exit(1)
    else:
        metrics = run_job(golf_cfg, run_dir, overrides, body=score_artifact, job_type="eval")
    return metrics.get("val_bpb")


def main() -> None:
    if os.environ.get(CONFIG_ENV):
        rank_main(score_artifact, job_type="eval")
    elif under_torchrun():
        typed_torchrun_main("eval", score_artifact, job_type="eval")
    else:
        run_hydra(task, config_name="eval")


if __name__ == "__main__":
    main()
