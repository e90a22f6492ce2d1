"""Numbers that help read a score but are NOT legal scores: each dict carries a label saying so.

- memorization_gap: rescoring validation with the weights TTT ended with (they have trained on every chunk but the
  last) against the score-first number; a large negative gap means the adaptation memorized rather than adapted.
- loss_shares: how much of the total loss the hardest tokens carry (the research entries: 2.7% carry about 15%).
- adaptation_size: how far TTT moved each block, relative to the block's size.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from golf.data.shards import TokenArray
from golf.data.tokenizer import ByteTables
from golf.evaluate.windows import Window, evaluate_windows

LABEL = "diagnostic, not a legal score"


def memorization_gap(
    adapted_model: torch.nn.Module,
    val: TokenArray,
    tables: ByteTables,
    windows: Sequence[Window],
    batch_seqs: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager],
    score_first_bpb: float,
) -> dict:
    """Rescore every window with the final adapted weights; gap_bpb = rescored - score_first (negative: the
    weights now fit tokens they were trained on better than when those tokens were scored)."""
    rescored = evaluate_windows(adapted_model, val, tables, windows, batch_seqs, device, autocast).val_bpb
    return {"rescored_bpb": rescored, "score_first_bpb": score_first_bpb, "gap_bpb": rescored - score_first_bpb,
            "label": LABEL}


def loss_shares(token_nll: np.ndarray, fractions: Sequence[float] = (0.01, 0.027, 0.10)) -> dict:
    """Share of the summed NLL carried by the hardest `fraction` of tokens (at least one token each), keyed
    "hardest_1%", "hardest_2.7%", ..."""
    nll = np.sort(np.asarray(token_nll, dtype=np.float64))[::-1]
    total = float(nll.sum())
    shares = {}
    for fraction in fractions:
        k = min(len(nll), max(1, int(round(fraction * len(nll)))))
        shares[f"hardest_{fraction * 100:g}%"] = float(nll[:k].sum()) / total if total > 0 else 0.0
    return {"tokens": int(len(nll)), **shares, "label": LABEL}


def adaptation_size(initial_state: Mapping[str, torch.Tensor], model: torch.nn.Module) -> dict:
    """Per block index, ||w - w0|| / ||w0|| with Frobenius norms over all of the block's tensors; the token
    embedding too when it moved. Tensors the initial state lacks (e.g. LoRA adapters) are left out."""
    current = model.state_dict()
    sums: dict[str, list[float]] = {}  # group -> [sum |delta|^2, sum |w0|^2]
    for name, w0 in initial_state.items():
        group = _group(name)
        if group is None or name not in current:
            continue
        w0 = w0.detach().double().cpu()
        delta = current[name].detach().double().cpu() - w0
        acc = sums.setdefault(group, [0.0, 0.0])
        acc[0] += float(delta.square().sum())
        acc[1] += float(w0.square().sum())
    blocks = {g.split(".")[1]: _ratio(*acc) for g, acc in sorted(sums.items(), key=_block_order) if g != "embedding"}
    out: dict = {"blocks": blocks}
    if "embedding" in sums and sums["embedding"][0] > 0:
        out["embedding"] = _ratio(*sums["embedding"])
    out["label"] = LABEL
    return out


def _group(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] == "blocks" and len(parts) > 2:
        return f"blocks.{parts[1]}"
    if parts[0] == "tok_emb":
        return "embedding"
    return None


def _block_order(item: tuple[str, list[float]]) -> tuple[int, int]:
    group = item[0]
    return (1, 0) if group == "embedding" else (0, int(group.split(".")[1]))


def _ratio(delta_sq: float, weight_sq: float) -> float:
    if weight_sq == 0.0:
        return 0.0 if delta_sq == 0.0 else math.inf
    return math.sqrt(delta_sq / weight_sq)
