"""golf.report: a sweep's jobs grouped by configuration, statistics against numpy/scipy on hand-made numbers, the
baseline, the record bar of docs/rules.md, summary.csv / summary.md, and the command's errors (exit code 2)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest
import yaml
from scipy import stats

from testkit import golf_command
from golf.errors import GolfError
from golf.report import main, write_report
from golf.report.jobs import ReportError, config_of, parse_value
from golf.report.stats import parse_baseline, welch_p_lower

LN2 = math.log(2)
BYTES_PER_TOKEN = 4.2


def bpb_of(loss: float) -> float:
    return loss / (LN2 * BYTES_PER_TOKEN)


# ------------------------------------------------------------------------------------------- fake sweep builders


def write_job(root: Path, num: int, overrides: list[str], *, metrics: Optional[dict[str, Any]] = None,
              config: Optional[dict[str, Any]] = None, chunks: Optional[list[float]] = None) -> Path:
    """A run directory as golf.job writes it: overrides.yaml, config.yaml, metrics.jsonl, metrics.json."""
    job = root / str(num)
    job.mkdir(parents=True)
    (job / "overrides.yaml").write_text(yaml.safe_dump(overrides), encoding="utf-8")
    if config is not None:
        (job / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    lines = [{"step": s, "train_loss": 5.0 - 0.1 * s} for s in range(1, 4)]
    for c, bpb in enumerate(chunks or []):
        lines.append({"ttt_chunk": c, "ttt_chunk_bpb": bpb, "ttt_chunk_loss": bpb * LN2 * BYTES_PER_TOKEN,
                      "ttt_chunk_lr": 0.1, "ttt_chunk_tokens": 32768})
    (job / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return job


def job_config(seed: int, protocol: str, lr: float = 0.002, freeze: int = 0, epochs: int = 3,
               quant: str = "int8_zlib") -> dict[str, Any]:
    return {"name": "tiny", "seed": seed, "model": {"name": "tiny", "num_layers": 4},
            "quant": {"name": quant}, "ttt": {"name": protocol, "protocol": protocol, "lr": lr, "freeze": freeze,
                                              "epochs": epochs}}


def ok_metrics(seed: int, loss: float, status: str = "ok", **extra: Any) -> dict[str, Any]:
    return {"status": status, "seed": seed, "val_loss": loss, "val_bpb": bpb_of(loss), "artifact_bytes": 123456,
            "eval_time_s": 10.0 + seed, "reused_artifact": False, **extra}


SEEDS = (1, 2, 3)
BASE_LOSS = {1: 3.000, 2: 3.002, 3: 2.998}
# (freeze, lr) -> seed -> val_loss; the special jobs are listed in SPECIAL
TTT_LOSS = {
    (0, 0.1): {1: 2.9970, 2: 2.9975, 3: 2.9965},  # seed 2 failed: a small gain, not a record
    (0, 0.5): {1: 2.9800, 2: 2.9810, 3: 2.9790},  # -0.02 nats, tight: a record
    (0, 1.0): {1: 2.9500, 2: 2.9510, 3: 2.9490},  # -0.05 nats, tight: a record
    (2, 0.1): {1: 2.9990, 2: 3.0010, 3: 3.0000},  # no gain
    (2, 0.5): {1: 2.9000, 2: 3.1000, 3: 2.8000},  # seed 1 has no metrics.json: -0.05 nats but noisy, p >= 0.01
    (2, 1.0): {1: 3.2000, 2: 3.3000, 3: 9.9999},  # seed 3 diverged: worse than the baseline
}
SPECIAL = {(0, 0.1, 2): "failed", (2, 0.5, 1): "missing", (2, 1.0, 3): "diverged"}


def ttt_time(freeze: int, lr: float, seed: int) -> float:
    return 100.0 + 10 * freeze + 50 * lr + seed


def make_standard_sweep(root: Path, with_config: bool = True, ttt_group: bool = True) -> Path:
    """3 seeds x (ttt=none baseline + 2 freeze x 3 lr), one failed, one diverged, one job without metrics.json."""
    root.mkdir(parents=True, exist_ok=True)
    num = 0
    for seed in SEEDS:  # the baseline first, as `ttt=none,score_first` would order it
        write_job(root, num, [f"seed={seed}", "ttt=none"], metrics=ok_metrics(seed, BASE_LOSS[seed]),
                  config=job_config(seed, "none") if with_config else None)
        num += 1
    for (freeze, lr), losses in TTT_LOSS.items():
        for seed in SEEDS:
            loss = losses[seed]
            overrides = [f"seed={seed}", *(["ttt=score_first"] if ttt_group else []), f"ttt.lr={lr}",
                         f"ttt.freeze={freeze}", "hydra.job.chdir=false"]
            special = SPECIAL.get((freeze, lr, seed))
            chunks = [bpb_of(loss) + 0.02 * math.cos(c) - 0.002 * c for c in range(8)]
            metrics = ok_metrics(seed, loss, ttt_time_s=ttt_time(freeze, lr, seed), ttt_val_bpb=bpb_of(loss))
            if special == "failed":
                metrics = {"status": "failed", "seed": seed, "error": "RuntimeError: CUDA out of memory"}
                chunks = None
            elif special == "diverged":
                metrics = {"status": "diverged", "seed": seed, "val_bpb": None, "val_loss": None,
                           "diverged_at_step": 17}
                chunks = None
            elif special == "missing":
                metrics = None
            write_job(root, num, overrides, metrics=metrics, chunks=chunks,
                      config=job_config(seed, "score_first", lr, freeze) if with_config else None)
            num += 1
    return root


def expected_losses(freeze: Optional[int] = None, lr: Optional[float] = None) -> list[float]:
    """The val_loss of every job that should enter a row's statistics, computed straight from the tables."""
    if freeze is None:
        return [BASE_LOSS[s] for s in SEEDS]
    return [TTT_LOSS[(freeze, lr)][s] for s in SEEDS if (freeze, lr, s) not in SPECIAL]


