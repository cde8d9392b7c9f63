"""Reports of LAReQA grids and protocol runs: heatmaps, tables, paired t-tests, per-language bars.

Grids get heatmaps, delta heatmaps, markdown/CSV tables and paired t-tests per setting; a protocol run gets
its summary bars (:func:`protocol_bars`) and per-language tables and bars (:func:`write_per_language`).

Example::

    from pyterrier_hybrid.plots import heatmap, delta_heatmap, compare, paired_ttests

    heatmap(base, "AP", path="out/base_ap.png")
    delta_heatmap(hybrid, base, "AP", path="out/hybrid_minus_base.png")
    print(compare([base, hybrid]).to_markdown())
    paired_ttests(hybrid, base, "AP")          # per setting: means, delta, t, p (scipy.stats.ttest_rel)
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._io import atomic_path, atomic_write_text
from .evaluation import markdown_grid

if TYPE_CHECKING:
    from .protocol import ProtocolResult

__all__ = [
    "atomic_write_text",
    "compare",
    "delta_heatmap",
    "heatmap",
    "markdown_grid",
    "paired_ttests",
    "per_language",
    "per_language_markdown",
    "plot_per_language",
    "protocol_bars",
    "save_figure",
    "save_report",
    "write_per_language",
]


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 120) -> None:
    """Write a matplotlib figure to ``path`` atomically (temporary sibling, then rename); format from the suffix."""
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
        save_figure(fig, path, dpi)
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
        save_figure(fig, path, dpi)
    return fig


# ------------------------------------------------------------------------------------ per-language reports
def per_language(result: ProtocolResult, measure: str = "AP") -> pd.DataFrame:
    """Per preset and language: the monolingual value and the pooled value of that language's questions.

    The monolingual value is the grid's diagonal; both are means over the preset's seeds.

    Returns:
        Columns ``preset``, ``lang``, ``mono``, ``pooled`` (presets in run order, languages in grid order).
    """
    per_run = []
    for (preset, _seed), grid in result.grids.items():
        matrix = grid.matrix(measure)
        diagonal = pd.Series({lang: matrix.loc[lang, lang] for lang in matrix.index if lang in matrix.columns})
        pooled = grid.pooled_by_qlang()
        pooled = pooled[measure] if measure in pooled.columns else pd.Series(dtype=float)
        frame = pd.DataFrame({"mono": diagonal, "pooled": pooled.reindex(diagonal.index)})
        per_run.append(frame.rename_axis("lang").reset_index().assign(preset=preset))
    if not per_run:
        return pd.DataFrame(columns=["preset", "lang", "mono", "pooled"])
    runs = pd.concat(per_run, ignore_index=True)
    return runs.groupby(["preset", "lang"], sort=False)[["mono", "pooled"]].mean().reset_index()


def per_language_markdown(frame: pd.DataFrame, highlight: Iterable[str], *, label: str,
                          others: str, digits: int = 3) -> str:
    """Two markdown tables (monolingual AP, pooled AP per question language), languages x presets.

    The ``highlight`` languages are marked with ``label``; two closing rows give the means of both language groups.
    """
    highlight = set(highlight)
    blocks = []
    for column, heading in (("mono", "Monolingual AP (question and candidates in the language)"),
                            ("pooled", "Pooled AP of the language's questions (candidates in every language)")):
        wide = frame.pivot(index="lang", columns="preset", values=column)
        wide = wide.reindex(index=list(dict.fromkeys(frame["lang"])), columns=list(dict.fromkeys(frame["preset"])))
        if wide.isna().all().all():
            continue
        lines = [f"{heading}:", "", "| language | group | " + " | ".join(wide.columns) + " |",
                 "|" + "---|" * (len(wide.columns) + 2)]

        def row(name: str, group: str, values: pd.Series) -> str:
            cells = ["" if pd.isna(v) else f"{v:.{digits}f}" for v in values]
            return f"| {name} | {group} | " + " | ".join(cells) + " |"

        for lang, values in wide.iterrows():
            lines.append(row(str(lang), label if lang in highlight else others, values))
        for group, langs in ((others, [x for x in wide.index if x not in highlight]),
                             (label, [x for x in wide.index if x in highlight])):
            if langs:
                lines.append(row(f"**mean {group}**", group, wide.loc[langs].mean()))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def plot_per_language(frame: pd.DataFrame, highlight: Iterable[str], *, path: str | os.PathLike, title: str, label: str,
                      dpi: int = 120) -> Any:
    """Grouped bars per language (one bar per preset): monolingual AP and pooled AP per question language.

    The ``highlight`` languages are shaded and their tick labels coloured (named ``label`` in the legend).

    Returns:
        The matplotlib figure (also written to ``path``, atomically).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    highlight = set(highlight)
    langs = list(dict.fromkeys(frame["lang"]))
    langs = [x for x in langs if x not in highlight] + [x for x in langs if x in highlight]
    presets = list(dict.fromkeys(frame["preset"]))
    panels = [c for c in ("mono", "pooled") if frame[c].notna().any()]
    fig = Figure(figsize=(2.5 + 0.22 * len(langs) * max(len(presets), 2), 3.4 * len(panels)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True))
    x = np.arange(len(langs))
    width = 0.8 / len(presets)
    names = {"mono": "monolingual AP", "pooled": "pooled AP (question language)"}
    for ax, column in zip(axes, panels):
        wide = frame.pivot(index="lang", columns="preset", values=column).reindex(index=langs, columns=presets)
        for i, lang in enumerate(langs):
            if lang in highlight:
                ax.axvspan(i - 0.5, i + 0.5, color="tab:red", alpha=0.08, lw=0)
        for j, preset in enumerate(presets):
            ax.bar(x + (j - (len(presets) - 1) / 2) * width, wide[preset].to_numpy(dtype=float), width, label=preset)
        ax.set_ylabel(names[column])
        top = np.nanmax(wide.to_numpy(dtype=float)) if wide.notna().any().any() else 1.0
        ax.set_ylim(0, min(1.0, 1.15 * top) if math.isfinite(top) and top > 0 else 1.0)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(x, langs)
    for tick, lang in zip(axes[-1].get_xticklabels(), langs):
        if lang in highlight:
            tick.set_color("tab:red")
            tick.set_fontweight("bold")
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(Patch(color="tab:red", alpha=0.15))
    labels.append(label)
    axes[0].legend(handles, labels, fontsize="small", ncols=min(len(labels), 6), loc="upper left")
    fig.suptitle(_wrap_title(title, _TITLE_WIDTH * fig.get_figwidth(), "medium"), fontsize="medium")
    save_figure(fig, path, dpi=dpi)
    return fig


def write_per_language(result: ProtocolResult, out: str | os.PathLike, highlight: Iterable[str], *, label: str,
                       others: str, title: str) -> str:
    """Per-language tables and plot of a protocol run; returns the markdown.

    Writes ``per_language.csv``, ``per_language.md`` and ``plots/per_language.png`` in ``out``.
    """
    highlight, out = list(highlight), Path(out)
    frame = per_language(result)
    frame = frame.assign(group=[label if lang in highlight else others for lang in frame["lang"]])
    atomic_write_text(out / "per_language.csv", frame.to_csv(index=False))
    markdown = per_language_markdown(frame, highlight, label=label, others=others)
    atomic_write_text(out / "per_language.md", markdown)
    plot_per_language(frame, highlight, path=out / "plots" / "per_language.png", title=title, label=label)
    return markdown
