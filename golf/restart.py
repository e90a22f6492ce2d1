"""What a command started again finds in its run directory (a sweep restarted with the same hydra.sweep.dir, or a
run with the same hydra.run.dir): a finished job is skipped, an unfinished one runs again (and its training resumes
from its checkpoints), and a directory holding a finished run of another config is refused, so nothing is lost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import yaml

from golf.errors import ConfigError
from golf.secrets import redact

FINISHED = ("ok", "over_budget", "diverged")


def finished_metrics(run_dir: Path) -> Optional[dict[str, Any]]:
    """The metrics.json of a job that finished in `run_dir`, or None (none there, unreadable, failed or killed)."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and metrics.get("status") in FINISHED else None


def finished_earlier(run_dir: Path, config: dict[str, Any], resume: str) -> Optional[dict[str, Any]]:
    """The metrics of a finished job of this same config in `run_dir`, or None when there is none (or it failed,
    or train.resume=never asks to run it again)."""
    metrics = finished_metrics(run_dir)
    if metrics is None:
        return None  # none, or failed or killed: run it
    try:
        earlier = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        earlier = None
    if _without_resume(earlier) != _without_resume(redact(config)):  # config.yaml is written redacted
        raise ConfigError("hydra.run.dir", f"{run_dir} holds a finished run of another config (its config.yaml "
                          "differs); golf does not overwrite it: choose another hydra.run.dir / hydra.sweep.dir, or "
                          "move that run away")
    if resume != "auto":
        return None
    print(f"{run_dir} finished earlier with status {metrics['status']}: skipped (train.resume=never runs it again)")
    return metrics


def _without_resume(config: Any) -> Any:
    """train.resume says what to do with an earlier run; it is not part of what the run is."""
    if not isinstance(config, dict) or not isinstance(config.get("train"), dict):
        return config
    return {**config, "train": {k: v for k, v in config["train"].items() if k != "resume"}}