def row_for(rows, freeze=None, lr=None):
    found = [r for r in rows if r.get("ttt.freeze") == freeze and r.get("ttt.lr") == lr]
    assert len(found) == 1, (freeze, lr, [r["label"] for r in rows])
    return found[0]


# ------------------------------------------------------------------------------------------------------- tests


@pytest.fixture()
def sweep(tmp_path: Path) -> Path:
    return make_standard_sweep(tmp_path / "sweeps" / "2026-01-01_00-00-00_tiny")


def test_configuration_drops_seed_and_hydra_and_is_canonical():
    a = config_of(["seed=3", "ttt.lr=0.5", "ttt.freeze=2", "hydra.job.chdir=false", "hydra/launcher=basic"])
    b = config_of(["ttt.freeze=2", "seed=1", "+ttt.lr=0.5"])
    assert a == b == (("ttt.freeze", "2"), ("ttt.lr", "0.5"))
    assert parse_value("2") == 2 and isinstance(parse_value("2"), int)
    assert parse_value("0.5") == 0.5 and parse_value("1e-3") == 0.001
    assert parse_value("int6_zstd") == "int6_zstd" and parse_value("true") == "true"


def test_rows_and_counts(sweep: Path):
    result = write_report(sweep)
    rows = result.rows
    assert len(rows) == 7
    assert result.keys == ["ttt", "ttt.freeze", "ttt.lr"]
    counts = {(r.get("ttt.freeze"), r.get("ttt.lr")): (r["n"], r["n_diverged"], r["n_failed"]) for r in rows}
    assert counts == {
        (None, None): (3, 0, 0),
        (0, 0.1): (2, 0, 1),
        (0, 0.5): (3, 0, 0),
        (0, 1.0): (3, 0, 0),
        (2, 0.1): (3, 0, 0),
        (2, 0.5): (2, 0, 1),  # the job without metrics.json counts as failed
        (2, 1.0): (2, 1, 0),
    }
    assert sum(r["n"] + r["n_diverged"] + r["n_failed"] for r in rows) == 21
    assert isinstance(row_for(rows, 0, 0.5)["ttt.freeze"], int) and isinstance(row_for(rows, 0, 0.5)["ttt.lr"], float)


