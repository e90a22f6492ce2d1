"""The block's MLP variants (model.mlp_act): relu^2 (the baseline), LeakyReLU(slope)^2, SwiGLU.

Hidden width = model.mlp_mult * model_dim for all three. SwiGLU adds a gate matrix (mlp.gate) beside mlp.fc, so it
has 3 * dim * hidden weights instead of 2; its names stay under `mlp.` so quantization, Muon and TTT treat it alike.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from golf.model.config import MLP_ACTIVATIONS


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str = "relu2", leaky_slope: float = 0.5, linear=None):
        super().__init__()
        if act not in MLP_ACTIVATIONS:
            raise ValueError(f"model.mlp_act must be one of {', '.join(MLP_ACTIVATIONS)}, got {act!r}")
        self.act = act
        self.leaky_slope = leaky_slope
        self.fc = linear(dim, hidden)
        if act == "swiglu":
            self.gate = linear(dim, hidden)
        self.proj = linear(hidden, dim, zero_init=True)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        if self.act == "relu2":
            h = F.relu(h).square()
        elif self.act == "leaky_relu2":
            h = F.leaky_relu(h, self.leaky_slope).square()
        else:
            h = F.silu(self.gate(x)) * h
        return self.proj(h)


def mlp_parameter_count(dim: int, hidden: int, act: str) -> int:
    return (3 if act == "swiglu" else 2) * dim * hidden
