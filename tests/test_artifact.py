"""The artifact file: round trips of a real GPT state dict, determinism, size breakdown, the version-2 layout,
version-1 files still read, and refusal of bad files."""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
import struct
import zlib
from pathlib import Path

import brotli
import pytest
import torch

from golf.model.gpt import GPT, ModelConfig
from golf.quant.artifact import (
    MAGIC, MAGIC_V1, ArtifactError, artifact_sha256, decode_artifact, export_artifact, load_artifact, write_artifact,
)
from golf.quant.config import QuantBits, QuantConfig
from golf.quant.quantize import clip_and_scale_rows, plan_encoding
from testkit import names_file_and_reason, refusal
from v1_fixture import V1_CONFIG, v1_state

V1_FILE = Path(__file__).parent / "data" / "artifact_v1.golf"

VOCAB = 1024
SCHEMES = {
    "int8_zlib9": QuantConfig(name="int8_zlib", bits=QuantBits(embed=8, attn=8, mlp=8, other=32),
                              compressor="zlib", level=9),
    "int6_zstd22": QuantConfig(name="int6_zstd", bits=QuantBits(embed=8, attn=6, mlp=6, other=32),
                               compressor="zstd", level=22, passthrough_numel=4096),
    "int5_zstd22": QuantConfig(name="int5_zstd", bits=QuantBits(embed=6, attn=5, mlp=5, other=16),
                               compressor="zstd", level=22, passthrough_numel=4096, prune_frac=0.05),
    "fp32_none": QuantConfig(compressor="none"),
    "lzma_fp16": QuantConfig(bits=QuantBits(embed=16, attn=16, mlp=16, other=16), compressor="lzma", level=6),
}


@pytest.fixture(scope="module")
def model_and_state() -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    cfg = ModelConfig()
    state = GPT(cfg, VOCAB).state_dict()
    for name, t in state.items():  # trained-looking weights: the zero-initialized projections would compress to nothing
        if t.dim() == 2 and "resid_mix" not in name and "skip" not in name and not t.any():
            t.normal_(0.0, 0.03)
    return cfg, state


def export(state: dict, cfg: ModelConfig, quant: QuantConfig):
    return export_artifact(state, dataclasses.asdict(cfg), VOCAB, quant)


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_round_trip(tmp_path: Path, model_and_state, scheme: str) -> None:
    cfg, state = model_and_state
    quant = SCHEMES[scheme]
    result = export(state, cfg, quant)
    path = tmp_path / "model.golf"
    write_artifact(path, result)
    assert path.read_bytes() == result.data and result.model_bytes == len(result.data)
    loaded = load_artifact(path)
    assert loaded.sha256 == result.sha256 == artifact_sha256(path.read_bytes())
    assert loaded.model == dataclasses.asdict(cfg) and loaded.vocab_size == VOCAB
    assert loaded.quant == dataclasses.asdict(quant)
    assert list(loaded.state_dict) == list(state)
    GPT(cfg, VOCAB).load_state_dict(loaded.state_dict)  # names and shapes fit the model
    for name, original in state.items():
        out = loaded.state_dict[name]
        assert out.dtype == torch.float32 and out.shape == original.shape and out.is_contiguous()
        enc = plan_encoding(name, original, quant)
        if enc.kind == "fp32":
            assert torch.equal(out, original), name
        elif enc.kind == "fp16":
            assert torch.equal(out, original.half().float()), name
        else:
            _, scale, scale16 = clip_and_scale_rows(original, enc.bits, quant.clip_percentile, quant.clip_floor)
            err = (out - original).abs()
            if quant.prune_frac:  # pruned entries are off by at most the largest pruned magnitude
                err = torch.where(out == 0, torch.zeros_like(err), err)
            bound = scale * 0.50001 + (2 ** (enc.bits - 1) - 1) * (scale - scale16.float()).abs()
            assert torch.all(err <= bound[:, None]), name


