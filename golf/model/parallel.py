"""Parallel residuals (model.parallel_residual, from layer model.parallel_from), the two forms of the records.

- gptj (T2, 2026-04-09): attention and MLP read the same normed input and both add to the stream:
  x <- x_in + attn_scale * attn(n(x_in)) + mlp_scale * mlp(n(x_in)), x_in the block's resid_mix of x and x0; on every
  pass of every layer >= parallel_from (Block.forward).
- two_lane (T3, 2026-04-27): from the first decoder position whose layer is >= parallel_from to the end, the stream
  splits into an attention lane a and an MLP lane m (both start as the stream). Layer i's attention reads
  resid_mix(a, x0), its MLP reads m; with A = attn_scale * attn(n(.)), M = mlp_scale * mlp(n(m)):
      a <- r[i,0] a + p[i,0,0] A + p[i,1,0] M        m <- r[i,1] m + p[i,0,1] A + p[i,1,1] M
  with learned lane lambdas r = lane_resid (num_layers x 2, init 1.1) and p = lane_post (num_layers x 2 x 2, init 1);
  U-Net skips enter lane a; the output is the lanes' mean. Like T3, the lambdas exist for every layer (66 numbers at
  11 layers) though only the lane layers use them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

LANE_RESID_INIT = 1.1  # T3's parallel_resid_lambdas


class LaneLambdas(nn.Module):
    """The two-lane form's learned mixing: lane_resid (L, 2) and lane_post (L, 2, 2), control tensors."""

    def __init__(self, num_layers: int):
        super().__init__()
        self.lane_resid = nn.Parameter(torch.full((num_layers, 2), LANE_RESID_INIT))
        self.lane_post = nn.Parameter(torch.ones(num_layers, 2, 2))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.lane_resid, LANE_RESID_INIT)
        nn.init.ones_(self.lane_post)

    def mix(self, layer: int, a: Tensor, m: Tensor, attn_out: Tensor, mlp_out: Tensor) -> tuple[Tensor, Tensor]:
        r = self.lane_resid[layer].to(a.dtype)
        p_attn, p_mlp = self.lane_post[layer, 0].to(a.dtype), self.lane_post[layer, 1].to(a.dtype)
        a_new = r[0] * a + p_attn[0] * attn_out + p_mlp[0] * mlp_out
        m_new = r[1] * m + p_attn[1] * attn_out + p_mlp[1] * mlp_out
        return a_new, m_new


def lanes_output(a: Tensor, m: Tensor) -> Tensor:
    return 0.5 * (a + m)
