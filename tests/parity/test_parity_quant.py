"""golf's GPTQ + SDClip, int8 gates, GPTQ-lite and byte shuffle against the records' own functions (T2 = 2026-04-09,
T3 = 2026-04-27, T1 = 2026-03-23 for GPTQ-lite): on the same weights and the same Hessians the codes and scales are
equal, and the weights a golf artifact decodes to equal those the record's dequantizer gives.

Only the records' quantization functions are needed, so they are taken from each script's decoded source by name
(ast) and executed as they are, with torch and a silent log; the rest of the script (T3 imports Triton) never runs.
The records are written for Python 3.12: f-strings that nest their own quote character (PEP 701) are re-quoted
first, which leaves their meaning unchanged.
"""

from __future__ import annotations

import ast
import collections
import math
import re
import types
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from calibrated_model import calibrated_model
from golf.model.names import is_control
from golf.quant import compressors, encoders
from golf.quant.artifact import decode_artifact, export_artifact
from golf.quant.config import ClipSigmas, QuantBits, QuantConfig
from golf.quant.encoders import ExportContext
from golf.quant.gptq_lite import gptq_lite_rows
from reference_scripts import decode_source

pytestmark = pytest.mark.parity

T2, T3, T1 = "2026-04-09", "2026-04-27", "2026-03-23"
MAX_MISMATCH = 1e-4  # the bound for float summation order; measured: 0 everywhere below
VOCAB = 512


# --- the records' functions ---------------------------------------------------------------------------------------

def requote_pep701(line: str) -> str:
    """A line whose f-strings reuse their quote inside {...} (Python 3.12), with those inner quotes swapped."""
    out, i = [], 0
    while i < len(line):
        ch = line[i]
        if ch in "fF" and i + 1 < len(line) and line[i + 1] in "\"'" and (i == 0 or not line[i - 1].isalnum()):
            quote, depth, j = line[i + 1], 0, i + 2
            body = [ch, quote]
            while j < len(line):
                c = line[j]
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                elif c == quote and depth == 0:
                    break
                elif c == quote:
                    c = "'" if quote == '"' else '"'
                body.append(c)
                j += 1
            out.append("".join(body) + quote)
            i = j + 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def requote_source(source: str) -> str:
    return "\n".join(requote_pep701(line) if 'f"' in line or "f'" in line else line for line in source.splitlines())


def record_functions(folder: Path, names: tuple[str, ...]) -> types.SimpleNamespace:
    """The named top-level functions of the record's script (its self-extracting train_gpt.py decoded)."""
    text = (folder / "train_gpt.py").read_text(encoding="utf-8")
    tree = ast.parse(requote_source(decode_source(requote_source(text), str(folder))))
    def name_of(node: ast.stmt) -> str | None:  # a function, or a module constant such as _BSHF_MAGIC
        if isinstance(node, ast.FunctionDef):
            return node.name
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            return node.targets[0].id
        return None

    found = [node for node in tree.body if name_of(node) in names]
    assert sorted(map(name_of, found)) == sorted(names), f"{folder.name} lacks some of {names}"
    namespace = {"torch": torch, "Tensor": torch.Tensor, "collections": collections, "re": re, "math": math,
                 "log": lambda *_a, **_k: None, "np": __import__("numpy")}
    exec(compile(ast.Module(body=found, type_ignores=[]), str(folder), "exec"), namespace)
    return types.SimpleNamespace(**{name: namespace[name] for name in names})


@pytest.fixture(scope="module")
def t2(record_dir):
    return record_functions(record_dir(T2), ("gptq_quantize_weight", "gptq_mixed_quantize", "dequantize_mixed",
                                             "_BSHF_MAGIC", "_byte_shuffle", "_byte_unshuffle"))


@pytest.fixture(scope="module")
def t3(record_dir):
    return record_functions(record_dir(T3), ("gptq_quantize_weight", "gptq_mixed_quantize", "dequantize_mixed",
                                             "_quantize_gate_int8_row"))


@pytest.fixture(scope="module")
def t1(record_dir):
    return record_functions(record_dir(T1), ("quantize_int6_per_row",))


# --- shared inputs --------------------------------------------------------------------------------------------------

