"""Settings of the sweep report written at the end of every multirun (golf/hydra_callbacks.py)."""

from dataclasses import dataclass, field


@dataclass
class ReportConfig:
    enabled: bool = True  # write summary.csv, summary.md and the plots when a multirun ends
    baseline: str = ""  # "key=value,key=value" naming the reference row; "" = the row without TTT, else the first
    metrics: list[str] = field(default_factory=list)  # metrics.json keys averaged besides val_bpb and val_loss
