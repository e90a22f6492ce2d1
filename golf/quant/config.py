"""Export settings. Only `quant=none` (weights kept as trained) exists so far."""

from dataclasses import dataclass

QUANT_SCHEMES = ("none",)


@dataclass
class QuantConfig:
    name: str = "none"
