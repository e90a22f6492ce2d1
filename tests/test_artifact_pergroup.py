"""quant.compressor=pergroup: the payload cut into streams by tensor role (T3's group order), codes transposed and
rows of tok_emb / c_q / fc similarity-sorted with the permutation stored, each stream by its best compressor; the
weights come back exactly, and damaged or hostile files end in an ArtifactError naming the file."""

from __future__ import annotations

import dataclasses
import json
import struct

import brotli
import numpy as np
import pytest
import torch

from golf.model.gpt import GPT, ModelConfig
from golf.quant import compressors, grouping, lrzip
from golf.quant.artifact import MAGIC, ArtifactError, artifact_sha256, decode_artifact, export_artifact, load_artifact
from golf.quant.config import QuantBits, QuantConfig
from testkit import names_file_and_reason, refusal

VOCAB = 512
CFG = ModelConfig(name="pergroup-test", num_layers=2, model_dim=64, num_heads=2, num_kv_heads=1)
QUANT = QuantConfig(name="pergroup-test", bits=QuantBits(embed=8, attn=6, mlp=6, other=8), passthrough_numel=1000,
                    compressor="pergroup", level=9)


def state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    state = {k: v.detach().clone() for k, v in GPT(CFG, VOCAB).state_dict().items()}
    for t in state.values():
        if t.dim() == 2 and not t.any():
            t.normal_(0.0, 0.05)
    return state


@pytest.fixture(scope="module")
def exported():
    state = state_dict()
    return state, export_artifact(state, dataclasses.asdict(CFG), VOCAB, QUANT)


def test_the_weights_come_back_exactly(exported):
    state, result = exported
    loaded = decode_artifact(result.data)
    plain = decode_artifact(export_artifact(state, dataclasses.asdict(CFG), VOCAB,
                                            dataclasses.replace(QUANT, compressor="none", level=0)).data)
    assert list(loaded.state_dict) == list(state)
    for name, tensor in plain.state_dict.items():
        assert torch.equal(loaded.state_dict[name], tensor), name
    assert loaded.header["compressor"] == "pergroup"


def test_streams_follow_t3s_groups_and_the_codes_are_transposed_and_sorted(exported):
    _, result = exported
    header = decode_artifact(result.data).header
    roles = [s["name"] for s in header["streams"]]
    assert roles == list(grouping.GROUP_ORDER) + ["rest"]  # every matrix of this model is int-coded
    assert all(s["compressor"] == "pergroup" for s in header["streams"])
    entries = {e["name"]: e for e in header["tensors"]}
    for name, e in entries.items():
        grouped = e["encoding"] == "int" and grouping.role_of(name) in grouping.GROUP_ORDER
        assert e["transposed"] == grouped, name
        sorted_role = grouped and grouping.role_of(name) in grouping.SIMILARITY_SORTED
        assert e["perm_nbytes"] == (2 * e["shape"][0] if sorted_role else 0), name


def test_the_stored_row_order_is_t3s_greedy_nearest_neighbour_order(exported):
    state, result = exported
    loaded = decode_artifact(result.data)
    payload = b"".join(compressors.decompress(blob, "pergroup", s["raw_bytes"]) for s, blob in
                       zip(loaded.header["streams"], stream_blobs(result.data)))
    e = next(e for e in loaded.header["tensors"] if e["name"] == "tok_emb.weight")
    rows, cols = e["shape"]
    stored = np.frombuffer(payload, np.int8, rows * cols, e["offset"]).reshape(cols, rows).T
    perm = np.frombuffer(payload, "<u2", rows, e["perm_offset"])
    codes = np.empty_like(stored)
    codes[perm] = stored
    assert np.array_equal(perm, naive_similarity_order(codes))
    assert np.array_equal(stored, codes[perm])
    scales = loaded.state_dict["tok_emb.weight"].abs().amax(dim=1)
    assert scales.shape == (rows,)  # the scales stay in the state dict's row order


