"""Reports: heatmap PNGs, delta heatmaps, markdown/CSV, paired t-tests as pt.Experiment(baseline=...)."""

from __future__ import annotations

import gc
import io

import ir_measures
import numpy as np
import pandas as pd
import pyterrier as pt
import pytest
from PIL import Image

from pyterrier_hybrid import plots
from pyterrier_hybrid.evaluation import _Setting, _tidy

LANGS = ["en", "de", "zh"]


def _grid(name, seed, shift=0.0):
    """A GridResult with per-query AP values for 3 x 3 settings + pooled (no encoder needed)."""
    rng = np.random.default_rng(seed)
    per_setting = []
    for q in LANGS:
        for d in LANGS:
            qids = [f"{q}_g{i}" for i in range(20)]
            values = np.clip(rng.random(20) * (0.9 if q == d else 0.5) + shift, 0, 1)
            per_setting.append((_Setting(q, d, qids, {}), pd.DataFrame({"qid": qids, "measure": "AP",
                                                                           "value": values})))
    qids = [f"{q}_g{i}" for q in LANGS for i in range(20)]
    per_setting.append((_Setting("all", "multi", qids, {}),
                        pd.DataFrame({"qid": qids, "measure": "AP", "value": np.clip(rng.random(60) + shift, 0, 1)})))
    return _tidy("xquad-r", name, per_setting)


def test_heatmap_writes_png_of_expected_size(tmp_path):
    grid = _grid("base", 0)
    path = tmp_path / "sub" / "ap.png"
    fig = plots.heatmap(grid, "AP", path=path, dpi=100)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = (fig.get_size_inches() * 100).round().astype(int)
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size == (width, height)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 9  # a value in every cell
    assert texts[0] == f"{grid.matrix('AP').iloc[0, 0]:.2f}".replace("0.", ".", 1)
    assert not list(tmp_path.glob("sub/.*.tmp"))  # atomic write leaves no temporary file


def test_delta_heatmap_and_mismatch(tmp_path):
    base, better = _grid("base", 0), _grid("hybrid", 0, shift=0.1)
    fig = plots.delta_heatmap(better, base, "AP", path=tmp_path / "delta.png")
    assert (tmp_path / "delta.png").stat().st_size > 1000
    image = fig.axes[0].images[0]
    np.testing.assert_allclose(image.get_array(), better.matrix("AP") - base.matrix("AP"))
    assert image.norm.vmin == -image.norm.vmax  # centred at 0
    smaller = _grid("base", 0)
    smaller.results = smaller.results[smaller.results.dlang != "zh"]
    with pytest.raises(ValueError, match="different settings"):
        plots.delta_heatmap(better, smaller, "AP")


def test_markdown_csv_and_compare(tmp_path):
    grid = _grid("base", 1)
    md = plots.markdown_grid(grid, "AP")
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert lines[0] == "| q \\ d | en | de | zh |"
    assert f"{grid.matrix('AP').loc['de', 'zh']:.3f}" in md
    assert "| measure | mono | cross | pooled |" in md
    grid.to_csv(tmp_path / "grid.csv")
    back = pd.read_csv(tmp_path / "grid.csv")
    pd.testing.assert_frame_equal(back, grid.results.reset_index(drop=True), check_dtype=False)
    table = plots.compare([grid, _grid("hybrid", 1, shift=0.1)])
    assert list(table.index) == ["base", "hybrid"] and list(table.columns) == ["AP mono", "AP cross", "AP pooled"]
    assert table.loc["hybrid", "AP mono"] > table.loc["base", "AP mono"]
    paths = plots.save_report(grid, tmp_path / "report", baseline=_grid("zero", 2))
    assert all(p.exists() for p in paths.values()) and len(paths) == 5


def test_paired_ttests_match_pt_experiment_baseline():
    rng = np.random.default_rng(3)
    qids = [f"en_q{i}" for i in range(30)]
    docs = [f"en_d{j}" for j in range(12)]
    qrels = pd.DataFrame({"qid": qids, "docno": [docs[i % 12] for i in range(30)], "label": 1})
    runs = []
    for bias in (0.0, 0.4):
        rows = [(q, d, float(rng.random() + (bias if d == docs[i % 12] else 0))) for i, q in enumerate(qids)
                for d in docs]
        runs.append(pd.DataFrame(rows, columns=["qid", "docno", "score"]))
    topics = pd.DataFrame({"qid": qids, "query": "x"})
    ref = pt.Experiment(runs, topics, qrels, [ir_measures.AP], names=["base", "model"], baseline=0)
    results = []
    for name, run in zip(["base", "model"], runs):
        perq = pt.Experiment([run], topics, qrels, [ir_measures.AP], perquery=True)[["qid", "measure", "value"]]
        results.append(_tidy("xquad-r", name, [(_Setting("en", "en", qids, {}), perq)]))
    out = plots.paired_ttests(results[1], results[0], "AP")
    assert len(out) == 1
    assert out.p.iloc[0] == pytest.approx(ref.set_index("name").loc["model", "AP p-value"], rel=1e-9)
    assert out.delta.iloc[0] == pytest.approx(ref.AP.iloc[1] - ref.AP.iloc[0])