def test_means_and_stds_match_numpy(sweep: Path):
    rows = write_report(sweep, metrics=["ttt_time_s"]).rows
    for freeze, lr in [(None, None), *TTT_LOSS]:
        row = row_for(rows, freeze, lr)
        losses = np.array(expected_losses(freeze, lr))
        assert row["val_loss_mean"] == pytest.approx(losses.mean(), abs=1e-12)
        assert row["val_loss_std"] == pytest.approx(losses.std(ddof=1), abs=1e-12)
        bpbs = np.array([bpb_of(x) for x in losses])
        assert row["val_bpb_mean"] == pytest.approx(bpbs.mean(), abs=1e-12)
        assert row["val_bpb_std"] == pytest.approx(bpbs.std(ddof=1), abs=1e-12)
        if freeze is not None:
            times = [ttt_time(freeze, lr, s) for s in SEEDS if (freeze, lr, s) not in SPECIAL]
            assert row["ttt_time_s_mean"] == pytest.approx(np.mean(times))
            assert row["ttt_time_s_std"] == pytest.approx(np.std(times, ddof=1))
        else:
            assert row["ttt_time_s_mean"] is None  # the baseline has no TTT time
    # the diverged job's 9.9999 placeholder never enters the mean
    assert row_for(rows, 2, 1.0)["val_loss_mean"] == pytest.approx(3.25)


def test_delta_and_one_sided_welch_p_match_scipy(sweep: Path):
    rows = write_report(sweep).rows
    base = np.array(expected_losses())
    base_row = row_for(rows)
    assert base_row["baseline"] and base_row["delta_val_loss"] == 0.0 and base_row["p_value"] is None
    for freeze, lr in TTT_LOSS:
        row = row_for(rows, freeze, lr)
        losses = np.array(expected_losses(freeze, lr))
        assert row["delta_val_loss"] == pytest.approx(losses.mean() - base.mean(), abs=1e-12)
        assert row["delta_val_bpb"] == pytest.approx(bpb_of(losses.mean()) - bpb_of(base.mean()), abs=1e-12)
        one_sided = stats.ttest_ind(losses, base, equal_var=False, alternative="less").pvalue
        assert row["p_value"] == pytest.approx(one_sided, rel=1e-9)
        two_sided = stats.ttest_ind(losses, base, equal_var=False).pvalue
        t = stats.ttest_ind(losses, base, equal_var=False).statistic
        # one-sided in the direction "lower is better": half the two-sided p when lower, 1 - half when higher
        assert row["p_value"] == pytest.approx(two_sided / 2 if t < 0 else 1 - two_sided / 2, rel=1e-9)
    assert row_for(rows, 0, 1.0)["p_value"] < 1e-4  # much lower: tiny p
    assert row_for(rows, 2, 1.0)["p_value"] > 0.5  # worse than the baseline: p near 1, not near 0


def test_record_flag(sweep: Path):
    rows = write_report(sweep).rows
    records = {(r.get("ttt.freeze"), r.get("ttt.lr")) for r in rows if r["record"]}
    assert records == {(0, 0.5), (0, 1.0)}
    noisy = row_for(rows, 2, 0.5)  # big gain in the mean but two noisy seeds
    assert noisy["delta_val_loss"] < -0.04 and noisy["p_value"] >= 0.01 and not noisy["record"]
    small = row_for(rows, 0, 0.1)  # significant-looking but below the 0.005-nat margin
    assert -0.005 < small["delta_val_loss"] < 0 and not small["record"]


def test_record_margin_is_inclusive_and_needs_two_seeds(tmp_path: Path):
    root = tmp_path / "sweep"
    base = [3.0, 3.0001, 2.9999]
    for i, loss in enumerate(base):
        write_job(root, i, [f"seed={i}", "ttt=none"], metrics=ok_metrics(i, loss))
    for i, loss in enumerate([2.9950, 2.9951, 2.9949]):  # exactly 0.005 lower in the mean
        write_job(root, 3 + i, [f"seed={i}", "ttt=score_first"], metrics=ok_metrics(i, loss))
    write_job(root, 6, ["seed=1", "ttt=adamw"], metrics=ok_metrics(1, 2.5))  # huge gain, one seed: no test
    rows = write_report(root).rows
    by_ttt = {r["ttt"]: r for r in rows}
    assert by_ttt["score_first"]["delta_val_loss"] == pytest.approx(-0.005)
    assert by_ttt["score_first"]["record"]
    assert by_ttt["adamw"]["p_value"] is None and by_ttt["adamw"]["val_loss_std"] is None
    assert not by_ttt["adamw"]["record"]


def test_welch_p_is_none_below_two_values():
    assert welch_p_lower([1.0], [1.0, 2.0]) is None
    assert welch_p_lower([1.0, 1.1], [2.0]) is None
    assert welch_p_lower([1.0, 1.1], [2.0, 2.1]) < 0.05


