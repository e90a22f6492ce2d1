"""The export's side of LQER (quant.lqer.enabled): which encoded matrices get a correction, their factors, and the
line the export notes about them. Imported only when an export runs with LQER on: loading needs golf/quant/lqer.py
and golf/quant/lqer_layout.py, not this.

The candidates are the matrices the chosen encoder quantized (per-row integer codes; not the int8 gates, which the
T3 record routes around LQER too); each one's error is W - dequant(codes) against the weights as given (before
quant.prune_frac, so a correction also restores what pruning took, by as much as its rank allows).
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping

import numpy as np
import torch
from torch import Tensor

from golf.quant import lqer
from golf.quant.config import QuantConfig
from golf.quant.quantize import dequantize_rows, plan_encoding


def candidate_errors(encoded: Iterable[tuple[str, bytes, bytes]], state_dict: Mapping[str, Tensor],
                     cfg: QuantConfig) -> Iterator[tuple[str, Tensor]]:
    """(name, W - dequant(codes)) for every matrix the encoder quantized, from (name, int8 code bytes, fp16 scale
    bytes) as the exporter encoded them (state-dict row order), in the order given."""
    for name, values, scales in encoded:
        w = state_dict[name].detach().cpu()
        enc = plan_encoding(name, w, cfg)
        if enc.kind != "int" or not enc.per_row or enc.encoder:
            continue
        codes = torch.from_numpy(np.frombuffer(values, dtype="<i1").astype(np.int8).reshape(w.shape))
        scale = torch.from_numpy(np.frombuffer(scales, dtype="<f2").astype(np.float16))
        yield name, w.float() - dequantize_rows(codes, scale)


def corrections(encoded: Iterable[tuple[str, bytes, bytes]], state_dict: Mapping[str, Tensor],
                cfg: QuantConfig) -> tuple[dict[str, lqer.LowRankFactors], str]:
    """The factors of the cfg.lqer.top_k largest errors (largest first), and a note naming each corrected matrix
    with its error's Frobenius norm before and after the (quantized) correction."""
    chosen = lqer.largest_errors(candidate_errors(encoded, state_dict, cfg), cfg.lqer.top_k)
    factors, said = {}, []
    for name, error in chosen:
        factors[name] = lqer.factorize(error, cfg.lqer)
        after = (error - factors[name].correction()).norm()
        form = "asymmetric" if factors[name].asym else "symmetric"
        said.append(f"{name} {float(error.norm()):.4g} -> {float(after):.4g} ({form})")
    if not chosen:
        return factors, "quant.lqer: no matrix is quantized by the encoder, so nothing is corrected"
    return factors, f"quant.lqer rank {cfg.lqer.rank} on {len(chosen)} matrices (error norm before -> after): " \
        + "; ".join(said)
