"""Preparing a generated source end to end, its idempotence, and the exact byte count behind bits per byte."""

from __future__ import annotations

import json
import random
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from golf.data.corpus import split_documents, text_dir_documents
from golf.data.prepare import (MANIFEST_NAME, DataConfig, PreparedData, ensure_prepared, locate, prepare)
from golf.data.shards import TokenArray, read_shard, shard_name, write_shard
from golf.data.tokenizer import BOS_ID, byte_tables, encode_documents, load_tokenizer, train_tokenizer
from golf.errors import ConfigError, DataError

VOCAB = 320  # a small corpus: 4 specials + 256 byte pieces + its characters + some merges
SHARD_TOKENS = 25_000  # several train shards, so documents straddle shard boundaries

WORDS = ("the of and to in a is that for it as was with be by on not he this are or his from at which but have an "
         "they you were her she there been one all we their has would when if so no what up out them into more some "
         "time could king queen lord night day love death blood crown sword heart speak know think thou thee thy "
         "hath doth").split()
# Text that SentencePiece's nmt_nfkc normalization and byte fallback have to deal with.
ODDITIES = ["café", "naïve", "Ωmega", "日本語", "🙂", "“quoted”", "—", "ﬁne", "ＡＢＣ", "①", "x\u00a0y",
            "tab\there", "two  spaces", "1599", "3.14", "it's", "\u2581odd", "e\u0301", "\u200bzero", "¿qué?",
            "\r\n"]


