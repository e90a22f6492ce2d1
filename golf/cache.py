"""One training per distinct model: trained artifacts cached under <paths.root>/cache/<key>/.

Jobs of a sweep that differ only in how they evaluate (eval.*, ttt.*, audit.*, logger.*, name) train the same model;
the first one trains and stores its artifact, the others take it. The key hashes everything that affects training and
the stored training metrics: the data *as read* (golf/data/fingerprint.py: the tokenizer's bytes and every shard's
name, size and content, not only the data.* config), model, optim, quant, train (but not its logging cadence or the
reuse switch itself), the evaluation settings of the stored pre-quant score (eval.seq_len, eval.max_tokens), seed,
the world size and golf's version.

Entries are written to a temporary directory and renamed into place; a file lock per key makes parallel launchers
wait for the one training instead of training twice. Before an entry is reused its artifact is checked against the
sha256 recorded with it; an entry that fails (damaged, or missing a file) is dropped and trained anew. A run gets its
own copy of the artifact (a reflink where the file system has them, else a copy; never a hard link), so damaging one
run's file cannot damage the cache or another run.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from filelock import FileLock

import golf
from golf.atomic import atomic_write_json
from golf.digest import file_sha256
from golf.config import GolfConfig, to_plain_dict
from golf.errors import OutputError, is_write_error, output_error

# train.* keys that do not change the trained weights (a resumed run ends with the same weights)
NOT_TRAINING = ("log_every", "val_every", "reuse", "checkpoint_every", "keep_checkpoints", "resume")
ENTRY_ARTIFACT = "artifact.golf"
ENTRY_METRICS = "train_metrics.json"


FICLONE = 0x40049409  # Linux ioctl: share the source's blocks copy-on-write (btrfs, XFS, ...)


def cache_key(cfg: GolfConfig, data_sha256: str) -> str:
    """`data_sha256`: the fingerprint of the data the training reads (golf.data.fingerprint)."""
    plain = to_plain_dict(cfg)
    train = {k: v for k, v in plain["train"].items() if k not in NOT_TRAINING}
    data = {k: v for k, v in plain["data"].items() if k != "name"}
    keyed = {"data": data, "data_sha256": data_sha256, "model": plain["model"], "optim": plain["optim"],
             "quant": plain["quant"], "train": train, "seed": cfg.seed,
             "eval": {"seq_len": cfg.eval.seq_len, "max_tokens": cfg.eval.max_tokens},  # the stored pre-quant score
             "world_size": cfg.hardware.nproc_per_node * cfg.hardware.nnodes, "golf": golf.__version__}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:24]


def private_copy(src: Path, dest: Path) -> None:
    """`dest` as a file of its own: a reflink where the file system has them (no data copied), else a copy."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            try:
                fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
            except OSError:
                fout.truncate(0)
                shutil.copyfileobj(fin, fout, 1 << 24)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class CacheEntry:
    path: Path
    train_metrics: dict[str, Any]

    def copy_artifact_to(self, dest: Path) -> None:
        """A private copy, checked against the entry's recorded sha256 after copying (so a file damaged in the
        cache, or during the copy, is never taken as the trained artifact)."""
        private_copy(self.path / ENTRY_ARTIFACT, dest)
        if file_sha256(dest) != self.train_metrics["artifact_sha256"]:
            raise CacheEntryDamaged(f"the copy of {self.path / ENTRY_ARTIFACT} does not match its recorded sha256")


class CacheEntryDamaged(RuntimeError):
    """An entry's files do not match what it records; the job drops the entry and trains anew."""


class ArtifactCache:
    def __init__(self, root: Path, log: Callable[[str], None] = print):
        self.root = Path(root)
        self.log = log

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / f"{key}.lock")):
            yield

    def get(self, key: str) -> Optional[CacheEntry]:
        """The entry, verified: both files present, the metrics readable and naming the artifact's sha256, the
        artifact matching it. A damaged or incomplete entry is dropped (one line says so) and None returned."""
        path = self.root / key
        if not path.exists():
            return None
        problem = _entry_problem(path)
        if problem is None:
            return CacheEntry(path, json.loads((path / ENTRY_METRICS).read_text()))
        self.log(f"cache entry {path} dropped: {problem}; training anew")
        self.drop(key)
        return None

    def drop(self, key: str) -> None:
        """Remove an entry, first renaming it aside so a reader never sees half of it."""
        path = self.root / key
        if not path.exists():
            return
        aside = Path(tempfile.mkdtemp(prefix=f".{key}.dropped.", dir=self.root))
        os.replace(path, aside / "entry")
        shutil.rmtree(aside, ignore_errors=True)

    def put(self, key: str, artifact: Path, train_metrics: dict[str, Any]) -> CacheEntry:
        """Store atomically: a reader sees the whole entry or none of it. An existing entry under the key (one that
        failed verification) is replaced. A full or read-only disk is an OutputError naming the cache path."""
        tmp = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
            private_copy(artifact, tmp / ENTRY_ARTIFACT)
            atomic_write_json(tmp / ENTRY_METRICS, train_metrics)
            self.drop(key)
            os.replace(tmp, self.root / key)
        except BaseException as err:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            cause = err.__cause__ if isinstance(err, OutputError) else err  # OutputError: it named the temporary file
            if isinstance(cause, OSError) and is_write_error(cause):
                raise output_error(cause, self.root / key) from err
            raise
        return CacheEntry(self.root / key, dict(train_metrics))


def _entry_problem(path: Path) -> Optional[str]:
    """Why the entry at `path` cannot be trusted, or None."""
    if not (path / ENTRY_ARTIFACT).is_file():
        return f"its {ENTRY_ARTIFACT} is missing"
    try:
        metrics = json.loads((path / ENTRY_METRICS).read_text())
        recorded = metrics["artifact_sha256"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return f"its {ENTRY_METRICS} is missing or unreadable"
    try:
        actual = file_sha256(path / ENTRY_ARTIFACT)
    except OSError as err:
        return f"its {ENTRY_ARTIFACT} cannot be read ({err.strerror or err})"
    if actual != recorded:
        return f"its {ENTRY_ARTIFACT} does not match the sha256 recorded when it was stored (damaged)"
    return None
