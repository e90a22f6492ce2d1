"""golf's artifact against the scripts' own serializers, on the same weights and the same encoder settings:

- the baseline script (quantize_state_dict_int8, torch.save, zlib-9): golf/quant/challenge_int8.py rebuilds its file
  byte for byte, golf's quant=int8_zlib file is no larger, and both decode to the same weights;
- T2 (2026-04-09: GPTQ, torch.save of {"w", "m"}, byte shuffle + brotli-11, then its _decompress, torch.load and
  dequantize_mixed): golf's record_0409 artifact decodes to the same weights;
- T3 (2026-04-27 with COMPRESSOR=pergroup and its LQER: _serialize_pergroup, _deserialize_pergroup,
  dequantize_mixed): golf's quant=record_0427 artifact decodes to the same weights, and each group stream holds the
  bytes T3 hands to lrzip (the same similarity order and transposes). T3 runs the lrzip command; where it is not installed, an identity stand-in
  takes its place (the layout is what is compared; golf's own lrzip use is tested in tests/test_compressors_*).

The scripts' functions are taken out of their sources by name and run as they are (script_parts.load_parts for the
baseline; for the records test_parity_quant.record_functions, which re-quotes their Python 3.12 f-strings).
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os
import re
import subprocess
import types
import zlib

import pytest
import torch

from baseline_weights import VOCAB as BASELINE_VOCAB, baseline9l_state, preset
from calibrated_model import calibrated_model
from golf.model.names import is_control
from golf.quant import compressors, lrzip
from golf.quant.artifact import decode_artifact, export_artifact
from golf.quant.challenge_int8 import challenge_artifact
from golf.quant.encoders import ExportContext
from script_parts import load_parts
from test_parity_quant import record_functions

pytestmark = pytest.mark.parity

T2, T3 = "2026-04-09", "2026-04-27"
VOCAB = 512
EXTRA = {"io": io, "os": os, "collections": collections, "re": re, "subprocess": subprocess,
         "log": lambda *_a, **_k: None}
BASELINE_PARTS = ("CONTROL_TENSOR_NAME_PATTERNS", "INT8_KEEP_FLOAT_FP32_NAME_PATTERNS", "INT8_KEEP_FLOAT_MAX_NUMEL",
                  "INT8_KEEP_FLOAT_STORE_DTYPE", "INT8_PER_ROW_SCALE_DTYPE", "INT8_CLIP_PERCENTILE", "INT8_CLIP_Q",
                  "tensor_nbytes", "keep_float_tensor", "quantize_float_tensor", "quantize_state_dict_int8",
                  "dequantize_state_dict_int8")
QUANT_PARTS = ("gptq_quantize_weight", "gptq_mixed_quantize", "dequantize_mixed")


# --- the baseline --------------------------------------------------------------------------------------------------

def test_golfs_int8_file_against_the_baseline_scripts(reference):
    script = load_parts(reference / "train_gpt.py", BASELINE_PARTS, extra=EXTRA)
    cfg, state = baseline9l_state()
    obj, _ = script.quantize_state_dict_int8(state)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    script_file = zlib.compress(buffer.getvalue(), level=9)
    assert challenge_artifact(state) == script_file  # golf's rebuild of the script's file, byte for byte
    golf = export_artifact(state, dataclasses.asdict(cfg), BASELINE_VOCAB, preset("int8_zlib"))
    print(f"baseline9l int8: golf {golf.model_bytes:,} bytes, the script's {len(script_file):,} bytes")
    assert golf.model_bytes <= len(script_file)
    reloaded = script.dequantize_state_dict_int8(torch.load(io.BytesIO(zlib.decompress(script_file)),
                                                            map_location="cpu"))
    loaded = decode_artifact(golf.data).state_dict
    assert list(loaded) == list(state)
    for name, tensor in loaded.items():
        assert torch.equal(tensor, reloaded[name].float()), name


# --- T2 and T3 ----------------------------------------------------------------------------------------------------

def record(folder, names: tuple[str, ...]) -> types.SimpleNamespace:
    """The record's named definitions, with the modules its serializer uses besides torch."""
    found = record_functions(folder, names)
    getattr(found, names[0]).__globals__.update(EXTRA)
    return found


@pytest.fixture(scope="module")
def calibrated():
    return calibrated_model(VOCAB)


