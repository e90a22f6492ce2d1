"""The audit's calibration check: GPTQ calibration on training data is training (the rules since the 2026-04 rulings),
so it must end inside train.max_wallclock_s. The job records when it ran in calibration.json beside the artifact
(golf/calibrate.py); this module reads that record and judges it. Self-generated calibration reads no data and
is exempt; an artifact that needed Hessians from training data but has no record cannot show it was legal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from golf.evaluate.audit_result import CheckResult
from golf.quant.config import HESSIAN_ENCODERS

CALIBRATION_NAME = "calibration.json"


def read_calibration(run_dir: Path) -> Optional[dict[str, Any]]:
    """calibration.json in `run_dir`, or None when there is none (or it is not a JSON object)."""
    try:
        record = json.loads((Path(run_dir) / CALIBRATION_NAME).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def check_calibration(quant: dict[str, Any], record: Optional[dict[str, Any]]) -> Optional[CheckResult]:
    """None when the artifact's encoder (its header's quant) needs no calibration; else PASS for self-generated
    calibration or training-data calibration that ended inside the clock, FAIL otherwise."""
    encoder = quant.get("encoder")
    if encoder not in HESSIAN_ENCODERS:
        return None
    if record is None:
        return CheckResult("calibration", False, {
            "reason": f"quant.encoder={encoder} calibrated, but no {CALIBRATION_NAME} beside the artifact says on "
                      "what or when: cannot show it ended inside the training clock"})
    source = record.get("source")
    if source == "generated":
        return CheckResult("calibration", True, {
            "reason": "self-generated calibration: reads no data, exempt from the training clock", **record})
    clock, cap = record.get("training_clock_s"), record.get("max_wallclock_s")
    if source != "train" or not isinstance(clock, (int, float)) or not isinstance(cap, (int, float)):
        return CheckResult("calibration", False, {
            "reason": f"{CALIBRATION_NAME} is incomplete (source {source!r}, training_clock_s {clock!r}, "
                      f"max_wallclock_s {cap!r})", **record})
    if cap <= 0:
        return CheckResult("calibration", True, {
            "reason": f"training-data calibration with no training clock (train.max_wallclock_s=0): "
                      f"{clock:.1f}s of training + calibration", **record})
    ok = clock <= cap
    reason = (f"training + calibration on training data {clock:.1f}s {'<=' if ok else '>'} "
              f"train.max_wallclock_s={cap:g}" + ("" if ok else ": calibration read training data after the clock"))
    return CheckResult("calibration", ok, {"reason": reason, **record})
