"""The scorecard's words: TTT's signed delta reads "better" when TTT lowered the bpb and "worse" when it raised it."""

from golf.scorecard import scorecard, ttt_delta_phrase


def ttt_metrics(ttt_bpb: float, no_ttt_bpb: float, **extra) -> dict:
    return {"status": "ok", "val_bpb": ttt_bpb, "ttt_val_bpb": ttt_bpb, "no_ttt_val_bpb": no_ttt_bpb,
            "ttt_delta_bpb": ttt_bpb - no_ttt_bpb, "ttt_time_s": 3.0, **extra}


def delta_line(card: str) -> str:
    return next(line for line in card.splitlines() if line.startswith("TTT delta"))


def test_ttt_that_lowers_the_bpb_reads_better_with_a_negative_sign():
    line = delta_line(scorecard(ttt_metrics(1.50, 1.52)))
    assert "-0.0200 bpb" in line and "better than" in line and "worse" not in line


def test_ttt_that_raises_the_bpb_reads_worse_with_a_positive_sign():
    line = delta_line(scorecard(ttt_metrics(1.72, 1.52)))
    assert "+0.2000 bpb" in line and "worse than" in line and "better than" not in line


def test_metrics_from_before_the_rename_still_show_the_delta():
    old = ttt_metrics(1.50, 1.52)
    old["ttt_gain_bpb"] = old.pop("ttt_delta_bpb")
    assert "better than" in delta_line(scorecard(old))


def test_no_word_gain_anywhere_on_the_scorecard():
    assert "gain" not in scorecard(ttt_metrics(1.50, 1.52)).lower()


def test_zero_delta_is_neither_better_nor_worse():
    assert ttt_delta_phrase(0.0) == "exactly as good as"


def test_an_unjudged_time_budget_is_said_next_to_the_audit_verdict():
    card = scorecard({"status": "ok", "val_bpb": 1.5, "compliant": True, "audit_time_judged": False,
                      "audit_time_budget_s": 1200.0})
    assert "PASS" in card and "1200 s, reported, not judged" in card
    assert "not judged" not in scorecard({"status": "ok", "val_bpb": 1.5, "compliant": True,
                                          "audit_time_judged": True, "audit_time_budget_s": 600.0})


def test_the_old_name_stays_in_metrics_json_but_not_in_w_and_b(tmp_path, monkeypatch):
    """ttt_gain_bpb is kept in metrics.json for one release; W&B's summary carries only ttt_delta_bpb."""
    import json

    import golf.job.lifecycle as job
    from golf.cli import compose
    from golf.config import to_golf_config

    summaries = []

    class FakeTracker:
        run = None

        def __init__(self, *args, **kwargs):
            pass

        def log(self, *args, **kwargs):
            pass

        def finish(self, summary, *args, **kwargs):
            summaries.append(summary)

    monkeypatch.setattr(job, "WandbRun", FakeTracker)
    metrics = {**ttt_metrics(1.50, 1.52), "seed": 1}
    metrics["ttt_gain_bpb"] = metrics["ttt_delta_bpb"]
    cfg = to_golf_config(compose(["logger=none", f"paths.root={tmp_path}"]))
    job.run_job(cfg, tmp_path / "run", [], body=lambda *_: dict(metrics))
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["ttt_gain_bpb"] == written["ttt_delta_bpb"]
    (summary,) = summaries
    assert "ttt_gain_bpb" not in summary and summary["ttt_delta_bpb"] == metrics["ttt_delta_bpb"]
