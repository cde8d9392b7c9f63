"""Budget curves (:mod:`pyterrier_hybrid.curves`, ``examples/budget_curve.py``): checks of the budget and
arguments, the significance table (family, Holm), plot titles, the full-run command and estimate; then one
``--smoke`` run with the tiny random model whose outputs, resume and training-neutral callback are checked."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pyterrier_hybrid import curves
from pyterrier_hybrid.curves import CurveBudget, alpha_preset, plan_budget_curve, significance

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "budget_curve.py"
PNG = b"\x89PNG\r\n\x1a\n"


def load_example():
    """Import ``examples/budget_curve.py`` as a module (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("example_budget_curve", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------ no data needed
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"steps": 10, "checkpoints": (11,)}, r"checkpoints must be distinct steps in \(0, 10\]"),
    ({"steps": 10, "checkpoints": (0, 5)}, r"checkpoints must be distinct steps in \(0, 10\]"),
    ({"steps": 10, "checkpoints": (5, 5)}, "checkpoints must be distinct"),
    ({"steps": 10, "checkpoints": (), "warmup_steps": 10}, r"warmup_steps must be in \[0, steps\)"),
    ({"batch_size": 1}, "batch_size >= 2"),
    ({"lr": float("nan")}, "finite lr > 0"),
    ({"freeze_layers": -1}, "freeze_layers must be an int >= 0"),
    ({"freeze_layers": 1.5}, "freeze_layers must be an int >= 0"),
])
def test_budget_refuses_bad_values_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        CurveBudget(**kwargs)
    assert "\n" not in str(info.value)


def test_budget_evaluates_the_final_step_with_a_constant_schedule():
    budget = CurveBudget(steps=10, checkpoints=(5, 2), batch_size=4, warmup_steps=2)
    assert budget.eval_steps == (2, 5, 10)
    assert budget.training_args() == {"lr_scheduler_type": "constant_with_warmup", "warmup_steps": 2, "bf16": False}
    assert budget.describe(5).startswith("5 steps x batch 4, lr 3e-05 constant after 2 warm-up steps")
    assert "steps" not in budget.setup_key() and "checkpoints" not in budget.setup_key()
    # the optional freeze_layers knob joins the key only when used: folders written before it stay resumable
    assert "freeze_layers" not in budget.setup_key() and "frozen" not in budget.describe().split("embeddings")[-1]
    frozen = CurveBudget(steps=10, checkpoints=(5,), batch_size=4, warmup_steps=2, freeze_layers=3)
    assert frozen.setup_key()["freeze_layers"] == 3 and "bottom 3 layers frozen" in frozen.describe()


def test_alpha_points_share_the_cross_and_mono_runs():
    from pyterrier_hybrid.training import validate_mode

    assert [alpha_preset(a) for a in curves.ALPHAS] == ["cross", "hybrid-0.25", "hybrid-0.5", "hybrid-0.75", "mono"]
    assert validate_mode("cross", 0.5)[1] == 0.0 and validate_mode("mono", 0.5)[1] == 1.0
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        alpha_preset(1.5)


