"""GPTQ calibration inside golf.train: the reserve taken off the training clock, the record of when calibration ran
(calibration.json), and the audit's calibration check, which fails a run whose calibration on training data ended
after train.max_wallclock_s and exempts self-generated calibration."""

from __future__ import annotations

import json

import pytest

from golf.cli import compose
from golf.config import to_golf_config
from golf.errors import ConfigError
from golf.evaluate.audit_calibration import check_calibration, read_calibration
from golf.calibrate import reserves_clock, training_clock

from testkit import golf_command

GPTQ = {"encoder": "gptq"}


def config(*overrides: str):
    return to_golf_config(compose(["quant=gptq_int6_brotli", *overrides]))


def test_calibration_on_training_data_shortens_the_clock_by_the_reserve():
    cfg = config("train.max_wallclock_s=600", "quant.gptq.reserve_s=12")
    assert reserves_clock(cfg) and training_clock(cfg).max_wallclock_s == 588
    assert cfg.train.max_wallclock_s == 600  # the config itself is left as given


@pytest.mark.parametrize("overrides", [
    ["train.max_wallclock_s=600", "quant.gptq.calibration=generated"],  # reads no data
    ["train.max_wallclock_s=0"],  # no clock to keep
    ["train.max_wallclock_s=600", "quant.encoder=sdclip"],  # nothing calibrates
])
def test_nothing_is_reserved_where_calibration_is_not_training(overrides):
    cfg = config("quant.gptq.reserve_s=12", *overrides)
    assert not reserves_clock(cfg) and training_clock(cfg).max_wallclock_s == cfg.train.max_wallclock_s


def test_calibration_that_ended_after_the_clock_fails_and_inside_it_passes():
    record = {"source": "train", "training_clock_s": 590.0, "max_wallclock_s": 600.0}
    assert check_calibration(GPTQ, record).passed
    late = check_calibration(GPTQ, {**record, "training_clock_s": 600.5})
    assert not late.passed and "after the clock" in late.detail["reason"]


def test_self_generated_calibration_is_exempt_and_says_so():
    result = check_calibration(GPTQ, {"source": "generated", "time_s": 700.0})
    assert result.passed and "exempt" in result.detail["reason"]


def test_a_calibrated_artifact_without_its_record_fails_and_an_uncalibrated_one_is_not_judged():
    missing = check_calibration(GPTQ, None)
    assert not missing.passed and "calibration.json" in missing.detail["reason"]
    assert not check_calibration(GPTQ, {"source": "train"}).passed  # incomplete
    assert check_calibration({"encoder": "sdclip"}, None) is None


def test_an_unreadable_record_reads_as_none(tmp_path):
    assert read_calibration(tmp_path) is None
    (tmp_path / "calibration.json").write_text("[1, 2")
    assert read_calibration(tmp_path) is None


TINY = ["model=tiny", "data=text_dir", "data.vocab_size=384", "train.batch_tokens=2048", "train.seq_len=64",
        "eval.batch_seqs=16", "eval.max_tokens=4097", "eval.compressor_baselines=false", "logger=none",
        "quant=gptq_int6_brotli", "quant.passthrough_numel=1024", "quant.gptq.calibration_batches=4",
        "audit.enabled=true", "audit.tokens=640", "audit.positions=2", "train.log_every=50"]


def train(text_corpus, tmp_path, name: str, *overrides: str) -> tuple[dict, dict]:
    result = golf_command("golf.train", *TINY, f"data.path={text_corpus}", f"paths.root={tmp_path}",
                          f"hydra.run.dir={tmp_path}/{name}", *overrides)
    run = tmp_path / name
    assert (run / "metrics.json").is_file(), result.stderr[-3000:]
    return json.loads((run / "metrics.json").read_text()), json.loads((run / "compliance.json").read_text())


@pytest.mark.slow
def test_golf_train_calibrates_inside_the_clock_and_the_audit_fails_a_run_that_did_not(text_corpus, tmp_path):
    # legal: 10 steps well inside a 60 s clock of which 30 s are reserved (a busy machine's first step can take
    # seconds: a tighter clock would make this case flaky), then 4 calibration batches
    metrics, compliance = train(text_corpus, tmp_path, "legal", "train.iterations=10", "train.max_wallclock_s=60",
                                "quant.gptq.reserve_s=30")
    record = metrics["gptq_calibration"]
    assert record["source"] == "train" and record["within_clock"] and record["hessians"] > 0
    assert metrics["steps"] == 10 and record["training_clock_s"] == record["train_time_s"] + record["time_s"] <= 60
    assert json.loads((tmp_path / "legal" / "calibration.json").read_text()) == record
    assert compliance["checks"]["calibration"]["passed"] and metrics["compliant"] is True
    # exported with the Hessians, reloaded and scored from disk: int6 GPTQ costs the tiny model little
    assert abs(metrics["val_bpb"] - metrics["pre_quant_val_bpb"]) < 0.05

    # illegal: no reserve, so training runs to the cap and calibration reads training data after it
    metrics, compliance = train(text_corpus, tmp_path, "late", "train.iterations=100000", "train.max_wallclock_s=2",
                                "quant.gptq.reserve_s=0")
    assert metrics["gptq_calibration"]["training_clock_s"] > 2 and not metrics["gptq_calibration"]["within_clock"]
    assert not compliance["checks"]["calibration"]["passed"] and metrics["compliant"] is False

    # self-generated calibration (one batch: sampling is slow on a CPU): exempt, whatever the clock
    metrics, compliance = train(text_corpus, tmp_path, "generated", "train.iterations=100000",
                                "train.max_wallclock_s=2", "quant.gptq.reserve_s=0", "quant.gptq.calibration=generated",
                                "quant.gptq.calibration_batches=1")
    assert metrics["gptq_calibration"]["exempt"] and compliance["checks"]["calibration"]["passed"]


def test_a_reserve_as_long_as_the_clock_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="quant.gptq.reserve_s"):
        config("train.max_wallclock_s=10", "quant.gptq.reserve_s=10")
    assert training_clock(config("train.max_wallclock_s=10", "quant.gptq.reserve_s=9.5")).max_wallclock_s == 0.5
