"""Batched per-document LoRA adapters (T3's BatchedTTTLoRA) attached to a golf GPT for the duration of TTT.

Row b of a batch is one document and has its own adapters: for an input x (b, T, in) an adapter adds
(x A_b^T) B_b^T * scale, A (docs, rank, in), B (docs, out, rank), scale = alpha / rank (alpha 0: 1, as the
2026-04-14 record). One set per virtual layer ("slot": a position of the layer plan, so a looped block gets one per
pass), on (ttt.doc_lora_targets):
- q, k, v: added to c_q, c_k, c_v's outputs, from the attention's normed input;
- o: added to the attention's output (before attn_scale), from the same normed input (T3's o_lora reads n, not y);
- mlp: added to the MLP's output (before mlp_scale), from the MLP's normed input;
- head: added to the pre-softcap logits, from the final normed hidden (GPT.head_logits).
B starts at zero, so the model starts exactly as the base. A starts from a fixed draw, the same for every row (a
document's start never depends on its batch or slot): U(-1/sqrt(in), 1/sqrt(in)) from a generator seeded per adapter.

The adapters act only inside `with adapters.attached():` (forward hooks, and two instance attributes: run_layer counts
the slots, head_logits adds the head delta); afterwards nothing of them is left on the model, whose parameters they
never touch.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from typing import Callable, Iterator, Optional

import torch
from torch import Tensor, nn

DOC_LORA_TARGETS = ("q", "k", "v", "o", "mlp", "head")
LORA_SEED = 0

AInit = Callable[[str, int, int], Tensor]  # (adapter key, rank, in_features) -> A (rank, in)


def default_a_init(key: str, rank: int, in_features: int) -> Tensor:
    """T3's A distribution, drawn once per adapter key from its own seeded generator."""
    generator = torch.Generator().manual_seed(LORA_SEED * 1_000_003 + zlib.crc32(key.encode()))
    bound = 1.0 / math.sqrt(in_features)
    return (torch.rand(rank, in_features, generator=generator, dtype=torch.float64) * 2 - 1).mul_(bound).float()


class BatchedLoRA:
    def __init__(self, key: str, docs: int, in_features: int, out_features: int, rank: int, scale: float,
                 device: torch.device, a_init: AInit):
        self.key, self.scale = key, scale
        self.a_start = a_init(key, rank, in_features).to(device)
        self.a = self.a_start.expand(docs, rank, in_features).clone().requires_grad_(True)
        self.b = torch.zeros(docs, out_features, rank, device=device, requires_grad=True)

    def __call__(self, x: Tensor) -> Tensor:
        return ((x @ self.a.transpose(1, 2).to(x.dtype)) @ self.b.transpose(1, 2).to(x.dtype)) * self.scale

    @torch.no_grad()
    def reset(self, keep_a: bool) -> None:
        """B back to zero; A back to its start unless keep_a (T3's warm start: A keeps what it learned)."""
        if not keep_a:
            self.a.copy_(self.a_start.expand_as(self.a))
        self.b.zero_()


class DocAdapters:
    """The adapters of `docs` rows for `model` (attached only inside attached())."""

    def __init__(self, model: nn.Module, docs: int, rank: int, alpha: float, targets: list[str],
                 a_init: Optional[AInit] = None):
        a_init = a_init or default_a_init
        self.model, self.docs = model, docs
        scale = alpha / rank if alpha > 0 else 1.0
        device = model.tok_emb.weight.device
        dim = model.cfg.model_dim
        kv_dim = model.cfg.num_kv_heads * (dim // model.cfg.num_heads)
        slots = len(model.layer_order())
        outs = {"q": dim, "k": kv_dim, "v": kv_dim, "o": dim, "mlp": dim}

        def make(key: str, out: int, inp: int = dim) -> BatchedLoRA:
            return BatchedLoRA(key, docs, inp, out, rank, scale, device, a_init)

        self.slot_adapters: dict[str, list[BatchedLoRA]] = {
            t: [make(f"{t}.{s}", outs[t]) for s in range(slots)] for t in DOC_LORA_TARGETS[:5] if t in targets}
        self.head = make("head", model.vocab_size) if "head" in targets else None
        self.slot = 0
        self.handles: list = []

    @property
    def adapters(self) -> list[BatchedLoRA]:
        return [a for group in self.slot_adapters.values() for a in group] + ([self.head] if self.head else [])

    def tensors(self) -> list[Tensor]:
        return [t for a in self.adapters for t in (a.a, a.b)]

    def reset(self, keep_a: bool) -> None:
        for a in self.adapters:
            a.reset(keep_a)

    # --- attaching ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def attached(self) -> Iterator[None]:
        self._attach()
        try:
            yield
        finally:
            self._detach()

    def _attach(self) -> None:
        model = self.model
        if "run_layer" in model.__dict__ or "head_logits" in model.__dict__:
            raise RuntimeError("another set of TTT adapters is attached to this model")
        self.handles = [model.register_forward_pre_hook(self._new_forward)]
        base_run_layer, base_head = model.run_layer, model.head_logits

        def run_layer(*args, **kwargs):
            out = base_run_layer(*args, **kwargs)
            self.slot += 1
            return out

        def head_logits(x: Tensor) -> Tensor:
            logits = base_head(x)
            return logits if self.head is None else logits + self.head(x).float()

        model.run_layer, model.head_logits = run_layer, head_logits
        for block in model.blocks:
            attn = block.attn
            for target, module in (("q", attn.c_q), ("k", attn.c_k), ("v", attn.c_v), ("o", attn),
                                   ("mlp", block.mlp)):
                if target in self.slot_adapters:
                    self.handles.append(module.register_forward_hook(self._adder(target)))

    def _new_forward(self, _module, _args) -> None:
        self.slot = 0

    def _adder(self, target: str):
        def hook(_module, args, output):
            return output + self.slot_adapters[target][self.slot](args[0])
        return hook

    def _detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        for name in ("run_layer", "head_logits"):
            self.model.__dict__.pop(name, None)
