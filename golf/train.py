"""`python -m golf.train [overrides]`: compose -> validate -> launch (in process, or torchrun underneath when
hardware.nproc_per_node > 1) -> run one job (per multirun job) -> scorecard. Under torchrun the ranks read the
launcher's config.yaml (GOLF_CONFIG); a hand-typed `torchrun -m golf.train k=v` composes on every rank."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Callable, Optional

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
import yaml

from golf.cli import MULTIRUN_FLAGS, USER_ERRORS, compose, exit_with
from golf.cli import run_hydra
from golf.config import GolfConfig, to_golf_config
from golf.dist import CONFIG_ENV, needs_launch, process_group, shared_run_dir, under_torchrun
from golf.errors import ConfigError
from golf.hydra_record import write_hydra_record
from golf.logs import PROGRESS_ENV, get_logger, job_prefix, parallel_job_number
from golf.job import Body, JobFailed, launch_job, run_job, run_rank


def checked_config(cfg: DictConfig, run_dir: Path, scores_an_artifact: bool = False,
                   check: Optional[Callable[[GolfConfig], object]] = None) -> GolfConfig:
    """Every check runs here, before any work (`check` adds an entry point's own); a refused config leaves no empty
    run directory behind. An accepted one gets Hydra's record (.hydra/) in its run directory, and a job of a
    parallel (joblib) multirun draws no progress bars (they would overwrite each other's)."""
    try:
        golf_cfg = to_golf_config(cfg)
        if golf_cfg.artifact is not None and not scores_an_artifact:
            raise ConfigError("artifact", "is for `python -m golf.eval artifact=PATH`; golf.train trains its own")
        if check is not None:
            check(golf_cfg)
    except ConfigError:
        if run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # Hydra made the directory before the values could be checked
        raise
    if HydraConfig.initialized():  # under Hydra (not when a test or the compose API calls this)
        write_hydra_record(run_dir, cfg, HydraConfig.get())
        LOG.debug("run directory %s, overrides %s", run_dir, list(HydraConfig.get().overrides.task))
    if parallel_job_number() is not None:
        os.environ[PROGRESS_ENV] = "0"
    return golf_cfg


LOG = get_logger("golf.train")

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
    overrides = list(hydra_cfg.overrides.task)
    try:
        if needs_launch(golf_cfg.hardware):
            metrics = launch_job(golf_cfg, run_dir, overrides, "golf.train")
        else:
            metrics = run_job(golf_cfg, run_dir, overrides)
    except Exception as err:
        if hydra_cfg.mode != RunMode.MULTIRUN:
            if isinstance(err, JobFailed):  # the ranks' tracebacks are above; metrics.json holds the error
                print(f"golf: job {run_dir} failed: {err}", file=sys.stderr)
                sys.exit(1)
            raise
        # one failed job fails only itself: metrics.json says "failed" with the error, and the sweep goes on
        print(f"{job_prefix()}golf: job {run_dir} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return float("inf")
    bpb = metrics.get("val_bpb")
    return float("inf") if bpb is None else bpb  # what an Optuna sweeper minimizes


def rank_main(body: Optional[Body] = None, job_type: str = "train") -> None:
    """A rank that the launcher's torchrun started: the config is the launcher's resolved config.yaml."""
    path = Path(os.environ[CONFIG_ENV])
    cfg = to_golf_config(OmegaConf.create(yaml.safe_load(path.read_text())))
    overrides = yaml.safe_load((path.parent / "overrides.yaml").read_text()) or []
    run_rank(cfg, path.parent, overrides, body, job_type)


def typed_torchrun_main(config_name: str = "train", body: Optional[Body] = None, job_type: str = "train") -> None:
    """`torchrun --nproc-per-node=N -m golf.train k=v`: every rank composes the same overrides; rank 0 picks the
    run directory (hydra.run.dir when given) and broadcasts it. No multirun: one torchrun is one job."""
    args = sys.argv[1:]
    try:
        if any(a in MULTIRUN_FLAGS for a in args):
            raise ConfigError("--multirun", "is refused under torchrun (one torchrun is one job); run "
                              "`python -m golf.train -m ... hardware.nproc_per_node=N`, which starts torchrun per job")
        chosen = next((a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")), None)
        golf_cfg = to_golf_config(compose([a for a in args if not a.startswith("hydra.")], config_name))
        world = int(os.environ["WORLD_SIZE"])
        if golf_cfg.hardware.world_size != world:
            raise ConfigError("hardware.nproc_per_node", f"is {golf_cfg.hardware.nproc_per_node} (x hardware.nnodes="
                              f"{golf_cfg.hardware.nnodes}) but torchrun started {world} processes; pass "
                              f"hardware.nproc_per_node={world} (e.g. hardware=cpu2 for 2 CPU processes)")
    except USER_ERRORS as err:
        exit_with(err)
    with process_group(golf_cfg.hardware):
        run_dir = shared_run_dir(chosen, golf_cfg.paths.root, golf_cfg.name)
        run_rank(golf_cfg, run_dir, [a for a in args if not a.startswith("hydra.")], body, job_type)


def main() -> None:
    if os.environ.get(CONFIG_ENV):
        rank_main()
    elif under_torchrun():
        typed_torchrun_main()
    else:
        run_hydra(task, config_name="train")


if __name__ == "__main__":
    main()