def naive_similarity_order(matrix: np.ndarray) -> np.ndarray:
    """T3's _similarity_sort_l1 written out."""
    n = matrix.shape[0]
    used, order, cur = np.zeros(n, dtype=bool), [0], matrix[0].astype(np.float32)
    used[0] = True
    for _ in range(n - 1):
        unused = np.where(~used)[0]
        best = unused[np.argmin(np.abs(matrix[~used].astype(np.float32) - cur).sum(axis=1))]
        order.append(best)
        used[best] = True
        cur = matrix[best].astype(np.float32)
    return np.array(order)


def test_similarity_order_breaks_ties_towards_the_lower_row():
    rows = np.array([[0, 0], [5, 5], [1, 0], [0, 1], [5, 5], [1, 0]], dtype=np.int8)
    assert grouping.similarity_order(rows).tolist() == naive_similarity_order(rows).tolist() == [0, 2, 5, 3, 1, 4]
    random = np.random.default_rng(0).integers(-3, 4, size=(60, 9)).astype(np.int8)  # many ties
    assert grouping.similarity_order(random).tolist() == naive_similarity_order(random).tolist()


def test_a_role_outside_t3s_list_gets_its_own_stream_only_when_large():
    def piece(name: str, rows: int, cols: int) -> grouping.Encoded:
        entry = {"name": name, "shape": [rows, cols], "encoding": "int", "per_row": True}
        return grouping.Encoded(entry, bytes(rows * cols), bytes(2 * rows))
    big, small = piece("bigram.table.weight", 512, 128), piece("blocks.0.attn.attn_gate_w", 4, 12)
    streams, entries = grouping.arrange([big, small, piece("blocks.0.mlp.fc.weight", 8, 4)], grouped=True)
    assert [name for name, _ in streams] == ["mlp.fc.weight", "bigram.table.weight", "rest"]
    assert [e["transposed"] for e in entries] == [True, False, True]


def test_export_is_byte_identical_when_repeated(exported):
    state, result = exported
    assert export_artifact(state, dataclasses.asdict(CFG), VOCAB, QUANT).data == result.data


def test_the_notes_say_which_compressor_won_each_stream(exported):
    _, result = exported
    (line,) = [n for n in result.notes if "streams:" in n]
    assert "rest" in line and "tok_emb.weight" in line
    winners = {"lrzip", "brotli_plain", "brotli", "lzma"}
    assert any(f"({w})" in line for w in winners)
    if lrzip.command() is None:
        assert any("lrzip command is not installed" in n for n in result.notes)


def test_without_lrzip_the_groups_use_brotli_or_lzma_and_say_so(monkeypatch):
    monkeypatch.setattr(lrzip, "command", lambda: None)
    state = {k: v for k, v in state_dict().items() if k.startswith(("tok_emb", "blocks.0.mlp"))}
    result = export_artifact(state, {}, VOCAB, QUANT)
    assert any("lrzip command is not installed" in n and "brotli" in n for n in result.notes)
    assert "(lrzip)" not in " ".join(result.notes)
    assert all(blob[:1] != b"L" for blob in stream_blobs(result.data))
    assert list(decode_artifact(result.data).state_dict) == list(state)


# --- damaged and hostile files ------------------------------------------------------------------------------------

def split(data: bytes) -> tuple[dict, bytes]:
    packed, _ = struct.unpack_from("<II", data, 8)
    return json.loads(brotli.decompress(data[16:16 + packed])), data[16 + packed:]


def stream_blobs(data: bytes) -> list[bytes]:
    header, rest = split(data)
    out, at = [], 0
    for s in header["streams"]:
        out.append(rest[at:at + s["compressed_bytes"]])
        at += s["compressed_bytes"]
    return out


def frame(header: dict, streams: bytes) -> bytes:
    raw = json.dumps(header, sort_keys=True).encode()
    packed = brotli.compress(raw)
    return MAGIC + struct.pack("<II", len(packed), len(raw)) + packed + streams