def write_varied_corpus(root: Path, n_files: int = 120, seed: int = 0) -> Path:
    """A few hundred KB of English-like text with accents, emoji, digits and odd whitespace."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for index in range(n_files):
        lines = []
        for _ in range(rng.randint(30, 90)):
            words = [rng.choice(ODDITIES) if rng.random() < 0.006 else rng.choice(WORDS)
                     for _ in range(rng.randint(0, 16))]
            line = " ".join(words).capitalize() + rng.choice([".", ",", ";", "!", "?", ":", ""])
            lines.append(rng.choice(["", " ", "  "]) + line + rng.choice(["", "  "]))
        (root / f"part{index % 3}").mkdir(exist_ok=True)
        (root / f"part{index % 3}" / f"doc_{index:03d}.txt").write_text("\n".join(lines), encoding="utf-8")
    return root


def data_config(corpus: Path, shards_dir: Path, **changes) -> DataConfig:
    cfg = DataConfig(name="text_dir", source="text_dir", path=str(corpus), shards_dir=str(shards_dir),
                     tokenizer=str(shards_dir / "tokenizer.model"), vocab_size=VOCAB, val_fraction=0.1,
                     shard_tokens=SHARD_TOKENS)
    return replace(cfg, **changes)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_varied_corpus(tmp_path_factory.mktemp("corpus") / "texts")


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory) -> tuple[DataConfig, PreparedData, list[str]]:
    cfg = data_config(corpus, tmp_path_factory.mktemp("prepared") / "shards")
    logs: list[str] = []
    return cfg, prepare(cfg, log=logs.append), logs


def mtimes(directory: str) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in Path(directory).iterdir()}


def test_prepare_writes_the_challenge_layout(prepared, corpus):
    cfg, data, logs = prepared
    assert 200_000 < sum(f.stat().st_size for f in corpus.rglob("*.txt")) < 600_000
    assert [f.name for f in data.train_files] == [shard_name("train", i) for i in range(len(data.train_files))]
    assert [f.name for f in data.val_files] == [shard_name("val", i) for i in range(len(data.val_files))]
    assert len(data.train_files) >= 3
    assert all(len(read_shard(f)) == SHARD_TOKENS for f in data.train_files[:-1])
    assert 0 < len(read_shard(data.train_files[-1])) <= SHARD_TOKENS
    assert any(read_shard(f)[0] != BOS_ID for f in data.train_files[1:]), "a document straddles two shards"
    assert data.tokenizer_path == Path(cfg.tokenizer).resolve()
    assert load_tokenizer(data.tokenizer_path).get_piece_size() == VOCAB
    assert any("documents" in line for line in logs) and any("prepared" in line for line in logs)

    documents = text_dir_documents(corpus)
    train_docs, val_docs = split_documents(documents, cfg.val_fraction)
    sp = load_tokenizer(data.tokenizer_path)
    for files, docs, count in ((data.train_files, train_docs, data.train_tokens),
                               (data.val_files, val_docs, data.val_tokens)):
        stream = TokenArray.from_files(files)
        expected = encode_documents(sp, (d.text for d in docs))
        assert len(stream) == count == len(expected)
        np.testing.assert_array_equal(stream.read(0, len(stream)), expected)

    manifest = json.loads((Path(cfg.shards_dir) / MANIFEST_NAME).read_text())
    assert manifest["inputs"]["source"] == "text_dir" and manifest["inputs"]["vocab_size"] == VOCAB
    assert manifest["inputs"]["path"] == str(corpus.resolve()) and manifest["inputs"]["shard_tokens"] == SHARD_TOKENS
    assert manifest["train"]["documents"] == len(train_docs) and manifest["val"]["documents"] == len(val_docs)
    assert manifest["val"]["bytes"] == sum(len(d.text.encode("utf-8")) for d in val_docs)
    assert manifest["train"]["tokens"] == data.train_tokens
    # no CaseOps: no sidecars, and the inputs of builds made before data.transform existed still match
    assert "transform" not in manifest["inputs"] and "byte_sidecars" not in manifest["val"]
    assert data.val_byte_files == [] and TokenArray.from_files(data.val_files).byte_counts is None


def test_tokenizer_is_trained_on_train_documents_only(prepared, corpus, tmp_path):
    cfg, data, _ = prepared
    train_docs, _ = split_documents(text_dir_documents(corpus), cfg.val_fraction)
    train_tokenizer((d.text for d in train_docs), VOCAB, tmp_path / "train_only.model")
    assert (tmp_path / "train_only.model").read_bytes() == data.tokenizer_path.read_bytes()


def test_validation_bytes_equal_the_decoded_documents(prepared):
    """docs/bpb.md's byte count over the whole validation stream is exactly the UTF-8 size of the decoded documents."""
    cfg, data, _ = prepared
    sp = load_tokenizer(data.tokenizer_path)
    tables = byte_tables(sp, cfg.vocab_size)
    tokens = TokenArray.from_files(data.val_files).read(0, data.val_tokens)
    previous, targets = tokens[:-1], tokens[1:]
    formula = int(tables.base_bytes[targets].sum()) + int(
        (tables.has_leading_space[targets] & ~tables.is_boundary[previous]).sum())

    starts = np.flatnonzero(tokens == BOS_ID)
    assert starts[0] == 0
    decoded = 0
    for begin, end in zip(starts, [*starts[1:], len(tokens)]):
        decoded += len(sp.decode(tokens[begin + 1: end].tolist()).encode("utf-8"))
    assert formula == decoded
    assert json.loads((Path(cfg.shards_dir) / MANIFEST_NAME).read_text())["val"]["scored_bytes"] == formula
    assert any(sp.is_byte(int(t)) for t in tokens), "the corpus exercises byte fallback"


def test_a_second_prepare_does_no_work(prepared):
    cfg, data, _ = prepared
    before = mtimes(cfg.shards_dir)
    logs: list[str] = []
    again = prepare(cfg, log=logs.append)
    assert again == data
    assert mtimes(cfg.shards_dir) == before
    assert len(logs) == 1 and "already prepared" in logs[0]
    assert locate(cfg) == data and ensure_prepared(cfg, log=logs.append) == data


