"""Reports of LAReQA grids: heatmaps, delta heatmaps, markdown/CSV tables, paired t-tests per setting.

Example::

    from pyterrier_hybrid.plots import heatmap, delta_heatmap, compare, paired_ttests

    heatmap(base, "AP", path="out/base_ap.png")
    delta_heatmap(hybrid, base, "AP", path="out/hybrid_minus_base.png")
    print(compare([base, hybrid]).to_markdown())
    paired_ttests(hybrid, base, "AP")          # per setting: means, delta, t, p (scipy.stats.ttest_rel)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ._io import atomic_path, atomic_write_text
from .evaluation import markdown_grid

__all__ = [
    "atomic_write_text",
    "compare",
    "delta_heatmap",
    "heatmap",
    "markdown_grid",
    "paired_ttests",
    "protocol_bars",
    "save_report",
]


def _save_figure(fig, path: str | os.PathLike, dpi: int) -> None:
    suffix = Path(path).suffix or ".png"
    with atomic_path(path, suffix=suffix) as tmp:
        fig.savefig(tmp, dpi=dpi, format=suffix[1:])


def _wrap_title(text: str, width_in: float, fontsize: float | str = "large") -> str:
    """``text`` broken at spaces into lines no wider than ``width_in`` inches at ``fontsize``.

    Widths are measured with the font's glyph outlines (no renderer needed), so the title fits whatever the
    backend; a single word wider than the line stays whole.
    """
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    prop = FontProperties(size=fontsize)
    limit = width_in * 72  # points; TextPath measures in points at the font size

    def width(line: str) -> float:
        return TextPath((0, 0), line, prop=prop).get_extents().width if line.strip() else 0.0

    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and width(candidate) > limit:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return "\n".join(lines)


# Share of the figure width a title may use: constrained layout keeps small margins at both edges.
_TITLE_WIDTH = 0.92


def _draw(matrix: pd.DataFrame, *, title: str, cmap: str, center: float | None, digits: int, path, dpi: int,
          label: str, ax=None):
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # no pyplot: no global figure state, works without a display

    values = matrix.to_numpy(dtype=float)
    own = ax is None
    if own:
        size = 0.55 * max(values.shape) + 2.5
        fig = Figure(figsize=(size + 1.2, size), layout="constrained")  # fixed pixel size: figsize x dpi
        ax = fig.subplots()
    else:
        fig = ax.figure
    finite = values[np.isfinite(values)]
    if center is not None:
        span = float(np.max(np.abs(finite - center))) if finite.size else 1.0
        span = span or 1.0
        vmin, vmax = center - span, center + span
    else:
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if vmin == vmax:
            vmin, vmax = vmin - 0.5, vmax + 0.5
    image = ax.imshow(np.ma.masked_invalid(values), cmap=colormaps[cmap], vmin=vmin, vmax=vmax)
    ax.set_xticks(range(values.shape[1]), labels=list(matrix.columns))
    ax.set_yticks(range(values.shape[0]), labels=list(matrix.index))
    ax.set_xlabel("candidate language")
    ax.set_ylabel("question language")
    ax.set_title(_wrap_title(title, _TITLE_WIDTH * fig.get_figwidth()))
    norm = image.norm
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            if not np.isfinite(v):
                continue
            shade = image.cmap(norm(v))
            light = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] > 0.5
            text = f"{v:+.{digits}f}" if center is not None else f"{v:.{digits}f}"
            ax.text(j, i, text.replace("0.", ".", 1) if abs(v) < 1 and digits >= 2 else text, ha="center",
                    va="center", fontsize=7 if values.shape[1] > 8 else 9, color="black" if light else "white")
    fig.colorbar(image, ax=ax, shrink=0.8, label=label)
    if path is not None:
        _save_figure(fig, path, dpi)
    return fig


def _matrix(result, measure: str) -> pd.DataFrame:
    return result.matrix(measure) if hasattr(result, "matrix") else result


def heatmap(result, measure: str = "AP", *, path: str | os.PathLike | None = None, title: str | None = None,
            cmap: str = "viridis", digits: int = 2, dpi: int = 150, ax=None):
    """Heatmap of the question-language x candidate-language grid of ``measure``, values in the cells.

    Args:
        result: a :class:`~pyterrier_hybrid.evaluation.GridResult` (or a qlang x dlang DataFrame).
        measure: measure name as in the result (``"AP"``, ``"nDCG@10"``...).
        path: write a PNG (or any extension matplotlib knows) there, atomically.
        title: figure title (default: model, benchmark, measure).
        cmap: matplotlib colormap.
        digits: decimals shown in the cells.
        dpi: resolution of the saved file.
        ax: draw into this matplotlib axes instead of a new figure.

    Returns:
        The matplotlib figure.
    """
    matrix = _matrix(result, measure)
    if title is None:
        title = f"{getattr(result, 'name', '')} {getattr(result, 'benchmark', '')} {measure}".strip()
    return _draw(matrix, title=title, cmap=cmap, center=None, digits=digits, path=path, dpi=dpi, label=measure,
                 ax=ax)


def delta_heatmap(result, baseline, measure: str = "AP", *, path: str | os.PathLike | None = None,
                  title: str | None = None, cmap: str = "RdBu", digits: int = 2, dpi: int = 150, ax=None):
    """Heatmap of ``result - baseline`` per setting (red: worse, blue: better), centred at 0.

    Args:
        result: the model to show.
        baseline: the model it is compared with (same benchmark and settings).
        measure: measure name.
        path: output file.
        title: figure title.
        cmap: diverging colormap.
        digits: decimals shown.
        dpi: resolution.
        ax: existing axes.
    """
    a, b = _matrix(result, measure), _matrix(baseline, measure)
    if list(a.index) != list(b.index) or list(a.columns) != list(b.columns):
        raise ValueError("the two grids cover different settings; evaluate both on the same languages")
    if title is None:
        title = f"{measure}: {getattr(result, 'name', 'model')} - {getattr(baseline, 'name', 'baseline')}"
    return _draw(a - b, title=title, cmap=cmap, center=0.0, digits=digits, path=path, dpi=dpi,
                 label=f"delta {measure}", ax=ax)


def compare(results: Sequence, measures: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per model: mono / cross / pooled of each measure (columns ``<measure> <kind>``)."""
    rows = {}
    for r in results:
        summary = r.summary()
        wanted = measures or list(summary.index)
        row = {}
        for m in wanted:
            for kind in ("mono", "cross", "pooled"):
                if m in summary.index and not np.isnan(summary.loc[m, kind]):
                    row[f"{m} {kind}"] = summary.loc[m, kind]
        rows[r.name] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "model"
    return frame


