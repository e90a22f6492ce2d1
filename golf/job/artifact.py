"""Where a job's artifact is: artifact.golf in the run directory that trained it, and the file `artifact=` names for
golf.eval and golf.audit (the file itself, or a run directory holding one)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from golf.config import GolfConfig
from golf.errors import ConfigError

ARTIFACT_NAME = "artifact.golf"


def artifact_file(value: Optional[str]) -> Path:
    """The artifact named by `artifact=`: the file itself, or artifact.golf inside a run directory."""
    if not value:  # `artifact: ???` does not survive the merge onto train's null, so absence arrives as None
        raise ConfigError("artifact", "must be given: artifact=PATH, PATH an artifact file "
                          f"or a run directory holding {ARTIFACT_NAME}")
    path = Path(value)
    if path.is_dir():
        if (path / ARTIFACT_NAME).is_file():
            return path / ARTIFACT_NAME
        raise ConfigError("artifact", f"{value} is a directory without {ARTIFACT_NAME}; give an artifact file or the "
                          "run directory that holds one")
    if path.exists() and not path.is_file():
        raise ConfigError("artifact", f"{value} is not a regular file (a FIFO, device or socket); give an artifact "
                          f"file ({ARTIFACT_NAME}) or the run directory that holds one")
    if not path.is_file():
        raise ConfigError("artifact", f"{value} does not exist; give an artifact file ({ARTIFACT_NAME}) or the run "
                          "directory that holds one")
    return path


def check_artifact_given(cfg: GolfConfig) -> None:
    """golf.eval's and golf.audit's own check, before any work: `artifact=` names an artifact."""
    artifact_file(cfg.artifact)