def test_paired_ttests_per_setting_and_corrections():
    base, model = _grid("base", 0), _grid("model", 5)
    out = plots.paired_ttests(model, base, "AP", correction="holm")
    assert len(out) == 10 and set(out.dlang) >= {"multi"}
    assert (out.p_corrected >= out.p - 1e-15).all() and (out.p_corrected <= 1).all()
    same = plots.paired_ttests(base, base, "AP")
    assert (same.p == 1.0).all() and (same.delta == 0).all()
    with pytest.raises(ValueError, match="bonferroni"):
        plots.paired_ttests(model, base, "AP", correction="fdr")
    with pytest.raises(KeyError):
        plots.paired_ttests(model, base, "nDCG@10")


def _hand_corrected(p: np.ndarray, method: str) -> np.ndarray:
    """The Bonferroni / Holm adjustment plots.py computed by hand before it used statsmodels (the reference)."""
    n = len(p)
    if method == "bonferroni":
        return np.minimum(p * n, 1.0)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(np.maximum.accumulate(p[order] * (n - np.arange(n))), 1.0)
    out = np.empty(n)
    out[order] = adjusted
    return out


@pytest.mark.parametrize("method", ["holm", "bonferroni"])
def test_statsmodels_corrections_equal_the_hand_written_ones(method, monkeypatch):
    """statsmodels' multipletests gives exactly the numbers of the former hand-written code (ties, p = 1 included)."""
    # multipletests(method="holm") runs gc.collect() on every call: with torch and the test session's objects
    # alive that is ~0.5 s a call, minutes for the 300 trials. Collecting garbage cannot change a p-value.
    monkeypatch.setattr(gc, "collect", lambda *args, **kwargs: 0)
    rng = np.random.default_rng(12)
    for trial in range(300):
        n = int(rng.integers(1, 40))
        p = rng.random(n) ** rng.uniform(0.5, 6)
        if trial % 3 == 0:
            p[rng.integers(0, n, size=n // 2)] = p[0]  # ties
        if trial % 5 == 0:
            p[0] = 1.0
        corrected, reject = plots._correct(p, method, alpha=0.05)
        np.testing.assert_array_equal(corrected, _hand_corrected(p, method))
        np.testing.assert_array_equal(reject, _hand_corrected(p, method) <= 0.05)
    base, model = _grid("base", 0), _grid("model", 5)
    out = plots.paired_ttests(model, base, "AP", correction=method, alpha=0.05)
    np.testing.assert_array_equal(out.p_corrected, _hand_corrected(out.p.to_numpy(), method))


def _inside(fig, text) -> bool:
    """Whether ``text`` lies within the figure once drawn (Agg renderer)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    box, frame = text.get_window_extent(canvas.get_renderer()), fig.bbox
    return frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1


LONG_TITLE = ("xquad-r sample: 24 paragraphs per language in 11 languages, all candidate sentences, seed 0 "
              "(60 steps x batch 16, lr 3e-05, max length 96, frozen token embeddings)")


def test_long_titles_fit_inside_the_figure():
    """The protocol summary title (evaluation and budget, wider than the figure) and heatmap titles are wrapped."""
    table = pd.DataFrame({"mono_mAP": [0.5, 0.6], "cross_mAP": [0.3, 0.4], "pooled_mAP": [0.4, 0.5],
                          "RankDistance": [20.0, 15.0]}, index=pd.Index(["base", "hybrid-0.5"], name="preset"))
    for has_bias in (True, False):
        fig = plots.protocol_bars(table if has_bias else table.drop(columns="RankDistance"), title=LONG_TITLE)
        assert fig._suptitle.get_text().count("\n") >= 1  # wrapped, not shrunk
        assert fig._suptitle.get_text().replace("\n", " ") == LONG_TITLE
        assert _inside(fig, fig._suptitle)
    fig = plots.heatmap(_grid("base", 0), "AP", title=LONG_TITLE)
    assert _inside(fig, fig.axes[0].title)
    short = plots.protocol_bars(table, title="xquad-r")
    assert short._suptitle.get_text() == "xquad-r" and _inside(short, short._suptitle)
