"""Settings of the behavioural compliance audit (golf.audit, and `audit.enabled=true` at the end of a run)."""

from dataclasses import dataclass
from typing import Any

from golf.problems import Problems


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


def audit_problems(audit: AuditConfig) -> list[tuple[str, Any, str]]:
    p = Problems("audit.")
    p.at_least("tokens", audit.tokens, 2)
    p.at_least("positions", audit.positions, 1)
    p.at_least("tolerance", audit.tolerance, 0.0)
    p.need(audit.time_factor > 0, "time_factor", audit.time_factor, "a number > 0")
    p.at_least("time_budget_s", audit.time_budget_s, 0.0)
    return p
