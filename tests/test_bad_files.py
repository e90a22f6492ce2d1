"""Bad files and places: malformed, truncated and wrong-version shards, tokenizers and artifacts are refused naming the
file; data that cannot train or score is refused before any training; outputs that cannot be written are named."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import struct
from pathlib import Path

import brotli
import numpy as np
import pytest
import sentencepiece as spm
import torch

from golf.atomic import atomic_write_bytes
from golf.cli import compose
from golf.config import to_golf_config
from golf.data.shards import HEADER_BYTES, read_shard, shard_name, write_shard
from golf.data.tokenizer import encode_documents, load_tokenizer, train_tokenizer
from golf.errors import ConfigError, DataError, GolfError, OutputError
from golf.job.prepare import load_data
from golf.model.gpt import GPT
from golf.quant.artifact import export_artifact, write_artifact
from golf.quant.config import QuantConfig
from golf.runs import RunDir

from testkit import golf_command

VOCAB = 384


@pytest.fixture(scope="module")
def good_data(tmp_path_factory, text_corpus) -> Path:
    """A data set in FineWeb's layout (used as it is, no preparation): shards/ and tokenizer.model."""
    root = tmp_path_factory.mktemp("good_data")
    docs = [p.read_text() for p in sorted(text_corpus.glob("*.txt"))]
    train_tokenizer(docs[6:], VOCAB, root / "tokenizer.model")
    sp = load_tokenizer(root / "tokenizer.model", expected_vocab_size=VOCAB)
    write_shard(root / "shards" / shard_name("train", 0), encode_documents(sp, docs[6:]))
    write_shard(root / "shards" / shard_name("val", 0), encode_documents(sp, docs[:6]))
    return root


@pytest.fixture
def data(good_data, tmp_path) -> Path:
    """A fresh copy of the good data set, to break."""
    return Path(shutil.copytree(good_data, tmp_path / "data"))


def data_args(data: Path, *extra: str) -> list[str]:
    return ["data=fineweb_sp1024", f"data.path={data / 'shards'}", f"data.tokenizer={data / 'tokenizer.model'}",
            f"data.vocab_size={VOCAB}", "model=tiny", "train.seq_len=128", "train.batch_tokens=1024", *extra]


def load(data: Path, *extra: str):
    return load_data(to_golf_config(compose(data_args(data, *extra))), lambda _line: None)


def val_shard(data: Path) -> Path:
    return data / "shards" / shard_name("val", 0)


def train_shard(data: Path) -> Path:
    return data / "shards" / shard_name("train", 0)


def set_header(path: Path, index: int, value: int) -> None:
    raw = bytearray(path.read_bytes())
    struct.pack_into("<i", raw, 4 * index, value)
    path.write_bytes(bytes(raw))


def test_the_good_data_loads(data):
    _, sp, _, val = load(data)
    assert sp.get_piece_size() == VOCAB and len(val) > 1000


# -- shards -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage,expected", [
    (lambda p: p.write_bytes(p.read_bytes()[:-1]), "truncated"),
    (lambda p: p.write_bytes(p.read_bytes()[:HEADER_BYTES - 10]), "shorter than the 1024-byte header"),
    (lambda p: set_header(p, 0, 20240521), "magic"),
    (lambda p: set_header(p, 1, 2), "version 2"),
    (lambda p: set_header(p, 2, -5), "negative token count"),
    (lambda p: set_header(p, 2, 2 ** 31 - 1), "header says 2147483647 tokens"),
    (lambda p: p.write_bytes(p.read_bytes() + b"\0\0"), "extra bytes"),
], ids=["truncated", "short-header", "magic", "version", "negative-count", "count-too-large", "extra-bytes"])
@pytest.mark.parametrize("split", ["train", "val"])
def test_a_bad_shard_is_refused_naming_it(data, damage, expected, split):
    shard = val_shard(data) if split == "val" else train_shard(data)
    damage(shard)
    with pytest.raises(DataError) as info:
        load(data)
    assert str(shard) in str(info.value) and expected in str(info.value), str(info.value)


# -- tokenizers -------------------------------------------------------------------------------------------------

