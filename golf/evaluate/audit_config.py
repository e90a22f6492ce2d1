"""Settings of the behavioural compliance audit (golf.audit, and `audit.enabled=true` at the end of a run)."""

from dataclasses import dataclass


@dataclass
class AuditConfig:
    enabled: bool = False  # golf.train / golf.eval: audit the evaluation after scoring, write compliance.json
    tokens: int = 8192  # the validation slice the behavioural checks rerun the evaluation on
    positions: int = 4  # C1: how many cut points t (inside chunks and at chunk edges)
    tolerance: float = 0.0  # C1: allowed |NLL change| at positions <= t (0: exact, right on CPU in fp32)
    time_factor: float = 1.0  # budget check: eval time allowed = eval.budget_s * time_factor (slower hardware)
    # The time check is judged (PASS/FAIL) only on hardware=8xh100, the challenge's machine; elsewhere it is reported,
    # never failed, against this budget when > 0 (declared for the hardware), else eval.budget_s * time_factor.
    time_budget_s: float = 0.0