def weight_and_hessian(rows: int, cols: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(cols, cols, generator=g) / cols ** 0.5 + torch.eye(cols)
    x = torch.randn(4 * cols, cols, generator=g) @ mix * torch.linspace(0.1, 2.0, cols)
    return torch.randn(rows, cols, generator=g) * 0.05, x.T @ x / 4


def mismatch(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a != b).float().mean().item()


@pytest.fixture(scope="module")
def calibrated():
    return calibrated_model(VOCAB)


# --- encoder level ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("record", ["t2", "t3"])
@pytest.mark.parametrize("bits,k,shape", [(6, 12.85, (96, 320)), (7, 14.0, (64, 256)), (8, 20.0, (80, 200))])
def test_gptq_codes_and_scales_equal_the_records(request, record, bits, k, shape):
    oracle = request.getfixturevalue(record)
    w, h = weight_and_hessian(*shape, seed=bits)
    q_ref, s_ref = oracle.gptq_quantize_weight(w, h, clip_sigmas=k, clip_range=2 ** (bits - 1) - 1)
    cfg = QuantConfig(encoder="gptq", sdclip=ClipSigmas(k, k, k, k))
    q, s = encoders.get("gptq").quantize_rows("blocks.0.mlp.fc.weight", w, bits, cfg,
                                              ExportContext({"blocks.0.mlp.fc.weight": h}))
    fraction = mismatch(q, q_ref)
    print(f"{record} gptq int{bits} k={k} {tuple(shape)}: code mismatch fraction {fraction:.2e}")
    assert torch.equal(s, s_ref) and q.dtype == q_ref.dtype
    assert fraction < MAX_MISMATCH


def test_int8_gates_equal_t3s(t3):
    w = torch.randn(8, 12, generator=torch.Generator().manual_seed(3)) * 0.4
    q_ref, s_ref = t3._quantize_gate_int8_row(w)
    q, s = encoders.get("absmax").quantize_rows("blocks.0.attn.attn_gate_w", w, 8, QuantConfig(), ExportContext())
    assert torch.equal(q, q_ref) and torch.equal(s, s_ref)


def test_gptq_lite_per_row_never_loses_to_t1s_per_tensor_choice(t1):
    # rows above the 1/qmax scale floor (both floor the scale), some with an outlier: the best clip differs by row
    w = torch.randn(64, 512, generator=torch.Generator().manual_seed(4)) * 0.6
    w[::5, 7] = 9.0
    q_ref, s_ref = t1.quantize_int6_per_row(w)
    q, s = gptq_lite_rows(w, 6, [99.9, 99.95, 99.99, 99.999, 100.0], clip_floor=1.0)
    err_ref = (w - q_ref.float() * s_ref.float()[:, None]).square().sum(dim=1)
    err = (w - q.float() * s.float()[:, None]).square().sum(dim=1)
    assert (err <= err_ref).all() and err.sum() < err_ref.sum()


def test_the_byte_shuffle_is_t2s_without_its_marker(t2):
    data = bytes(torch.randint(0, 256, (1001,), generator=torch.Generator().manual_seed(5)).tolist())
    assert compressors.byte_shuffle(data) == t2._byte_shuffle(data)[5:]
    assert t2._byte_unshuffle(b"BSHF\x02" + compressors.byte_shuffle(data)) == data


# --- whole state dicts: golf's artifact against the record's serializer -------------------------------------------

def record_h(**kw) -> types.SimpleNamespace:
    return types.SimpleNamespace(**kw)


@pytest.mark.parametrize("record", ["t2", "t3"])
def test_a_golf_artifact_decodes_to_the_records_weights(request, calibrated, record):
    oracle = request.getfixturevalue(record)
    cfg, state, hessians = calibrated
    if record == "t2":
        h = record_h(embed_clip_sigmas=20.0, matrix_clip_sigmas=12.85, embed_bits=8, matrix_bits=6)
        quant = QuantConfig(name="record_0409", encoder="gptq", bits=QuantBits(8, 6, 6, 6),
                            sdclip=ClipSigmas(20.0, 12.85, 12.85, 12.85), compressor="brotli", level=5)
    else:
        h = record_h(embed_clip_sigmas=14.0, mlp_clip_sigmas=11.5, attn_clip_sigmas=13.0, matrix_clip_sigmas=12.85,
                     embed_bits=7, matrix_bits=6, gated_attn_quant_gate=True, lqer_enabled=False)
        quant = QuantConfig(name="record_0427", encoder="gptq", bits=QuantBits(7, 6, 6, 6),
                            sdclip=ClipSigmas(14.0, 13.0, 11.5, 12.85), gates_int8=True, compressor="brotli", level=5)
    result, meta = oracle.gptq_mixed_quantize(state, hessians, h)
    reference = oracle.dequantize_mixed(result, meta, state)
    loaded = decode_artifact(export_artifact(state, asdict(cfg), VOCAB, quant, ExportContext(hessians)).data)
    gptq_names = [n for n, how in meta.items() if how.startswith("gptq")]
    assert set(gptq_names) == set(hessians) and "tok_emb.weight" in gptq_names
    worst = max(mismatch(loaded.state_dict[n], reference[n]) for n in gptq_names)
    print(f"{record}: {len(gptq_names)} GPTQ tensors, worst decoded-weight mismatch fraction {worst:.2e}")
    assert worst < MAX_MISMATCH
    for name, how in meta.items():
        if how.startswith("gptq"):
            continue
        # the records keep every small tensor in fp16; golf keeps the control tensors in fp32 (exactly as trained)
        expected = state[name] if is_control(name) else reference[name]
        assert torch.equal(loaded.state_dict[name], expected.float()), name
