"""At the end of every multirun: the sweep report (summary.csv, summary.md, plots) and, when W&B is on, a summary
run in the sweep's W&B group holding the table and the plots. Neither may fail the sweep: its jobs are done."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from golf.runs import LoggerConfig
from golf.wandb_run import WandbRun


class SweepReport(Callback):
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


def log_sweep_to_wandb(config: DictConfig, sweep_dir: Path, result: Any) -> None:
    """One W&B run (job_type "summary") in the sweep's group with the table and the plots; golf's WandbRun decides
    the mode and swallows W&B's errors, as for every job."""
    logger = LoggerConfig(**OmegaConf.to_container(config.logger, resolve=True))
    logger = dataclasses.replace(logger, group=logger.group or sweep_dir.name)
    tracker = WandbRun(logger, sweep_dir, name=f"{sweep_dir.name}-summary", config={}, job_type="summary")
    if tracker.run is None:
        return
    try:
        import wandb

        columns = sorted({k for row in result.rows for k, v in row.items() if isinstance(v, (int, float, str, bool))})
        table = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in result.rows])
        tracker.log({"sweep/summary": table, **{f"sweep/{p.stem}": wandb.Image(str(p)) for p in result.plot_paths}})
    except Exception as err:
        warnings.warn(f"W&B summary run failed for {sweep_dir}: {err}", stacklevel=2)
    tracker.finish({})
