"""`python -m golf.train [overrides]`: compose -> validate -> run one job (per multirun job) -> scorecard."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from golf.cli import run_hydra
from golf.config import GolfConfig, to_golf_config
from golf.errors import ConfigError
from golf.job import run_job


def checked_config(cfg: DictConfig, run_dir: Path, scores_an_artifact: bool = False) -> GolfConfig:
    """Every check runs here, before any work; a refused config leaves no empty run directory behind."""
    try:
        golf_cfg = to_golf_config(cfg)
        if golf_cfg.artifact is not None and not scores_an_artifact:
            raise ConfigError("artifact", "is for `python -m golf.eval artifact=PATH`; golf.train trains its own")
        return golf_cfg
    except ConfigError:
        if run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # Hydra made the directory before the values could be checked
        raise


def task(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    golf_cfg = checked_config(cfg, run_dir)
    metrics = run_job(golf_cfg, run_dir, list(hydra_cfg.overrides.task))
    return metrics.get("val_bpb")


def main() -> None:
    run_hydra(task, config_name="train")


if __name__ == "__main__":
    main()