def test_default_passthrough_keeps_the_tiny_models_block_matrices_in_fp16(model_and_state) -> None:
    cfg, state = model_and_state
    encodings = {e["name"]: e["encoding"] for e in export(state, cfg, SCHEMES["int8_zlib9"]).tensors}
    assert encodings["tok_emb.weight"] == "int"  # 1024 x 128 > 65,536
    assert encodings["blocks.0.attn.c_q.weight"] == "fp16"  # 128 x 128 <= 65,536
    assert encodings["blocks.0.resid_mix"] == "fp32"


def test_byte_identical_re_export(model_and_state) -> None:
    cfg, state = model_and_state
    for scheme in ("int8_zlib9", "int5_zstd22"):
        first = export(state, cfg, SCHEMES[scheme])
        again = export({k: v.clone() for k, v in state.items()}, cfg, SCHEMES[scheme])
        assert first.data == again.data and first.sha256 == again.sha256


def test_size_breakdown(model_and_state) -> None:
    cfg, state = model_and_state
    result = export(state, cfg, SCHEMES["int6_zstd22"])
    header = decode_artifact(result.data).header
    assert sum(e["nbytes"] + e["scale_nbytes"] for e in result.tensors) == header["payload_bytes"]
    stats = result.category_stats
    total = sum(t.numel() for t in state.values())
    assert sum(s["params"] for s in stats.values()) == total
    assert sum(s["raw_bytes"] for s in stats.values()) == header["payload_bytes"]
    assert set(stats) == {"embed", "attn", "mlp", "other"}
    assert stats["attn"]["raw_bytes"] == 4 * (2 * 128 * 128 + 2 * 128 * 64 + 2 * (128 + 128 + 64 + 64))
    assert stats["mlp"]["bits_per_weight"] < 8  # int6 codes in bytes: the compressor takes out the spare bits
    assert result.bits_per_weight == pytest.approx(len(result.data) * 8 / total)


def test_header_layout(model_and_state) -> None:
    cfg, state = model_and_state
    data = export(state, cfg, SCHEMES["int8_zlib9"]).data
    assert data[:8] == MAGIC == b"GOLFART\x02"
    packed, length = struct.unpack_from("<II", data, 8)
    text = brotli.decompress(data[16:16 + packed]).decode("ascii")
    assert len(text) == length
    header = json.loads(text)
    assert text == json.dumps(header, sort_keys=True, separators=(",", ":"))
    assert (header["format"], header["version"], header["compressor"], header["level"]) == \
        ("golf-artifact", 2, "zlib", 9)
    (stream,) = header["streams"]
    assert stream == {"name": "payload", "compressor": "zlib", "level": 9, "raw_bytes": header["payload_bytes"],
                      "compressed_bytes": len(data) - 16 - packed}
    payload = zlib.decompress(data[16 + packed:])
    assert artifact_sha256(payload) == header["payload_sha256"]


def test_the_payload_puts_codes_then_scales_then_floats(model_and_state) -> None:
    cfg, state = model_and_state
    quant = QuantConfig(bits=QuantBits(embed=8, attn=6, mlp=6, other=16), passthrough_numel=20000, compressor="zlib",
                        level=1)  # attention matrices in fp16, MLP int6, control tensors fp32
    entries = export(state, cfg, quant).tensors
    ints = [e for e in entries if e["encoding"] == "int"]
    floats = {kind: [e for e in entries if e["encoding"] == kind] for kind in ("fp16", "fp32")}
    assert ints and floats["fp16"] and floats["fp32"]
    last_code = max(e["offset"] + e["nbytes"] for e in ints)
    assert last_code <= min(e["scale_offset"] for e in ints)  # every code before every scale
    assert max(e["scale_offset"] + e["scale_nbytes"] for e in ints) <= min(e["offset"] for e in floats["fp16"])
    assert max(e["offset"] + e["nbytes"] for e in floats["fp16"]) <= min(e["offset"] for e in floats["fp32"])
    assert [e["name"] for e in sorted(ints, key=lambda e: e["offset"])] == [e["name"] for e in ints]  # dict order
    assert not any(e["transposed"] or e["perm_nbytes"] for e in entries)  # only pergroup reorders


