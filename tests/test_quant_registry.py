"""Encoders and compressors are registries: the names the config accepts are the ones registered, and a new entry
is usable from config to artifact and back without touching the exporter or the loader."""

from __future__ import annotations

import bz2
import dataclasses

import pytest
import torch

from golf.quant import compressors, encoders
from golf.quant.artifact import decode_artifact, export_artifact
from golf.quant.config import ENCODERS, QuantBits, QuantConfig, quant_problems


def test_every_encoder_name_the_config_accepts_is_registered():
    assert tuple(encoders.REGISTRY) == ENCODERS
    assert quant_problems(QuantConfig(encoder="nope"))[0][0] == "quant.encoder"


def test_a_registered_compressor_works_from_config_to_artifact_and_back(monkeypatch):
    added = compressors.Compressor(
        "bz2", (1, 9), lambda data, level: bz2.compress(data, level),
        lambda limit: compressors._Stream(bz2.BZ2Decompressor(), limit), (OSError,))
    monkeypatch.setitem(compressors.REGISTRY, "bz2", added)
    cfg = QuantConfig(bits=QuantBits(mlp=6), compressor="bz2", level=9)
    assert quant_problems(cfg) == []
    assert quant_problems(dataclasses.replace(cfg, level=0))[0][0] == "quant.level"
    state = {"blocks.0.mlp.fc.weight": torch.randn(300, 300)}
    data = export_artifact(state, {}, 1024, cfg).data
    loaded = decode_artifact(data)
    assert loaded.header["compressor"] == "bz2" and loaded.state_dict["blocks.0.mlp.fc.weight"].shape == (300, 300)


def test_a_registered_encoder_is_what_the_exporter_uses(monkeypatch):
    calls = []

    class Halves(encoders.RoundToNearest):
        name = "rtn"

        def quantize_rows(self, name, w, bits, cfg, context):
            calls.append(name)
            q, s = super().quantize_rows(name, w, bits, cfg, context)
            return q // 2, s

    monkeypatch.setitem(encoders.REGISTRY, "rtn", Halves())
    cfg = QuantConfig(bits=QuantBits(mlp=8), compressor="none")
    w = torch.randn(300, 300)
    loaded = decode_artifact(export_artifact({"blocks.0.mlp.fc.weight": w}, {}, 1024, cfg).data)
    assert calls == ["blocks.0.mlp.fc.weight"]
    plain = decode_artifact(export_artifact({"blocks.0.mlp.fc.weight": w}, {}, 1024,
                                            dataclasses.replace(cfg, passthrough_numel=10**9)).data)
    assert not torch.allclose(loaded.state_dict["blocks.0.mlp.fc.weight"], plain.state_dict["blocks.0.mlp.fc.weight"])


@pytest.mark.parametrize("name", compressors.names())
def test_every_compressor_round_trips_and_refuses_a_stream_longer_than_declared(name):
    low, high = compressors.get(name).levels
    data = bytes(range(256)) * 64
    blob = compressors.get(name).compress(data, high)
    assert compressors.decompress(blob, name, len(data)) == data
    if name != "none":
        with pytest.raises(ValueError, match="more bytes"):
            compressors.decompress(blob, name, len(data) - 1)