def test_default_baseline_without_config_yaml(tmp_path: Path):
    """No config.yaml: the ttt=none override (or no ttt override at all) marks the baseline."""
    rows = write_report(make_standard_sweep(tmp_path / "a", with_config=False)).rows
    assert row_for(rows)["baseline"]
    root = tmp_path / "b"
    write_job(root, 0, ["seed=1", "ttt.lr=0.5"], metrics=ok_metrics(1, 2.9))
    write_job(root, 1, ["seed=1", "quant=int6_zstd"], metrics=ok_metrics(1, 3.1))
    rows = write_report(root).rows
    assert [r["baseline"] for r in rows if r.get("quant") == "int6_zstd"] == [True]


def test_default_baseline_reads_ttt_protocol_from_config(tmp_path: Path):
    """Every job sets ttt.lr; the one whose resolved ttt.protocol is none is the baseline, not the first job."""
    root = tmp_path / "sweep"
    write_job(root, 0, ["seed=1", "ttt.lr=0.5"], metrics=ok_metrics(1, 2.9), config=job_config(1, "score_first", 0.5))
    write_job(root, 1, ["seed=1", "ttt.lr=0.0"], metrics=ok_metrics(1, 3.0), config=job_config(1, "none", 0.0))
    rows = write_report(root).rows
    assert [r["ttt.lr"] for r in rows if r["baseline"]] == [0.0]


def test_default_baseline_falls_back_to_the_first_job(tmp_path: Path):
    root = tmp_path / "sweep"
    for num, (seed, lr, loss) in enumerate([(1, 1.0, 2.9), (1, 0.1, 3.0), (2, 1.0, 2.91), (2, 0.1, 3.01)]):
        write_job(root, num, [f"seed={seed}", "ttt=score_first", f"ttt.lr={lr}"], metrics=ok_metrics(seed, loss),
                  config=job_config(seed, "score_first", lr))
    rows = write_report(root).rows
    assert [r["ttt.lr"] for r in rows if r["baseline"]] == [1.0]  # job 0's configuration, though it is not first by lr
    assert row_for(rows, None, 0.1)["delta_val_loss"] == pytest.approx(0.1)


def test_baseline_option_selects_a_row(sweep: Path):
    result = write_report(sweep, baseline={"ttt.freeze": "2", "ttt.lr": "0.1"})
    base = row_for(result.rows, 2, 0.1)
    assert base["baseline"] and result.baseline is base
    assert sum(r["baseline"] for r in result.rows) == 1
    expected = np.mean(expected_losses(0, 1.0)) - np.mean(expected_losses(2, 0.1))
    assert row_for(result.rows, 0, 1.0)["delta_val_loss"] == pytest.approx(expected)
    # numbers and strings both match typed values; a resolved config key works too
    assert row_for(write_report(sweep, baseline={"ttt.freeze": 2, "ttt.lr": 0.1}).rows, 2, 0.1)["baseline"]
    assert row_for(write_report(sweep, baseline="ttt.protocol=none").rows)["baseline"]


def test_baseline_option_errors(sweep: Path):
    with pytest.raises(ReportError) as err:
        write_report(sweep, baseline={"ttt.lr": "0.7"})
    message = str(err.value)
    assert "ttt.lr=0.7" in message and "ttt.freeze=2,ttt.lr=0.5" in message and "ttt=none" in message
    with pytest.raises(ReportError, match="3 configurations match"):
        write_report(sweep, baseline={"ttt.freeze": "0"})  # three learning rates
    with pytest.raises(ReportError, match="KEY=VALUE"):
        parse_baseline("ttt.lr")
    assert parse_baseline("ttt.freeze=2,ttt.lr=0.5") == {"ttt.freeze": "2", "ttt.lr": "0.5"}
    assert parse_baseline("model.sizes=[1,2],seed=3") == {"model.sizes": "[1,2]", "seed": "3"}


