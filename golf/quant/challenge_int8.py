"""The challenge's own artifact, rebuilt from golf's int8 export: what the baseline train_gpt.py writes,
zlib.compress(torch.save(quant_obj), 9) with quant_obj from quantize_state_dict_int8, so golf's file can be measured
against it on the same weights without the challenge's script.

golf's int8 encoder (quant=int8_zlib: per-row 99.99984th-percentile clip, scale floor 1/127, fp16 scales) gives the
challenge's codes and scales bit for bit (golf/quant/quantize.py); the object around them is the script's: codes,
scales and dtypes of the matrices over 65,536 elements, the rest passed through (control tensors in fp32, other
float tensors in fp16 with their dtype remembered, non-float tensors as they are), "qmeta" per-row markers. A test
against the script (tests/parity/test_serializer_parity.py) checks the bytes are the script's. Not part of loading.
"""

from __future__ import annotations

import io
import zlib

import torch
from torch import Tensor

from golf.quant.quantize import quantize_rows

KEEP_FLOAT_MAX_NUMEL = 65_536  # the script's INT8_KEEP_FLOAT_MAX_NUMEL
CLIP_PERCENTILE = 99.99984
# the script's CONTROL_TENSOR_NAME_PATTERNS (= INT8_KEEP_FLOAT_FP32_NAME_PATTERNS), matched as substrings
FP32_PATTERNS = ("attn_scale", "attn_scales", "mlp_scale", "mlp_scales", "resid_mix", "resid_mixes", "q_gain",
                 "skip_weight", "skip_weights")


def quant_object(state_dict: dict[str, Tensor]) -> dict[str, object]:
    """The object the script's quantize_state_dict_int8 returns for `state_dict` (its first value)."""
    quantized, scales, dtypes, passthrough, orig_dtypes, qmeta = {}, {}, {}, {}, {}, {}
    for name, tensor in state_dict.items():
        t = tensor.detach().to("cpu").contiguous()
        if not t.is_floating_point():
            passthrough[name] = t
        elif t.numel() <= KEEP_FLOAT_MAX_NUMEL:
            if any(pattern in name for pattern in FP32_PATTERNS):
                passthrough[name] = t.float().contiguous()
            elif t.dtype in (torch.float32, torch.bfloat16):
                orig_dtypes[name] = str(t.dtype).removeprefix("torch.")
                passthrough[name] = t.to(torch.float16).contiguous()
            else:
                passthrough[name] = t
        elif t.dim() == 2:
            q, scale = quantize_rows(t.float(), 8, CLIP_PERCENTILE, clip_floor=1.0)
            quantized[name], scales[name] = q.contiguous(), scale.contiguous()
            dtypes[name] = str(t.dtype).removeprefix("torch.")
            qmeta[name] = {"scheme": "per_row", "axis": 0}
        else:
            raise ValueError(f"{name}: a {t.dim()}-D float tensor over {KEEP_FLOAT_MAX_NUMEL:,} elements; the "
                             "script gives it an fp32 per-tensor scale, which this reproduction does not build")
    obj: dict[str, object] = {"__quant_format__": "int8_clean_per_row_v1", "quantized": quantized,
                              "scales": scales, "dtypes": dtypes, "passthrough": passthrough}
    if qmeta:
        obj["qmeta"] = qmeta
    if orig_dtypes:
        obj["passthrough_orig_dtypes"] = orig_dtypes
    return obj


def challenge_artifact(state_dict: dict[str, Tensor]) -> bytes:
    """The bytes of the script's final_model.int8.ptz for `state_dict`: torch.save of the object, zlib level 9."""
    buffer = io.BytesIO()
    torch.save(quant_object(state_dict), buffer)
    return zlib.compress(buffer.getvalue(), level=9)
