"""`python -m golf.train [overrides]`: compose -> validate -> run one job (per multirun job) -> scorecard."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from golf.cli import run_hydra
from golf.config import to_golf_config
from golf.errors import ConfigError
from golf.job import run_job


def task(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        golf_cfg = to_golf_config(cfg)  # every check runs here, before any work
    except ConfigError:
        _remove_if_empty(run_dir)  # Hydra made the directory before the values could be checked
        raise
    metrics = run_job(golf_cfg, run_dir, list(hydra_cfg.overrides.task))
    return metrics.get("val_bpb")


def _remove_if_empty(path: Path) -> None:
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()


def main() -> None:
    run_hydra(task, config_name="train")


if __name__ == "__main__":
    main()
