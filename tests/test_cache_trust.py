"""What a rerun reuses is what it claims to be: the cache key follows the data as read (not only its config), cache
entries are verified before reuse and never share a file with a run, damaged or incomplete entries are replaced, and
a cache that cannot be written costs only later reuse."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import golf.cache
from golf.cache import ENTRY_ARTIFACT, ENTRY_METRICS, ArtifactCache, CacheEntryDamaged
from golf.cli import compose
from golf.config import to_golf_config
from golf.data.fingerprint import fingerprint
from golf.data.shards import shard_name, write_shard
from golf.errors import OutputError
from golf.job import run_job

from testkit import write_text_corpus


def shards(folder: Path, n_train: int = 1) -> tuple[Path, list[Path], list[Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(b"a tokenizer's bytes")
    train = [folder / shard_name("train", i) for i in range(n_train)]
    for i, path in enumerate(train):
        write_shard(path, np.arange(1000) % (100 + i))
    val = [folder / shard_name("val", 0)]
    write_shard(val[0], np.arange(500) % 50)
    return folder / "tokenizer.model", train, val


def fp(folder: Path, records: Path, n_train: int | None = None):
    train = sorted(folder.glob("fineweb_train_*.bin"))[:n_train]
    return fingerprint(folder / "tokenizer.model", train, sorted(folder.glob("fineweb_val_*.bin")), records,
                       log=lambda _: None)


# -- the data fingerprint -------------------------------------------------------------------------------------------

def test_the_fingerprint_changes_with_every_file_training_reads(tmp_path):
    folder, records = tmp_path / "data", tmp_path / "records"
    shards(folder, n_train=2)
    base = fp(folder, records)
    assert fp(folder, records).sha256 == base.sha256  # stable
    assert fp(folder, records, n_train=1).sha256 != base.sha256  # a shard fewer (or, read the other way, one added)
    (folder / "tokenizer.model").write_bytes(b"another tokenizer")
    assert fp(folder, records).sha256 != base.sha256
    assert base.max_token("train") == 100 and base.max_token("val") == 49


def test_a_shard_rewritten_in_place_with_its_mtime_put_back_is_hashed_again(tmp_path):
    folder, records = tmp_path / "data", tmp_path / "records"
    _, train, _ = shards(folder)
    before = fp(folder, records)
    stat = train[0].stat()
    raw = bytearray(train[0].read_bytes())
    raw[-2] ^= 0x01  # one token, same size
    with open(train[0], "r+b") as f:
        f.write(raw)
    os.utime(train[0], ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `cp -p` or a careful hand would
    assert train[0].stat().st_size == stat.st_size and train[0].stat().st_mtime_ns == stat.st_mtime_ns
    assert fp(folder, records).sha256 != before.sha256


def test_recorded_hashes_are_reused_and_a_damaged_record_only_costs_time(tmp_path, monkeypatch):
    folder, records = tmp_path / "data", tmp_path / "records"
    shards(folder)
    first = fp(folder, records)
    assert first.hashed_bytes > 0 and not records.exists()  # just written ("racy"): not trusted to a record yet
    monkeypatch.setattr("golf.data.fingerprint.RACY_NS", 0)  # as if they had been written a while ago
    first = fp(folder, records)
    assert first.hashed_bytes > 0
    again = fp(folder, records)
    assert again.hashed_bytes == 0 and again.sha256 == first.sha256
    for record in records.iterdir():
        record.write_text("{damaged")
    assert fp(folder, records).sha256 == first.sha256


# -- the cache itself -----------------------------------------------------------------------------------------------

def stored(tmp_path: Path) -> tuple[ArtifactCache, Path]:
    artifact = tmp_path / "run" / "artifact.golf"
    artifact.parent.mkdir()
    artifact.write_bytes(os.urandom(4096))
    cache = ArtifactCache(tmp_path / "cache", log=lambda _: None)
    cache.put("k", artifact, {"status": "ok", "artifact_sha256": golf.cache.file_sha256(artifact)})
    return cache, artifact


def test_a_reused_artifact_is_a_copy_of_its_own(tmp_path):
    cache, _ = stored(tmp_path)
    dest = tmp_path / "other" / "artifact.golf"
    dest.parent.mkdir()
    cache.get("k").copy_artifact_to(dest)
    assert dest.stat().st_ino != (tmp_path / "cache" / "k" / ENTRY_ARTIFACT).stat().st_ino
    dest.write_bytes(b"damaged by hand")  # damaging a run's file leaves the cache whole
    assert cache.get("k") is not None


@pytest.mark.parametrize("damage", ["flip a byte", "remove the artifact", "remove the metrics", "garble the metrics"])
def test_a_damaged_or_incomplete_entry_is_dropped_saying_so(tmp_path, damage):
    cache, artifact = stored(tmp_path)
    entry = tmp_path / "cache" / "k"
    if damage == "flip a byte":
        raw = bytearray((entry / ENTRY_ARTIFACT).read_bytes())
        raw[100] ^= 0xFF
        (entry / ENTRY_ARTIFACT).write_bytes(bytes(raw))
    elif damage == "remove the artifact":
        (entry / ENTRY_ARTIFACT).unlink()
    elif damage == "remove the metrics":
        (entry / ENTRY_METRICS).unlink()
    else:
        (entry / ENTRY_METRICS).write_text("[" * 100_000)
    lines: list[str] = []
    cache.log = lines.append
    assert cache.get("k") is None and not entry.exists()
    assert len(lines) == 1 and str(entry) in lines[0] and "dropped" in lines[0], lines
    # and the next store under the key works (it failed with "directory not empty" when the metrics were left)
    cache.put("k", artifact, {"status": "ok", "artifact_sha256": golf.cache.file_sha256(artifact)})
    assert cache.get("k") is not None


def test_a_copy_that_does_not_match_the_recorded_sha256_is_refused(tmp_path, monkeypatch):
    cache, _ = stored(tmp_path)
    entry = cache.get("k")

    def bad_copy(src, dest):
        Path(dest).write_bytes(b"bytes that went wrong on the way")

    monkeypatch.setattr(golf.cache, "private_copy", bad_copy)
    with pytest.raises(CacheEntryDamaged):
        entry.copy_artifact_to(tmp_path / "x.golf")


def test_a_full_disk_while_storing_names_the_cache_path(tmp_path, monkeypatch):
    artifact = tmp_path / "artifact.golf"
    artifact.write_bytes(b"weights")

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(shutil, "copyfileobj", full)
    monkeypatch.setattr(golf.cache.fcntl, "ioctl", full)
    cache = ArtifactCache(tmp_path / "cache", log=lambda _: None)
    with pytest.raises(OutputError) as refused:
        cache.put("k", artifact, {"artifact_sha256": "x"})
    assert str(tmp_path / "cache" / "k") in str(refused.value) and "No space left" in str(refused.value)
    assert str(artifact) not in str(refused.value)  # the source is fine: the cache is what could not be written
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


# -- end to end: a changed corpus is trained anew; a damaged entry is retrained; a run's result survives a full cache

TINY = ["model=tiny", "data=text_dir", "data.vocab_size=384", "train.batch_tokens=2048", "train.seq_len=128",
        "train.iterations=4", "train.warmdown_steps=2", "eval.batch_seqs=16", "eval.max_tokens=4097",
        "eval.compressor_baselines=false", "logger=none", "train.val_every=0"]


@pytest.mark.slow
def test_replacing_the_corpus_trains_anew_and_damage_is_retrained(tmp_path, monkeypatch):
    corpus = write_text_corpus(tmp_path / "corpus", n_files=30, words_per_file=400)
    cfg = to_golf_config(compose([*TINY, f"data.path={corpus}", f"paths.root={tmp_path / 'out'}"]))
    first = run_job(cfg, tmp_path / "r1", overrides=[])
    again = run_job(cfg, tmp_path / "r2", overrides=[])
    assert not first["reused_artifact"] and again["reused_artifact"] and again["val_bpb"] == first["val_bpb"]
    assert (tmp_path / "r2" / "artifact.golf").stat().st_ino != (tmp_path / "r1" / "artifact.golf").stat().st_ino

    # the same data config, other files: the model trained on the old corpus must not be reused
    shutil.rmtree(corpus)
    write_text_corpus(corpus, n_files=30, words_per_file=400, seed=7)
    changed = run_job(cfg, tmp_path / "r3", overrides=[])
    assert not changed["reused_artifact"] and changed["data_sha256"] != first["data_sha256"]
    assert changed["cache_key"] != first["cache_key"]

    # a damaged cache entry is dropped, said in one line, and trained again
    entry = tmp_path / "out" / "cache" / changed["cache_key"] / ENTRY_ARTIFACT
    raw = bytearray(entry.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    entry.write_bytes(bytes(raw))
    retrained = run_job(cfg, tmp_path / "r4", overrides=[])
    assert not retrained["reused_artifact"] and retrained["artifact_sha256"] == changed["artifact_sha256"]
    assert "dropped" in (tmp_path / "r4" / "train.log").read_text()

    # a cache that cannot be written: the run's own result stands, and the log names the cache path
    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(golf.cache, "private_copy", full)
    other = to_golf_config(compose([*TINY, f"data.path={corpus}", f"paths.root={tmp_path / 'out'}", "seed=5"]))
    kept = run_job(other, tmp_path / "r5", overrides=[])
    assert kept["status"] == "ok" and (tmp_path / "r5" / "artifact.golf").is_file()
    log = (tmp_path / "r5" / "train.log").read_text()
    assert "cache entry not stored" in log and str(tmp_path / "out" / "cache") in log
    assert json.loads((tmp_path / "r5" / "metrics.json").read_text())["status"] == "ok"
