"""LQER's arithmetic (golf/quant/lqer.py): which matrices get a correction, the rank-r factors of their error, the
factors' integer codes and scales, the corrected weights, and the quant.lqer checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from golf.quant import lqer
from golf.quant.config import LQERConfig, QuantConfig, quant_problems
from golf.quant.quantize import dequantize_rows, quantize_rows

from testkit import one_torch_thread

one_thread = pytest.fixture(autouse=True)(one_torch_thread)


def weight(rows: int, cols: int, seed: int) -> torch.Tensor:
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * 0.05


def int4_error(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dequantized int4 weights, their error w - dequant): a coarse quantization with a large error to correct."""
    q, s = quantize_rows(w, 4, 100.0)
    w_hat = dequantize_rows(q, s)
    return w_hat, w - w_hat


def test_the_factors_are_the_best_rank_r_approximation():
    _, error = int4_error(weight(96, 160, 0))
    singular = torch.linalg.svdvals(error)
    for rank in (1, 4, 16):
        a, b = lqer.low_rank(error, rank)
        assert a.shape == (96, rank) and b.shape == (rank, 160)
        # Eckart-Young: what is left is exactly the energy of the singular values past r
        left = (error - a @ b).square().sum()
        assert torch.allclose(left, singular[rank:].square().sum(), rtol=1e-4)
    a, b = lqer.low_rank(error[:3], 8)  # rank capped by the smaller side
    assert a.shape == (3, 3) and b.shape == (3, 160)


def test_the_corrected_weights_are_closer_and_closer_with_more_rank():
    w = weight(128, 256, 1)
    w_hat, error = int4_error(w)
    before = (w - w_hat).norm()
    after = [(w - w_hat - lqer.factorize(error, LQERConfig(rank=r)).correction()).norm() for r in (1, 4, 16)]
    assert after[0] < before and after[1] < after[0] and after[2] < after[1]


def test_asymmetric_codes_and_scales_follow_the_records_formula():
    _, error = int4_error(weight(64, 128, 2))
    a, b = lqer.low_rank(error, 4)
    f = lqer.pack_asymmetric(a, b, group=64)
    assert f.asym and f.a.dtype == f.b.dtype == torch.int8 and f.a_scale.dtype == f.b_scale.dtype == torch.float16
    assert f.a.min() >= -2 and f.a.max() <= 1 and f.b.min() >= -8 and f.b.max() <= 7
    assert f.a_scale.numel() == 1 and f.b_scale.numel() == b.numel() // 64
    assert f.a_scale == (a.abs().max() / 1.5).half()
    assert torch.equal(f.b_scale, (b.reshape(-1, 64).abs().amax(dim=1) / 7.5).half())
    # every value is within half a step of its code (the largest positive one is half a step past the top code),
    # plus the fp16 rounding of the scale: at most 2**-11 of it, times the largest code magnitude
    a_step, b_step = f.a_scale.float(), f.b_scale.float().repeat_interleave(64).reshape(b.shape)
    assert ((a - f.a.float() * a_step).abs() <= a_step * (0.5 + 2 * 2.0 ** -11)).all()
    assert ((b - f.b.float() * b_step).abs() <= b_step * (0.5 + 8 * 2.0 ** -11)).all()


def test_other_bit_widths_widen_the_code_range():
    _, error = int4_error(weight(64, 128, 3))
    a, b = lqer.low_rank(error, 4)
    narrow, wide = lqer.pack_asymmetric(a, b, 64, 2, 4), lqer.pack_asymmetric(a, b, 64, 4, 8)
    assert wide.a.min() >= -8 and wide.a.max() <= 7 and wide.b.min() >= -128 and wide.b.max() <= 127
    assert wide.a.abs().max() >= 7 and wide.b.abs().max() >= 127  # the largest value takes an end code
    exact = a @ b
    assert (exact - wide.correction()).norm() < (exact - narrow.correction()).norm()


def test_symmetric_factors_when_asked_or_when_b_does_not_split_into_groups():
    _, error = int4_error(weight(48, 100, 4))  # B is 4 x 100: 400 values, not a multiple of 64
    f = lqer.factorize(error, LQERConfig(rank=4))
    assert not f.asym and f.a_scale.shape == (48,) and f.b_scale.shape == (4,)
    assert f.a.abs().max() <= 7 and f.b.abs().max() <= 7
    a, b = lqer.low_rank(error, 4)
    assert torch.equal(f.a_scale, (a.abs().amax(dim=1) / 7).half())
    _, error = int4_error(weight(48, 128, 4))
    assert lqer.factorize(error, LQERConfig(rank=4)).asym
    two_bit = lqer.factorize(error, LQERConfig(rank=4, asym=False, factor_bits=2))
    assert not two_bit.asym and two_bit.a.abs().max() <= 1 and two_bit.b.abs().max() <= 1


