"""Every entry point's way in: compose (golf/cli.py, Hydra), validate, then run the job: in this process, under
torchrun when the hardware asks for several processes, or as one rank of such a torchrun.

    python -m golf.<entry> k=v                run_hydra -> task: checked_config -> run the job here, or
                                              launch_job: config.yaml into the run directory, torchrun over the entry
    a rank of that torchrun (GOLF_CONFIG)     rank_main: the launcher's resolved config.yaml -> run_rank
    torchrun -m golf.<entry> k=v (by hand)    typed_torchrun_main: every rank composes; rank 0 picks the run directory

An entry point is an `Entry`: its config, its job and how a Hydra job of it ends. The entry modules (golf/train.py,
golf/eval.py, golf/audit.py, golf/bench.py) each declare one and call `main`; none imports another.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from golf.cli import MULTIRUN_FLAGS, USER_ERRORS, compose, exit_with, run_hydra
from golf.config import GolfConfig, to_golf_config, to_plain_dict
from golf.dist import (
    CONFIG_ENV, failures_in_log, launch, needs_launch, note_failure, process_group, rendezvous, shared_run_dir,
    under_torchrun,
)
from golf.errors import ConfigError
from golf.hydra_record import write_hydra_record
from golf.logs import PROGRESS_ENV, get_logger, job_prefix, parallel_job_number
from golf.restart import finished_earlier
from golf.runs import RunDir

LOG = get_logger("golf.launch")

# (config, run directory, overrides) -> metrics: one job, run by every rank under torchrun
Job = Callable[[GolfConfig, Path, list[str]], dict[str, Any]]


@dataclass(frozen=True)
class Entry:
    """One entry point: what it composes, the job it runs, and how a Hydra job of it ends."""

    module: str  # "golf.train": what torchrun runs on every rank
    config_name: str  # conf/<config_name>.yaml
    job: Job  # golf.job.run_job with the entry's body (golf.bench: its own, which writes bench.json only)
    result: Callable[[dict[str, Any]], Any]  # what the Hydra task returns (an Optuna sweeper minimizes it)
    check: Optional[Callable[[GolfConfig], object]] = None  # the entry's own checks, before any work
    scores_an_artifact: bool = False  # takes artifact=PATH
    wandb_labels: bool = False  # W&B group = the sweep, tags = the config choices
    several_processes: bool = True  # False: always one process, also with hardware.nproc_per_node > 1
    passed: Callable[[dict[str, Any]], bool] = lambda metrics: True  # a single run exits 1 unless this holds
    sweep_goes_on: bool = False  # a failed job of a multirun returns result({}) instead of raising


def main(entry: Entry) -> None:
    """The console script: a rank of the launcher's torchrun, a hand-typed torchrun's rank, or Hydra."""
    if entry.several_processes and os.environ.get(CONFIG_ENV):
        rank_main(entry)
    elif entry.several_processes and under_torchrun():
        typed_torchrun_main(entry)
    else:
        def hydra_task(cfg: DictConfig) -> Any:
            return task(entry, cfg)

        hydra_task.__module__ = entry.module  # Hydra names the job after it: "train", and its log file train.log
        run_hydra(hydra_task, config_name=entry.config_name)


def task(entry: Entry, cfg: DictConfig) -> Any:
    """One Hydra job of `entry`: validate, run (here or under torchrun), and end as the entry says."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    golf_cfg = checked_config(cfg, run_dir, entry.scores_an_artifact, entry.check)
    if entry.wandb_labels:
        golf_cfg = wandb_labels(golf_cfg, hydra_cfg)
    overrides = list(hydra_cfg.overrides.task)
    single = hydra_cfg.mode != RunMode.MULTIRUN
    try:
        if entry.several_processes and needs_launch(golf_cfg.hardware):
            metrics = launch_job(golf_cfg, run_dir, overrides, entry.module)
        else:
            metrics = entry.job(golf_cfg, run_dir, overrides)
    except Exception as err:
        if single:
            if isinstance(err, JobFailed):  # the ranks' tracebacks are above; metrics.json holds the error
                print(f"golf: job {run_dir} failed: {err}", file=sys.stderr)
                sys.exit(1)
            raise
        if not entry.sweep_goes_on:
            raise
        # one failed job fails only itself: metrics.json says "failed" with the error, and the sweep goes on
        print(f"{job_prefix()}golf: job {run_dir} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return entry.result({})
    if single and not entry.passed(metrics):
        sys.exit(1)
    return entry.result(metrics)


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


# ---------------------------------------------------------------------------------------------------------------
# Several processes: the launcher starts torchrun over the entry's module; each rank runs the job.


class JobFailed(RuntimeError):
    """A job that torchrun ran failed; its metrics.json says so (status "failed", with the ranks' errors)."""


def launch_job(cfg: GolfConfig, run_dir: Path, overrides: list[str], module: str) -> dict[str, Any]:
    """Hydra's side of a multi-process job: config.yaml into the run directory, torchrun over `module`, whose ranks
    read that file; then the job's metrics.json. A rank that died without rank 0 recording it (killed, or rank 0
    itself gone) still ends with metrics.json status "failed" and the ranks' errors from train.log."""
    if cfg.hardware.nnodes > 1:
        rendezvous(cfg.hardware)  # a missing endpoint or id is a config error, before anything is written
    plain = to_plain_dict(cfg)
    done = finished_earlier(Path(run_dir), plain, cfg.train.resume)
    if done is not None:
        return done
    run = RunDir(run_dir)
    run.start(plain, overrides)
    returncode = launch(cfg.hardware, module, run.path)
    try:
        metrics = json.loads((run.path / "metrics.json").read_text())
    except (OSError, ValueError):
        metrics = None
    if returncode == 0 and metrics is not None:
        return metrics
    errors = failures_in_log(run.path)
    error = "; ".join(errors) or f"torchrun exited with status {returncode} and no rank reported an error"
    if metrics is None or metrics.get("status") != "failed":
        metrics = {**(metrics or {}), "status": "failed", "seed": cfg.seed, "error": error,
                   "torchrun_exit_code": returncode}
        run.log(f"failed: torchrun exited with status {returncode}: {error}")
        run.finish(metrics)
    raise JobFailed(metrics.get("error") or error)


def run_rank(entry: Entry, cfg: GolfConfig, run_dir: Path, overrides: list[str]) -> None:
    """One torchrun rank: join the process group, run the job, and on any error say so in train.log and exit 1
    (torchrun then stops the other ranks at once)."""
    try:
        with process_group(cfg.hardware):
            entry.job(cfg, run_dir, overrides)
    except BaseException as err:
        if isinstance(err, SystemExit) and not err.code:
            raise
        traceback.print_exc()
        note_failure(run_dir, err)
        sys.exit(1)


def rank_main(entry: Entry) -> None:
    """A rank that the launcher's torchrun started: the config is the launcher's resolved config.yaml."""
    path = Path(os.environ[CONFIG_ENV])
    cfg = to_golf_config(OmegaConf.create(yaml.safe_load(path.read_text())))
    overrides = yaml.safe_load((path.parent / "overrides.yaml").read_text()) or []
    run_rank(entry, cfg, path.parent, overrides)


def typed_torchrun_main(entry: Entry) -> None:
    """`torchrun --nproc-per-node=N -m golf.train k=v`: every rank composes the same overrides; rank 0 picks the
    run directory (hydra.run.dir when given) and broadcasts it. No multirun: one torchrun is one job."""
    args = sys.argv[1:]
    try:
        if any(a in MULTIRUN_FLAGS for a in args):
            raise ConfigError("--multirun", "is refused under torchrun (one torchrun is one job); run "
                              "`python -m golf.train -m ... hardware.nproc_per_node=N`, which starts torchrun per job")
        chosen = next((a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")), None)
        golf_cfg = to_golf_config(compose([a for a in args if not a.startswith("hydra.")], entry.config_name))
        world = int(os.environ["WORLD_SIZE"])
        if golf_cfg.hardware.world_size != world:
            raise ConfigError("hardware.nproc_per_node", f"is {golf_cfg.hardware.nproc_per_node} (x hardware.nnodes="
                              f"{golf_cfg.hardware.nnodes}) but torchrun started {world} processes; pass "
                              f"hardware.nproc_per_node={world} (e.g. hardware=cpu2 for 2 CPU processes)")
    except USER_ERRORS as err:
        exit_with(err)
    with process_group(golf_cfg.hardware):
        run_dir = shared_run_dir(chosen, golf_cfg.paths.root, golf_cfg.name)
        run_rank(entry, golf_cfg, run_dir, [a for a in args if not a.startswith("hydra.")])