def test_the_header_is_compressed_and_smaller_than_version_1s(model_and_state) -> None:
    cfg, state = model_and_state
    data = export(state, cfg, SCHEMES["int8_zlib9"]).data
    packed, length = struct.unpack_from("<II", data, 8)
    assert packed * 4 < length  # JSON of the same few keys for every tensor: brotli takes out most of it


def test_a_version_1_file_still_loads_to_the_same_weights(tmp_path: Path) -> None:
    assert V1_FILE.read_bytes()[:8] == MAGIC_V1
    old = load_artifact(V1_FILE)
    assert old.header["version"] == 1 and old.quant["name"] == V1_CONFIG.name
    now = decode_artifact(export_artifact(v1_state(), {"name": "v1-fixture"}, VOCAB, V1_CONFIG).data)
    assert now.header["version"] == 2
    assert list(old.state_dict) == list(now.state_dict) == list(v1_state())
    for name, tensor in now.state_dict.items():
        assert torch.equal(old.state_dict[name], tensor), name
    encodings = {e["name"]: e["encoding"] for e in old.header["tensors"]}
    assert set(encodings.values()) == {"int", "fp16", "fp32"}
    truncated = tmp_path / "old.golf"
    truncated.write_bytes(V1_FILE.read_bytes()[:-3])
    with pytest.raises(ArtifactError, match=re.escape(str(truncated)) + ".*truncated"):
        load_artifact(truncated)


def test_non_float_tensors_are_stored_exactly() -> None:
    state = {"counter": torch.tensor([3, -7, 1 << 20]), "flag": torch.tensor([True, False])}
    loaded = decode_artifact(export_artifact(state, {}, VOCAB, QuantConfig()).data)
    assert torch.equal(loaded.state_dict["counter"], torch.tensor([3.0, -7.0, float(1 << 20)]))
    with pytest.raises(ArtifactError, match="'big'.*exactly"):
        export_artifact({"big": torch.tensor([(1 << 24) + 1])}, {}, VOCAB, QuantConfig())


def test_export_refuses_non_finite_weights_and_non_json_config() -> None:
    w = torch.randn(300, 300)
    w[3, 4] = float("nan")
    with pytest.raises(ArtifactError, match="blocks.0.mlp.fc.weight.*NaN"):
        export_artifact({"blocks.0.mlp.fc.weight": w}, {}, VOCAB, QuantConfig(bits=QuantBits(mlp=6)))
    with pytest.raises(ArtifactError, match="JSON"):
        export_artifact({}, {"path": Path("x")}, VOCAB, QuantConfig())


# --- bad files --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_bytes(model_and_state) -> bytes:
    cfg, state = model_and_state
    return export(state, cfg, SCHEMES["int8_zlib9"]).data


def header_end(data: bytes) -> int:
    return 16 + struct.unpack_from("<I", data, 8)[0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="nope.golf"):
        load_artifact(tmp_path / "nope.golf")


