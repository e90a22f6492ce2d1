"""Empirical-Bayes adaptive TTT: shrink each block's update by how consistent its gradient is across micro-batches.

Each adaptation batch is split into K = ttt.eb_microbatches micro-batches, with gradients g_1 .. g_K (each the mean
loss gradient of its own tokens). For block b, all its adapted tensors flattened together:

    m_b   = (1/K) sum_k g_k                          the batch's gradient estimate (the optimizer steps on it)
    v_b   = sum_k ||g_k - m_b||^2 / (K - 1)          the per-coordinate variance, summed over coordinates
    se2_b = v_b / K                                  the squared standard error of m_b
    snr_b = max(||m_b||^2 - se2_b, 0) / se2_b        signal over noise
    scale_b = snr_b / (snr_b + eb_prior)             in [0, 1]

then, with w_b the block's weights just before and after the optimizer step,
w_b <- w_b_before + scale_b * (w_b_after - w_b_before).

Why the "- se2_b": E||m_b||^2 = ||mu_b||^2 + se2_b, so ||m_b||^2 itself over se2_b is about 1 even for pure noise
(every block would keep half of a noise step at eb_prior = 1). Subtracting the noise floor makes snr_b an unbiased-
numerator estimate of ||mu_b||^2 / se2_b: about 0 for noise, large for a consistent direction; at eb_prior = 1 the
scale is exactly the positive-part James-Stein shrinkage factor 1 - se2_b / ||m_b||^2. When se2_b = 0 (identical
micro-batch gradients) the scale is 1, and 0 when there is no gradient at all. Parameters outside the blocks (when
they adapt) form one more group, reported as block -1.

Micro-batches are groups of whole rows when the batch has at least K rows, else K contiguous runs of its valid
target positions (each then costs a forward pass over the rows it touches).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from golf.evaluate.ttt.config import Problem, TTTConfig
from golf.evaluate.ttt.method import Method, Stepper, register
from golf.evaluate.ttt.plan import Piece
from golf.problems import Problems

OUTSIDE_BLOCKS = -1  # the group key of adapted parameters that belong to no block


def eb_scale(grads: Tensor, prior: float) -> float:
    """The shrinkage factor of one group from its K micro-batch gradients, `grads` of shape (K, n)."""
    k = grads.shape[0]
    if k < 2:
        raise ValueError(f"the estimator needs at least 2 micro-batch gradients, got {k}")
    g = grads.double()
    mean = g.mean(dim=0)
    se2 = float(((g - mean) ** 2).sum()) / (k - 1) / k
    signal = max(float((mean ** 2).sum()) - se2, 0.0)
    if se2 == 0.0:
        return 1.0 if signal > 0 else 0.0
    snr = signal / se2
    return snr / (snr + prior)


def micro_batch_masks(mask: np.ndarray, k: int) -> list[np.ndarray]:
    """Split a batch's valid-target mask (rows, positions) into at most k disjoint non-empty masks covering it."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) >= k:
        parts = []
        for group in np.array_split(rows, k):
            part = np.zeros_like(mask)
            part[group] = mask[group]
            parts.append(part)
        return parts
    positions = np.flatnonzero(mask.ravel())
    parts = []
    for group in np.array_split(positions, min(k, len(positions))):
        part = np.zeros(mask.size, dtype=bool)
        part[group] = True
        parts.append(part.reshape(mask.shape))
    return parts


def group_scales(per_tensor: list[Tensor], groups: list[int], prior: float) -> dict[int, float]:
    """Per group key: eb_scale over the group's tensors, each given as its (K, numel) stack of gradients."""
    scales = {}
    for key in sorted(set(groups)):
        stacked = torch.cat([g for g, owner in zip(per_tensor, groups) if owner == key], dim=1)
        scales[key] = eb_scale(stacked, prior)
    return scales


@torch.no_grad()
def shrink_updates(tensors: list[Tensor], before: list[Tensor], groups: list[int], scales: dict[int, float]) -> None:
    """w <- w_before + scale * (w_after - w_before), per tensor with its group's scale."""
    for tensor, old, key in zip(tensors, before, groups):
        tensor.copy_(torch.lerp(old, tensor, scales[key]))


@register
class EmpiricalBayes(Method):
    """Each step: K micro-batch gradients, their mean as the step's gradient, then each block's update shrunk by its
    scale. The scales are averaged over a piece's steps and recorded as `eb_scales` (block -> mean scale)."""

    name = "eb_adaptive"

    @staticmethod
    def problems(cfg: TTTConfig) -> list[Problem]:
        p = Problems("ttt.")
        p.at_least("eb_microbatches", cfg.eb_microbatches, 2)
        p.need(cfg.eb_prior > 0, "eb_prior", cfg.eb_prior, "a number > 0")
        return p

    def __init__(self, model: nn.Module, cfg: TTTConfig):
        super().__init__(model, cfg)
        self.groups = [OUTSIDE_BLOCKS if a.block is None else a.block for a in self.adaptables]

    def step(self, stepper: Stepper, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> dict[Any, float]:
        parts = micro_batch_masks(mask, self.cfg.eb_microbatches)
        if len(parts) < 2:  # a single valid target: no spread to estimate, a plain step
            return super().step(stepper, x, y, mask)
        tensors = stepper.tensors
        stacks: list[list[Tensor]] = [[] for _ in tensors]
        for part in parts:
            stepper.gradients(x, y, part)
            for stack, t in zip(stacks, tensors):
                stack.append(t.grad.reshape(-1).clone())
        per_tensor = [torch.stack(stack) for stack in stacks]  # (K, numel) each
        scales = group_scales(per_tensor, self.groups, self.cfg.eb_prior)
        for t, grads in zip(tensors, per_tensor):
            t.grad = grads.mean(dim=0).view_as(t)
        with torch.no_grad():
            before = [t.detach().clone() for t in tensors]
        stepper.apply()
        shrink_updates(tensors, before, self.groups, scales)
        return scales

    def record(self, piece: Piece, step_means: dict[Any, float]) -> dict[str, Any]:
        return {"eb_scales": step_means}