def paired_ttests(result, baseline, measure: str = "AP", *, correction: str | None = None,
                  alpha: float = 0.05) -> pd.DataFrame:
    """Paired t-test over queries per setting, as ``pt.Experiment(baseline=...)`` does (``scipy.stats.ttest_rel``).

    Args:
        result: the model.
        baseline: the baseline (same settings; queries are paired by id).
        measure: measure name.
        correction: optional multiple-testing correction over the settings: ``"bonferroni"`` or ``"holm"``.
        alpha: family-wise error rate for ``correction``.

    Returns:
        ``qlang, dlang, n_queries, baseline, model, delta, t, p`` (+ ``p_corrected, reject`` with a correction);
        pooled rows have ``dlang == "multi"``.
    """
    from scipy import stats

    keys = ["qlang", "dlang", "qid"]
    a = result.perquery[result.perquery.measure == measure].set_index(keys)["value"]
    b = baseline.perquery[baseline.perquery.measure == measure].set_index(keys)["value"]
    if a.empty or b.empty:
        raise KeyError(f"no per-query values of {measure!r} in both results")
    joined = pd.concat({"model": a, "baseline": b}, axis=1, join="inner").dropna()
    rows = []
    for (qlang, dlang), group in joined.groupby(level=["qlang", "dlang"], sort=False):
        if len(group) > 1 and not np.allclose(group["model"], group["baseline"]):
            t, p = stats.ttest_rel(group["model"], group["baseline"])
        else:  # identical or single values: no evidence of a difference
            t, p = 0.0, 1.0
        rows.append((qlang, dlang, len(group), group["baseline"].mean(), group["model"].mean(),
                     group["model"].mean() - group["baseline"].mean(), float(t), float(p)))
    out = pd.DataFrame(rows, columns=["qlang", "dlang", "n_queries", "baseline", "model", "delta", "t", "p"])
    if correction is not None:
        out["p_corrected"], out["reject"] = _correct(out["p"].to_numpy(), correction, alpha)
    return out


