"""At the end of every multirun: the sweep report (summary.csv, summary.md, plots) and, when W&B is on, a summary
run in the sweep's W&B group holding the table and the plots. Neither may fail the sweep: its jobs are done."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


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
    """One W&B run (job_type "summary") in the sweep's group with the table and the plots."""
    logger = config.logger
    mode = os.environ.get("WANDB_MODE") or logger.mode
    if logger.name == "none" or mode == "disabled":
        return
    try:
        import wandb

        from golf.wandb_run import INIT_TIMEOUT_S

        run = wandb.init(project=logger.project, entity=logger.entity, group=logger.group or sweep_dir.name,
                         job_type="summary", name=f"{sweep_dir.name}-summary", dir=str(sweep_dir), mode=mode,
                         settings=wandb.Settings(init_timeout=INIT_TIMEOUT_S, console="off", silent=True))
        columns = sorted({k for row in result.rows for k, v in row.items() if isinstance(v, (int, float, str, bool))})
        table = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in result.rows])
        run.log({"sweep/summary": table, **{f"sweep/{p.stem}": wandb.Image(str(p)) for p in result.plot_paths}})
        run.finish()
    except Exception as err:
        warnings.warn(f"W&B summary run failed for {sweep_dir}: {err}", stacklevel=2)