def test_a_zero_error_gives_a_zero_correction_not_nan():
    for cfg in (LQERConfig(), LQERConfig(asym=False)):
        correction = lqer.factorize(torch.zeros(32, 64), cfg).correction()
        assert torch.equal(correction, torch.zeros(32, 64))


def test_the_largest_errors_are_chosen_in_order_and_ties_keep_the_given_order():
    sizes = {"a": 1.0, "b": 3.0, "c": 2.0, "d": 3.0, "e": 0.5}
    held = []

    def errors():
        for name, size in sizes.items():
            held.append(name)
            yield name, torch.full((4, 4), size)

    chosen = lqer.largest_errors(errors(), 3)
    assert [name for name, _ in chosen] == ["b", "d", "c"]
    assert held == list(sizes)  # every candidate was offered
    factors = lqer.correct_largest(((n, weight(16, 64, i)) for i, n in enumerate("xyz")), LQERConfig(top_k=2))
    norms = {n: weight(16, 64, i).norm() for i, n in enumerate("xyz")}
    assert list(factors) == sorted(norms, key=lambda n: -norms[n])[:2]


def test_lqer_is_off_by_default_and_bad_values_are_named():
    assert QuantConfig().lqer.enabled is False
    assert quant_problems(QuantConfig()) == []
    for key, value in (("rank", 0), ("top_k", 0), ("group", 0), ("a_bits", 1), ("b_bits", 9), ("factor_bits", 16)):
        cfg = QuantConfig(lqer=dataclasses.replace(LQERConfig(), **{key: value}))
        problems = quant_problems(cfg)
        assert [p[:2] for p in problems] == [(f"quant.lqer.{key}", value)], problems


@pytest.mark.parametrize("override,key", [("quant.lqer.rank=0", "quant.lqer.rank"),
                                          ("quant.lqer.b_bits=16", "quant.lqer.b_bits")])
def test_a_bad_lqer_override_is_refused_naming_the_key(override, key):
    from golf.cli import USER_ERRORS, compose, describe
    from golf.config import to_golf_config

    with pytest.raises(USER_ERRORS) as info:
        to_golf_config(compose(["quant=record_0427", override]))
    message = describe(info.value)
    assert key in message and "Traceback" not in message, message


def test_the_factors_come_back_from_their_bytes_exactly():
    from golf.quant import lqer_layout

    for shape, cfg in (((48, 128), LQERConfig()), ((48, 100), LQERConfig()), ((40, 64), LQERConfig(asym=False))):
        _, error = int4_error(weight(*shape, 5))
        f = lqer.factorize(error, cfg)
        description, data = lqer_layout.describe(f), lqer_layout.to_bytes(f)
        assert lqer_layout.check(description, list(shape)) == ""
        assert len(data) == lqer_layout.nbytes(description, list(shape))
        back = lqer_layout.from_bytes(description, list(shape), data)
        assert back.asym == f.asym and torch.equal(back.correction(), f.correction())
        for part in ("a", "a_scale", "b", "b_scale"):
            assert torch.equal(getattr(back, part), getattr(f, part)) and getattr(back, part).dtype == \
                getattr(f, part).dtype, part


@pytest.mark.parametrize("description,shape", [
    ({"rank": 0, "asym": True, "group": 64}, [48, 128]), ({"rank": 49, "asym": False, "group": 0}, [48, 128]),
    ({"rank": 4, "asym": True, "group": 60}, [48, 128]), ({"rank": 4, "asym": False, "group": 64}, [48, 128]),
    ({"rank": 4, "asym": "yes", "group": 64}, [48, 128]), ({"rank": 4, "asym": True}, [48, 128]),
    ({"rank": 4, "asym": True, "group": 64}, [48, 8, 16]), ({"rank": True, "asym": True, "group": 64}, [48, 128])])
def test_a_damaged_description_is_refused_before_any_read(description, shape):
    from golf.quant import lqer_layout

    assert lqer_layout.check(description, shape) != ""


# --- in the artifact --------------------------------------------------------------------------------------------

def trained_like_state() -> dict[str, torch.Tensor]:
    """Matrices whose quantization error has structure a low rank can take (a few strong directions plus noise, as
    trained weights have), and a gate and a small vector that LQER must leave alone."""
    g = torch.Generator().manual_seed(7)
    state = {}
    shapes = {"blocks.0.attn.c_q.weight": (96, 128), "blocks.0.mlp.fc.weight": (192, 128),
              "blocks.0.mlp.proj.weight": (128, 192), "blocks.1.mlp.fc.weight": (192, 128)}
    for i, (name, (rows, cols)) in enumerate(shapes.items()):
        strong = torch.randn(rows, 3, generator=g) @ torch.randn(3, cols, generator=g)
        state[name] = (strong * 0.3 + torch.randn(rows, cols, generator=g)) * 0.02 * (i + 1)
    state["blocks.0.attn.attn_gate_w"] = torch.randn(4, 12, generator=g)
    state["blocks.0.attn_scale"] = torch.ones(128)
    return state


