"""Calibration for GPTQ: H = X^T X of the inputs each quantized matrix multiplies, summed by forward hooks while the
model runs on calibration batches, divided by the number of batches (as the T2/T3 records do).

- a linear layer's weight (rows = outputs, cols = inputs): X = its inputs, every call counted (a block shared by
  several virtual layers, or looped, sums the inputs of all its uses);
- the head (the tied token embedding tok_emb.weight, or an untied lm_head.weight): X = the final norm's output, the
  head's input. golf's final norm is a function and the head is applied with F.linear (no module call to hook), so
  X is recomputed from the last block's output, to which the model applies rms_norm right before the head;
- lookup tables (the bigram and value-embedding tables) multiply no input: they get no Hessian (the gptq encoder
  rounds them on their SDClip scales and says so).

The batches are the caller's: training batches (the rules count that calibration as training time: it must finish
inside train.max_wallclock_s) or sequences the model generates itself (generated_batches), never validation data.
"""

from __future__ import annotations

from typing import Collection, Iterable, Optional

import torch
from torch import Tensor, nn

from golf.model.gpt import GPT, rms_norm
from golf.quant.config import QuantConfig
from golf.quant.quantize import plan_encoding

TIED_EMBEDDING = "tok_emb.weight"
UNTIED_HEAD = "lm_head.weight"


def hessian_targets(model: GPT, cfg: QuantConfig) -> list[str]:
    """The state-dict names whose export runs the row encoder (per-row integers, not absmax gates): what GPTQ
    needs Hessians for."""
    out = []
    for name, tensor in model.state_dict().items():
        encoding = plan_encoding(name, tensor, cfg)
        if encoding.kind == "int" and encoding.per_row and not encoding.encoder:
            out.append(name)
    return out


class HessianCollector:
    """Forward hooks summing X^T X (fp32) for the named weights; use as a context manager around forward passes."""

    def __init__(self, model: GPT, names: Optional[Collection[str]] = None):
        self.model = model
        self.head = TIED_EMBEDDING if model.lm_head is None else UNTIED_HEAD
        linears = {f"{n}.weight": m for n, m in model.named_modules()
                   if isinstance(m, nn.Linear) and f"{n}.weight" != self.head}
        available = set(linears) | {self.head}
        wanted = available if names is None else set(names)
        self.names = sorted(wanted & available)  # the rest (tables) have no input to calibrate on
        self.sums: dict[str, Tensor] = {}
        self._linears = {name: linears[name] for name in self.names if name in linears}
        self._head = self.head in wanted
        self._last_block_output: Optional[Tensor] = None
        self._handles: list = []

    def _add(self, name: str, x: Tensor) -> None:
        x = x.detach().float().reshape(-1, x.size(-1))
        if name not in self.sums:
            self.sums[name] = torch.zeros(x.size(1), x.size(1), dtype=torch.float32, device=x.device)
        self.sums[name].addmm_(x.T, x)

    def __enter__(self) -> "HessianCollector":
        for name, module in self._linears.items():
            self._handles.append(module.register_forward_hook(
                lambda _m, inputs, _out, name=name: self._add(name, inputs[0])))
        if self._head:
            for block in self.model.blocks:
                self._handles.append(block.register_forward_hook(self._remember_block_output))
        return self

    def _remember_block_output(self, _module: nn.Module, _inputs, output: Tensor) -> None:
        self._last_block_output = output

    def forward(self, input_ids: Tensor) -> None:
        """One calibration pass (no gradients); the head's input is taken after the model's last block."""
        self._last_block_output = None
        with torch.no_grad():
            self.model(input_ids)
            if self._head:
                self._add(self.head, rms_norm(self._last_block_output))

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def collect_hessians(model: GPT, batches: Iterable[Tensor], names: Optional[Collection[str]] = None
                     ) -> dict[str, Tensor]:
    """Mean over `batches` (input ids, (B, T), on the model's device) of X^T X per weight name (all linear weights
    and the head when `names` is None), on the CPU. The model runs in eval mode; its mode is restored."""
    was_training = model.training
    model.eval()
    count = 0
    try:
        with HessianCollector(model, names) as collector:
            for input_ids in batches:
                collector.forward(input_ids)
                count += 1
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("GPTQ calibration needs at least one batch")
    return {name: (h / count).cpu() for name, h in collector.sums.items()}


def generated_batches(model: GPT, batches: int, batch_size: int, seq_len: int, temperature: float = 1.0,
                      bos_id: int = 1, seed: int = 0) -> list[Tensor]:
    """Self-generated calibration: sequences sampled autoregressively from the model itself, each starting at BOS
    (softmax(logits / temperature); temperature 0 = greedy). No data is read, so the rules' training clock does not
    apply to calibrating on them."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for _ in range(batches):
                ids = torch.full((batch_size, 1), bos_id, dtype=torch.long, device=device)
                while ids.size(1) < seq_len:
                    logits = model(ids)[:, -1].float().cpu()
                    if temperature == 0:
                        nxt = logits.argmax(dim=-1)
                    else:
                        probs = torch.softmax(logits / temperature, dim=-1)
                        nxt = torch.multinomial(probs, 1, generator=generator)[:, 0]
                    ids = torch.cat([ids, nxt.to(device)[:, None]], dim=1)
                out.append(ids)
    finally:
        model.train(was_training)
    return out
