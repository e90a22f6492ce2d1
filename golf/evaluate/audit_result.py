"""One audit check's verdict: what every check module returns and compliance.json stores under "checks"."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CheckResult:
    name: str
    passed: bool
    detail: dict  # measured values; always "reason", one short line for the verdict table

    def as_dict(self) -> dict:
        return {"passed": self.passed, **self.detail}
