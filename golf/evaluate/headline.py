"""Which evaluation is a run's score (val_bpb): golf.train's (golf/evaluate/scoring.py) and a submission's
train_gpt.py's (golf/submit/standalone_main.py) choice, in one place so that the two cannot drift apart."""

from __future__ import annotations

from typing import Optional, TypeVar

Result = TypeVar("Result")

STANDARD, SLIDING, TTT = "standard", "sliding", "ttt"


def choose_headline(standard: Result, sliding: Optional[Result], ttt: Optional[Result],
                    ttt_illegal: bool) -> tuple[str, Result]:
    """(which, result): TTT's score when TTT ran with a legal protocol, else the sliding windows' when they ran, else
    the standard evaluation's. An illegal protocol's number (adapt_first adapts before it scores) is never the score."""
    if ttt is not None and not ttt_illegal:
        return TTT, ttt
    if sliding is not None:
        return SLIDING, sliding
    return STANDARD, standard
