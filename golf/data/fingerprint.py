"""What a training reads, as one hash: the tokenizer's bytes and every shard's name, size and content.

The artifact cache and the checkpoints are keyed on it (golf/cache.py), so replacing a file of a text folder, adding
a training shard or swapping the tokenizer gives a new key: a model trained on other data is never reused.

Hashing all of FineWeb's shards (about 16 GB) on every run would cost tens of seconds, so each file's full sha256 is
recorded once, in <paths.root>/cache/fingerprints/, beside its stat signature (size, mtime_ns, ctime_ns, inode), as
git's index does; later runs hash again only the files whose signature changed. The ctime cannot be set from user
space, so a file rewritten in place, even with its mtime put back, is hashed again. A file changed within a second of
being hashed ("racy", as git calls it) is not recorded and is hashed again next time.

The same pass records each shard's largest token id, so every shard training will read is checked against the
vocabulary before training (golf/data/checks.py) at no extra cost.

The byte sidecars of CaseOps validation shards (fineweb_val_bytes_*.bin, found beside the validation shards as
evaluation finds them) are covered too: scoring divides by their bytes, so other sidecars mean another score. Data
without sidecars hashes exactly as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from golf.atomic import atomic_write_json
from golf.data.shards import HEADER_BYTES, TOKEN_DTYPE, sidecar_path
from golf.errors import OutputError

READ_BYTES = 1 << 24  # 16 MiB a read: even, so a read of a shard's tokens never splits a uint16
RACY_NS = 1_000_000_000  # a file changed this close to its hashing is hashed again next time
RECORD_FORMAT = 1


@dataclass(frozen=True)
class FileHash:
    name: str
    size: int
    sha256: str
    max_token: Optional[int]  # shards only: the largest token id (-1 for an empty shard)


@dataclass(frozen=True)
class DataFingerprint:
    sha256: str  # over the tokenizer and every shard, in order: what the cache key takes
    tokenizer: FileHash
    train: tuple[FileHash, ...]
    val: tuple[FileHash, ...]
    hashed_bytes: int  # read in this run (0 when every file's record still held)
    seconds: float
    val_bytes: tuple[FileHash, ...] = ()  # the validation shards' byte sidecars (CaseOps data), else none

    def max_token(self, split: str) -> int:
        return max((f.max_token for f in getattr(self, split)), default=-1)


def _signature(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def hash_file(path: Path, shard: bool) -> FileHash:
    """One read of the file: its sha256 and, for a shard, its largest token id."""
    digest, largest, offset = hashlib.sha256(), -1, 0
    with open(path, "rb") as f:
        while block := f.read(READ_BYTES):
            digest.update(block)
            if shard:
                tokens = block[max(0, HEADER_BYTES - offset):]
                if len(tokens) >= 2:
                    largest = max(largest, int(np.frombuffer(tokens[: len(tokens) // 2 * 2], TOKEN_DTYPE).max()))
            offset += len(block)
    return FileHash(path.name, offset, digest.hexdigest(), largest if shard else None)


class FingerprintRecord:
    """The recorded hashes of one folder's files: <record_dir>/<hash of the folder's path>.json."""

    def __init__(self, record_dir: Path, folder: Path):
        key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:24]
        self.path = Path(record_dir) / f"{key}.json"
        self.folder = str(folder.resolve())
        self.entries: dict[str, dict] = {}
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
            if stored.get("format") == RECORD_FORMAT and stored.get("folder") == self.folder:
                self.entries = dict(stored["files"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.entries = {}  # missing or damaged: everything is hashed again
        self.changed = False

    def lookup(self, path: Path, stat: os.stat_result) -> Optional[FileHash]:
        entry = self.entries.get(str(path.resolve()))
        if not isinstance(entry, dict) or entry.get("signature") != _signature(stat):
            return None
        try:
            return FileHash(path.name, int(entry["size"]), str(entry["sha256"]), entry.get("max_token"))
        except (KeyError, TypeError, ValueError):
            return None

    def store(self, path: Path, stat_before: os.stat_result, hashed: FileHash, hashed_at_ns: int) -> None:
        stat_after = path.stat()
        racy = max(stat_after.st_mtime_ns, stat_after.st_ctime_ns) > hashed_at_ns - RACY_NS
        if _signature(stat_after) != _signature(stat_before) or racy:
            self.entries.pop(str(path.resolve()), None)
            return
        self.entries[str(path.resolve())] = {"signature": _signature(stat_after), "size": hashed.size,
                                             "sha256": hashed.sha256, "max_token": hashed.max_token}
        self.changed = True

    def save(self, log: Callable[[str], None]) -> None:
        if not self.changed:
            return
        try:
            atomic_write_json(self.path, {"format": RECORD_FORMAT, "folder": self.folder, "files": self.entries})
        except OutputError as err:  # a read-only cache costs only time: the hashes are computed again next run
            log(f"data fingerprint not recorded ({err}); the next run hashes the data again")


def fingerprint(tokenizer: Path, train: Sequence[Path], val: Sequence[Path], record_dir: Path,
                log: Callable[[str], None] = print) -> DataFingerprint:
    started = time.perf_counter()
    records: dict[Path, FingerprintRecord] = {}
    hashed_bytes = 0

    def file_hash(path: Path, shard: bool) -> FileHash:
        nonlocal hashed_bytes
        path = Path(path)
        folder = path.resolve().parent
        record = records.setdefault(folder, FingerprintRecord(record_dir, folder))
        stat = path.stat()
        known = record.lookup(path, stat)
        if known is not None and (known.max_token is not None or not shard):
            return known
        hashed_at = time.time_ns()
        hashed = hash_file(path, shard)
        hashed_bytes += hashed.size
        record.store(path, stat, hashed, hashed_at)
        return hashed

    tok = file_hash(Path(tokenizer), shard=False)
    splits = {name: tuple(file_hash(f, shard=True) for f in files) for name, files in (("train", train), ("val", val))}
    sidecars = [s for s in (sidecar_path(f) for f in val) if s is not None and s.is_file()]
    splits["val_bytes"] = tuple(file_hash(f, shard=False) for f in sidecars)  # byte counts, not token ids
    for record in records.values():
        record.save(log)
    whole = hashlib.sha256()
    for role, hashed in [("tokenizer", tok)] + [(s, h) for s in ("train", "val", "val_bytes") for h in splits[s]]:
        whole.update(f"{role}\0{hashed.name}\0{hashed.size}\0{hashed.sha256}\n".encode())
    seconds = time.perf_counter() - started
    if hashed_bytes:
        log(f"data fingerprint: hashed {hashed_bytes:,} bytes in {seconds:.1f}s (recorded in {record_dir}; later "
            "runs re-hash only files that changed)")
    return DataFingerprint(whole.hexdigest(), tok, splits["train"], splits["val"], hashed_bytes, seconds,
                           splits["val_bytes"])