def test_garbage_and_truncated_tokenizers_are_refused_naming_the_file(data):
    path = data / "tokenizer.model"
    good = path.read_bytes()
    for bad in (b"", b"\x00" * 64, b"not a tokenizer at all", good[: len(good) // 2], good[:-1], good[:10]):
        path.write_bytes(bad)
        with pytest.raises(DataError) as info:
            load(data)
        assert str(path) in str(info.value), str(info.value)


def test_a_tokenizer_trained_with_other_settings_is_refused(data, text_corpus):
    """No byte fallback (or another BOS id) would make the shards' stream and the byte counts mean something else."""
    docs = [p.read_text() for p in sorted(text_corpus.glob("*.txt"))[:20]]
    for options, expected in ((dict(byte_fallback=False), "byte-fallback"), (dict(bos_id=2, eos_id=1), "BOS")):
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(docs), model_writer=model, vocab_size=VOCAB,
                                       model_type="bpe", minloglevel=2, **options)
        path = data / "other.model"
        path.write_bytes(model.getvalue())
        with pytest.raises(DataError, match=expected) as info:
            load_tokenizer(path)
        assert str(path) in str(info.value)


def test_a_vocab_size_that_does_not_match_the_tokenizer_is_refused(data):
    with pytest.raises(ConfigError) as info:
        load(data, "data.vocab_size=512")
    assert info.value.key == "data.vocab_size" and str(data / "tokenizer.model") in str(info.value)


def test_shards_made_with_a_larger_vocabulary_are_refused_before_training(data):
    tokens = read_shard(val_shard(data)).copy()
    tokens[5] = 1000  # an id the 384-row embedding does not have
    write_shard(val_shard(data), tokens)
    with pytest.raises(ConfigError) as info:
        load(data)
    assert info.value.key == "data.vocab_size" and "token id 1000" in str(info.value)
    assert str(data / "shards") in str(info.value)


# -- data that cannot train or score ------------------------------------------------------------------------------

def test_an_empty_validation_set_is_refused(data):
    write_shard(val_shard(data), [])
    with pytest.raises(DataError, match="validation set .* is empty") as info:
        load(data)
    assert str(data / "shards") in str(info.value)


def test_a_train_seq_len_longer_than_the_training_data_is_refused(data):
    write_shard(train_shard(data), np.arange(100) % VOCAB)
    with pytest.raises(ConfigError) as info:
        load(data)
    assert info.value.key == "train.seq_len" and "100 tokens" in str(info.value)


def test_an_eval_seq_len_longer_than_the_validation_set_is_refused(data):
    write_shard(val_shard(data), np.arange(100) % VOCAB)
    with pytest.raises(ConfigError) as info:
        load(data)
    assert info.value.key == "eval.seq_len" and "100 tokens" in str(info.value)


# -- the same through the command line: one paragraph, exit code 2, before any training ---------------------------

def assert_refused(result, *named: str) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("golf: ") and all(name in last for name in named), result.stderr
    assert "Error executing job" not in result.stderr
    return last


@pytest.mark.parametrize("damage,named", [
    (lambda d: val_shard(d).write_bytes(val_shard(d).read_bytes()[:-3]), lambda d: [str(val_shard(d))]),
    (lambda d: write_shard(train_shard(d), np.arange(50)), lambda d: ["train.seq_len"]),
    (lambda d: write_shard(d / "shards" / shard_name("train", 1), np.array([1, 5, 1000, 7])),
     lambda d: ["data.vocab_size", str(d / "shards" / shard_name("train", 1)), "token id 1000"]),
], ids=["truncated-val-shard", "seq-len-longer-than-data", "bad-id-in-a-later-train-shard"])
def test_golf_train_refuses_bad_data_before_training(data, tmp_path, damage, named):
    damage(data)
    result = golf_command("golf.train", *data_args(data), "logger=none", f"paths.root={tmp_path / 'out'}")
    assert_refused(result, *named(data))
    (run,) = (tmp_path / "out" / "runs").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "steps" not in metrics, metrics
    assert not (run / "metrics.jsonl").exists() and not (run / "artifact.golf").exists(), "nothing was trained"


@pytest.fixture(scope="module")
def artifact_bytes() -> bytes:
    cfg = to_golf_config(compose(["model=tiny", f"data.vocab_size={VOCAB}"]))
    torch.manual_seed(0)
    state = {k: v.detach() for k, v in GPT(cfg.model, VOCAB).state_dict().items()}
    from dataclasses import asdict

    return export_artifact(state, asdict(cfg.model), VOCAB, QuantConfig()).data


def with_version(good: bytes, version: int) -> bytes:
    """The artifact with the version in its header (format 2: brotli-compressed JSON after a 16-byte prefix)."""
    packed, _ = struct.unpack_from("<II", good, 8)
    header = brotli.decompress(good[16:16 + packed]).replace(b'"version":2', b'"version":%d' % version, 1)
    new = brotli.compress(header)
    return good[:8] + struct.pack("<II", len(new), len(header)) + new + good[16 + packed:]


@pytest.mark.parametrize("make,reason", [
    (lambda good: good[: len(good) // 2], "truncated"),
    (lambda good: with_version(good, 7), "unknown artifact version 7"),
], ids=["truncated", "version"])  # a wrong magic: tests/test_safety.py (a pickle handed in as the artifact)
def test_golf_eval_refuses_a_bad_artifact_naming_it(good_data, artifact_bytes, tmp_path, make, reason):
    path = tmp_path / "bad.golf"
    path.write_bytes(make(artifact_bytes))
    result = golf_command("golf.eval", f"artifact={path}", *data_args(good_data), "logger=none",
                          f"paths.root={tmp_path / 'out'}")
    assert_refused(result, str(path), reason)


@pytest.mark.parametrize("model_change", [{"bogus": 1}, {"num_layers": 5}], ids=["unknown key", "tensors mismatch"])
def test_an_artifact_whose_header_does_not_match_its_tensors_is_refused(tmp_path, model_change):
    from dataclasses import asdict

    from golf.evaluate.artifact_eval import load_model
    from golf.quant.artifact import ArtifactError, load_artifact

    cfg = to_golf_config(compose(["model=tiny", f"data.vocab_size={VOCAB}"]))
    torch.manual_seed(0)
    state = {k: v.detach() for k, v in GPT(cfg.model, VOCAB).state_dict().items()}
    path = tmp_path / "odd.golf"
    path.write_bytes(export_artifact(state, {**asdict(cfg.model), **model_change}, VOCAB, QuantConfig()).data)
    with pytest.raises(ArtifactError, match="do not make a golf model") as refused:
        load_model(load_artifact(path), torch.device("cpu"))
    assert str(path) in str(refused.value)


def test_golf_eval_scores_the_good_artifact(good_data, artifact_bytes, tmp_path):
    """The control for the refusals above: the same command with the intact file succeeds."""
    path = tmp_path / "good.golf"
    write_artifact(path, type("R", (), {"data": artifact_bytes})())
    result = golf_command("golf.eval", f"artifact={path}", *data_args(good_data), "logger=none",
                          "eval.max_tokens=1024", f"paths.root={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr[-3000:]


# -- outputs that cannot be written ---------------------------------------------------------------------------------

def unwritable_root(tmp_path: Path) -> list[Path]:
    """Places no process can write under: below a regular file (ENOTDIR, even as root), and, when not root, a
    read-only folder (EACCES)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    places = [blocker / "outputs"]
    if os.geteuid() != 0:
        locked = tmp_path / "read-only"
        locked.mkdir()
        locked.chmod(0o555)
        places.append(locked / "outputs")
    return places


def test_golf_train_names_an_output_folder_it_cannot_write(tmp_path):
    for root in unwritable_root(tmp_path):
        result = golf_command("golf.train", "train.iterations=0", f"paths.root={root}")
        assert_refused(result, str(root), "cannot write")


def test_golf_data_prepare_names_an_output_folder_it_cannot_write(tmp_path, text_corpus):
    for root in unwritable_root(tmp_path):
        result = golf_command("golf.data", "prepare", "data=text_dir", f"data.path={text_corpus}",
                              f"paths.root={root}")
        assert_refused(result, str(root), "cannot write")


def test_atomic_writes_name_the_path_on_a_full_disk_and_leave_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    path.write_bytes(b"old")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError) as info:
        atomic_write_bytes(path, b"new")
    assert str(path) in str(info.value) and "disk is full" in str(info.value)
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    assert isinstance(info.value, GolfError) and info.value.exit_code == 2


def test_run_directory_writes_name_the_file(tmp_path):
    run = RunDir(tmp_path / "run")
    (tmp_path / "run" / "train.log").mkdir()  # something that is not a file where the log goes
    with pytest.raises(OutputError) as info:
        run.log("hello")
    assert str(tmp_path / "run" / "train.log") in str(info.value)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as info:
        RunDir(blocker / "run")
    assert str(blocker / "run") in str(info.value)
