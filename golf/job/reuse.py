"""The artifact cache around stages 2-3 (train.reuse): an identical training done before (same cache key: config
and data fingerprint) gives its verified artifact instead of training again. Rank 0 alone consults and fills the
cache; the others follow its decision (broadcast). A parallel job with the same key waits on the key's lock for this
training instead of repeating it."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Optional

from golf.cache import ArtifactCache, CacheEntry, CacheEntryDamaged, cache_key
from golf.collectives import broadcast_object
from golf.errors import OutputError
from golf.job.artifact import ARTIFACT_NAME
from golf.job.prepare import Job


def reused_or_made(job: Job, data_sha256: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The cached training's metrics (its artifact copied into the run directory), or `make()`'s, stored when ok."""
    cfg, log, main = job.cfg, job.run.log, job.main
    artifact = job.run.path / ARTIFACT_NAME
    cache, key = ArtifactCache(Path(cfg.paths.root) / "cache", log=log), cache_key(cfg, data_sha256)
    with cache.lock(key) if main else contextlib.nullcontext():
        entry = _reusable_entry(cache, key, artifact, log) if main else None
        reused = broadcast_object(entry.train_metrics if entry is not None else None)
        if reused is not None:
            log(f"reusing the trained artifact of cache entry {Path(cfg.paths.root) / 'cache' / key} "
                "(verified against its sha256; train.reuse=false trains anew)")
            return {**reused, "reused_artifact": True, "cache_key": key}
        metrics = make()
        metrics["cache_key"] = key
        if main and metrics["status"] == "ok":
            _store(cache, key, artifact, metrics, log)
    return metrics


def _reusable_entry(cache: ArtifactCache, key: str, artifact: Path, log) -> Optional[CacheEntry]:
    """The verified cache entry under `key` with its artifact copied to `artifact`, or None (a damaged entry is
    dropped, saying so, and the job trains anew)."""
    entry = cache.get(key)
    if entry is None:
        return None
    try:
        entry.copy_artifact_to(artifact)
    except CacheEntryDamaged as err:
        log(f"cache entry {entry.path} dropped: {err}; training anew")
        cache.drop(key)
        return None
    return entry


def _store(cache: ArtifactCache, key: str, artifact: Path, metrics: dict[str, Any], log) -> None:
    """Into the cache; a cache that cannot be written (disk full, read-only) costs only later reuse, not this run."""
    try:
        cache.put(key, artifact, metrics)
    except OutputError as err:
        log(f"cache entry not stored: {err}; this run's result stands, a later identical run trains again")
