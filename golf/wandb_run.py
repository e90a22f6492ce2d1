"""W&B on rank 0, offline by default. W&B is a mirror of the run directory: it never fails or stalls a job."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

from golf.runs import LoggerConfig, redact

# Online init with no network would otherwise wait W&B's default 90 s before giving up.
INIT_TIMEOUT_S = 30


class WandbRun:
    def __init__(self, cfg: LoggerConfig, run_dir: Path, name: str, config: dict[str, Any], job_type: str = "train"):
        self.run = None
        # WANDB_MODE in the environment wins (tests and CI set it to disabled).
        mode = os.environ.get("WANDB_MODE") or cfg.mode
        if cfg.name == "none" or mode == "disabled":
            return
        argv = sys.argv
        try:
            import wandb

            sys.argv = redact(list(argv))  # W&B records the command line in the run's metadata
            self.run = wandb.init(
                project=cfg.project,
                entity=cfg.entity,
                group=redact(cfg.group),
                tags=redact(list(cfg.tags)),
                name=redact(name),
                job_type=job_type,
                config=redact(config),  # environment secrets never reach W&B, even through the config
                dir=str(run_dir),
                mode=mode,
                settings=wandb.Settings(init_timeout=INIT_TIMEOUT_S, console="off", silent=True),
            )
        except Exception as err:  # W&B trouble must not cost a training run
            warnings.warn(f"W&B is off for this run: wandb.init failed ({redact(str(err))})", stacklevel=2)
            self.run = None
        finally:
            sys.argv = argv

    def log(self, record: dict[str, Any], step: int | None = None) -> None:
        if self.run is None:
            return
        try:
            self.run.log(record, step=step)
        except Exception as err:
            warnings.warn(f"W&B log failed, W&B is off from here: {err}", stacklevel=2)
            self.run = None

    def finish(self, summary: dict[str, Any]) -> None:
        if self.run is None:
            return
        try:
            for key, value in summary.items():
                if isinstance(value, (int, float, str, bool)):
                    self.run.summary[key] = redact(value)
            self.run.finish()
        except Exception as err:
            warnings.warn(f"W&B finish failed: {err}", stacklevel=2)
        self.run = None