def _synthetic(steps=(2, 4)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-question values and summary rows of hybrid-0.5 / mono / cross (2 seeds) and base, 60 questions."""
    rng = np.random.default_rng(0)
    qids = [f"{lang}_{g:03d}" for lang in ("en", "de") for g in range(30)]
    truth = rng.uniform(0.3, 0.9, size=(len(qids), 4))
    shifts = {"hybrid-0.5": 0.0, "mono": -0.08, "cross": 0.0}
    frames = []
    for preset, shift in shifts.items():
        for seed in (0, 1):
            for step in steps:
                noise = rng.normal(0, 0.01, truth.shape) if preset != "cross" else 0.0
                values = truth + shift + noise
                frames.append(pd.DataFrame(values, columns=list(curves.CURVE_METRICS.values()))
                              .assign(preset=preset, seed=seed, step=step, qid=qids))
    frames.append(pd.DataFrame(truth - 0.2, columns=list(curves.CURVE_METRICS.values()))
                  .assign(preset="base", seed=-1, step=0, qid=qids))
    questions = pd.concat(frames, ignore_index=True)
    # cross = the seed mean of hybrid-0.5, question by question: no difference once seeds are averaged
    ref = questions[questions.preset == "hybrid-0.5"].groupby(["step", "qid"])[list(curves.CURVE_METRICS.values())]
    for step in steps:
        mean = ref.mean().loc[step]
        mask = (questions.preset == "cross") & (questions.step == step)
        for column in curves.CURVE_METRICS.values():
            questions.loc[mask, column] = questions.loc[mask, "qid"].map(mean[column]).to_numpy()
    runs = questions.groupby(["preset", "seed", "step"], sort=False)[list(curves.CURVE_METRICS.values())].mean()
    runs = runs.rename(columns={v: k for k, v in curves.CURVE_METRICS.items()}).reset_index()
    return questions, runs


def test_significance_averages_seeds_then_holm_corrects_each_step():
    from statsmodels.stats.multitest import multipletests

    questions, runs = _synthetic()
    sig = significance(questions, runs)
    assert sorted(sig["step"].unique()) == [2, 4]
    for _, rows in sig.groupby("step"):
        assert set(rows["preset"]) == {"mono", "cross", "base"}  # base (step 0) is compared at every step
        assert (rows["family"] == 12).all() and len(rows) == 12  # 3 presets x 4 metrics
        assert (rows["p_t_holm"] >= rows["p_t"] - 1e-15).all()
        assert (rows["p_wilcoxon_holm"] >= rows["p_wilcoxon"] - 1e-15).all()
        np.testing.assert_allclose(rows["p_t_holm"], multipletests(rows["p_t"], method="holm")[1])
        np.testing.assert_allclose(rows["p_t_groups_holm"], multipletests(rows["p_t_groups"], method="holm")[1])
    row = sig[(sig.step == 2) & (sig.preset == "mono") & (sig.metric == "mono_mAP")].iloc[0]
    assert row["delta"] == pytest.approx(0.08, abs=0.01) and row["p_t_holm"] < 1e-6
    assert row["reference_seeds"] == 2 and row["preset_seeds"] == 2 and row["n_questions"] == 60
    # over question groups: en_007 and de_007 are one group, averaged before the test
    assert row["n_groups"] == 30 and row["p_t_groups_holm"] < 1e-6
    from scipy import stats

    grouped = questions[(questions.step == 2) & questions.preset.isin(["hybrid-0.5", "mono"])].assign(
        group=lambda f: f.qid.str[3:]).groupby(["preset", "qid", "group"])["mono_AP"].mean().reset_index()
    grouped = grouped.groupby(["preset", "group"])["mono_AP"].mean().unstack(0)
    assert row["p_t_groups"] == pytest.approx(stats.ttest_rel(grouped["hybrid-0.5"], grouped["mono"]).pvalue)
    same = sig[(sig.preset == "cross")]  # equal per-question seed means: no evidence of a difference
    assert (same["p_t"] == 1.0).all() and (same["delta"].abs() < 1e-12).all()
    ref = questions[(questions.preset == "hybrid-0.5") & (questions.step == 2)].groupby("qid")["mono_AP"].mean()
    assert row["reference_mean"] == pytest.approx(ref.mean())
    seed_level = runs[(runs.preset == "hybrid-0.5") & (runs.step == 2)]["mono_mAP"]
    assert row["reference_seed_mean"] == pytest.approx(seed_level.mean())
    assert row["reference_seed_sd"] == pytest.approx(seed_level.std(ddof=1))


def _title_inside(fig) -> bool:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    box = fig._suptitle.get_window_extent(canvas.get_renderer())
    return box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height


def test_plots_are_written_with_titles_inside_the_figure(tmp_path):
    questions, runs = _synthetic()
    result = curves.CurveResult(runs.assign(train_s=1.0, eval_s=1.0), questions, pd.DataFrame(),
                                CurveBudget(steps=4, checkpoints=(2,), batch_size=4, warmup_steps=0),
                                {"alphas": [0.0, 0.5, 1.0], "reference": "hybrid-0.5"})
    title = "A long title that names the whole budget: " + "150 steps x batch 32, lr 3e-05 constant; " * 4
    noise = pd.DataFrame([{"noise": m, "level": lv, "preset": p, "n": 3, "mono_mAP": 0.8 - lv / 200,
                           "mono_mAP_sd": 0.01, "cross_mAP": 0.7, "cross_mAP_sd": 0.01, "pooled_mAP": 0.6,
                           "pooled_mAP_sd": np.nan}
                          for m in ("typo", "mixed") for lv in (0, 20, 50) for p in ("base", "hybrid-0.5")])
    figures = [curves.plot_curves(result.curve_table(), path=tmp_path / "c.png", title=title, dpi=40),
               curves.plot_alpha(result.alpha_table(), path=tmp_path / "a.png", title=title, dpi=40),
               curves.plot_noise(noise, path=tmp_path / "n.png", title=title, dpi=40)]
    assert list(result.alpha_table()["preset"]) == ["cross", "hybrid-0.5", "mono"]
    for fig, name in zip(figures, ("c.png", "a.png", "n.png")):
        assert (tmp_path / name).read_bytes()[:8] == PNG
        assert _title_inside(fig), name


def test_plan_refuses_bad_input_before_writing_anything(tmp_path):
    import torch

    from pyterrier_hybrid.training.testing import synthetic_pairs

    out = tmp_path / "out"
    ok = {"out_dir": out, "train_pairs": synthetic_pairs(10), "sample": None, "verbose": False,
          "budget": CurveBudget(steps=2, checkpoints=(1,), batch_size=4, warmup_steps=0)}
    cases = [({"presets": ["base", "nope"]}, "unknown preset 'nope'"), ({"seeds": [0, 0]}, "seeds repeat"),
             ({"seeds": []}, "seeds is empty"), ({"alphas": [0.5, 1.5]}, r"in \[0, 1\]"),
             ({"noise_presets": ["x-x"]}, "not among the presets"), ({"noise_models": ["nope"]}, "unknown noise model"),
             ({"noise_levels": [0, 120]}, "noise level"), ({"quantize": "fp8"}, "quantize must be"),
             ({"train_pairs": None}, "train_pairs is None"), ({"alpha_seeds": []}, "alpha seeds is empty")]
    if not torch.cuda.is_available():
        cases.append(({"device": "cuda"}, "no CUDA device"))
    for extra, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            plan_budget_curve(**{**ok, **extra})
        assert "\n" not in str(info.value)
    assert not out.exists()
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep", encoding="utf-8")
    with pytest.raises(FileExistsError, match="holds no budget curve"):
        plan_budget_curve(**{**ok, "out_dir": foreign})
    assert [p.name for p in foreign.iterdir()] == ["mine.txt"] and (foreign / "mine.txt").read_text() == "keep"
    # α points that are not presets are extra runs evaluated at the final step only
    plan = plan_budget_curve(**{**ok, "presets": ["base", "mono", "hybrid-0.5"], "seeds": [0, 1],
                                "alphas": [0, 0.25, 0.5, 1], "alpha_seeds": [0],
                                "noise_presets": ["base", "mono", "hybrid-0.5"]})
    assert plan.jobs == [("base", -1, (0,)), ("mono", 0, (1, 2)), ("hybrid-0.5", 0, (1, 2)), ("mono", 1, (1, 2)),
                         ("hybrid-0.5", 1, (1, 2)), ("cross", 0, (2,)), ("hybrid-0.25", 0, (2,))]
    assert plan.noise_jobs == [("base", -1), ("mono", 0), ("mono", 1), ("hybrid-0.5", 0), ("hybrid-0.5", 1)]
    assert not out.exists()


def test_resume_trains_and_evaluates_only_what_is_missing(tmp_path, monkeypatch):
    """The reuse rules with a fake trainer (calls the callback at every step) and a fake evaluation."""
    from pyterrier_hybrid.training.testing import synthetic_pairs

    plan = plan_budget_curve(out_dir=tmp_path, train_pairs=synthetic_pairs(10), sample=None,
                             presets=["base", "hybrid-0.5"], seeds=[0], alphas=[0.5], noise_models=[],
                             budget=CurveBudget(steps=4, checkpoints=(2,), batch_size=4, warmup_steps=0),
                             verbose=False)
    runner, trained, evaluated = plan.runner, [], []

    def fake_evaluate(model_dir, preset, seed, step):
        evaluated.append(step)
        result = curves.StepEval(preset, seed, step, {"mono_mAP": step / 10}, pd.DataFrame({"qid": ["en_1"]}),
                                 pd.DataFrame({"measure": ["AP"]}))
        result.save(runner.out, runner.setup)
        return result

    class Model:
        training = True

        def eval(self):
            self.training = False

        def train(self, mode=True):
            self.training = mode

        def save(self, path, create_model_card=False):
            (Path(path) / "weights").write_text("w", encoding="utf-8")

    class State:
        is_world_process_zero, global_step = True, 0

    model = Model()

    def fake_train(preset, pairs, *, output_dir, callbacks, budget, **kwargs):
        trained.append(preset)
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "model.safetensors").write_text("final", encoding="utf-8")
        state = State()
        for step in range(1, budget.steps + 1):
            state.global_step = step
            for callback in callbacks:
                callback.on_step_end(None, state, None, model=model)
            assert model.training  # back in train mode after an evaluation

    monkeypatch.setattr(runner, "evaluate", fake_evaluate)
    monkeypatch.setattr(curves, "train_with_checkpoints", fake_train)
    evals = tmp_path / "evals" / "hybrid-0.5-s0"

    def run() -> tuple[list, list]:
        trained.clear()
        evaluated.clear()
        done, _ = runner.run("hybrid-0.5", 0, (2, 4))
        assert [e.step for e in done] == [2, 4] and [e.summary["mono_mAP"] for e in done] == [0.2, 0.4]
        return list(trained), list(evaluated)

    assert run() == (["hybrid-0.5"], [2, 4])  # fresh
    assert run() == ([], [])  # everything stored
    (evals / "step-4.json").unlink()
    assert run() == ([], [4])  # final step missing: the saved final model is evaluated, nothing trained
    (evals / "step-2.json").unlink()
    assert run() == (["hybrid-0.5"], [2])  # an earlier step missing: trained again, only that step evaluated
    record = json.loads((evals / "run.json").read_text(encoding="utf-8"))
    (evals / "run.json").write_text(json.dumps({**record, "status": "training"}), encoding="utf-8")
    (evals / "step-4.json").unlink()
    assert run() == (["hybrid-0.5"], [4])  # killed mid-training: from step 0 again, step 2 reused
    assert json.loads((evals / "run.json").read_text(encoding="utf-8"))["status"] == "done"
    foreign = tmp_path / "models" / "mono-s0"
    foreign.mkdir(parents=True)
    (foreign / "weights.bin").write_text("not ours", encoding="utf-8")
    with pytest.raises(FileExistsError, match="no budget-curve run wrote"):
        runner.run("mono", 0, (2, 4))
    assert [p.name for p in foreign.iterdir()] == ["weights.bin"]


def test_full_run_command_and_estimate_are_in_the_docstring_and_help(capsys):
    example = load_example()
    estimate = example.full_cpu_estimate()
    # 4 presets x 3 seeds + 2 alpha runs
    assert estimate["train"] == pytest.approx(14 * 150 * 32 / curves.CPU_TRAIN_PAIRS_PER_S)
    assert estimate["evaluate"] == pytest.approx(51 * (2766 + 1056) / curves.CPU_BF16_SENTENCES_PER_S)
    doc = example.__doc__
    assert example.FULL_CPU_COMMAND in re.sub(r" \\\n\s+", " ", doc)
    assert f"about {estimate['total'] / 60:.0f} min in all" in " ".join(doc.split())
    with pytest.raises(SystemExit) as exit_info:
        example.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert example.FULL_CPU_COMMAND in out and f"about {estimate['total'] / 60:.0f} min" in out
    argv = shlex.split(example.FULL_CPU_COMMAND)
    args = example.parse_args(argv[argv.index("examples/budget_curve.py") + 1:])
    assert args.budget == CurveBudget() and args.seeds == [0, 1, 2] and args.quantize == "bf16"
    assert (args.presets, args.alphas) == (list(curves.CURVE_PRESETS), list(curves.ALPHAS))


@pytest.mark.parametrize(("argv", "message"), [
    (["--checkpoints", "25,200"], r"checkpoints must be distinct steps in (0, 150]"),
    (["--checkpoints", "5,x"], "--checkpoints must be a comma list of numbers"),
    (["--alphas", "0,2"], "--alphas are mono-batch probabilities in [0, 1]"),
    (["--presets", "base,mono", "--noise-presets", "base,hybrid-0.5"], "are not among --presets"),
    (["--noise-models", "typo,nope"], "unknown noise model"),
    (["--seeds", "0,x"], "seeds must be comma-separated integers"),
    (["--steps", "10"], r"checkpoints must be distinct steps in (0, 10]"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_example().main(argv)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in last and message in last


# ------------------------------------------------------------------------------------------------ one real run
@pytest.fixture(scope="module")
def smoke(lareqa_mirror, tiny_model_dir, tmp_path_factory, one_torch_thread):
    """``budget_curve.py --smoke`` with the tiny random model: base + hybrid-0.5 (seed 0), 2 steps at batch 4,
    evaluated at steps 1 and 2 on a 2-paragraph XQuAD-R slice, typo noise 0 / 20 on the trained model."""
    out = tmp_path_factory.mktemp("budget_curve")
    argv = ["--smoke", "--model", str(tiny_model_dir), "--out", str(out)]
    return argv, out, load_example().main(argv)


@pytest.mark.integration
@pytest.mark.slow  # the three tests that use the module's one --smoke run (tens of seconds on 2 cores)
def test_smoke_writes_every_evaluation_table_and_plot(smoke):
    _, out, result = smoke
    assert result.info["trained"] == ["hybrid-0.5-s0"]
    assert result.info["evaluated"] == ["base@0", "hybrid-0.5-s0@1", "hybrid-0.5-s0@2", "hybrid-0.5-s0@noise"]
    for stem, step in (("base", 0), ("hybrid-0.5-s0", 1), ("hybrid-0.5-s0", 2)):
        for suffix in ("json", "questions.csv", "grid.csv"):
            assert (out / "evals" / stem / f"step-{step}.{suffix}").is_file(), (stem, step, suffix)
    assert (out / "models" / "hybrid-0.5-s0" / "model.safetensors").is_file()
    assert list(zip(result.runs.preset, result.runs.step)) == [("base", 0), ("hybrid-0.5", 1), ("hybrid-0.5", 2)]
    # per-question values agree with the summary of the same grid (121 settings + pooled, 44 questions)
    final = result.questions[(result.questions.preset == "hybrid-0.5") & (result.questions.step == 2)]
    summary = result.runs.iloc[2]
    assert len(final) == 44 and final["qlang"].nunique() == 11
    for column, metric in (("mono_AP", "mono_mAP"), ("cross_AP", "cross_mAP"), ("pooled_AP", "pooled_mAP")):
        assert final[column].mean() == pytest.approx(summary[metric])
    grid = pd.read_csv(out / "evals" / "hybrid-0.5-s0" / "step-2.grid.csv")
    assert len(grid[(grid.measure == "AP") & (grid.dlang != "multi")]) == 121
    # significance: hybrid-0.5 vs base at both steps, family 4 (1 preset x 4 metrics), Holm >= raw p
    sig = pd.read_csv(out / "significance.csv")
    assert set(sig["step"]) == {1, 2} and (sig["family"] == 4).all() and set(sig["preset"]) == {"base"}
    assert set(sig["metric"]) == set(curves.CURVE_METRICS)
    assert (sig["p_t_holm"] >= sig["p_t"] - 1e-15).all() and (sig["p_wilcoxon_holm"] >= sig["p_wilcoxon"] - 1e-15).all()
    assert "Holm" in (out / "significance.md").read_text(encoding="utf-8")
    # noise: every condition; level 0 is the clean evaluation of the saved final model = the step-2 model
    noise = pd.read_csv(out / "noise.csv")
    assert set(zip(noise["noise"], noise["level"], noise["preset"])) == {("typo", 0, "hybrid-0.5"),
                                                                         ("typo", 20, "hybrid-0.5")}
    clean = noise[(noise.preset == "hybrid-0.5") & (noise.level == 0)].iloc[0]
    assert clean["pooled_mAP"] == pytest.approx(summary["pooled_mAP"]) and clean["mono_mAP"] == pytest.approx(
        summary["mono_mAP"])
    for name in ("curve", "final", "alpha", "significance", "noise"):
        assert (out / f"{name}.csv").is_file() and (out / f"{name}.md").is_file(), name
        assert "2 steps x batch 4" in (out / f"{name}.md").read_text(encoding="utf-8"), name
    final_table = pd.read_csv(out / "final.csv")
    assert final_table.set_index("preset").loc["hybrid-0.5", "budget"].startswith("2 steps x batch 4")
    assert "α = 0 is the `cross` preset" in (out / "alpha.md").read_text(encoding="utf-8")
    for plot in ("curves", "alpha", "noise"):
        assert (out / "plots" / f"{plot}.png").read_bytes()[:8] == PNG, plot


@pytest.mark.integration
@pytest.mark.slow
def test_the_callback_leaves_training_unchanged(smoke):
    from safetensors.torch import load_file

    from pyterrier_hybrid.training import pairs_from_benchmark

    argv, out, result = smoke
    plain = out.parent / (out.name + "-plain")
    trainer = curves.train_with_checkpoints("hybrid-0.5", pairs_from_benchmark("mlqa-r"), model=argv[2],
                                            budget=result.budget, seed=0, output_dir=plain, device="cpu")
    with_callback = load_file(out / "models" / "hybrid-0.5-s0" / "model.safetensors")
    without = load_file(plain / "model.safetensors")
    assert with_callback.keys() == without.keys()
    assert all(np.array_equal(with_callback[k].numpy(), without[k].numpy()) for k in without)
    info = [json.loads((d / "hybrid_training.json").read_text()) for d in (out / "models" / "hybrid-0.5-s0", plain)]
    assert info[0]["final_train_loss"] == info[1]["final_train_loss"] is not None
    # the constant schedule: every logged learning rate after the warm-up is the budget's lr
    rates = [log["learning_rate"] for log in trainer.trainer_.state.log_history if "learning_rate" in log]
    assert rates and all(r == pytest.approx(result.budget.lr) for r in rates)


@pytest.mark.integration
@pytest.mark.slow
def test_a_rerun_reuses_every_evaluation_and_trains_nothing(smoke):
    argv, _, first = smoke
    again = load_example().main(argv)
    assert again.info["trained"] == [] and again.info["evaluated"] == []
    pd.testing.assert_frame_equal(again.runs, first.runs)
    pd.testing.assert_frame_equal(again.noise, first.noise)


@pytest.mark.integration
def test_default_slice_size_matches_the_estimate(lareqa_mirror):
    from pyterrier_hybrid.datasets import sample_benchmark

    example = load_example()
    sample = sample_benchmark("xquad-r", paragraphs=48, max_queries=96, seed=0)
    assert len(sample.docnos) == example.DEFAULT_SLICE_CANDIDATES
    assert len(sample.groups) * 11 == example.DEFAULT_SLICE_QUESTIONS