def test_truncated_or_cut_streams_are_refused(tmp_path, exported):
    _, result = exported
    data = result.data
    for cut in (len(data) - 1, len(data) - 200, len(data) // 2, 40):
        path = tmp_path / "cut.golf"
        path.write_bytes(data[:cut])
        with pytest.raises(ArtifactError, match=str(path)):
            load_artifact(path)
    header, rest = split(data)
    first = header["streams"][0]
    blob = stream_blobs(data)[0]
    # the first stream cut by one byte and declared so: its own decompressor notices
    streams = [dict(first, compressed_bytes=len(blob) - 1)] + header["streams"][1:]
    message = refusal(tmp_path, frame({**header, "streams": streams}, blob[:-1] + rest[len(blob):]))
    assert names_file_and_reason(message, tmp_path, "does not decompress"), message


def test_an_unknown_pergroup_tag_and_a_missing_lrzip_are_named(tmp_path, exported, monkeypatch):
    _, result = exported
    header, rest = split(result.data)
    blob = stream_blobs(result.data)[0]
    message = refusal(tmp_path, frame(header, b"Q" + blob[1:] + rest[len(blob):]))
    assert names_file_and_reason(message, tmp_path, "not one of the tags"), message
    fake = b"L" + lrzip.MAGIC + bytes([0, 6]) + (100).to_bytes(8, "little") + bytes(10)  # a well-formed lrzip start
    streams = [dict(header["streams"][0], compressed_bytes=len(fake))] + header["streams"][1:]
    monkeypatch.setattr(lrzip, "command", lambda: None)
    message = refusal(tmp_path, frame({**header, "streams": streams}, fake + rest[len(blob):]))
    assert names_file_and_reason(message, tmp_path, "lrzip command is not installed"), message


def hostile(header: dict, rest: bytes, change) -> bytes:
    """The file with one tensor entry changed (the payload and its hash untouched)."""
    header = json.loads(json.dumps(header))
    change({e["name"]: e for e in header["tensors"]})
    return frame(header, rest)


def test_a_row_order_that_is_not_a_permutation_is_refused(tmp_path, exported):
    _, result = exported
    header, rest = split(result.data)
    fc = "blocks.0.mlp.fc.weight"

    def point_at_codes(entries):  # the permutation's bytes read from the codes instead
        entries[fc]["perm_offset"] = entries[fc]["offset"]
    message = refusal(tmp_path, hostile(header, rest, point_at_codes))
    assert names_file_and_reason(message, tmp_path, "not a permutation"), message

    def wrong_length(entries):
        entries[fc]["perm_nbytes"] = 3
    message = refusal(tmp_path, hostile(header, rest, wrong_length))
    assert names_file_and_reason(message, tmp_path, "one row index per row"), message

    def float_transposed(entries):
        entries["blocks.0.attn_scale"]["transposed"] = True
    message = refusal(tmp_path, hostile(header, rest, float_transposed))
    assert names_file_and_reason(message, tmp_path, "only the 2-D int codes"), message

    def outside(entries):
        entries[fc]["perm_offset"] = header["payload_bytes"] - 1
    message = refusal(tmp_path, hostile(header, rest, outside))
    assert names_file_and_reason(message, tmp_path, "outside"), message


def test_the_stream_list_must_account_for_every_byte(tmp_path, exported):
    _, result = exported
    header, rest = split(result.data)
    message = refusal(tmp_path, frame(header, rest + b"x"))
    assert names_file_and_reason(message, tmp_path, "extended"), message
    raw = [dict(s) for s in header["streams"]]
    raw[0]["raw_bytes"] += 1
    message = refusal(tmp_path, frame({**header, "streams": raw}, rest))
    assert names_file_and_reason(message, tmp_path, "add up to"), message
    assert artifact_sha256(rest) != header["payload_sha256"]  # the file hashes the decompressed payload