def test_over_budget_jobs_are_in_the_statistics_but_never_a_record(tmp_path: Path):
    root = tmp_path / "sweep"
    for i, loss in enumerate([3.0, 3.001, 2.999]):
        write_job(root, i, [f"seed={i}", "quant=int8_zlib"], metrics=ok_metrics(i, loss))
    for i, loss in enumerate([2.90, 2.901, 2.899]):
        write_job(root, 3 + i, [f"seed={i}", "quant=int5_zstd"],
                  metrics=ok_metrics(i, loss, status="over_budget" if i == 0 else "ok"))
    result = write_report(root)
    row = next(r for r in result.rows if r["quant"] == "int5_zstd")
    assert row["n"] == 3 and row["n_over_budget"] == 1 and row["n_ok"] == 2 and row["over_budget"]
    assert row["val_loss_mean"] == pytest.approx(2.90) and row["p_value"] < 0.01 and not row["record"]
    assert "⚠ over budget" in result.markdown


def test_unknown_metric_is_an_error(sweep: Path):
    with pytest.raises(ReportError, match="ttt_tme_s.*ttt_time_s"):
        write_report(sweep, metrics=["ttt_tme_s"])


def test_csv_parses_back_with_the_same_numbers(sweep: Path):
    result = write_report(sweep, metrics=["ttt_time_s"])
    with open(result.csv_path, newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(result.rows) == 7
    for line, row in zip(table, result.rows):
        for column in ("val_bpb_mean", "val_bpb_std", "val_loss_mean", "val_loss_std", "delta_val_bpb",
                       "delta_val_loss", "p_value", "ttt_time_s_mean"):
            if row[column] is None:
                assert line[column] == ""
            else:
                assert float(line[column]) == row[column]  # full precision, exactly
        for column in ("n", "n_diverged", "n_failed", "n_over_budget"):
            assert int(line[column]) == row[column]
        assert line["record"] == ("true" if row["record"] else "false")
        assert line["baseline"] == ("true" if row["baseline"] else "false")
        assert parse_value(line["ttt.lr"]) == row["ttt.lr"] if row["ttt.lr"] is not None else line["ttt.lr"] == ""


def test_markdown_has_every_row_sorted_with_the_baseline_marked(sweep: Path):
    result = write_report(sweep)
    text = result.md_path.read_text(encoding="utf-8")
    assert text == result.markdown
    assert str(sweep) in text and "21 jobs: 18 ok, 1 diverged, 2 failed (1 without metrics.json)" in text
    table = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(table) == 7
    for row in result.rows:
        assert any(f"{row['val_bpb_mean']:.4f}" in line for line in table), row["label"]
    means = [r["val_bpb_mean"] for r in result.rows if r["val_bpb_mean"] is not None]
    assert means == sorted(means)
    marked = [line for line in table if "◀ baseline" in line]
    assert len(marked) == 1 and "none" in marked[0]
    assert sum("**yes**" in line for line in table) == 2
    for name in ("bpb_vs_ttt_lr.png", "heatmap_ttt_freeze_lr.png", "ttt_chunk_bpb.png"):
        assert f"]({name})" in text
    assert "RuntimeError: CUDA out of memory" in text and "diverged at step 17" in text


def test_missing_or_empty_sweep_dir_is_an_error(tmp_path: Path):
    with pytest.raises(ReportError, match="does not exist"):
        write_report(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="holds no job directories"):
        write_report(tmp_path / "empty")
    assert issubclass(ReportError, GolfError)


def test_jobs_without_overrides_are_reported_not_grouped(tmp_path: Path):
    root = tmp_path / "sweep"
    write_job(root, 0, ["seed=1", "ttt.lr=0.1"], metrics=ok_metrics(1, 3.0))
    (root / "1").mkdir()  # a job that died before writing anything
    result = write_report(root)
    assert len(result.rows) == 1
    assert "2 jobs: 1 ok, 0 diverged, 1 failed (1 without metrics.json)" in result.markdown


def test_main_writes_and_prints(sweep: Path, capsys):
    assert main([str(sweep), "--metrics", "ttt_time_s,eval_time_s", "--baseline", "ttt.freeze=2,ttt.lr=0.1"]) == 0
    out = capsys.readouterr().out
    assert "ttt_time_s" in out and "eval_time_s" in out and "summary.csv" in out
    assert (sweep / "summary.csv").is_file() and (sweep / "summary.md").is_file()


@pytest.mark.parametrize("args,needle", [
    (["{missing}"], "does not exist"),
    (["{sweep}", "--baseline", "ttt.lr=0.7"], "ttt.lr=0.7"),
])
def test_main_errors_exit_2_with_one_paragraph(sweep: Path, tmp_path: Path, capsys, args, needle):
    argv = [a.format(missing=tmp_path / "nowhere", sweep=sweep) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("golf: ") and needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_command_line_exit_code(sweep: Path, tmp_path: Path):
    ok = golf_command("golf.report", str(sweep), timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "◀ baseline" in ok.stdout
    bad = golf_command("golf.report", str(tmp_path / "nowhere"), timeout=300)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------------- a TTT grid's "no TTT" row


NO_TTT_LOSS = {1: 3.10, 2: 3.12}  # each seed's artifact scored without TTT (what every TTT job of that seed measures)


def make_ttt_grid(root: Path, old_keys: bool = False) -> Path:
    """freeze {0, 4} x lr {0.01, 0.1} x seeds {1, 2}, every job with TTT, as `sweep=ttt_freeze_lr` on tiny makes."""
    num = 0
    for freeze in (0, 4):
        for lr in (0.01, 0.1):
            for seed in NO_TTT_LOSS:
                loss = NO_TTT_LOSS[seed] - 0.01 * freeze * lr - 0.001 * seed
                without = NO_TTT_LOSS[seed]
                reference = ({"quant_val_bpb": bpb_of(without), "quant_val_loss": without} if old_keys else
                             {"no_ttt_val_bpb": bpb_of(without), "no_ttt_val_loss": without,
                              "quant_val_bpb": bpb_of(without) + 1.0})  # the no_ttt_* keys win over quant_*
                metrics = ok_metrics(seed, loss, ttt_val_bpb=bpb_of(loss), artifact_sha256=f"sha-of-seed-{seed}",
                                     **reference)
                write_job(root, num, [f"seed={seed}", f"ttt.freeze={freeze}", f"ttt.lr={lr}"], metrics=metrics,
                          config=job_config(seed, "score_first", lr, freeze), chunks=[bpb_of(loss)] * 3)
                num += 1
    return root


@pytest.mark.parametrize("old_keys", [False, True])
def test_a_ttt_grid_is_judged_against_the_same_artifacts_without_ttt(tmp_path: Path, old_keys: bool):
    result = write_report(make_ttt_grid(tmp_path / "grid", old_keys))
    (reference,) = [r for r in result.rows if r["reference"]]
    assert reference["baseline"] and result.baseline is reference
    assert reference["n"] == len(NO_TTT_LOSS)  # one value per trained artifact, not one per TTT job
    assert reference["val_loss_mean"] == pytest.approx(np.mean(list(NO_TTT_LOSS.values())))
    assert reference["val_bpb_mean"] == pytest.approx(np.mean([bpb_of(v) for v in NO_TTT_LOSS.values()]))
    row = row_for(result.rows, 4, 0.1)
    assert row["delta_val_loss"] == pytest.approx(row["val_loss_mean"] - reference["val_loss_mean"])
    assert row["delta_val_loss"] < 0 and row["p_value"] is not None
    assert "Baseline: **no TTT" in result.markdown and "scored without TTT" in result.markdown


def test_the_no_ttt_row_is_a_reference_line_in_the_plots_and_can_be_named(tmp_path: Path):
    grid = make_ttt_grid(tmp_path / "grid")
    names = {p.name for p in write_report(grid).plot_paths}
    assert {"bpb_vs_ttt_lr.png", "heatmap_ttt_freeze_lr.png", "ttt_chunk_bpb.png"} <= names
    from golf.report.plots import chunk_curves
    from golf.report.stats import summarize

    summary = summarize(grid)
    assert all(not row["reference"] for row, *_ in chunk_curves(summary))  # its chunks are the TTT jobs' own
    picked = write_report(grid, baseline="ttt.freeze=0,ttt.lr=0.01")
    assert not next(r for r in picked.rows if r["reference"])["baseline"]
    assert next(r for r in write_report(grid, baseline="ttt=none").rows if r["reference"])["baseline"]


def test_freezing_every_block_is_warned_about(tmp_path: Path):
    markdown = write_report(make_ttt_grid(tmp_path / "grid")).markdown
    warned = [line for line in markdown.splitlines() if "freezes every block" in line]
    assert len(warned) == 2 and all("ttt.freeze=4" in line for line in warned)  # lr 0.01 and 0.1; freeze 0 is fine


def test_a_grid_with_a_ttt_none_configuration_keeps_it_as_the_baseline(sweep: Path):
    rows = write_report(sweep).rows
    assert not any(r["reference"] for r in rows) and row_for(rows)["baseline"]