def _correct(p: np.ndarray, method: str, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Bonferroni or Holm-Bonferroni adjusted p-values and rejections (statsmodels, as ``pt.Experiment`` uses)."""
    from statsmodels.stats.multitest import multipletests

    if method not in ("bonferroni", "holm"):
        raise ValueError(f"unknown correction {method!r}; use 'bonferroni' or 'holm'")
    reject, corrected, _, _ = multipletests(np.asarray(p, dtype=float), alpha=alpha, method=method)
    return corrected, reject


def save_report(result, out_dir: str | os.PathLike, *, measure: str = "AP", baseline=None) -> dict[str, Path]:
    """Write the heatmap PNG, markdown table and CSV of ``result`` (and delta heatmap / t-tests vs ``baseline``).

    Returns:
        Name → written path.
    """
    out = Path(out_dir)
    stem = f"{result.name}_{result.benchmark}".replace("/", "_")
    paths = {"heatmap": out / f"{stem}_{measure}.png", "markdown": out / f"{stem}.md", "csv": out / f"{stem}.csv"}
    heatmap(result, measure, path=paths["heatmap"])
    atomic_write_text(paths["markdown"], markdown_grid(result, measure))
    atomic_write_text(paths["csv"], result.results.to_csv(index=False))
    if baseline is not None:
        paths["delta"] = out / f"{stem}_minus_{baseline.name}_{measure}.png"
        delta_heatmap(result, baseline, measure, path=paths["delta"])
        paths["ttests"] = out / f"{stem}_vs_{baseline.name}_{measure}_ttest.csv"
        atomic_write_text(paths["ttests"], paired_ttests(result, baseline, measure).to_csv(index=False))
    return paths



def protocol_bars(table: pd.DataFrame, *, path: str | os.PathLike | None = None, title: str = "",
                  ap_columns: Sequence[str] = ("mono_mAP", "cross_mAP", "pooled_mAP"), dpi: int = 150):
    """Grouped bars of a protocol table (:meth:`pyterrier_hybrid.protocol.ProtocolResult.table`).

    Left: mono / cross / pooled mAP per preset with ± sd error bars (where there are several seeds);
    right: the pooled-setting rank distance (lower = less language bias) when the table has it.

    Returns:
        The matplotlib figure.
    """
    from matplotlib.figure import Figure

    presets = list(table.index)
    has_bias = "RankDistance" in table.columns
    fig = Figure(figsize=(3 + 1.1 * len(presets) * (1.6 if has_bias else 1), 4.2), layout="constrained")
    axes = fig.subplots(1, 2, width_ratios=[2, 1]) if has_bias else [fig.subplots()]
    x = np.arange(len(presets))
    width = 0.8 / len(ap_columns)
    for i, column in enumerate(ap_columns):
        sd = table.get(f"{column}_sd")
        axes[0].bar(x + (i - (len(ap_columns) - 1) / 2) * width, table[column], width,
                    yerr=None if sd is None or sd.isna().all() else sd.fillna(0), capsize=2,
                    label=column.replace("_", " "))
    axes[0].set_xticks(x, presets, rotation=30, ha="right")
    axes[0].set_ylabel("mAP")
    axes[0].set_ylim(0, 1)
    axes[0].legend(fontsize="small", ncols=len(ap_columns), loc="upper center")
    if has_bias:
        sd = table.get("RankDistance_sd")
        axes[1].bar(x, table["RankDistance"], 0.6, color="tab:gray",
                    yerr=None if sd is None or sd.isna().all() else sd.fillna(0), capsize=2)
        axes[1].set_xticks(x, presets, rotation=30, ha="right")
        axes[1].set_ylabel("rank distance (pooled, lower = less bias)")
    if title:  # wrapped: a budget and evaluation description is often wider than the figure
        fig.suptitle(_wrap_title(title, _TITLE_WIDTH * fig.get_figwidth(), "medium"), fontsize="medium")
    if path is not None:
        _save_figure(fig, path, dpi)
    return fig
