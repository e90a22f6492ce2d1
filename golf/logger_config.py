"""Where a run's metrics are mirrored (logger.*: W&B offline by default), and the check of those keys. No torch, no
wandb import here; golf/wandb_run.py does the logging."""

from dataclasses import dataclass, field
from typing import Any, Optional

LOGGER_MODES = ("offline", "online", "disabled")


@dataclass
class LoggerConfig:
    name: str = "wandb"
    mode: str = "offline"  # offline runs live in <run>/wandb; upload later with `wandb sync`
    project: str = "golf"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    log_artifact: bool = False  # also upload artifact.golf as a W&B Artifact (sha256 and size in its metadata)


def logger_problems(cfg: LoggerConfig) -> list[tuple[str, Any, str]]:
    if cfg.mode not in LOGGER_MODES:
        return [("logger.mode", cfg.mode, "one of " + ", ".join(LOGGER_MODES))]
    return []
