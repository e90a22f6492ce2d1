"""golf's artifact against the challenge's own file on the same int8 weights: on a baseline9l-shaped model the
challenge's export (torch.save of quantize_state_dict_int8's object, zlib level 9; rebuilt by
golf/quant/challenge_int8.py, checked against the script in tests/parity/test_serializer_parity.py) must not be
smaller than golf's quant=int8_zlib file, and both must decode to the same weights."""

from __future__ import annotations

import dataclasses
import io
import zlib

import pytest
import torch

from baseline_weights import VOCAB, baseline9l_state, preset
from golf.quant.artifact import decode_artifact, export_artifact
from golf.quant.challenge_int8 import challenge_artifact, quant_object


def challenge_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the script's dequantize_state_dict_int8 gives from the challenge object, in fp32."""
    obj = quant_object(state)
    out = {name: q.float() * obj["scales"][name].float()[:, None] for name, q in obj["quantized"].items()}
    out.update({name: t.float() for name, t in obj["passthrough"].items()})
    return out


@pytest.fixture(scope="module")
def baseline():
    return baseline9l_state()


def test_golfs_int8_file_is_no_larger_than_the_challenges(baseline):
    cfg, state = baseline
    assert sum(t.numel() for t in state.values()) == 17_059_912  # the challenge's baseline
    quant = preset("int8_zlib")
    golf = export_artifact(state, dataclasses.asdict(cfg), VOCAB, quant)
    challenge = challenge_artifact(state)
    print(f"baseline9l int8: golf v2 {golf.model_bytes:,} bytes, challenge torch.save + zlib-9 "
          f"{len(challenge):,} bytes ({len(challenge) - golf.model_bytes:+,})")
    assert golf.model_bytes <= len(challenge)
    assert 14_000_000 < len(challenge) < 16_000_000  # the realistic scale the fixture aims for
    loaded = decode_artifact(golf.data).state_dict
    expected = challenge_weights(state)
    assert list(loaded) == list(state)
    for name, tensor in loaded.items():
        assert torch.equal(tensor, expected[name]), name


def test_the_challenge_object_round_trips_through_its_own_format(baseline):
    _, state = baseline
    small = {k: v for k, v in state.items() if k.startswith(("tok_emb", "blocks.0."))}
    small["extra.bias"] = torch.linspace(-1.0, 1.0, 10)  # a small float tensor that is not a control tensor
    obj = torch.load(io.BytesIO(zlib.decompress(challenge_artifact(small))), weights_only=True)
    assert obj["__quant_format__"] == "int8_clean_per_row_v1"
    assert set(obj["quantized"]) | set(obj["passthrough"]) == set(small)
    assert obj["passthrough"]["blocks.0.attn_scale"].dtype == torch.float32  # control tensors stay fp32
    assert obj["passthrough"]["extra.bias"].dtype == torch.float16
    assert obj["passthrough_orig_dtypes"] == {"extra.bias": "float32"}
    assert obj["qmeta"] == {name: {"scheme": "per_row", "axis": 0} for name in obj["quantized"]}
    assert all(q.dtype == torch.int8 and obj["scales"][n].dtype == torch.float16 for n, q in obj["quantized"].items())