def test_truncated_files(tmp_path: Path, good_bytes: bytes) -> None:
    end = header_end(good_bytes)
    for cut in (0, 5, 12, 16, end - 3, end, end + 10, (end + len(good_bytes)) // 2, len(good_bytes) - 1):
        message = refusal(tmp_path, good_bytes[:cut])
        assert names_file_and_reason(message, tmp_path, "not a golf artifact|beyond the end|not valid|truncated"), message


def test_flipped_payload_byte(tmp_path: Path, good_bytes: bytes) -> None:
    end = header_end(good_bytes)
    for position in (end + 20, (end + len(good_bytes)) // 2, len(good_bytes) - 20):
        data = bytearray(good_bytes)
        data[position] ^= 0x40
        message = refusal(tmp_path, bytes(data))
        assert names_file_and_reason(message, tmp_path, "decompress|sha256|payload has"), message


def test_flipped_byte_in_an_uncompressed_payload(tmp_path: Path) -> None:
    data = bytearray(export_artifact({"w": torch.randn(10)}, {}, VOCAB, QuantConfig(compressor="none")).data)
    data[-5] ^= 0x01
    message = refusal(tmp_path, bytes(data))
    assert names_file_and_reason(message, tmp_path, "sha256"), message


@pytest.mark.parametrize("compressor, level", [("zlib", 9), ("zstd", 22), ("lzma", 6)])
def test_every_compressor_refuses_cuts_and_trailing_bytes(tmp_path: Path, compressor: str, level: int) -> None:
    quant = QuantConfig(bits=QuantBits(mlp=6), compressor=compressor, level=level)
    data = export_artifact({"blocks.0.mlp.fc.weight": torch.randn(300, 300)}, {}, VOCAB, quant).data
    assert decode_artifact(data).header["compressor"] == compressor
    message = refusal(tmp_path, data[:-1])
    assert names_file_and_reason(message, tmp_path, "truncated"), message
    message = refusal(tmp_path, data + b"\0")
    assert names_file_and_reason(message, tmp_path, "extended"), message
    header = good_header(data)  # a stream that really is cut or followed by a byte, its sizes declared to match
    stream = header["streams"][0]
    packed = data[header_end(data):]
    for blob in (packed[:-1], packed + b"\0"):
        bad = framed({**header, "streams": [dict(stream, compressed_bytes=len(blob))]}, blob)
        message = refusal(tmp_path, bad)
        assert names_file_and_reason(message, tmp_path, "truncated|extra bytes"), message


def test_wrong_magic(tmp_path: Path, good_bytes: bytes) -> None:
    message = refusal(tmp_path, b"GOLFART\x03" + good_bytes[8:])
    assert names_file_and_reason(message, tmp_path, "not a golf artifact"), message
    message = refusal(tmp_path, b"PK\x03\x04" + good_bytes[4:])
    assert names_file_and_reason(message, tmp_path, "not a golf artifact"), message


def framed(header: bytes | dict, payload: bytes = b"") -> bytes:
    """A version-2 file around `header` (its JSON brotli-compressed) and the streams' bytes `payload`."""
    raw = header if isinstance(header, bytes) else json.dumps(header, sort_keys=True).encode()
    packed = brotli.compress(raw)
    return MAGIC + struct.pack("<II", len(packed), len(raw)) + packed + payload


def framed_v1(header: dict, payload: bytes) -> bytes:
    raw = json.dumps(header, sort_keys=True).encode()
    return MAGIC_V1 + struct.pack("<Q", len(raw)) + raw + payload


def good_header(good_bytes: bytes) -> dict:
    return json.loads(brotli.decompress(good_bytes[16:header_end(good_bytes)]))


def one_stream(header: dict, compressor: str, raw_bytes: int, compressed_bytes: int) -> dict:
    """`header` declaring one stream of these sizes (and a payload of raw_bytes)."""
    stream = {"name": "payload", "compressor": compressor, "level": 1, "raw_bytes": raw_bytes,
              "compressed_bytes": compressed_bytes}
    return {**header, "compressor": compressor, "payload_bytes": raw_bytes, "streams": [stream]}


def test_bad_json_header(tmp_path: Path) -> None:
    message = refusal(tmp_path, framed(b"{not json"))
    assert names_file_and_reason(message, tmp_path, "not valid UTF-8 JSON"), message
    message = refusal(tmp_path, framed(b"\xff\xfe"))
    assert names_file_and_reason(message, tmp_path, "not valid UTF-8 JSON"), message
    message = refusal(tmp_path, framed(b"[1, 2]"))
    assert names_file_and_reason(message, tmp_path, "does not describe"), message


def test_header_length_beyond_the_file(tmp_path: Path, good_bytes: bytes) -> None:
    data = MAGIC + struct.pack("<II", len(good_bytes), 100) + good_bytes[16:]
    message = refusal(tmp_path, data)
    assert names_file_and_reason(message, tmp_path, "beyond the end of the file"), message
    message = refusal(tmp_path, MAGIC + struct.pack("<II", 2 ** 32 - 1, 10))
    assert names_file_and_reason(message, tmp_path, "beyond the end of the file"), message
    message = refusal(tmp_path, MAGIC_V1 + struct.pack("<Q", 2 ** 64 - 1))
    assert names_file_and_reason(message, tmp_path, "beyond the end of the file"), message


def test_a_header_that_decompresses_to_another_size(tmp_path: Path, good_bytes: bytes) -> None:
    packed, length = struct.unpack_from("<II", good_bytes, 8)
    for declared, reason in ((length - 1, "more bytes"), (length + 1, "header has")):
        data = MAGIC + struct.pack("<II", packed, declared) + good_bytes[16:]
        message = refusal(tmp_path, data)
        assert names_file_and_reason(message, tmp_path, reason), message


def test_unknown_version_and_compressor(tmp_path: Path, good_bytes: bytes) -> None:
    payload = good_bytes[header_end(good_bytes):]
    header = good_header(good_bytes)
    message = refusal(tmp_path, framed({**header, "version": 3}, payload))
    assert names_file_and_reason(message, tmp_path, "unknown artifact version 3"), message
    message = refusal(tmp_path, framed({**header, "version": 1}, payload))  # a v1 header in a v2 frame
    assert names_file_and_reason(message, tmp_path, "unknown artifact version 1 in a version-2 frame"), message
    message = refusal(tmp_path, framed({**header, "compressor": "no-such-compressor"}, payload))
    assert names_file_and_reason(message, tmp_path, "unknown compressor"), message
    stream = dict(header["streams"][0], compressor="no-such-compressor")
    message = refusal(tmp_path, framed({**header, "streams": [stream]}, payload))
    assert names_file_and_reason(message, tmp_path, "unknown compressor"), message
    message = refusal(tmp_path, framed({**header, "payload_bytes": 12}, payload))
    assert names_file_and_reason(message, tmp_path, "add up to"), message
    message = refusal(tmp_path, framed(one_stream(header, "zlib", 12, len(payload)), payload))
    assert names_file_and_reason(message, tmp_path, "more bytes"), message
    message = refusal(tmp_path, framed(header, payload + b"\0"))
    assert names_file_and_reason(message, tmp_path, "extended"), message
    message = refusal(tmp_path, framed({**header, "streams": [{"name": "payload"}]}, payload))
    assert names_file_and_reason(message, tmp_path, "stream entry"), message


def test_tensor_entries_out_of_bounds_or_inconsistent(tmp_path: Path, good_bytes: bytes) -> None:
    payload = good_bytes[header_end(good_bytes):]
    for change, match in ((dict(offset=10 ** 9), "outside"), (dict(shape=[3, 3]), "do not match"),
                          (dict(encoding="int4"), "unknown encoding"), (dict(shape=[-1, 4]), "non-negative"),
                          # element counts past int64 (or overflowing it to a small number): refused, not a traceback
                          (dict(shape=[10 ** 30]), "more elements"), (dict(shape=[2 ** 32, 2 ** 32]), "more elements")):
        header = good_header(good_bytes)
        header["tensors"][0].update(change)
        message = refusal(tmp_path, framed(header, payload))
        assert names_file_and_reason(message, tmp_path, match), message


class CreatesMarker:
    """Unpickling this would create a file: the proof that a loader ran pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_payload_is_never_unpickled(tmp_path: Path, good_bytes: bytes) -> None:
    marker = tmp_path / "unpickled"
    bomb = pickle.dumps({"tok_emb.weight": CreatesMarker(marker)})
    header = good_header(good_bytes)
    # a header that honestly describes the pickle bytes: size and hash match, so only the tensor entries can refuse
    packed = zlib.compress(bomb)
    header = {**one_stream(header, "zlib", len(bomb), len(packed)), "payload_sha256": artifact_sha256(bomb)}
    v1 = {k: v for k, v in header.items() if k != "streams"} | {"version": 1}
    v1["tensors"] = [{k: v for k, v in e.items() if k not in ("transposed", "perm_offset", "perm_nbytes")}
                     for e in v1["tensors"]]
    for data in (framed(header, packed), framed_v1(v1, packed), bomb, packed):
        message = refusal(tmp_path, data)
        assert names_file_and_reason(message, tmp_path, "outside|not a golf artifact|do not match"), message
    assert not marker.exists()


# --- hostile files: whatever a file declares, loading it is bounded and ends in the one-paragraph error ---

BOMB_BYTES = 256 << 20  # what the bombs below inflate to


def bomb(compressor: str) -> bytes:
    """BOMB_BYTES of zeros compressed in one stream (a few hundred KB at most), built without holding them."""
    chunk = bytes(1 << 20)
    if compressor == "zstd":
        import zstandard
        stream = zstandard.ZstdCompressor(level=1, write_content_size=False).compressobj()
        parts = [stream.compress(chunk) for _ in range(BOMB_BYTES // len(chunk))]
        return b"".join(parts) + stream.flush()
    stream = zlib.compressobj(9) if compressor == "zlib" else __import__("lzma").LZMACompressor(preset=1)
    return b"".join(stream.compress(chunk) for _ in range(BOMB_BYTES // len(chunk))) + stream.flush()


@pytest.mark.parametrize("compressor", ["zstd", "zlib", "lzma"])
def test_a_decompression_bomb_stops_at_the_declared_size(tmp_path: Path, good_bytes: bytes, compressor: str) -> None:
    import tracemalloc

    blob = bomb(compressor)
    assert len(blob) < BOMB_BYTES // 100
    header = good_header(good_bytes)
    v1 = {k: v for k, v in header.items() if k != "streams"} | {"version": 1, "compressor": compressor,
                                                                 "payload_bytes": 1000}
    for data in (framed(one_stream(header, compressor, 1000, len(blob)), blob), framed_v1(v1, blob)):
        tracemalloc.start()
        try:
            message = refusal(tmp_path, data)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert names_file_and_reason(message, tmp_path, "more bytes than the header's payload_bytes"), message
        assert peak < len(data) + (64 << 20), f"loading a {len(data):,}-byte bomb peaked at {peak:,} bytes"


def test_a_header_bomb_stops_at_the_declared_size(tmp_path: Path) -> None:
    stream = brotli.Compressor(quality=1)
    blob = b"".join(stream.process(bytes(1 << 20)) for _ in range(BOMB_BYTES >> 20)) + stream.finish()
    assert len(blob) < BOMB_BYTES // 100
    message = refusal(tmp_path, MAGIC + struct.pack("<II", len(blob), 1000) + blob)
    assert names_file_and_reason(message, tmp_path, "header does not decompress.*more bytes"), message


def test_a_header_may_not_declare_more_than_the_ceilings(tmp_path: Path, good_bytes: bytes) -> None:
    from golf.quant.artifact import MAX_HEADER_BYTES, MAX_PAYLOAD_BYTES

    message = refusal(tmp_path, framed({**good_header(good_bytes), "payload_bytes": MAX_PAYLOAD_BYTES + 1}))
    assert names_file_and_reason(message, tmp_path, "golf reads at most"), message
    message = refusal(tmp_path, MAGIC + struct.pack("<II", 8, MAX_HEADER_BYTES + 1) + bytes(8))
    assert names_file_and_reason(message, tmp_path, "more than the"), message
    message = refusal(tmp_path, MAGIC_V1 + struct.pack("<Q", MAX_HEADER_BYTES + 1) + bytes(MAX_HEADER_BYTES + 8))
    assert names_file_and_reason(message, tmp_path, "more than the"), message


def test_a_deeply_nested_header_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    depth = 100_000
    message = refusal(tmp_path, framed(b"[" * depth + b"]" * depth))
    assert names_file_and_reason(message, tmp_path, "nests too deeply"), message
    message = refusal(tmp_path, framed(b'{"a":' * depth + b"1" + b"}" * depth))
    assert names_file_and_reason(message, tmp_path, "nests too deeply"), message
