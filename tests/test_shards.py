"""Shards in the challenge's format: exact bytes on disk, clear errors for every way a file can be wrong."""

from __future__ import annotations

import numpy as np
import pytest

from golf.data.layout import check_layout
from golf.data.shards import (HEADER_BYTES, SHARD_MAGIC, SHARD_VERSION, TokenArray, list_shards, parse_shard_name,
                              read_shard, shard_name, sidecar_path, write_shard)
from golf.errors import DataError


def header_bytes(magic: int = SHARD_MAGIC, version: int = SHARD_VERSION, n_tokens: int = 0) -> bytes:
    header = np.zeros(256, dtype="<i4")
    header[:3] = (magic, version, n_tokens)
    return header.tobytes()


def test_round_trip_and_exact_layout(tmp_path):
    tokens = np.array([0, 1, 2, 1023, 65535, 300], dtype=np.int64)
    path = tmp_path / shard_name("train", 0)
    write_shard(path, tokens)
    raw = path.read_bytes()
    assert len(raw) == HEADER_BYTES + 2 * len(tokens)
    assert raw[:HEADER_BYTES] == header_bytes(n_tokens=len(tokens))
    assert raw[HEADER_BYTES:] == tokens.astype("<u2").tobytes()
    loaded = read_shard(path)
    assert isinstance(loaded, np.memmap) and loaded.dtype == np.dtype("<u2") and not loaded.flags.writeable
    np.testing.assert_array_equal(loaded, tokens)
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file is renamed, not left behind"


def test_empty_shard_round_trips(tmp_path):
    write_shard(tmp_path / "e.bin", [])
    assert len(read_shard(tmp_path / "e.bin")) == 0


def test_names_follow_the_challenge():
    assert shard_name("train", 0) == "fineweb_train_000000.bin"
    assert shard_name("val", 12) == "fineweb_val_000012.bin"
    with pytest.raises(ValueError):
        shard_name("test", 0)


@pytest.mark.parametrize("tokens", [[-1, 2], [65536], np.array([1.5])])
def test_write_rejects_tokens_outside_uint16(tmp_path, tokens):
    with pytest.raises(ValueError):
        write_shard(tmp_path / "bad.bin", tokens)
    assert not (tmp_path / "bad.bin").exists()


