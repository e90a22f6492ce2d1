"""The sweep report's plots (PNG, matplotlib's Agg canvas; no display, no global backend switch).

Only the plots that apply to the sweep's varying keys are drawn:
    bpb_vs_ttt_lr.png         val_bpb vs ttt.lr, one line per ttt.freeze (or per setting of the other varying keys),
                              error bars = sample std over seeds, log x when lr spans more than 10x
    bpb_vs_ttt_epochs.png     val_bpb vs ttt.epochs, the same way
    heatmap_ttt_freeze_lr.png mean val_bpb over ttt.freeze x ttt.lr (one panel per setting of other varying keys)
    ttt_chunk_bpb.png         per-chunk TTT bpb from metrics.jsonl, one line per configuration (mean over seeds)
    bpb_vs_<key>.png          val_bpb vs any other key that varies while the rest stay fixed (quant.name, model.*)
A line plot needs two values of its key with the other keys fixed; otherwise there is nothing to compare.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import matplotlib
import numpy as np
from matplotlib import transforms
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import NullFormatter

from golf.atomic import atomic_write_bytes
from golf.report.jobs import format_value, value_sort_key
from golf.report.stats import Summary, row_label

BPB_LABEL = "val_bpb (bits per byte)"
KEY_LABELS = {
    "ttt.lr": "ttt.lr (TTT learning rate)",
    "ttt.epochs": "ttt.epochs (TTT passes over each chunk)",
    "ttt.freeze": "ttt.freeze (frozen leading blocks)",
}
SPECIAL_KEYS = ("ttt.lr", "ttt.epochs", "ttt.freeze")
STYLE = {"font.size": 11, "axes.titlesize": 11, "figure.titlesize": 14, "axes.labelsize": 12,
         "legend.fontsize": 10, "xtick.labelsize": 10, "ytick.labelsize": 10}
DPI = 120
ERRORBAR_NOTE = "error bars: sample std over seeds; hollow markers: a single seed (no error bar)"

Row = dict[str, Any]


def key_label(key: str) -> str:
    return KEY_LABELS.get(key, key)


def file_stem(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_")


# -------------------------------------------------------------------------------------------------- planning


def planned_plots(summary: Summary) -> list[tuple[str, Callable[[Summary, Path], None]]]:
    """(file name, drawing function) of every plot that applies to this sweep, in a fixed order."""
    plans: list[tuple[str, Callable[[Summary, Path], None]]] = []
    keys = summary.keys
    if "ttt.lr" in keys and comparable(summary, "ttt.lr"):
        plans.append(("bpb_vs_ttt_lr.png", lambda s, p: plot_vs_key(s, "ttt.lr", p)))
    if "ttt.epochs" in keys and comparable(summary, "ttt.epochs"):
        plans.append(("bpb_vs_ttt_epochs.png", lambda s, p: plot_vs_key(s, "ttt.epochs", p)))
    if heatmap_applies(summary):
        plans.append(("heatmap_ttt_freeze_lr.png", plot_heatmap))
    if chunk_curves(summary):
        plans.append(("ttt_chunk_bpb.png", plot_chunks))
    for key in keys:
        if key not in SPECIAL_KEYS and comparable(summary, key):
            plans.append((f"bpb_vs_{file_stem(key)}.png", lambda s, p, k=key: plot_vs_key(s, k, p)))
    return plans


def make_plots(summary: Summary, out_dir: Optional[Path] = None) -> list[Path]:
    """Draw every plot that applies into out_dir (default: the sweep directory), atomically; the paths written."""
    out_dir = Path(out_dir or summary.sweep_dir)
    written = []
    for name, draw in planned_plots(summary):
        path = out_dir / name
        draw(summary, path)
        written.append(path)
    return written


def series(summary: Summary, key: str) -> tuple[list[str], dict[tuple, list[Row]]]:
    """The rows that set `key`, grouped by the other keys that vary among them: (those keys, {values: rows})."""
    rows = [r for r in summary.rows if r.get(key) is not None]
    others = [k for k in summary.keys if k != key and len({r.get(k) for r in rows}) > 1]
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in others), []).append(row)
    ordered = dict(sorted(groups.items(), key=lambda kv: tuple(value_sort_key(v) for v in kv[0])))
    for members in ordered.values():
        members.sort(key=lambda r: value_sort_key(r[key]))
    return others, ordered


def comparable(summary: Summary, key: str) -> bool:
    """True when some setting of the other varying keys was run with at least two values of `key`."""
    _, groups = series(summary, key)
    return any(len({r[key] for r in rows}) >= 2 for rows in groups.values())


def heatmap_applies(summary: Summary) -> bool:
    rows = [r for r in summary.rows if r.get("ttt.freeze") is not None and r.get("ttt.lr") is not None]
    return (len({r["ttt.freeze"] for r in rows}) >= 2 and len({r["ttt.lr"] for r in rows}) >= 2)


def chunk_curves(summary: Summary) -> list[tuple[Row, np.ndarray, np.ndarray, int]]:
    """Per configuration with TTT chunk records: (row, chunk indices, mean chunk bpb over seeds, seeds used)."""
    out = []
    for row, group in zip(summary.rows, summary.groups):
        if group.reference:  # the "no TTT" row: its jobs' chunk records are their TTT's, not its own
            continue
        per_job = [c for c in (job.chunk_bpb() for job in group.scored) if c]
        if not per_job:
            continue
        chunks = sorted({c for job in per_job for c in job})
        means = np.array([np.mean([job[c] for job in per_job if c in job]) for c in chunks])
        out.append((row, np.array(chunks), means, len(per_job)))
    return out


# ---------------------------------------------------------------------------------------------------- drawing


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    atomic_write_bytes(path, buf.getvalue())


def _series_label(others: Sequence[str], values: tuple) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in zip(others, values)) or "all runs"


def _baseline_reference(ax, summary: Summary, key: str) -> None:
    """The baseline row as a dashed line with a ±std band, when it is not itself a point of this plot."""
    base = summary.baseline_row
    mean, std = base["val_bpb_mean"], base["val_bpb_std"]
    if base.get(key) is not None or mean is None:
        return
    label = f"baseline ({base['label']}): {mean:.4f}" + (f" ± {std:.4f}" if std else "")
    ax.axhline(mean, color="0.35", linestyle="--", linewidth=1.4, label=label, zorder=1)
    if std:
        ax.axhspan(mean - std, mean + std, color="0.5", alpha=0.12, zorder=0, linewidth=0)


def plot_vs_key(summary: Summary, key: str, path: Path) -> None:
    """val_bpb (mean ± std over seeds) against one key, a line (or, for a non-numeric key, points) per setting of the
    other varying keys; configurations without a scored seed are marked at the top."""
    others, groups = series(summary, key)
    rows = [r for members in groups.values() for r in members]
    xs_all = sorted({r[key] for r in rows}, key=value_sort_key)
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs_all)
    log_x = numeric and min(xs_all) > 0 and max(xs_all) / min(xs_all) > 10
    k = len(groups)
    if numeric and log_x:
        step = 0.012 * math.log10(max(xs_all) / min(xs_all))
        position = lambda x, i: x * 10 ** ((i - (k - 1) / 2) * step)  # noqa: E731
    elif numeric:
        step = 0.012 * ((max(xs_all) - min(xs_all)) or 1.0)
        position = lambda x, i: x + (i - (k - 1) / 2) * step  # noqa: E731
    else:
        step = min(0.08, 0.6 / max(k, 1))
        index = {x: j for j, x in enumerate(xs_all)}
        position = lambda x, i: index[x] + (i - (k - 1) / 2) * step  # noqa: E731

    with matplotlib.rc_context(STYLE):
        fig = _new_figure(11.5 if k + 2 > 6 else 8.0, 5.2)  # room for a legend beside the axes
        ax = fig.add_subplot()
        colors = _colors(k)
        top = transforms.blended_transform_factory(ax.transData, ax.transAxes)
        marked_missing = False
        for i, (values, members) in enumerate(groups.items()):
            color = colors[i]
            scored = [r for r in members if r["val_bpb_mean"] is not None]
            x = [position(r[key], i) for r in scored]
            y = [r["val_bpb_mean"] for r in scored]
            err = [r["val_bpb_std"] or 0.0 for r in scored]
            ax.errorbar(x, y, yerr=err, color=color, marker="o", markersize=7, capsize=4, linewidth=1.8,
                        linestyle="-" if numeric else "none",
                        label=_series_label(others, values) if others else None, zorder=3)
            single = [(xi, yi) for xi, yi, r in zip(x, y, scored) if r["n"] == 1]
            if single:
                ax.scatter(*zip(*single), s=28, color="white", zorder=4)
            for xi, yi, r in zip(x, y, scored):
                if r["n_diverged"] or r["n_failed"] or r["n_over_budget"]:  # just above the error bar, in the line's colour
                    ax.annotate(_lost_text(r), (xi, yi + (r["val_bpb_std"] or 0.0)), xytext=(0, 5),
                                textcoords="offset points", fontsize=8.5, color=color, fontweight="bold",
                                ha="center", va="bottom", zorder=6,
                                bbox=dict(facecolor="white", alpha=0.85, edgecolor="none", pad=1.0))
            for r in members:
                if r["val_bpb_mean"] is None:  # nothing to average: an X at the top, in the line's colour
                    ax.plot([position(r[key], i)], [0.95], transform=top, marker="X", markersize=12,
                            color=color, markeredgecolor="black", linestyle="none", zorder=5, clip_on=False)
                    if not marked_missing:
                        ax.plot([], [], marker="X", markersize=10, color="white", markeredgecolor="black",
                                linestyle="none", label="X at the top: no scored seed (all diverged / failed)")
                    marked_missing = True
        _baseline_reference(ax, summary, key)
        if log_x:
            ax.set_xscale("log")
        if numeric and len(xs_all) <= 12:
            ax.set_xticks([float(x) for x in xs_all], [format_value(x) for x in xs_all])
            ax.xaxis.set_minor_formatter(NullFormatter())
        elif not numeric:
            labels = [format_value(x) for x in xs_all]
            rotate = len(labels) > 6 or max(len(s) for s in labels) > 10
            ax.set_xticks(range(len(xs_all)), labels, rotation=30 if rotate else 0, ha="right" if rotate else "center")
            ax.set_xlim(-0.6, len(xs_all) - 0.4)
        if marked_missing:
            ax.margins(y=0.12)
        ax.set_xlabel(key_label(key) + (" (log scale)" if log_x else ""))
        ax.set_ylabel(BPB_LABEL)
        ax.grid(True, alpha=0.3)
        _titles(ax, f"val_bpb vs {key} (mean over seeds; lower is better)", ERRORBAR_NOTE)
        _legend(ax, title=", ".join(others) if others else None, entries=k + 2)
        _save(fig, path)


def plot_heatmap(summary: Summary, path: Path) -> None:
    """Mean val_bpb over ttt.freeze (rows) x ttt.lr (columns), annotated; one panel per setting of the other varying
    keys. Grey hatched cells: no scored seed; '—': not run; the best cell is outlined."""
    rows = [r for r in summary.rows if r.get("ttt.freeze") is not None and r.get("ttt.lr") is not None]
    others = [k for k in summary.keys if k not in ("ttt.freeze", "ttt.lr") and len({r.get(k) for r in rows}) > 1]
    panels: dict[tuple, list[Row]] = {}
    for row in rows:
        panels.setdefault(tuple(row.get(k) for k in others), []).append(row)
    panels = dict(sorted(panels.items(), key=lambda kv: tuple(value_sort_key(v) for v in kv[0])))
    lrs = sorted({r["ttt.lr"] for r in rows}, key=value_sort_key)
    freezes = sorted({r["ttt.freeze"] for r in rows}, key=value_sort_key)
    means = [r["val_bpb_mean"] for r in rows if r["val_bpb_mean"] is not None]
    base = summary.baseline_row
    reference = base["val_bpb_mean"] if base.get("ttt.lr") is None else None  # not a cell: a line on the colour bar
    if reference is not None:
        means.append(reference)
    vmin, vmax = (min(means), max(means)) if means else (0.0, 1.0)
    if vmax - vmin < 1e-12:
        vmin, vmax = vmin - 1e-3, vmax + 1e-3
    best = min((r for r in rows if r["val_bpb_mean"] is not None), key=lambda r: r["val_bpb_mean"], default=None)

    n_panels = len(panels)
    with matplotlib.rc_context(STYLE):
        width = max(6.5, 1.25 * len(lrs) * n_panels + 2.8)
        fig = _new_figure(width, max(4.2, 0.95 * len(freezes) + 2.6))
        axes = fig.subplots(1, n_panels, squeeze=False)[0]
        cmap = matplotlib.colormaps["viridis_r"].with_extremes(bad="0.85")
        image = None
        for ax, (values, members) in zip(axes, panels.items()):
            grid = np.full((len(freezes), len(lrs)), np.nan)
            cell = {(r["ttt.freeze"], r["ttt.lr"]): r for r in members}
            for (f, lr), r in cell.items():
                if r["val_bpb_mean"] is not None:
                    grid[freezes.index(f), lrs.index(lr)] = r["val_bpb_mean"]
            image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto",
                              origin="lower")
            for fi, f in enumerate(freezes):
                for li, lr in enumerate(lrs):
                    r = cell.get((f, lr))
                    if r is None:
                        ax.text(li, fi, "—\nnot run", ha="center", va="center", fontsize=9, color="0.4")
                        continue
                    if r["val_bpb_mean"] is None:
                        ax.add_patch(Rectangle((li - 0.5, fi - 0.5), 1, 1, fill=False, hatch="///",
                                               edgecolor="firebrick", linewidth=0))
                        word = "diverged" if r["n_diverged"] else "failed"
                        ax.text(li, fi, f"{word}\n({r['n_diverged'] + r['n_failed']} seeds)", ha="center",
                                va="center", fontsize=9, color="firebrick", fontweight="bold",
                                bbox=dict(facecolor="white", alpha=0.8, edgecolor="none", pad=1.5))
                        continue
                    text = f"{r['val_bpb_mean']:.4f}"
                    if r["val_bpb_std"]:
                        text += f"\n±{r['val_bpb_std']:.4f}"
                    if r["n_diverged"] or r["n_failed"] or r["n_over_budget"]:
                        text += f"\n{_lost_text(r)}"
                    shade = cmap((r["val_bpb_mean"] - vmin) / (vmax - vmin))
                    light = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] > 0.55
                    ax.text(li, fi, text, ha="center", va="center", fontsize=9,
                            color="black" if light else "white",
                            fontweight="bold" if r is best else "normal")
                    if r is best:
                        ax.add_patch(Rectangle((li - 0.48, fi - 0.48), 0.96, 0.96, fill=False, edgecolor="red",
                                               linewidth=2.5))
            ax.set_xticks(range(len(lrs)), [format_value(v) for v in lrs])
            ax.set_yticks(range(len(freezes)), [format_value(v) for v in freezes])
            ax.set_xlabel(key_label("ttt.lr"))
            ax.set_title(_series_label(others, values) if others else "", fontsize=10)
        axes[0].set_ylabel(key_label("ttt.freeze"))
        note = "red outline: best cell; hatched: no scored seed"
        if image is not None:
            bar = fig.colorbar(image, ax=list(axes), label="mean " + BPB_LABEL, shrink=0.9)
            if reference is not None:  # where the baseline sits on the colour scale
                bar.ax.axhline(reference, color="red", linestyle="--", linewidth=2.0)
                bar.ax.text(-0.1, reference, "baseline ", transform=bar.ax.get_yaxis_transform(), ha="right",
                            va="center", fontsize=8.5, color="red")
                note = f"red dash on the colour bar: {base['label']}, {reference:.4f}; " + note
        fig.suptitle("Mean val_bpb over ttt.freeze × ttt.lr (lower is better)")
        fig.supxlabel(note, fontsize=9, color="0.35")  # under the axes labels, inside the layout
        _save(fig, path)


def plot_chunks(summary: Summary, path: Path) -> None:
    """Per-chunk TTT bpb in validation order, one line per configuration, mean over its scored seeds. With several
    configurations a second panel subtracts, chunk by chunk, the mean of all lines: the text of a chunk moves every
    line alike, so what is left is how the configurations differ as adaptation goes on."""
    curves = chunk_curves(summary)
    k = len(curves)
    shown = [c[0] for c in curves]
    keys = [key for key in summary.keys if len({r.get(key) for r in shown}) > 1]  # what tells these lines apart
    common = sorted(set.intersection(*(set(int(c) for c in curve[1]) for curve in curves)))
    relative = k >= 2 and len(common) >= 2
    with matplotlib.rc_context(STYLE):
        fig = _new_figure(11.0 if k > 4 else 8.5, 7.8 if relative else 5.2)
        if relative:
            ax, ax_rel = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
        else:
            ax, ax_rel = fig.add_subplot(), None
        colors = _colors(k)
        few_points = max(len(c[1]) for c in curves) <= 20
        style = lambda i: dict(color=colors[i], linewidth=1.6, linestyle=("-", "--", ":")[i // 10 % 3],  # noqa: E731
                               marker="o" if few_points else None, markersize=4)
        for i, (row, chunks, means, n) in enumerate(curves):
            score = f"; val_bpb {row['val_bpb_mean']:.4f}" if row["val_bpb_mean"] is not None else ""
            ax.plot(chunks, means, label=f"{row_label(row, keys)} (n={n}{score})", **style(i))
        if ax_rel is not None:
            table = np.array([[dict(zip(chunks.tolist(), means))[c] for c in common] for _, chunks, means, _ in curves])
            centre = table.mean(axis=0)
            for i, values in enumerate(table):
                ax_rel.plot(common, values - centre, **style(i))
            ax_rel.axhline(0.0, color="0.3", linewidth=1.0)
            ax_rel.set_ylabel("minus the mean of all lines\n(bits per byte)")
            ax_rel.grid(True, alpha=0.3)
        bottom = ax_rel if ax_rel is not None else ax
        if few_points:
            all_chunks = sorted({int(c) for curve in curves for c in curve[1]})
            bottom.set_xticks(all_chunks)
        bottom.set_xlabel("TTT chunk (index, in validation order)")
        ax.set_ylabel("chunk bpb (bits per byte)")
        ax.grid(True, alpha=0.3)
        _titles(ax, "Score-first TTT: bpb of each chunk (mean over seeds)",
                "each chunk is scored before the model adapts on it")
        _legend(ax, title=None, entries=k + 3 if k > 4 else k)  # more than 4 lines: the legend goes beside
        _save(fig, path)


def _titles(ax, title: str, note: str) -> None:
    """A title over the axes with a small grey note under it (an axes title, not a figure one, so that a legend
    beside the axes never runs into it)."""
    ax.set_title(title, fontsize=14, pad=20)
    ax.text(0.5, 1.012, note, transform=ax.transAxes, ha="center", va="bottom", fontsize=9, color="0.35")


def _lost_text(row: Row) -> str:
    parts = []
    if row["n_diverged"]:
        parts.append(f"{row['n_diverged']} diverged")
    if row["n_failed"]:
        parts.append(f"{row['n_failed']} failed")
    if row.get("n_over_budget"):
        parts.append(f"{row['n_over_budget']} over budget")
    return ", ".join(parts)


def _colors(k: int) -> list:
    if k <= 10:
        cmap = matplotlib.colormaps["tab10"]
        return [cmap(i) for i in range(max(k, 1))]
    if k <= 20:  # pairs of a dark and a light shade: neighbours stay distinguishable
        cmap = matplotlib.colormaps["tab20"]
        return [cmap(i) for i in range(k)]
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(i / max(k - 1, 1) * 0.9) for i in range(k)]


def _legend(ax, title: Optional[str], entries: int) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if not handles:  # a single unnamed line: nothing to tell apart
        return
    if entries > 6:  # many lines: beside the axes (a figure legend, so a tall one leaves the axes' layout alone)
        ax.figure.legend(handles, labels, title=title, loc="outside right upper", frameon=False,
                         fontsize=9 if entries > 12 else None)
    else:
        ax.legend(title=title, loc="best", framealpha=0.9)