def lqer_quant(**lqer_keys) -> QuantConfig:
    from golf.quant.config import QuantBits
    return QuantConfig(encoder="sdclip", bits=QuantBits(embed=6, attn=4, mlp=4, other=6), passthrough_numel=1024,
                       gates_int8=True, compressor="brotli", level=5,
                       lqer=LQERConfig(**{"enabled": True, "top_k": 2, **lqer_keys}))


def test_an_artifact_with_lqer_loads_closer_to_the_weights_on_the_chosen_matrices():
    from golf.quant.artifact import decode_artifact, export_artifact

    state = trained_like_state()
    with_lqer = export_artifact(state, {}, 64, lqer_quant())
    without = decode_artifact(export_artifact(state, {}, 64, lqer_quant(enabled=False)).data)
    loaded = decode_artifact(with_lqer.data)
    corrected = [e["name"] for e in loaded.header["tensors"] if e.get("lqer")]
    errors = {name: (state[name] - without.state_dict[name]).norm() for name in state}
    matrices = [n for n in state if ".weight" in n and "gate" not in n]
    assert sorted(corrected) == sorted(sorted(matrices, key=lambda n: -errors[n])[:2])  # the two largest errors
    for name in state:
        if name in corrected:
            assert (state[name] - loaded.state_dict[name]).norm() < errors[name], name
        else:
            assert torch.equal(loaded.state_dict[name], without.state_dict[name]), name
    assert any(name in note and "quant.lqer" in note for note in with_lqer.notes for name in corrected)
    assert with_lqer.model_bytes > len(export_artifact(state, {}, 64, lqer_quant(enabled=False)).data)


@pytest.mark.parametrize("compressor", ["brotli", "pergroup"])  # pergroup: reordered streams, factors after "rest"
def test_the_loaded_weights_are_the_dequantized_codes_plus_the_stored_correction(compressor):
    from golf.quant import lqer_export
    from golf.quant.artifact import decode_artifact, export_artifact

    state = trained_like_state()
    quant = dataclasses.replace(lqer_quant(top_k=1, group=32), compressor=compressor)
    loaded = decode_artifact(export_artifact(state, {}, 64, quant).data)
    without = decode_artifact(export_artifact(state, {}, 64, lqer_quant(enabled=False)).data)
    (name, error), = lqer.largest_errors(((n, state[n] - without.state_dict[n]) for n in state
                                          if n.endswith(("c_q.weight", "fc.weight", "proj.weight"))), 1)
    expected = without.state_dict[name] + lqer.factorize(error, quant.lqer).correction()
    assert torch.equal(loaded.state_dict[name], expected)
    assert loaded.header["tensors"][list(state).index(name)]["lqer"]["group"] == 32
    assert lqer_export  # the export side is its own module, imported only when LQER is on


def reframed(data: bytes, change) -> bytes:
    """`data` (a version-2 artifact) with its header JSON changed by `change(header)`."""
    import json
    import struct

    import brotli

    packed_len, raw_len = struct.unpack_from("<II", data, 8)
    header = json.loads(brotli.decompress(data[16:16 + packed_len]))
    change(header)
    raw = json.dumps(header, sort_keys=True).encode()
    packed = brotli.compress(raw)
    return data[:8] + struct.pack("<II", len(packed), len(raw)) + packed + data[16 + packed_len:]


@pytest.mark.parametrize("field,value,reason", [
    ("rank", 10 ** 6, "rank"), ("group", 7, "group"), ("offset", 10 ** 9, "outside"), ("nbytes", 3, "bytes"),
    ("asym", None, "asym"), ("offset", -1, "offset")])
def test_a_damaged_lqer_entry_is_refused_naming_the_file(tmp_path, field, value, reason):
    from golf.quant.artifact import ArtifactError, load_artifact, export_artifact

    data = export_artifact(trained_like_state(), {}, 64, lqer_quant(top_k=1)).data

    def damage(header):
        entry = next(e for e in header["tensors"] if e.get("lqer"))
        entry["lqer"][field] = value

    path = tmp_path / "bad.golf"
    path.write_bytes(reframed(data, damage))
    with pytest.raises(ArtifactError) as info:
        load_artifact(path)
    assert str(path) in str(info.value) and reason in str(info.value), str(info.value)
