"""Hydra's side of a multirun. At its start: the keys the sweep varies, for the jobs' W&B run names. At its end: the
sweep report (summary.csv, summary.md, plots) and, when W&B is on, a summary run in the sweep's W&B group holding the
table and the plots, with the sweep's config and tags so it filters like the jobs. None of it may fail the sweep."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from golf.logger_config import LoggerConfig
from golf.wandb_names import write_swept_keys
from golf.wandb_run import WandbRun, wandb_enabled

SUMMARY_FILES = ("summary.csv", "summary.md")


class SweepReport(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            write_swept_keys(sweep_dir, list(swept_overrides(config)))
        except Exception as err:  # the jobs then name their W&B runs by their directories
            print(f"golf: could not record the swept keys in {sweep_dir}: {err}")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.get("report", {}).get("enabled", True):
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            from golf.report import write_report

            result = write_report(sweep_dir, config.report.baseline or None, list(config.report.metrics))
        except Exception as err:  # a report that cannot be written is said, never raised: the jobs are done
            print(f"golf: no sweep report for {sweep_dir}: {err}")
            return
        print(result.markdown)
        print(f"sweep report: {result.md_path}")
        log_sweep_to_wandb(config, sweep_dir, result)


def swept_overrides(config: DictConfig) -> dict[str, str]:
    """key -> its sweep (`0.005,0.05,0.5`, `interval(...)`) for every key the multirun varies: the sweeper's params
    (a sweep stored as config) and the command line's sweeps, the command line winning as it does in Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=False) if params is not None else {}
    texts = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    swept: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(texts):
        if override.is_sweep_override():
            swept[override.key_or_group] = override.get_value_string()
        else:
            swept.pop(override.key_or_group, None)
    return swept


def sweep_config(config: DictConfig, swept: dict[str, str]) -> dict[str, Any]:
    """The config every job shares, as the jobs log theirs (a key the sweep varies holds no single value: it is left
    out of the body and listed under `swept`), plus the sweep's directory."""
    from golf.config import to_golf_config, to_plain_dict

    body = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    try:
        plain = to_plain_dict(to_golf_config(body))
    except Exception:  # the jobs said what is wrong with it; the summary run still gets what there is
        plain = OmegaConf.to_container(body, resolve=False)
    for key in swept:
        *parents, leaf = key.split(".")
        node = plain
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return {**plain, "swept": swept, "sweep_dir": str(config.hydra.sweep.dir)}


def sweep_tags(config: DictConfig, swept: dict[str, str]) -> list[str]:
    """The jobs' config-choice tags (model:tiny, ...) that hold for the whole sweep: not those of a swept group."""
    from golf.launch import TAG_GROUPS

    choices = config.hydra.runtime.get("choices") or {}
    return [f"{group}:{choices[group]}" for group in TAG_GROUPS if choices.get(group) and group not in swept]


def log_sweep_to_wandb(config: DictConfig, sweep_dir: Path, result: Any) -> None:
    """One W&B run (job_type "summary") in the sweep's group with the table, the plots and the summary files;
    golf's WandbRun decides the mode and swallows W&B's errors, as for every job."""
    try:
        logger = LoggerConfig(**OmegaConf.to_container(config.logger, resolve=True))
        if not wandb_enabled(logger):
            return
        swept = swept_overrides(config)
        logger = dataclasses.replace(logger, group=logger.group or sweep_dir.name,
                                     tags=[*logger.tags, *sweep_tags(config, swept)])
        labels = dict(name=f"summary @ {sweep_dir.name}", config=sweep_config(config, swept))
    except Exception as err:
        warnings.warn(f"W&B summary run skipped for {sweep_dir}: {err}", stacklevel=2)
        return
    tracker = WandbRun(logger, sweep_dir, **labels, job_type="summary")
    if tracker.run is None:
        return
    try:
        import wandb

        columns = sorted({k for row in result.rows for k, v in row.items() if isinstance(v, (int, float, str, bool))})
        table = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in result.rows])
        tracker.log({"sweep/summary": table, **{f"sweep/{p.stem}": wandb.Image(str(p)) for p in result.plot_paths}})
    except Exception as err:
        warnings.warn(f"W&B summary run failed for {sweep_dir}: {err}", stacklevel=2)
    tracker.finish({}, files=SUMMARY_FILES)
