"""The pergroup compressor (the best of brotli, brotli with the byte shuffle, lzma and lrzip, tagged) and the lrzip
command behind it: the smallest candidate wins, every candidate's stream decompresses bounded, and lrzip streams
that are damaged, encrypted or larger than declared are refused before or while lrzip runs."""

from __future__ import annotations

import numpy as np
import pytest

from golf.quant import compressors, lrzip

needs_lrzip = pytest.mark.skipif(lrzip.command() is None, reason="the lrzip command is not installed")


def codes(n: int = 60_000, seed: int = 0) -> bytes:
    """int8 codes like a quantized matrix's: mostly small, some repetition."""
    rng = np.random.default_rng(seed)
    return np.clip(np.round(rng.normal(0, 6, n)), -31, 31).astype(np.int8).tobytes()


def test_the_smallest_candidate_wins_and_its_tag_leads():
    data = codes()
    name, blob = compressors.compress_best(data, 9)
    sizes = {}
    for tag, candidate, level in compressors.pergroup_candidates(9):
        body = lrzip.compress(data, level) if candidate == "lrzip" else compressors.get(candidate).compress(data, level)
        sizes[candidate] = 1 + len(body)
        if candidate == name:
            assert blob == tag + body
    assert len(blob) == min(sizes.values()) and sizes[name] == len(blob)
    assert compressors.decompress(blob, "pergroup", len(data)) == data


def test_the_candidates_brotli_at_quality_11_and_lrzip_only_when_installed(monkeypatch):
    listed = {name: level for _, name, level in compressors.pergroup_candidates(5)}
    assert listed["brotli_plain"] == listed["brotli"] == 11 and listed["lzma"] == 5
    assert ("lrzip" in listed) == (lrzip.command() is not None)
    monkeypatch.setattr(lrzip, "command", lambda: None)
    assert "lrzip" not in {name for _, name, _ in compressors.pergroup_candidates(9)}


@pytest.mark.parametrize("tag", [t for t, n in compressors.PERGROUP_TAGS.items() if n != "lrzip"])
def test_each_tag_decompresses_bounded(tag):
    data = codes(20_000)
    name = compressors.PERGROUP_TAGS[tag]
    blob = tag + compressors.get(name).compress(data, 9 if name == "lzma" else 11)
    assert compressors.decompress(blob, "pergroup", len(data)) == data
    with pytest.raises(ValueError, match="more bytes"):
        compressors.decompress(blob, "pergroup", len(data) - 1)


def test_an_empty_or_unknown_tag_is_a_value_error():
    for blob in (b"", b"?" + b"x" * 10):
        with pytest.raises(ValueError, match="not one of the tags"):
            compressors.decompress(blob, "pergroup", 100)


def lrzip_header(size: int, encrypted: int = 0) -> bytes:
    return lrzip.MAGIC + bytes([0, 6]) + size.to_bytes(8, "little") + bytes(8) + bytes([encrypted]) + bytes(5)


def test_lrzip_streams_are_checked_before_lrzip_runs(monkeypatch):
    monkeypatch.setattr(lrzip, "command", lambda: None)  # nothing below may need the program
    with pytest.raises(ValueError, match="more bytes"):
        lrzip.decompress(lrzip_header(1001), 1000)
    with pytest.raises(ValueError, match="encrypted"):
        lrzip.declared_size(lrzip_header(10, encrypted=1))
    with pytest.raises(ValueError, match="no LRZI magic"):
        lrzip.declared_size(b"LRZX" + bytes(30))
    with pytest.raises(ValueError, match="version 0.5"):
        lrzip.declared_size(lrzip.MAGIC + bytes([0, 5]) + bytes(30))
    with pytest.raises(ValueError, match="not installed"):
        lrzip.decompress(lrzip_header(10), 1000)
    with pytest.raises(ValueError, match="not installed"):
        lrzip.compress(b"abc", 9)


@needs_lrzip
def test_lrzip_round_trips_and_stops_past_the_limit():
    data = codes(50_000, seed=1)
    blob = lrzip.compress(data, 9)
    assert lrzip.declared_size(blob) == len(data)
    assert lrzip.decompress(blob, len(data)) == data
    with pytest.raises(ValueError, match="more bytes"):
        lrzip.decompress(blob, len(data) - 1)
    lying = bytearray(blob)
    lying[6:14] = (100).to_bytes(8, "little")  # the header understates: the output is still cut at the limit
    with pytest.raises(ValueError, match="more bytes|failed"):
        lrzip.decompress(bytes(lying), 1000)


@needs_lrzip
def test_damaged_lrzip_streams_fail_with_lrzips_message():
    blob = lrzip.compress(codes(50_000, seed=2), 9)
    damaged = bytearray(blob)
    damaged[len(blob) // 2] ^= 0xFF
    for bad in (bytes(damaged), blob[: len(blob) // 2]):
        with pytest.raises(ValueError, match="lrzip -d failed"):
            lrzip.decompress(bad, 50_000)
