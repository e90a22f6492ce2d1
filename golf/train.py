"""`python -m golf.train [overrides]`: compose -> validate -> run one job (per multirun job) -> scorecard."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Callable, Optional

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from golf.cli import run_hydra
from golf.config import GolfConfig, to_golf_config
from golf.errors import ConfigError
from golf.job import run_job


def checked_config(cfg: DictConfig, run_dir: Path, scores_an_artifact: bool = False,
                   check: Optional[Callable[[GolfConfig], object]] = None) -> GolfConfig:
    """Every check runs here, before any work (`check` adds an entry point's own); a refused config leaves no empty
    run directory behind."""
    try:
        golf_cfg = to_golf_config(cfg)
        if golf_cfg.artifact is not None and not scores_an_artifact:
            raise ConfigError("artifact", "is for `python -m golf.eval artifact=PATH`; golf.train trains its own")
        if check is not None:
            check(golf_cfg)
        return golf_cfg
    except ConfigError:
        if run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # Hydra made the directory before the values could be checked
        raise


TAG_GROUPS = ("model", "quant", "ttt", "data", "optim", "eval", "hardware", "experiment", "sweep")


def wandb_labels(cfg: GolfConfig, hydra_cfg) -> GolfConfig:
    """W&B group = the sweep's name (its directory) in a multirun, tags = the config choices (model:tiny, ...)."""
    choices = hydra_cfg.runtime.choices
    tags = [f"{group}:{choices[group]}" for group in TAG_GROUPS if choices.get(group)]
    group = cfg.logger.group
    if group is None and hydra_cfg.mode == RunMode.MULTIRUN:
        group = Path(hydra_cfg.sweep.dir).name
    logger = dataclasses.replace(cfg.logger, group=group, tags=[*cfg.logger.tags, *tags])
    return dataclasses.replace(cfg, logger=logger)


def task(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    golf_cfg = wandb_labels(checked_config(cfg, run_dir), hydra_cfg)
    try:
        metrics = run_job(golf_cfg, run_dir, list(hydra_cfg.overrides.task))
    except Exception as err:
        if hydra_cfg.mode != RunMode.MULTIRUN:
            raise
        # one failed job fails only itself: metrics.json says "failed" with the error, and the sweep goes on
        print(f"golf: job {run_dir} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return float("inf")
    bpb = metrics.get("val_bpb")
    return float("inf") if bpb is None else bpb  # what an Optuna sweeper minimizes


def main() -> None:
    run_hydra(task, config_name="train")


if __name__ == "__main__":
    main()
