"""A batch's own ledger appended to the run's (golf/evaluate/ttt/doc_ledger.py): its scorings and trainings keep
their order, shifted after what the run ledger already holds."""

from __future__ import annotations

from golf.evaluate.ledger import ScoreLedger
from golf.evaluate.ttt.doc_ledger import append_batch


def test_a_batch_ledger_keeps_its_order_after_the_runs_earlier_versions():
    run = ScoreLedger(100)
    run.record_scores(1, 5)
    run.record_training(1, 5)
    part = ScoreLedger(100)
    part.record_scores(10, 14)
    part.record_scores(20, 24)
    part.record_training(10, 14)
    part.record_training(20, 24)
    part.record_scores(14, 18)
    part.record_training(14, 18)  # a step after the last scoring
    append_batch(run, part)
    assert run.scores == [(1, 5, 0), (10, 14, 1), (20, 24, 1), (14, 18, 3)]
    assert run.trainings == [(1, 5), (10, 14), (20, 24), (14, 18)]
    assert not run.seen_by_scorer().any()


def test_a_batch_that_scored_after_training_on_it_stays_caught_once_appended():
    run, part = ScoreLedger(50), ScoreLedger(50)
    run.record_training(30, 40)
    part.record_training(10, 14)
    part.record_scores(10, 14)
    append_batch(run, part)
    assert run.seen_by_scorer()[10:14].all() and not run.seen_by_scorer()[30:40].any()
