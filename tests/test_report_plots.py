"""golf.report's plots: the right set for each kind of sweep, and real PNG files that hold a picture."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image
import pytest

from golf.report import write_report
from golf.report.plots import chunk_curves
from golf.report.stats import summarize
from test_report import bpb_of, job_config, make_standard_sweep, ok_metrics, write_job

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 15_000, f"{path.name} is only {len(data)} bytes: an empty picture?"
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert width >= 600 and height >= 400, (path.name, width, height)
    assert image[..., :3].std() > 0.05, f"{path.name} is nearly one colour"


def plot_names(result) -> set[str]:
    return {p.name for p in result.plot_paths}


def test_standard_sweep_plots(tmp_path: Path):
    result = write_report(make_standard_sweep(tmp_path / "sweep"))
    assert plot_names(result) == {"bpb_vs_ttt_lr.png", "heatmap_ttt_freeze_lr.png", "ttt_chunk_bpb.png"}
    for path in result.plot_paths:
        assert path.parent == tmp_path / "sweep"
        assert_png(path)
    assert not list((tmp_path / "sweep").glob(".*.tmp")), "atomic writes leave no temporary files"


def test_lr_only_sweep_has_no_heatmap(tmp_path: Path):
    root = tmp_path / "sweep"
    num = 0
    for lr in (0.002, 0.1, 1.0):  # spans 500x: log x
        for seed in (1, 2):
            loss = 2.9 - 0.01 * lr
            write_job(root, num, [f"seed={seed}", "ttt=score_first", f"ttt.lr={lr}"], metrics=ok_metrics(seed, loss),
                      config=job_config(seed, "score_first", lr), chunks=[bpb_of(loss) + 0.01 * c for c in range(5)])
            num += 1
    result = write_report(root)
    assert plot_names(result) == {"bpb_vs_ttt_lr.png", "ttt_chunk_bpb.png"}
    for path in result.plot_paths:
        assert_png(path)


def test_epochs_sweep(tmp_path: Path):
    root = tmp_path / "sweep"
    num = 0
    for epochs in (1, 3, 10):
        for seed in ((1,) if epochs == 10 else (1, 2)):  # a single-seed point has no error bar
            write_job(root, num, [f"seed={seed}", f"ttt.epochs={epochs}"], metrics=ok_metrics(seed, 2.9 - epochs / 1e3),
                      config=job_config(seed, "score_first", epochs=epochs))
            num += 1
    result = write_report(root)
    assert plot_names(result) == {"bpb_vs_ttt_epochs.png"}
    assert_png(result.plot_paths[0])


def test_other_key_sweep_gets_its_own_chart(tmp_path: Path):
    root = tmp_path / "sweep"
    num = 0
    for quant, loss in (("int8_zlib", 2.95), ("int6_zstd", 2.93), ("int5_zstd", 2.97)):
        for seed in (1, 2, 3):
            write_job(root, num, [f"seed={seed}", f"quant={quant}", "model.num_layers=9"],
                      metrics=ok_metrics(seed, loss + seed / 1e4), config=job_config(seed, "none", quant=quant))
            num += 1
    result = write_report(root)
    assert plot_names(result) == {"bpb_vs_quant.png"}  # no TTT: no TTT plots; model.num_layers does not vary
    assert_png(result.plot_paths[0])


def test_seeds_only_sweep_has_no_plots_but_a_table(tmp_path: Path):
    root = tmp_path / "sweep"
    for seed in (1, 2, 3):
        write_job(root, seed, [f"seed={seed}", "model=tiny"], metrics=ok_metrics(seed, 3.0 + seed / 1e3))
    result = write_report(root)
    assert result.plot_paths == [] and len(result.rows) == 1
    assert result.rows[0]["n"] == 3 and "model=tiny" in result.markdown
    assert result.csv_path.is_file() and result.md_path.is_file()


def test_key_that_never_varies_alone_gets_no_chart(tmp_path: Path):
    """`ttt` (none vs score_first) changes together with ttt.lr: there is no bpb-vs-ttt comparison to draw."""
    result = write_report(make_standard_sweep(tmp_path / "sweep"))
    assert "ttt" in result.keys and "bpb_vs_ttt.png" not in plot_names(result)


def test_heatmap_panels_and_all_diverged_cells(tmp_path: Path):
    """freeze x lr x epochs: one heatmap panel per epochs value; a cell whose seeds all diverged and a cell never
    run are drawn, not crashed on; the lr and epochs plots get one line per other setting."""
    root = tmp_path / "sweep"
    num = 0
    for epochs in (1, 3):
        for freeze in (0, 2):
            for lr in (0.1, 1.0):
                if (epochs, freeze, lr) == (3, 2, 0.1):
                    continue  # never run
                for seed in (1, 2):
                    if (epochs, freeze, lr) == (3, 2, 1.0):
                        metrics = {"status": "diverged", "seed": seed, "val_bpb": None, "val_loss": None}
                    else:
                        metrics = ok_metrics(seed, 2.9 - 0.01 * lr * epochs + 0.002 * freeze + seed / 1e4)
                    write_job(root, num, [f"seed={seed}", f"ttt.epochs={epochs}", f"ttt.freeze={freeze}",
                                          f"ttt.lr={lr}"], metrics=metrics,
                              config=job_config(seed, "score_first", lr, freeze, epochs))
                    num += 1
    result = write_report(root)
    assert plot_names(result) == {"bpb_vs_ttt_lr.png", "bpb_vs_ttt_epochs.png", "heatmap_ttt_freeze_lr.png"}
    for path in result.plot_paths:
        assert_png(path)


def test_chunk_curves_average_over_seeds(tmp_path: Path):
    root = tmp_path / "sweep"
    write_job(root, 0, ["seed=1", "ttt.lr=0.1"], metrics=ok_metrics(1, 2.9), chunks=[1.0, 0.9, 0.8])
    write_job(root, 1, ["seed=2", "ttt.lr=0.1"], metrics=ok_metrics(2, 2.9), chunks=[1.2, 1.1, 1.0])
    write_job(root, 2, ["seed=3", "ttt.lr=0.1"], metrics={"status": "diverged", "seed": 3}, chunks=[9.0, 9.0, 9.0])
    write_job(root, 3, ["seed=1", "ttt.lr=0.5"], metrics=ok_metrics(1, 2.8), chunks=[0.7, float("nan")])
    curves = {row["ttt.lr"]: (chunks.tolist(), means.tolist(), n) for row, chunks, means, n in
              chunk_curves(summarize(root))}
    assert curves[0.1][0] == [0, 1, 2] and curves[0.1][2] == 2  # the diverged job is left out
    assert curves[0.1][1] == pytest.approx([1.1, 1.0, 0.9])
    assert curves[0.5][0] == [0] and curves[0.5][1] == pytest.approx([0.7])  # a non-finite value is skipped
    assert math.isfinite(sum(curves[0.1][1]))