def test_changed_inputs_rebuild_and_remove_old_shards(corpus, tmp_path):
    texts = tmp_path / "texts"
    shutil.copytree(corpus, texts)
    cfg = data_config(texts, tmp_path / "shards", shard_tokens=10_000)
    first = prepare(cfg, log=lambda line: None)
    with pytest.raises(DataError, match="python -m golf.data prepare data=text_dir"):
        locate(replace(cfg, shard_tokens=40_000))

    second = prepare(replace(cfg, shard_tokens=40_000), log=lambda line: None)
    assert len(second.train_files) < len(first.train_files)
    assert sorted(Path(cfg.shards_dir).glob("fineweb_*.bin")) == sorted(second.train_files + second.val_files)
    assert second.train_tokens == first.train_tokens

    (texts / "part0" / "doc_000.txt").write_text("An edited document.\n", encoding="utf-8")
    logs: list[str] = []
    third = prepare(replace(cfg, shard_tokens=40_000), log=logs.append)
    assert any("prepared" in line for line in logs) and third.train_tokens != second.train_tokens


def test_concurrent_prepares_build_once(corpus, tmp_path):
    cfg = data_config(corpus, tmp_path / "shards")
    logs: list[str] = []
    results: list[PreparedData] = []
    threads = [threading.Thread(target=lambda: results.append(prepare(cfg, log=logs.append))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and results[0] == results[1]
    assert sum(line.startswith("prepared") for line in logs) == 1
    assert sum("already prepared" in line for line in logs) == 1


def test_shards_written_by_something_else_are_not_deleted(corpus, tmp_path):
    cfg = data_config(corpus, tmp_path / "shards")
    foreign = Path(cfg.shards_dir) / shard_name("train", 0)
    write_shard(foreign, [1, 2, 3])
    with pytest.raises(DataError, match="--force"):
        prepare(cfg, log=lambda line: None)
    assert len(read_shard(foreign)) == 3
    assert prepare(cfg, force=True, log=lambda line: None).train_tokens > 3


def test_unknown_source(tmp_path):
    with pytest.raises(ConfigError) as err:
        prepare(DataConfig(source="wikipedia", path=str(tmp_path), shards_dir=str(tmp_path)))
    assert err.value.key == "data.source" and "allowed: shakespeare, text_dir, fineweb" in str(err.value)


def fineweb_layout(out: Path, tokenizer: Path, val_tokens: int = 50) -> Path:
    shards_dir = out / "datasets" / "fineweb10B_sp1024"
    write_shard(shards_dir / shard_name("val", 0), np.arange(val_tokens) % VOCAB)
    for index in range(2):
        write_shard(shards_dir / shard_name("train", index), np.arange(100) % VOCAB)
    (out / "tokenizers").mkdir(parents=True)
    shutil.copy(tokenizer, out / "tokenizers" / "fineweb_1024_bpe.model")
    return shards_dir


def test_fineweb_source_checks_what_is_there(prepared, tmp_path):
    missing = str(tmp_path / "d")
    fineweb = DataConfig(name="fineweb_sp1024", source="fineweb", path=missing, shards_dir=missing,
                         tokenizer=str(tmp_path / "d" / "tok.model"))
    with pytest.raises(DataError, match="scripts/download_fineweb.py") as err:
        ensure_prepared(fineweb)
    assert str(tmp_path / "d") in str(err.value)

    shards_dir = fineweb_layout(tmp_path / "fw", prepared[1].tokenizer_path)
    tokenizer = tmp_path / "fw" / "tokenizers" / "fineweb_1024_bpe.model"
    found = prepare(replace(fineweb, path=str(shards_dir), shards_dir=str(shards_dir), tokenizer=str(tokenizer)),
                    log=lambda line: None)
    assert (found.train_tokens, found.val_tokens, len(found.train_files)) == (200, 50, 2)
    tokenizer.unlink()
    with pytest.raises(DataError, match="tokenizer"):
        locate(replace(fineweb, path=str(shards_dir), shards_dir=str(shards_dir), tokenizer=str(tokenizer)))