@pytest.mark.parametrize(
    "content,expected",
    [
        (header_bytes(magic=123, n_tokens=1) + b"\0\0", "has magic 123, expected 20240520: not a Parameter Golf shard"),
        (header_bytes(version=2, n_tokens=1) + b"\0\0", "has version 2, expected 1"),
        (header_bytes(n_tokens=512) + b"\0" * 1023, "is 2047 bytes but its header says 512 tokens, so it should be "
                                                    "2048 bytes: truncated or corrupted"),
        (header_bytes(n_tokens=1) + b"\0" * 4, "is 1028 bytes but its header says 1 tokens, so it should be 1026"),
        (b"\0" * 100, "is 100 bytes, shorter than the 1024-byte header"),
    ],
    ids=["bad-magic", "bad-version", "truncated", "extra-bytes", "short-header"],
)
def test_malformed_shards_are_named(tmp_path, content, expected):
    path = tmp_path / "fineweb_val_000000.bin"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_shard(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_missing_shard_is_named(tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        read_shard(tmp_path / "nope.bin")
    assert str(tmp_path / "nope.bin") in str(err.value)


def test_list_shards_sorted_and_explains_when_none(tmp_path):
    for index in (2, 0, 1):
        write_shard(tmp_path / shard_name("train", index), [index])
    write_shard(tmp_path / shard_name("val", 0), [9])
    assert [p.name for p in list_shards(tmp_path, "train")] == [shard_name("train", i) for i in range(3)]
    with pytest.raises(DataError) as err:
        list_shards(tmp_path / "empty", "val")
    assert "fineweb_val_*.bin" in str(err.value) and "python -m golf.data prepare" in str(err.value)
    assert str(tmp_path / "empty") in str(err.value)


def test_token_array_reads_across_shard_boundaries(tmp_path):
    tokens = np.arange(1000, 1250)
    files = []
    for index, (begin, end) in enumerate([(0, 100), (100, 100), (100, 170), (170, 250)]):  # one shard is empty
        files.append(tmp_path / shard_name("val", index))
        write_shard(files[-1], tokens[begin:end])
    array = TokenArray.from_files(files)
    assert len(array) == 250
    for start, stop in [(0, 250), (95, 105), (100, 170), (99, 171), (169, 250), (250, 250), (0, 0), (37, 38)]:
        chunk = array.read(start, stop)
        assert chunk.dtype == np.int64
        np.testing.assert_array_equal(chunk, tokens[start:stop])
    with pytest.raises(IndexError):
        array.read(200, 251)
    limited = TokenArray.from_files(files, max_tokens=120)
    assert len(limited) == 120
    np.testing.assert_array_equal(limited.read(0, 120), tokens[:120])


# --- byte sidecars and the folder's layout ---------------------------------------------------------------------------

def caseops_folder(root, n_val: int = 2, sidecars: bool = True):
    """Two train shards, n_val validation shards of 5 tokens and, with sidecars, their byte counts (ids + 1)."""
    root.mkdir(parents=True, exist_ok=True)
    for index in range(2):
        write_shard(root / shard_name("train", index), np.arange(10) + index)
    for index in range(n_val):
        tokens = np.arange(5) + 10 * index
        write_shard(root / shard_name("val", index), tokens)
        if sidecars:
            write_shard(root / shard_name("val_bytes", index), tokens + 1)
    return root


def test_the_validation_glob_does_not_take_the_sidecars(tmp_path):
    folder = caseops_folder(tmp_path / "d")
    assert sorted(folder.glob("fineweb_val_*.bin")) != list_shards(folder, "val"), "the glob alone would take them"
    assert [p.name for p in list_shards(folder, "val")] == [shard_name("val", 0), shard_name("val", 1)]
    assert [p.name for p in list_shards(folder, "val_bytes")] == [shard_name("val_bytes", 0),
                                                                  shard_name("val_bytes", 1)]
    assert parse_shard_name("fineweb_val_bytes_000003.bin") == ("val_bytes", 3)
    assert parse_shard_name("fineweb_val_000003.bin") == ("val", 3)
    for odd in ("fineweb_val_3.bin", "fineweb_test_000000.bin", "fineweb_val_000003.bin.tmp", "x_val_000000.bin"):
        assert parse_shard_name(odd) is None
    assert sidecar_path(folder / shard_name("val", 1)) == folder / shard_name("val_bytes", 1)
    assert sidecar_path(folder / shard_name("train", 1)) is None


def test_layout_as_the_config_expects(tmp_path):
    folder = caseops_folder(tmp_path / "d")
    layout = check_layout(folder, byte_sidecars=True, remedy="fix it")
    assert [p.name for p in layout.val_bytes] == [shard_name("val_bytes", i) for i in range(2)]
    assert [p.name for p in layout.val] == [shard_name("val", i) for i in range(2)]
    assert len(layout.train) == 2
    plain = caseops_folder(tmp_path / "plain", sidecars=False)
    assert check_layout(plain, byte_sidecars=False, remedy="fix it").val_bytes == []


def refused(folder, byte_sidecars: bool) -> str:
    with pytest.raises(DataError) as err:
        check_layout(folder, byte_sidecars, remedy="REMEDY")
    return str(err.value)


def test_layouts_that_do_not_fit_are_refused_by_name(tmp_path):
    message = refused(caseops_folder(tmp_path / "a"), byte_sidecars=False)
    assert "fineweb_val_bytes_000000.bin" in message and "data.transform" in message

    message = refused(caseops_folder(tmp_path / "b", sidecars=False), byte_sidecars=True)
    assert "fineweb_val_bytes_000000.bin, fineweb_val_bytes_000001.bin" in message

    folder = caseops_folder(tmp_path / "c")
    (folder / shard_name("val_bytes", 1)).unlink()
    assert "lacks the byte sidecar(s) fineweb_val_bytes_000001.bin" in refused(folder, byte_sidecars=True)

    folder = caseops_folder(tmp_path / "d")
    write_shard(folder / shard_name("val_bytes", 1), np.ones(4, dtype=int))  # one entry short
    message = refused(folder, byte_sidecars=True)
    assert "fineweb_val_bytes_000001.bin holds 4 entries" in message and "5 tokens" in message

    folder = caseops_folder(tmp_path / "e")
    write_shard(folder / shard_name("val_bytes", 2), np.ones(5, dtype=int))  # a sidecar of no validation shard
    assert "fineweb_val_bytes_000002.bin" in refused(folder, byte_sidecars=True)

    folder = caseops_folder(tmp_path / "f", sidecars=False)
    (folder / shard_name("train", 0)).unlink()  # a gap: train 1 without train 0
    assert "lacks fineweb_train_000000.bin" in refused(folder, byte_sidecars=False)

    folder = caseops_folder(tmp_path / "g", sidecars=False)
    (folder / "fineweb_val_1.bin").write_bytes(b"")
    (folder / "fineweb_test_000000.bin").write_bytes(b"")
    message = refused(folder, byte_sidecars=False)
    assert "fineweb_test_000000.bin, fineweb_val_1.bin" in message

    folder = tmp_path / "h"
    folder.mkdir()
    write_shard(folder / shard_name("val", 0), [1, 2])
    assert "fineweb_train_*.bin" in refused(folder, byte_sidecars=False) and "REMEDY" in refused(folder, False)
    assert "does not exist" in refused(tmp_path / "missing", byte_sidecars=False)


def test_token_array_brings_the_sidecars_along(tmp_path):
    folder = caseops_folder(tmp_path / "d")
    val = TokenArray.from_files(list_shards(folder, "val"))
    assert val.byte_counts is not None and len(val.byte_counts) == len(val) == 10
    np.testing.assert_array_equal(val.byte_counts.read(0, 10), val.read(0, 10) + 1)
    capped = TokenArray.from_files(list_shards(folder, "val"), max_tokens=7)
    assert len(capped.byte_counts) == len(capped) == 7
    np.testing.assert_array_equal(capped.byte_counts.read(3, 7), capped.read(3, 7) + 1)
    assert TokenArray.from_files(list_shards(folder, "train")).byte_counts is None

    (folder / shard_name("val_bytes", 1)).unlink()
    with pytest.raises(DataError, match="only some validation shards have byte sidecars"):
        TokenArray.from_files(list_shards(folder, "val"))
    write_shard(folder / shard_name("val_bytes", 1), np.ones(3, dtype=int))
    with pytest.raises(DataError, match="holds 3 entries"):
        TokenArray.from_files(list_shards(folder, "val"))
    with pytest.raises(ValueError):
        TokenArray([np.arange(4)], byte_counts=TokenArray([np.arange(3)]))