def assert_same_weights(loaded: dict[str, torch.Tensor], reference: dict[str, torch.Tensor],
                        state: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    assert set(loaded) == set(state)
    for name, how in meta.items():
        # the records keep every small tensor in fp16; golf keeps the control tensors in fp32 (exactly as trained)
        expected = state[name] if how.startswith("passthrough") and is_control(name) else reference[name]
        assert torch.equal(loaded[name], expected.float()), (name, how)


def test_a_golf_artifact_decodes_to_what_t2s_serializer_and_deserializer_give(record_dir, calibrated):
    t2 = record(record_dir(T2), QUANT_PARTS + ("_byte_shuffle", "_byte_unshuffle", "_BSHF_MAGIC", "_compress",
                                               "_decompress"))
    cfg, state, hessians = calibrated
    h = types.SimpleNamespace(embed_clip_sigmas=20.0, matrix_clip_sigmas=12.85, embed_bits=8, matrix_bits=6)
    result, meta = t2.gptq_mixed_quantize(state, hessians, h)
    buffer = io.BytesIO()
    torch.save({"w": result, "m": meta}, buffer)
    blob = t2._compress(buffer.getvalue(), "brotli")  # serialize()
    saved = torch.load(io.BytesIO(t2._decompress(blob, "brotli")), map_location="cpu")  # deserialize()
    reference = t2.dequantize_mixed(saved["w"], saved["m"], state)
    quant = dataclasses.replace(preset("record_0409"), level=9)
    golf = export_artifact(state, dataclasses.asdict(cfg), VOCAB, quant, ExportContext(hessians))
    print(f"T2 settings: golf {golf.model_bytes:,} bytes, T2's file {len(blob):,} bytes")
    assert_same_weights(decode_artifact(golf.data).state_dict, reference, state, meta)


def stream_bytes(data: bytes) -> dict[str, bytes]:
    """Each stream of a golf artifact, decompressed, by name."""
    header = decode_artifact(data).header
    blob = data[-sum(s["compressed_bytes"] for s in header["streams"]):]
    out, at = {}, 0
    for s in header["streams"]:
        out[s["name"]] = compressors.decompress(blob[at:at + s["compressed_bytes"]], s["compressor"], s["raw_bytes"])
        at += s["compressed_bytes"]
    return out


def test_a_golf_pergroup_artifact_matches_t3s_pergroup_serializer(record_dir, calibrated, tmp_path):
    t3 = record(record_dir(T3), QUANT_PARTS + (
        "_quantize_gate_int8_row", "_lqer_pack", "_lqer_pack_asym", "_GROUP_ORDER", "_SIMSORT_KEYS", "_PACK_MAGIC", "_similarity_sort_l1",
        "_lrzip_compress", "_lrzip_decompress", "_pack_streams", "_unpack_streams", "_serialize_pergroup",
        "_deserialize_pergroup"))
    handed: dict[str, bytes] = {}
    space = t3._serialize_pergroup.__globals__
    real = lrzip.command() is not None
    compress_, decompress_ = space["_lrzip_compress"], space["_lrzip_decompress"]

    def recording_compress(data, tmpdir, label):
        handed[label] = data
        return compress_(data, tmpdir, label) if real else data
    space["_lrzip_compress"] = recording_compress
    space["_lrzip_decompress"] = decompress_ if real else (lambda data, tmpdir, label: data)

    cfg, state, hessians = calibrated
    h = types.SimpleNamespace(embed_clip_sigmas=14.0, mlp_clip_sigmas=11.5, attn_clip_sigmas=13.0,
                              matrix_clip_sigmas=12.85, embed_bits=7, matrix_bits=6, gated_attn_quant_gate=True,
                              lqer_enabled=True, lqer_rank=4, lqer_top_k=3, lqer_factor_bits=4,
                              lqer_asym_enabled=True, lqer_asym_group=64)  # T3's defaults, as quant=record_0427
    result, meta = t3.gptq_mixed_quantize(state, hessians, h)
    blob = t3._serialize_pergroup(result, meta, cfg.num_layers, str(tmp_path))
    restored, restored_meta = t3._deserialize_pergroup(blob, cfg.num_layers, str(tmp_path))
    reference = t3.dequantize_mixed(restored, restored_meta, state)

    quant = preset("record_0427")
    assert quant.compressor == "pergroup" and quant.lqer.enabled
    golf = export_artifact(state, dataclasses.asdict(cfg), VOCAB, quant, ExportContext(hessians))
    print(f"T3 settings, pergroup ({'lrzip' if real else 'no lrzip: identity stand-in for T3'}): golf "
          f"{golf.model_bytes:,} bytes, T3's file {len(blob):,} bytes")
    assert_same_weights(decode_artifact(golf.data).state_dict, reference, state, meta)
    streams = stream_bytes(golf.data)
    groups = {key.removeprefix("_").removesuffix(".q"): key.replace(".", "_") for key in t3._GROUP_ORDER}
    compared = [role for role in groups if groups[role] in handed]
    assert "tok_emb.weight" in compared and "mlp.fc.weight" in compared and "attn.c_q.weight" in compared
    for role in compared:
        assert streams[role] == handed[groups[role]], role
