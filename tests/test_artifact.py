"""The artifact file: round trips of a real GPT state dict, determinism, size breakdown, and refusal of bad files."""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
import struct
import zlib
from pathlib import Path

import pytest
import torch

from golf.model.gpt import GPT, ModelConfig
from golf.quant.artifact import (
    MAGIC, ArtifactError, artifact_sha256, decode_artifact, export_artifact, load_artifact, write_artifact,
)
from golf.quant.config import QuantBits, QuantConfig
from golf.quant.quantize import clip_and_scale_rows, plan_encoding

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
    assert data[:8] == MAGIC
    (length,) = struct.unpack_from("<Q", data, 8)
    text = data[16:16 + length].decode("ascii")
    header = json.loads(text)
    assert text == json.dumps(header, sort_keys=True, separators=(",", ":"))
    assert (header["format"], header["version"], header["compressor"], header["level"]) == \
        ("golf-artifact", 1, "zlib", 9)
    assert zlib.decompress(data[16 + length:]).__len__() == header["payload_bytes"]


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
    return 16 + struct.unpack_from("<Q", data, 8)[0]


def refusal(tmp_path: Path, data: bytes) -> str:
    """The ArtifactError message of loading `data` from tmp_path/bad.golf (the test fails if it loads)."""
    path = tmp_path / "bad.golf"
    path.write_bytes(data)
    with pytest.raises(ArtifactError) as info:
        load_artifact(path)
    return str(info.value)


def names_file_and_reason(message: str, tmp_path: Path, reason: str) -> bool:
    return str(tmp_path / "bad.golf") in message and re.search(reason, message) is not None


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
    assert names_file_and_reason(message, tmp_path, "extra bytes"), message


def test_wrong_magic(tmp_path: Path, good_bytes: bytes) -> None:
    message = refusal(tmp_path, b"GOLFART\x02" + good_bytes[8:])
    assert names_file_and_reason(message, tmp_path, "not a golf artifact"), message
    message = refusal(tmp_path, b"PK\x03\x04" + good_bytes[4:])
    assert names_file_and_reason(message, tmp_path, "not a golf artifact"), message


def framed(header: bytes | dict, payload: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header, sort_keys=True).encode()
    return MAGIC + struct.pack("<Q", len(raw)) + raw + payload


def good_header(good_bytes: bytes) -> dict:
    return json.loads(good_bytes[16:header_end(good_bytes)])


def test_bad_json_header(tmp_path: Path) -> None:
    message = refusal(tmp_path, framed(b"{not json"))
    assert names_file_and_reason(message, tmp_path, "not valid UTF-8 JSON"), message
    message = refusal(tmp_path, framed(b"\xff\xfe"))
    assert names_file_and_reason(message, tmp_path, "not valid UTF-8 JSON"), message
    message = refusal(tmp_path, framed(b"[1, 2]"))
    assert names_file_and_reason(message, tmp_path, "does not describe"), message


def test_header_length_beyond_the_file(tmp_path: Path, good_bytes: bytes) -> None:
    data = MAGIC + struct.pack("<Q", len(good_bytes)) + good_bytes[16:]
    message = refusal(tmp_path, data)
    assert names_file_and_reason(message, tmp_path, "beyond the end of the file"), message
    message = refusal(tmp_path, MAGIC + struct.pack("<Q", 2 ** 64 - 1))
    assert names_file_and_reason(message, tmp_path, "beyond the end of the file"), message


def test_unknown_version_and_compressor(tmp_path: Path, good_bytes: bytes) -> None:
    payload = good_bytes[header_end(good_bytes):]
    message = refusal(tmp_path, framed({**good_header(good_bytes), "version": 2}, payload))
    assert names_file_and_reason(message, tmp_path, "unknown artifact version 2"), message
    message = refusal(tmp_path, framed({**good_header(good_bytes), "compressor": "no-such-compressor"}, payload))
    assert names_file_and_reason(message, tmp_path, "unknown compressor"), message
    message = refusal(tmp_path, framed({**good_header(good_bytes), "payload_bytes": 12}, payload))
    assert names_file_and_reason(message, tmp_path, "more bytes|payload has"), message


def test_tensor_entries_out_of_bounds_or_inconsistent(tmp_path: Path, good_bytes: bytes) -> None:
    payload = good_bytes[header_end(good_bytes):]
    for change, match in ((dict(offset=10 ** 9), "outside"), (dict(shape=[3, 3]), "do not match"),
                          (dict(encoding="int4"), "unknown encoding"), (dict(shape=[-1, 4]), "non-negative")):
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
    header.update(compressor="zlib", payload_bytes=len(bomb), payload_sha256=artifact_sha256(bomb))
    for data in (framed(header, zlib.compress(bomb)), bomb, zlib.compress(bomb)):
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
    data = framed({**good_header(good_bytes), "compressor": compressor, "payload_bytes": 1000}, blob)
    tracemalloc.start()
    try:
        message = refusal(tmp_path, data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert names_file_and_reason(message, tmp_path, "more bytes than the header's payload_bytes"), message
    assert peak < len(data) + (64 << 20), f"loading a {len(data):,}-byte bomb peaked at {peak:,} bytes"


def test_a_header_may_not_declare_more_than_the_ceilings(tmp_path: Path, good_bytes: bytes) -> None:
    from golf.quant.artifact import MAX_HEADER_BYTES, MAX_PAYLOAD_BYTES

    message = refusal(tmp_path, framed({**good_header(good_bytes), "payload_bytes": MAX_PAYLOAD_BYTES + 1}))
    assert names_file_and_reason(message, tmp_path, "golf reads at most"), message
    message = refusal(tmp_path, MAGIC + struct.pack("<Q", MAX_HEADER_BYTES + 1) + bytes(MAX_HEADER_BYTES + 8))
    assert names_file_and_reason(message, tmp_path, "more than the"), message


def test_a_deeply_nested_header_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    depth = 100_000
    message = refusal(tmp_path, framed(b"[" * depth + b"]" * depth))
    assert names_file_and_reason(message, tmp_path, "nests too deeply"), message
    message = refusal(tmp_path, framed(b'{"a":' * depth + b"1" + b"}" * depth))
    assert names_file_and_reason(message, tmp_path, "nests too deeply"), message
