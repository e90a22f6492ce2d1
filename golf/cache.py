"""One training per distinct model: trained artifacts cached under <paths.root>/cache/<key>/.

Jobs of a sweep that differ only in how they evaluate (eval.*, ttt.*, audit.*, logger.*, name) train the same model;
the first one trains and stores its artifact, the others take it. The key hashes everything that affects training:
data, model, optim, quant, train (but not its logging cadence or the reuse switch itself), seed, the world size and
golf's version. Entries are written to a temporary directory and renamed into place; a file lock per key makes
parallel launchers wait for the one training instead of training twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from filelock import FileLock

import golf
from golf.atomic import atomic_write_json
from golf.config import GolfConfig, to_plain_dict

# train.* keys that do not change the trained weights (a resumed run ends with the same weights)
NOT_TRAINING = ("log_every", "val_every", "reuse", "checkpoint_every", "keep_checkpoints", "resume")
ENTRY_ARTIFACT = "artifact.golf"
ENTRY_METRICS = "train_metrics.json"


def cache_key(cfg: GolfConfig) -> str:
    plain = to_plain_dict(cfg)
    train = {k: v for k, v in plain["train"].items() if k not in NOT_TRAINING}
    data = {k: v for k, v in plain["data"].items() if k != "name"}
    keyed = {"data": data, "model": plain["model"], "optim": plain["optim"], "quant": plain["quant"], "train": train,
             "seed": cfg.seed, "world_size": cfg.hardware.nproc_per_node * cfg.hardware.nnodes,
             "golf": golf.__version__}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:24]


@dataclass
class CacheEntry:
    path: Path

    @property
    def train_metrics(self) -> dict[str, Any]:
        return json.loads((self.path / ENTRY_METRICS).read_text())

    def copy_artifact_to(self, dest: Path) -> None:
        """A hard link where the file system allows (no copy of 16 MB per job), else a copy."""
        src = self.path / ENTRY_ARTIFACT
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)


class ArtifactCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / f"{key}.lock")):
            yield

    def get(self, key: str) -> Optional[CacheEntry]:
        path = self.root / key
        complete = (path / ENTRY_ARTIFACT).is_file() and (path / ENTRY_METRICS).is_file()
        return CacheEntry(path) if complete else None

    def put(self, key: str, artifact: Path, train_metrics: dict[str, Any]) -> CacheEntry:
        """Store atomically: a reader sees the whole entry or none of it."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        try:
            shutil.copyfile(artifact, tmp / ENTRY_ARTIFACT)
            atomic_write_json(tmp / ENTRY_METRICS, train_metrics)
            os.replace(tmp, self.root / key)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return CacheEntry(self.root / key)
