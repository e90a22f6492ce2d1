"""Error-guided TTT: put the adaptation loss only on the hardest tokens of each batch.

The loss of a batch is the mean NLL of its k highest-loss target tokens, k = max(1, ceil(error_top_frac * n)) of its
n valid targets. With several ranks the batch's rows are spread over them, so the per-token losses are gathered to
pick the global top k; each rank then back-propagates its own selected tokens, divided by the same k, and the summed
gradients equal the single-process gradient. (The research found this did not help; it is here to be measured.)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from golf.collectives import all_gather_padded, rank_world
from golf.evaluate.ttt.config import Problem, TTTConfig
from golf.evaluate.ttt.method import Method, register
from golf.problems import Problems


def top_count(n_valid: int, frac: float) -> int:
    return max(1, math.ceil(frac * n_valid))


def top_fraction_mask(nll: Tensor, mask: Tensor, k: int) -> Tensor:
    """bool like `nll`: this rank's share of the k highest losses among the valid targets of all ranks."""
    values = nll.detach()[mask].float()
    rank, world = rank_world()
    if world > 1:  # pad every rank's losses to the longest with -inf, gather, and keep the indices in my segment
        gathered, counts = all_gather_padded(values, -math.inf)
        width = max(counts)
        top = torch.topk(torch.cat(gathered), k).indices
        local = top[(top >= rank * width) & (top < rank * width + values.numel())] - rank * width
    else:
        local = torch.topk(values, k).indices
    chosen = torch.zeros(values.numel(), dtype=torch.bool, device=nll.device)
    chosen[local] = True
    selected = torch.zeros_like(mask)
    selected[mask] = chosen
    return selected


def top_fraction_loss(nll: Tensor, mask: Tensor, frac: float, n_valid: int | None = None) -> Tensor:
    """Mean of the top-`frac` share of the valid per-token losses (n_valid: the batch's valid targets on all ranks)."""
    k = top_count(int(mask.sum()) if n_valid is None else n_valid, frac)
    return (nll * top_fraction_mask(nll, mask, k)).sum() / k


@register
class ErrorGuided(Method):
    name = "error_guided"

    @staticmethod
    def problems(cfg: TTTConfig) -> list[Problem]:
        p = Problems("ttt.")
        p.fraction("error_top_frac", cfg.error_top_frac, 0.0, 1.0)
        return p

    def loss(self, nll: Tensor, mask: Tensor, n_valid: int) -> Tensor:
        # a collective with several ranks: every rank takes part, also one with no rows in this batch
        return top_fraction_loss(nll, mask, self.cfg.error_top_frac, n_valid)
