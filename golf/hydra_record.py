"""Hydra's own record of a job, `.hydra/` (config.yaml, hydra.yaml, overrides.yaml) in the run directory, next to
golf's resolved config.yaml: the files Hydra users and tools look for.

golf writes them itself (hydra.output_subdir stays null) with Hydra's content (the job's config unresolved, the
Hydra config, the overrides), for two reasons Hydra's own writer cannot meet: secrets from the environment are
redacted as in every other run file, and a run directory that already holds a finished run keeps that run's record
(a restarted command skips it, or refuses it if its config differs; neither may rewrite what that run was).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from golf.atomic import atomic_write_text
from golf.restart import finished_metrics
from golf.secrets import redact

HYDRA_DIR = ".hydra"
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def write_hydra_record(run_dir: Path, task_cfg: DictConfig, hydra_cfg: DictConfig) -> None:
    """run_dir/.hydra/{config,hydra,overrides}.yaml as Hydra would write them, redacted; nothing over a finished
    run. `hydra_cfg` is the job's Hydra config (HydraConfig.get())."""
    if finished_metrics(run_dir) is not None:
        return
    texts = {
        "config.yaml": OmegaConf.to_yaml(task_cfg, resolve=False),
        "hydra.yaml": OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg}), resolve=False),
        "overrides.yaml": OmegaConf.to_yaml(hydra_cfg.overrides.task, resolve=False),
    }
    for name, text in texts.items():
        atomic_write_text(run_dir / HYDRA_DIR / name, redact(text))
